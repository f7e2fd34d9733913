#!/usr/bin/env python
"""Flat cost as data grows: append and read-50 latency with 10k and with 1M messages in the tenant (issue 13).

Run from the repository root (see benchmarks/README.md, "Flat cost as data grows")::

    .venv/bin/python benchmarks/bench_scale.py                  # both backends, 1,000,000 messages (~10 min here)
    .venv/bin/python benchmarks/bench_scale.py --quick          # smoke run: 100,000 messages, 2 rounds (~2 min)
    .venv/bin/python benchmarks/bench_scale.py --backend sqlite --large 300000 --json scale.json

Each backend gets two scratch databases, migrated by mnemostore, each with one tenant (quotas set): a small one
with ``--small`` messages (10,000) and a large one with ``--large`` (1,000,000), in conversations of 1,000
messages (10 and 1,000 conversations, 100 per user). Both are filled through the public API, ``add_messages``
with 1,000 messages per call, so counters, usage, sequences and conversations are exactly what an application would
leave; the load rate is printed per tenth of the large load. On PostgreSQL both databases are then ``ANALYZE``d
(``--no-analyze`` to measure without statistics; the server here runs with autovacuum off).

Then, in ``--rounds`` rounds (5), each path runs on both databases in alternating order (the order flips every
round), ``--ops`` calls each (1,000), through the sync API of a store with ``cache_enabled=False`` and
``embedder="none"``, so every call reaches the database:

* ``append``: ``add_message`` to a conversation drawn at random among all the tenant's conversations;
* ``read 50``: ``get_conversation_history(limit=50)`` of a conversation drawn the same way;
* ``append, hot`` / ``read 50, hot``: the same, round-robin over the tenant's first 10 conversations (a working set
  that does not grow with the data);
* ``raw read 50``: the raw driver's ``SELECT … ORDER BY seq DESC LIMIT 50`` (``_raw.py``; PostgreSQL: as the
  application role, row-level security on) of a conversation drawn at random: how much of a read's growth is the
  database's own.

Reported per path and size: p50 and p95 of each round's latencies, median over rounds, and the ratio large / small
(the target: <= 1.2x); on PostgreSQL also the share of ``messages``' blocks read from outside shared buffers.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from _harness import environment_line, percentile, write_json
from _raw import RawPostgres, RawSqlite, RawStore
from bench_core import CONTENT, DEFAULT_PG_DSN, METADATA, Config, Target, scratch_postgres, scratch_sqlite

from mnemostore import MnemoStore, NewMessage, Quotas, Settings, TenantStore

CONVERSATION = 1_000  # messages per conversation (one add_messages call)
PER_USER = 100  # conversations per user
HOT = 10  # conversations of the "hot" working set
PAGE = 50
TARGET = 1.2
PATHS = ("append", "read 50", "append, hot", "read 50, hot", "raw read 50")


@dataclass(frozen=True, slots=True)
class Plan:
    small: int
    large: int
    rounds: int
    ops: int
    analyze: bool


@dataclass(slots=True)
class Tenant:
    """A loaded scratch database: its target, the tenant and its conversations."""

    label: str
    target: Target
    tenant_id: uuid.UUID
    conversations: list[uuid.UUID]
    load_seconds: float
    chunk_rates: list[float] = field(default_factory=list)  # rows/s of each tenth of the load
    misses: float | None = None  # PostgreSQL: share of messages' blocks read from outside shared buffers


def new_messages() -> list[NewMessage]:
    return [
        NewMessage(
            role="assistant" if i % 2 else "user",
            content=CONTENT,
            model="gpt-4o-mini" if i % 2 else None,
            prompt_tokens=0 if i % 2 else 42,
            completion_tokens=120 if i % 2 else 0,
            metadata=dict(METADATA),
        )
        for i in range(CONVERSATION)
    ]


def open_store(target: Target, **settings: Any) -> MnemoStore:
    return MnemoStore(
        target.url, settings=Settings(embedder="none"), pool_size=2, max_overflow=0, cache_enabled=False, **settings
    )


def analyze(target: Target) -> None:
    if target.backend == "postgres":
        with psycopg.connect(target.raw_conninfo, autocommit=True) as conn:
            conn.execute("ANALYZE")


def buffer_reads(target: Target) -> tuple[int, int]:
    """PostgreSQL: (blocks read from outside shared buffers, blocks found in them) for ``messages`` and its indexes,
    since the server started; (0, 0) on SQLite."""
    if target.backend != "postgres":
        return 0, 0
    with psycopg.connect(target.raw_conninfo, autocommit=True) as conn:
        row = conn.execute(
            "SELECT heap_blks_read + coalesce(idx_blks_read, 0), heap_blks_hit + coalesce(idx_blks_hit, 0) "
            "FROM pg_statio_user_tables WHERE relname = 'messages'"
        ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


def load(label: str, target: Target, size: int) -> Tenant:
    """Fill a new tenant with ``size`` messages through ``add_messages``, timing each tenth of the load."""
    batch = new_messages()
    with open_store(target) as store:
        store.migrate()
        tenant = store.create_tenant(
            f"scale-{uuid.uuid4().hex[:8]}", quotas=Quotas(max_messages=10**12, max_storage_bytes=10**15)
        )
        t = store.tenant(tenant.id)
        count = max(1, size // CONVERSATION)
        tenth = max(1, count // 10)
        conversations: list[uuid.UUID] = []
        rates: list[float] = []
        user = t.create_user(display_name="user 0").id
        started = chunk_start = time.perf_counter()
        for i in range(count):
            if i and i % PER_USER == 0:
                user = t.create_user(display_name=f"user {i // PER_USER}").id
            conversation = t.create_conversation(user, title=f"c{i}").id
            t.add_messages(conversation, batch)
            conversations.append(conversation)
            if (i + 1) % tenth == 0 or i + 1 == count:
                now = time.perf_counter()
                done = (i + 1) % tenth or tenth
                rates.append(done * CONVERSATION / (now - chunk_start))
                chunk_start = now
                if count > 10:
                    print(
                        f"  {target.backend} {label}: {(i + 1) * CONVERSATION:>9,} messages, {rates[-1]:,.0f} rows/s",
                        file=sys.stderr,
                        flush=True,
                    )
        seconds = time.perf_counter() - started
        usage = store.get_tenant_usage(tenant.id)
        if usage.messages != count * CONVERSATION:
            raise RuntimeError(f"{label}: usage says {usage.messages} messages, loaded {count * CONVERSATION}")
    return Tenant(label, target, tenant.id, conversations, seconds, rates)


# -- measurement ------------------------------------------------------------------------------------------------


class Runner:
    """One measuring store on a loaded tenant: each path's operation for call ``i``."""

    def __init__(self, tenant: Tenant, seed: int) -> None:
        self.tenant = tenant
        self.store = open_store(tenant.target)
        self.t: TenantStore = self.store.tenant(tenant.tenant_id)
        target = tenant.target
        self.raw: RawStore = (
            RawSqlite(target.raw_conninfo, tenant.tenant_id)
            if target.backend == "sqlite"
            else RawPostgres(target.raw_conninfo, tenant.tenant_id)
        )
        self.random = random.Random(seed)
        self.hot = tenant.conversations[:HOT]
        message = new_messages()[0]
        self.kwargs: dict[str, Any] = {
            "role": message.role,
            "content": message.content,
            "prompt_tokens": message.prompt_tokens,
            "metadata": message.metadata,
        }

    def op(self, path: str) -> Callable[[int], object]:
        conversations = self.tenant.conversations

        def pick(i: int) -> uuid.UUID:
            if path.endswith("hot"):
                return self.hot[i % len(self.hot)]
            return conversations[self.random.randrange(len(conversations))]

        if path.startswith("append"):
            return lambda i: self.t.add_message(pick(i), **self.kwargs)
        if path.startswith("raw"):
            return lambda i: self.raw.history(pick(i), PAGE)

        def read(i: int) -> object:
            page = self.t.get_conversation_history(pick(i), limit=PAGE)
            if len(page.messages) != PAGE:
                raise RuntimeError(f"a page of {len(page.messages)} messages")
            return page

        return read

    def close(self) -> None:
        self.raw.close()
        self.store.close()


