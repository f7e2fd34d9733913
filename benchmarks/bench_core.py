#!/usr/bin/env python
"""mnemostore's core paths against the raw driver: single append, bulk append, history read.

Run from the repository root (see benchmarks/README.md)::

    .venv/bin/python benchmarks/bench_core.py                  # both backends, ~2-3 s per measurement
    .venv/bin/python benchmarks/bench_core.py --quick          # smoke run, ~15 s
    .venv/bin/python benchmarks/bench_core.py --backend sqlite --json results.json

Each backend gets a scratch database (a temporary SQLite file, or a new PostgreSQL database created on the
``--pg-dsn`` server and dropped at the end), migrated by mnemostore. Every variant writes to its own conversation,
so appends never contend. The variants of one path are measured in interleaved rounds (rotating order) so that
table growth and background work (WAL checkpoints, autovacuum) hit them alike.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import platform
import shutil
import sqlite3
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiosqlite
import psycopg
import sqlalchemy
from _harness import Measurement, Variant, environment_line, format_table, measure_async, measure_sync, write_json
from _raw import RawPostgres, RawSqlite, RawStore
from sqlalchemy.engine import make_url

from mnemostore import AsyncMnemoStore, AsyncTenantStore, MnemoStore, NewMessage, Quotas, TenantStore

DEFAULT_PG_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"

SINGLE, BULK, HISTORY = "single append", "bulk append", "history read"
MNEMO_SYNC, MNEMO_ASYNC = "mnemostore sync", "mnemostore async"
RAW_SAME_SQL = "raw, same SQL in 1 tx"
RAW_INSERT = "raw autocommit INSERT"
RAW_EXECUTEMANY = "raw executemany in 1 tx"
RAW_BULK_SAME_SQL = "raw, same SQL + executemany"
RAW_DICTS = "raw SELECT -> dicts"
RAW_TYPED = "raw SELECT -> Message"

# path: (baseline variant, target ratio of mnemostore sync / baseline)
TARGETS: dict[str, tuple[str, float]] = {
    SINGLE: (RAW_INSERT, 0.7),
    BULK: (RAW_EXECUTEMANY, 0.5),
    HISTORY: (RAW_DICTS, 0.8),
}
# path: the raw variant that does what mnemostore does, to split "extra SQL" from "library overhead"
SAME_WORK: dict[str, str] = {SINGLE: RAW_SAME_SQL, BULK: RAW_BULK_SAME_SQL, HISTORY: RAW_TYPED}

CONTENT = (
    "Could you summarise the design doc we discussed yesterday and list the open questions about tenant "
    "isolation, quotas and the migration plan? Keep it under ten bullet points, please."
)
METADATA = {"channel": "web", "client": "bench", "locale": "en-GB"}


@dataclass(frozen=True, slots=True)
class Config:
    duration: float
    warmup: float
    rounds: int
    history_size: int
    history_limit: int
    batch: int
    pg_dsn: str
    sqlite_dir: str | None
    # Settings overrides for every store the benchmark opens (``--store-option``), e.g. {"cache_enabled": False}.
    store_options: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class Target:
    """A scratch database: the URL mnemostore opens and how to open a raw connection to it."""

    backend: str
    url: str
    raw_conninfo: str
    server_version: str


def message(i: int) -> NewMessage:
    assistant = i % 2 == 1
    return NewMessage(
        role="assistant" if assistant else "user",
        content=CONTENT,
        model="gpt-4o-mini" if assistant else None,
        prompt_tokens=0 if assistant else 42,
        completion_tokens=120 if assistant else 0,
        metadata=dict(METADATA),
    )


# -- scratch databases ------------------------------------------------------------------------------------------


@contextmanager
def scratch_sqlite(config: Config) -> Iterator[Target]:
    folder = tempfile.mkdtemp(prefix="mnemostore-bench-", dir=config.sqlite_dir)
    path = str(Path(folder) / "bench.db")
    try:
        yield Target("sqlite", f"sqlite:///{path}", path, f"SQLite {sqlite3.sqlite_version}")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@contextmanager
def scratch_postgres(config: Config) -> Iterator[Target]:
    name = f"mnemostore_bench_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(config.pg_dsn, autocommit=True, connect_timeout=5) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        version = str(admin.execute("SHOW server_version").fetchone()[0])  # type: ignore[index]
    url = make_url(config.pg_dsn).set(database=name).render_as_string(hide_password=False)
    try:
        yield Target("postgres", url, psycopg.conninfo.make_conninfo(config.pg_dsn, dbname=name), f"PG {version}")
    finally:
        with psycopg.connect(config.pg_dsn, autocommit=True, connect_timeout=5) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def analyze(target: Target) -> None:
    """Refresh PostgreSQL's planner statistics (see README: stale ones can pick the wrong index for history)."""
    if target.backend == "postgres":
        with psycopg.connect(target.raw_conninfo, autocommit=True) as conn:
            conn.execute("ANALYZE")


