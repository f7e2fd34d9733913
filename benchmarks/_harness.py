"""Timing, statistics and reporting shared by the benchmark scripts (no mnemostore imports here)."""

from __future__ import annotations

import gc
import json
import math
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "Measurement",
    "Variant",
    "format_table",
    "measure_async",
    "measure_sync",
    "percentile",
    "write_json",
]

SyncOp = Callable[[], object]
AsyncOp = Callable[[], Awaitable[object]]


@dataclass(slots=True)
class Measurement:
    """Latencies of one variant, summed over every timed round."""

    backend: str
    path: str
    variant: str
    rows_per_op: int
    latencies: list[float] = field(default_factory=list)
    wall: float = 0.0

    def add(self, latencies: Sequence[float], wall: float) -> None:
        self.latencies.extend(latencies)
        self.wall += wall

    @property
    def ops(self) -> int:
        return len(self.latencies)

    @property
    def ops_per_s(self) -> float:
        return self.ops / self.wall if self.wall else 0.0

    @property
    def rows_per_s(self) -> float:
        return self.ops_per_s * self.rows_per_op

    def summary(self) -> dict[str, Any]:
        ordered = sorted(self.latencies)
        return {
            "backend": self.backend,
            "path": self.path,
            "variant": self.variant,
            "rows_per_op": self.rows_per_op,
            "ops": self.ops,
            "seconds": round(self.wall, 4),
            "ops_per_s": round(self.ops_per_s, 2),
            "rows_per_s": round(self.rows_per_s, 1),
            "mean_ms": round(1000 * sum(ordered) / len(ordered), 4) if ordered else None,
            "p50_ms": round(1000 * percentile(ordered, 50), 4) if ordered else None,
            "p99_ms": round(1000 * percentile(ordered, 99), 4) if ordered else None,
        }


@dataclass(slots=True)
class Variant:
    """One way of doing a path's operation: a sync callable, or an async one run on ``runner``."""

    name: str
    op: SyncOp | None = None
    async_op: AsyncOp | None = None


def percentile(ordered: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile of an already sorted sequence."""
    if not ordered:
        return math.nan
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def measure_sync(op: SyncOp, seconds: float, *, min_ops: int = 3) -> tuple[list[float], float]:
    """Call ``op`` back to back for about ``seconds``; return each call's latency and the wall time."""
    gc.collect()
    latencies: list[float] = []
    clock = time.perf_counter
    start = clock()
    deadline = start + seconds
    now = start
    while now < deadline or len(latencies) < min_ops:
        t0 = clock()
        op()
        now = clock()
        latencies.append(now - t0)
    return latencies, now - start


async def measure_async(op: AsyncOp, seconds: float, *, min_ops: int = 3) -> tuple[list[float], float]:
    """The async twin of ``measure_sync``: awaits ``op`` back to back on the running loop."""
    gc.collect()
    latencies: list[float] = []
    clock = time.perf_counter
    start = clock()
    deadline = start + seconds
    now = start
    while now < deadline or len(latencies) < min_ops:
        t0 = clock()
        await op()
        now = clock()
        latencies.append(now - t0)
    return latencies, now - start


def _fmt_rate(value: float) -> str:
    if value >= 100:
        return f"{value:,.0f}"
    return f"{value:,.1f}"


def _fmt_ms(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.3f}" if value < 10 else f"{value:.1f}"


def format_table(rows: Sequence[dict[str, Any]]) -> str:
    """A fixed-width table of ``Measurement.summary()`` dicts with an optional ``ratio``/``note`` per row."""
    headers = ["backend", "path", "variant", "ops/s", "rows/s", "p50 ms", "p99 ms", "x raw", "note"]
    body = [
        [
            row["backend"],
            row["path"],
            row["variant"],
            _fmt_rate(row["ops_per_s"]),
            _fmt_rate(row["rows_per_s"]),
            _fmt_ms(row["p50_ms"]),
            _fmt_ms(row["p99_ms"]),
            f"{row['ratio']:.2f}" if row.get("ratio") is not None else "",
            row.get("note", ""),
        ]
        for row in rows
    ]
    widths = [max(len(h), *(len(r[i]) for r in body)) for i, h in enumerate(headers)]
    right = {3, 4, 5, 6, 7}

    def line(cells: Sequence[str]) -> str:
        out = [c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True))]
        return "  ".join(out).rstrip()

    lines = [line(headers), line(["-" * w for w in widths])]
    previous: tuple[str, str] | None = None
    for row, cells in zip(rows, body, strict=True):
        key = (row["backend"], row["path"])
        if previous is not None and key != previous:
            lines.append("")
        previous = key
        lines.append(line(cells))
    return "\n".join(lines)


def write_json(path: Path, payload: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2, default=str) + "\n")


def environment_line(servers: Sequence[str], started: float) -> str:
    """The closing line of a benchmark's report: servers, library versions, CPUs, load and total time."""
    import os
    import platform

    import psycopg
    import sqlalchemy

    return (
        f"{', '.join(servers)}; python {platform.python_version()}, SQLAlchemy {sqlalchemy.__version__}, "
        f"psycopg {psycopg.__version__}; {os.cpu_count()} CPUs, load average {os.getloadavg()[1]:.2f}; "
        f"total {time.perf_counter() - started:.0f} s"
    )