def timed(op: Callable[[int], object], count: int) -> list[float]:
    clock = time.perf_counter
    latencies = []
    for i in range(count):
        t0 = clock()
        op(i)
        latencies.append(clock() - t0)
    return latencies


@dataclass(slots=True)
class Figures:
    """Per (path, size label): the p50 and p95 of each round, in seconds."""

    p50: dict[tuple[str, str], list[float]] = field(default_factory=dict)
    p95: dict[tuple[str, str], list[float]] = field(default_factory=dict)

    def add(self, path: str, label: str, latencies: list[float]) -> None:
        ordered = sorted(latencies)
        self.p50.setdefault((path, label), []).append(percentile(ordered, 50))
        self.p95.setdefault((path, label), []).append(percentile(ordered, 95))


def measure(tenants: Sequence[Tenant], plan: Plan) -> Figures:
    figures = Figures()
    before = [buffer_reads(t.target) for t in tenants]
    with ExitStack() as stack:
        runners = []
        for n, tenant in enumerate(tenants):
            runner = Runner(tenant, seed=n)
            stack.callback(runner.close)
            runners.append(runner)
        for runner in runners:  # warm-up: the first calls compile statements and fill the pool
            for path in PATHS:
                timed(runner.op(path), 50)
        for r in range(plan.rounds):
            print(f"  {tenants[0].target.backend}: round {r + 1}/{plan.rounds}", file=sys.stderr, flush=True)
            for p, path in enumerate(PATHS):
                order = runners if (r + p) % 2 == 0 else runners[::-1]
                for runner in order:
                    figures.add(path, runner.tenant.label, timed(runner.op(path), plan.ops))
    if tenants[0].target.backend == "postgres":
        time.sleep(1)  # the measuring sessions have ended: let them report their statistics
    for tenant, (read0, hit0) in zip(tenants, before, strict=True):
        read1, hit1 = buffer_reads(tenant.target)
        if read1 + hit1 > read0 + hit0:
            tenant.misses = (read1 - read0) / (read1 + hit1 - read0 - hit0)
    return figures