def open_raw(target: Target, tenant_id: uuid.UUID) -> RawStore:
    if target.backend == "sqlite":
        return RawSqlite(target.raw_conninfo, tenant_id)
    return RawPostgres(target.raw_conninfo, tenant_id)


@dataclass(slots=True)
class Fixture:
    """A migrated scratch database with one tenant, one user and a conversation of ``history_size`` messages."""

    store: MnemoStore
    tenant: TenantStore
    user_id: uuid.UUID
    history_conversation: uuid.UUID
    batch: list[NewMessage]

    def conversation(self, title: str) -> uuid.UUID:
        return self.tenant.create_conversation(self.user_id, title=title).id


def prepare(target: Target, config: Config) -> Fixture:
    store = MnemoStore(target.url, **config.store_options)
    store.migrate()
    tenant = store.create_tenant(
        f"bench-{uuid.uuid4().hex[:8]}", quotas=Quotas(max_messages=10**12, max_storage_bytes=10**15)
    )
    t = store.tenant(tenant.id)
    user = t.get_or_create_user_by_external_id("bench-user")
    history = t.create_conversation(user.id, title="history").id
    batch = [message(i) for i in range(config.batch)]
    for start in range(0, config.history_size, config.batch):
        t.add_messages(history, batch[: min(config.batch, config.history_size - start)])
    return Fixture(store, t, user.id, history, batch)


def message_kwargs(new: NewMessage) -> dict[str, Any]:
    """``add_message`` keyword arguments for ``new``."""
    return {
        "role": new.role,
        "content": new.content,
        "model": new.model,
        "prompt_tokens": new.prompt_tokens,
        "completion_tokens": new.completion_tokens,
        "metadata": new.metadata,
    }


# -- measurement ------------------------------------------------------------------------------------------------


def run_path(
    backend: str,
    path: str,
    variants: Sequence[Variant],
    rows_per_op: int,
    config: Config,
    runner: asyncio.Runner,
) -> list[Measurement]:
    """Warm every variant up, then time them in ``config.rounds`` interleaved rounds of rotating order."""
    print(f"  {backend}: {path} ...", file=sys.stderr, flush=True)
    results = {v.name: Measurement(backend, path, v.name, rows_per_op) for v in variants}

    def once(variant: Variant, seconds: float) -> tuple[list[float], float]:
        if variant.async_op is not None:
            return runner.run(measure_async(variant.async_op, seconds))
        assert variant.op is not None
        return measure_sync(variant.op, seconds)

    for variant in variants:
        once(variant, config.warmup)
    per_round = config.duration / config.rounds
    for r in range(config.rounds):
        shift = r % len(variants)
        for variant in [*variants[shift:], *variants[:shift]]:
            results[variant.name].add(*once(variant, per_round))
    return [results[v.name] for v in variants]


def run_backend(target: Target, config: Config) -> tuple[list[Measurement], list[str]]:
    """Every path's measurements, and what the consistency check found wrong (empty when all is well)."""
    fx = prepare(target, config)
    settings = fx.store.settings
    if (
        getattr(settings, "cache_enabled", False)
        and getattr(settings, "recent_context_size", 0) >= config.history_limit
    ):
        print(
            f"  note: recent_context_size >= {config.history_limit}, so history pages may come from the cache; "
            "pass --store-option cache_enabled=false to time the database read",
            file=sys.stderr,
        )
    t, batch, history_conv = fx.tenant, fx.batch, fx.history_conversation
    conv = {name: fx.conversation(name) for name in ("sync", "async", "raw", "raw-tx")}
    bulk_conv = {name: fx.conversation(f"bulk {name}") for name in conv}
    raw = open_raw(target, t.tenant_id)
    astore = AsyncMnemoStore(target.url, **config.store_options)
    at: AsyncTenantStore = astore.tenant(t.tenant_id)
    one = message(0)
    kw = message_kwargs(one)
    raw_seq = itertools.count(1)
    raw_bulk_seq = itertools.count(1, config.batch)
    limit = config.history_limit
    paths: list[tuple[str, int, list[Variant]]] = [
        (
            SINGLE,
            1,
            [
                Variant(MNEMO_SYNC, op=lambda: t.add_message(conv["sync"], **kw)),
                Variant(MNEMO_ASYNC, async_op=lambda: at.add_message(conv["async"], **kw)),
                Variant(RAW_SAME_SQL, op=lambda: raw.append_same_sql(conv["raw-tx"], [one])),
                Variant(RAW_INSERT, op=lambda: raw.insert_autocommit(conv["raw"], next(raw_seq), one)),
            ],
        ),
        (
            BULK,
            config.batch,
            [
                Variant(MNEMO_SYNC, op=lambda: t.add_messages(bulk_conv["sync"], batch)),
                Variant(MNEMO_ASYNC, async_op=lambda: at.add_messages(bulk_conv["async"], batch)),
                Variant(RAW_BULK_SAME_SQL, op=lambda: raw.append_same_sql(bulk_conv["raw-tx"], batch)),
                Variant(RAW_EXECUTEMANY, op=lambda: raw.insert_many(bulk_conv["raw"], next(raw_bulk_seq), batch)),
            ],
        ),
        (
            HISTORY,
            limit,
            [
                Variant(MNEMO_SYNC, op=lambda: t.get_conversation_history(history_conv, limit=limit)),
                Variant(MNEMO_ASYNC, async_op=lambda: at.get_conversation_history(history_conv, limit=limit)),
                Variant(RAW_TYPED, op=lambda: raw.history_typed(history_conv, limit)),
                Variant(RAW_DICTS, op=lambda: raw.history(history_conv, limit)),
            ],
        ),
    ]
    results: list[Measurement] = []
    try:
        with asyncio.Runner() as runner:
            try:
                for path, rows_per_op, variants in paths:
                    if path == HISTORY:
                        analyze(target)
                    results += run_path(target.backend, path, variants, rows_per_op, config, runner)
            finally:
                runner.run(astore.close())
        problems: list[str] = []
        try:
            check_consistency(t, raw, conv, bulk_conv, history_conv, limit)
        except Exception as error:  # report it with the figures rather than lose them
            problems.append(f"{target.backend}: {type(error).__name__}: {error}")
    finally:
        raw.close()
        fx.store.close()
    return results, problems