# -- reporting --------------------------------------------------------------------------------------------------


def report(results: dict[str, tuple[list[Tenant], Figures]]) -> tuple[str, list[dict[str, Any]]]:
    lines = [
        f"{'backend':<9}{'path':<14}{'p50 small':>10}{'p50 large':>10}{'ratio':>7}"
        f"{'p95 small':>11}{'p95 large':>10}{'ratio':>7}  target <= {TARGET}x",
        "-" * 90,
    ]
    rows: list[dict[str, Any]] = []
    for backend, (tenants, figures) in results.items():
        small, large = (t.label for t in tenants)
        for path in PATHS:
            row: dict[str, Any] = {"backend": backend, "path": path}
            cells = []
            verdict = []
            for name, table in (("p50", figures.p50), ("p95", figures.p95)):
                a = statistics.median(table[(path, small)])
                b = statistics.median(table[(path, large)])
                row[f"{name}_small_ms"] = round(a * 1000, 4)
                row[f"{name}_large_ms"] = round(b * 1000, 4)
                row[f"{name}_ratio"] = round(b / a, 3)
                cells.append(f"{a * 1000:>10.3f}{b * 1000:>10.3f}{b / a:>7.2f}")
                verdict.append(b / a <= TARGET)
            baseline = path.startswith("raw")
            row["met"] = None if baseline else all(verdict)
            rows.append(row)
            verdict_text = "(baseline)" if baseline else "met" if row["met"] else "MISSED"
            lines.append(f"{backend:<9}{path:<14}{cells[0]} {cells[1]}  {verdict_text}")
        lines.append("")
    return "\n".join(lines).rstrip(), rows


# -- command line -----------------------------------------------------------------------------------------------


@contextmanager
def scratch(backend: str, pg_dsn: str, sqlite_dir: str | None) -> Iterator[Target]:
    config = Config(0, 0, 1, 0, PAGE, 1, pg_dsn, sqlite_dir)
    with (scratch_sqlite if backend == "sqlite" else scratch_postgres)(config) as target:
        yield target