def check_consistency(
    t: TenantStore,
    raw: RawStore,
    conv: dict[str, uuid.UUID],
    bulk_conv: dict[str, uuid.UUID],
    history_conv: uuid.UUID,
    limit: int,
) -> None:
    """The baselines did real work: their rows read back through mnemostore, and the counters add up."""

    def check(condition: bool, what: str) -> None:
        if not condition:
            raise RuntimeError(f"consistency check failed: {what}")

    for conversation in (*conv.values(), *bulk_conv.values()):
        seqs = [m.seq for m in t.get_conversation_history(conversation, limit=5).messages]
        check(bool(seqs) and seqs == sorted(set(seqs)), f"conversation {conversation} reads back as seqs {seqs}")
    for name in ("sync", "async", "raw-tx"):
        for conversation in (conv[name], bulk_conv[name]):
            stored = t.get_conversation_or_raise(conversation)
            newest = t.get_conversation_history(conversation, limit=1).messages[-1]
            check(
                stored.last_seq == stored.message_count == newest.seq,
                f"{name}: last_seq {stored.last_seq}, message_count {stored.message_count}, newest seq {newest.seq}",
            )
    mnemo = [m.id for m in t.get_conversation_history(history_conv, limit=limit).messages]
    check(mnemo == [m.id for m in raw.history_typed(history_conv, limit)], "raw typed history differs")
    check(len(mnemo) == len(raw.history(history_conv, limit)), "raw history differs")


# -- reporting --------------------------------------------------------------------------------------------------


def annotate(results: Sequence[Measurement]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Table rows (with the ratio to each path's baseline) and the per-path verdicts."""
    by_key = {(m.backend, m.path, m.variant): m for m in results}
    rows: list[dict[str, Any]] = []
    verdicts: list[dict[str, Any]] = []
    for m in results:
        row = m.summary()
        baseline_name, target = TARGETS[m.path]
        baseline = by_key.get((m.backend, m.path, baseline_name))
        if baseline is not None and m.variant != baseline_name and baseline.ops_per_s:
            row["ratio"] = round(m.ops_per_s / baseline.ops_per_s, 4)
        if m.variant == baseline_name:
            row["note"] = "baseline"
        elif m.variant in (MNEMO_SYNC, MNEMO_ASYNC) and "ratio" in row:
            row["note"] = f"target >= {target:.2f}: {'met' if row['ratio'] >= target else 'MISSED'}"
        rows.append(row)
    for (backend, path, variant), m in by_key.items():
        if variant not in (MNEMO_SYNC, MNEMO_ASYNC):
            continue
        baseline_name, target = TARGETS[path]
        baseline = by_key[(backend, path, baseline_name)]
        same = by_key[(backend, path, SAME_WORK[path])]
        verdicts.append(
            {
                "backend": backend,
                "path": path,
                "variant": variant,
                "ratio": round(m.ops_per_s / baseline.ops_per_s, 4),
                "target": target,
                "met": m.ops_per_s / baseline.ops_per_s >= target,
                "same_work_variant": same.variant,
                # cost of the extra statements (or of typed decoding) alone, with no library in between
                "same_work_ratio": round(same.ops_per_s / baseline.ops_per_s, 4),
                # what the library itself costs on top of doing that same work by hand
                "library_ratio": round(m.ops_per_s / same.ops_per_s, 4),
            }
        )
    return rows, verdicts


def format_verdicts(verdicts: Sequence[dict[str, Any]]) -> str:
    lines = ["mnemostore / raw baseline = (raw same work / baseline) x (mnemostore / raw same work):"]
    for v in verdicts:
        lines.append(
            f"  {v['backend']:<8} {v['path']:<13} {v['variant']:<16} {v['ratio']:5.2f}x "
            f"(target {v['target']:.2f}x, {'met' if v['met'] else 'MISSED'}) = "
            f"{v['same_work_ratio']:.2f} [{v['same_work_variant']}] x {v['library_ratio']:.2f} [library]"
        )
    return "\n".join(lines)


def environment(targets: Sequence[Target], config: Config, argv: Sequence[str]) -> dict[str, Any]:
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "argv": list(argv),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "load_average_at_end": os.getloadavg(),
        "sqlalchemy": sqlalchemy.__version__,
        "psycopg": psycopg.__version__,
        "aiosqlite": aiosqlite.__version__,
        "servers": {t.backend: t.server_version for t in targets},
        "config": {k: getattr(config, k) for k in Config.__slots__ if k not in ("pg_dsn",)},
    }


# -- command line -----------------------------------------------------------------------------------------------


def parse_option(option: str) -> tuple[str, Any]:
    """``name=value``, the value read as JSON when it is JSON (``false``, ``5``, ``["a"]``), else as a string."""
    name, sep, value = option.partition("=")
    if not sep or not name.strip():
        raise ValueError(f"--store-option {option!r}: expected NAME=VALUE")
    try:
        return name.strip(), json.loads(value)
    except json.JSONDecodeError:
        return name.strip(), value


def parse_args(argv: Sequence[str]) -> tuple[argparse.Namespace, Config]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--backend", choices=("sqlite", "postgres", "all"), default="all")
    parser.add_argument("--quick", action="store_true", help="smoke run: ~0.3 s per measurement, small history")
    parser.add_argument("--pg-dsn", default=DEFAULT_PG_DSN, help=f"server for the scratch database ({DEFAULT_PG_DSN})")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write every figure to this JSON file")
    parser.add_argument("--duration", type=float, help="seconds per measurement (default 2.5; --quick 0.3)")
    parser.add_argument("--warmup", type=float, help="warm-up seconds per variant (default 0.3; --quick 0.05)")
    parser.add_argument("--rounds", type=int, help="interleaved rounds per measurement (default 3; --quick 1)")
    parser.add_argument("--history-size", type=int, help="messages in the history conversation (10000; --quick 2000)")
    parser.add_argument("--batch", type=int, default=1000, help="messages per bulk call (1000)")
    parser.add_argument("--sqlite-dir", help="folder for the scratch SQLite file (default: the system temp folder)")
    parser.add_argument(
        "--store-option",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a Settings override for the stores, e.g. cache_enabled=false or pool_pre_ping=false (repeatable)",
    )
    args = parser.parse_args(argv)
    try:
        store_options = dict(parse_option(option) for option in args.store_option)
    except ValueError as error:
        parser.error(str(error))
    quick = args.quick
    config = Config(
        duration=args.duration if args.duration is not None else (0.3 if quick else 2.5),
        warmup=args.warmup if args.warmup is not None else (0.05 if quick else 0.3),
        rounds=args.rounds if args.rounds is not None else (1 if quick else 3),
        history_size=args.history_size if args.history_size is not None else (2000 if quick else 10_000),
        history_limit=50,
        batch=args.batch,
        pg_dsn=args.pg_dsn,
        sqlite_dir=args.sqlite_dir,
        store_options=store_options,
    )
    if config.rounds < 1 or config.duration <= 0 or config.batch < 2 or config.history_size < config.history_limit:
        parser.error("need --rounds >= 1, --duration > 0, --batch >= 2 and --history-size >= 50")
    return args, config


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args, config = parse_args(argv)
    backends = ["sqlite", "postgres"] if args.backend == "all" else [args.backend]
    started = time.perf_counter()
    results: list[Measurement] = []
    problems: list[str] = []
    targets: list[Target] = []
    for backend in backends:
        scratch = scratch_sqlite if backend == "sqlite" else scratch_postgres
        try:
            with scratch(config) as target:
                targets.append(target)
                measured, found = run_backend(target, config)
                results += measured
                problems += found
        except psycopg.OperationalError as error:
            if args.backend == "all":
                print(f"skipping postgres: cannot reach {args.pg_dsn}: {error}", file=sys.stderr)
                continue
            raise SystemExit(f"cannot reach PostgreSQL at {args.pg_dsn}: {error}") from None
    rows, verdicts = annotate(results)
    print()
    print(format_table(rows))
    print()
    print(format_verdicts(verdicts))
    print("\n" + environment_line([t.server_version for t in targets], started))
    if config.store_options:
        print(f"store options: {config.store_options}")
    if args.json is not None:
        write_json(
            args.json,
            {
                "environment": environment(targets, config, argv),
                "results": rows,
                "targets": verdicts,
                "problems": problems,
            },
        )
        print(f"wrote {args.json}")
    for problem in problems:
        print(f"consistency check failed: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