def run_backend(backend: str, plan: Plan, args: argparse.Namespace) -> tuple[list[Tenant], Figures]:
    with (
        scratch(backend, args.pg_dsn, args.sqlite_dir) as small_target,
        scratch(backend, args.pg_dsn, args.sqlite_dir) as large_target,
    ):
        small = load(f"{plan.small:,}", small_target, plan.small)
        large = load(f"{plan.large:,}", large_target, plan.large)
        if plan.analyze:
            analyze(small_target)
            analyze(large_target)
        return [small, large], measure([small, large], plan)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--backend", choices=("sqlite", "postgres", "all"), default="all")
    parser.add_argument("--quick", action="store_true", help="smoke run: 100,000 messages, 2 rounds of 300 calls")
    parser.add_argument("--small", type=int, default=10_000, help="messages in the small tenant (10,000)")
    parser.add_argument("--large", type=int, help="messages in the large tenant (1,000,000; --quick 100,000)")
    parser.add_argument("--rounds", type=int, help="alternating rounds (5; --quick 2)")
    parser.add_argument("--ops", type=int, help="calls per path, size and round (1,000; --quick 300)")
    parser.add_argument("--no-analyze", action="store_true", help="PostgreSQL: measure without ANALYZE")
    parser.add_argument("--pg-dsn", default=DEFAULT_PG_DSN, help=f"server for the scratch databases ({DEFAULT_PG_DSN})")
    parser.add_argument("--sqlite-dir", help="where the scratch SQLite files go (~0.7 GB at 1M; system temp)")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the figures to this JSON file")
    args = parser.parse_args(argv)
    plan = Plan(
        small=args.small,
        large=args.large or (100_000 if args.quick else 1_000_000),
        rounds=args.rounds or (2 if args.quick else 5),
        ops=args.ops or (300 if args.quick else 1_000),
        analyze=not args.no_analyze,
    )
    backends = ["sqlite", "postgres"] if args.backend == "all" else [args.backend]
    started = time.perf_counter()
    results: dict[str, tuple[list[Tenant], Figures]] = {}
    notes: list[str] = []
    versions: list[str] = []
    for backend in backends:
        try:
            results[backend] = run_backend(backend, plan, args)
            versions.append(results[backend][0][0].target.server_version)
        except psycopg.OperationalError as error:
            if args.backend != "all":
                raise SystemExit(f"cannot reach PostgreSQL at {args.pg_dsn}: {error}") from None
            notes.append(f"skipping postgres: cannot reach {args.pg_dsn}: {error}")
    table, rows = report(results)
    print()
    print(
        f"latency in ms with {plan.small:,} (small) and {plan.large:,} (large) messages in the tenant; p50/p95 of "
        f"{plan.ops:,} calls, median of {plan.rounds} alternating rounds; cache off"
        + ("" if plan.analyze else "; PostgreSQL NOT analyzed")
        + "\n"
    )
    print(table)
    print()
    loads: dict[str, Any] = {}
    for backend, (tenants, _) in results.items():
        large = tenants[1]
        rates = ", ".join(f"{r / 1000:.1f}k" for r in large.chunk_rates)
        print(
            f"load {backend} {large.label}: {large.load_seconds:.0f} s "
            f"({plan.large / large.load_seconds:,.0f} rows/s); rows/s by tenth: {rates}"
        )
        if large.misses is not None and tenants[0].misses is not None:
            print(
                f"  {backend}: blocks of messages read from outside shared buffers while measuring: "
                f"{100 * tenants[0].misses:.2f} % (small), {100 * large.misses:.2f} % (large)"
            )
        loads[backend] = {"seconds": round(large.load_seconds, 1), "rows_per_s_by_tenth": large.chunk_rates}
    for note in notes:
        print(f"note: {note}")
    print("\n" + environment_line(versions, started))
    if args.json is not None:
        write_json(args.json, {"plan": asdict(plan), "rows": rows, "load": loads, "notes": notes})
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
