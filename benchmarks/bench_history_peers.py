#!/usr/bin/env python
"""Issue 13's table: mnemostore's chat-history hot path beside the raw driver and LangChain's two histories.

Run from the repository root (see benchmarks/README.md, "History beside its peers")::

    .venv/bin/python benchmarks/bench_history_peers.py             # both backends, ~3 minutes
    .venv/bin/python benchmarks/bench_history_peers.py --quick     # smoke run, ~30 s
    .venv/bin/python benchmarks/bench_history_peers.py --backend sqlite --json peers.json

The workload, per round and per variant: 5,000 single appends (one call and one commit each) spread round-robin
over 100 new conversations, then 1,000 reads of the newest 50 messages (round-robin over the same conversations,
which hold exactly 50 messages each, so LangChain's "read the whole session" is the same page). Each figure is the
median over 3 rounds; the variants run in alternating (rotating) order inside each round, so table growth and the
other work on the machine hit them alike.

Peers (benchmark-only dependencies, skipped with a note when missing): ``pip install langchain-postgres
langchain-community``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import uuid
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import sqlalchemy
import sqlalchemy.event
from _harness import environment_line, write_json
from _raw import RawPostgres, RawSqlite
from bench_core import CONTENT, DEFAULT_PG_DSN, METADATA, Config, Target, analyze, scratch_postgres, scratch_sqlite

from mnemostore import MnemoStore, NewMessage, Quotas, Settings, TenantStore

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
APPEND, READ = "append", "read 50"
RAW, LANGCHAIN, MNEMO = "raw driver", "LangChain", "mnemostore"
MNEMO_LOCAL = "mnemostore, in-process cache (default settings)"
MNEMO_REDIS = "mnemostore + Redis"
PAGE = 50


@dataclass(frozen=True, slots=True)
class Workload:
    appends: int
    conversations: int
    reads: int
    rounds: int

    @property
    def per_conversation(self) -> int:
        return self.appends // self.conversations


def new_message(i: int) -> NewMessage:
    assistant = i % 2 == 1
    return NewMessage(
        role="assistant" if assistant else "user",
        content=CONTENT,
        model="gpt-4o-mini" if assistant else None,
        prompt_tokens=0 if assistant else 42,
        completion_tokens=120 if assistant else 0,
        metadata=dict(METADATA),
    )


# -- variants ---------------------------------------------------------------------------------------------------


class Variant:
    """One way of keeping a chat history: ``start_round`` makes new sessions; ``append(i)``/``read(i)`` do one call."""

    name: str
    reads_only = False  # reads the sessions another variant wrote (a cache in front of the same rows)

    def start_round(self, sessions: int) -> None:
        raise NotImplementedError

    def append(self, i: int) -> None:
        raise NotImplementedError

    def read(self, i: int) -> int:
        raise NotImplementedError

    def close(self) -> None:
        pass


class Mnemo(Variant):
    """``TenantStore.add_message`` / ``get_conversation_history(limit=50)`` (the sync Python API), default settings
    but ``embedder="none"``: the peers embed nothing, and a background indexer would compete for the CPU."""

    def __init__(self, name: str, url: str, *, tenant: uuid.UUID | None = None, **settings: Any) -> None:
        self.name = name
        self.store = MnemoStore(url, settings=Settings(embedder="none"), pool_size=2, max_overflow=0, **settings)
        if tenant is None:
            self.store.migrate()
            tenant = self.store.create_tenant(
                f"peers-{uuid.uuid4().hex[:8]}", quotas=Quotas(max_messages=10**12, max_storage_bytes=10**15)
            ).id
        self.t: TenantStore = self.store.tenant(tenant)
        self.user = self.t.get_or_create_user_by_external_id("bench-user").id
        self.sessions: list[uuid.UUID] = []
        self.kwargs = [
            {
                "role": m.role,
                "content": m.content,
                "model": m.model,
                "prompt_tokens": m.prompt_tokens,
                "completion_tokens": m.completion_tokens,
                "metadata": m.metadata,
            }
            for m in (new_message(0), new_message(1))
        ]

    def start_round(self, sessions: int) -> None:
        self.sessions = [self.t.create_conversation(self.user, title=f"s{i}").id for i in range(sessions)]

    def append(self, i: int) -> None:
        self.t.add_message(self.sessions[i % len(self.sessions)], **self.kwargs[(i // len(self.sessions)) % 2])

    def read(self, i: int) -> int:
        return len(self.t.get_conversation_history(self.sessions[i % len(self.sessions)], limit=PAGE).messages)

    def close(self) -> None:
        self.store.close()


class Reader(Variant):
    """Reads the sessions of ``source`` through another store (another cache configuration, same rows)."""

    reads_only = True

    def __init__(self, name: str, source: Mnemo, url: str, **settings: Any) -> None:
        self.name = name
        self.source = source
        self.store = MnemoStore(url, settings=Settings(embedder="none"), pool_size=2, max_overflow=0, **settings)
        self.t = self.store.tenant(source.t.tenant_id)

    def start_round(self, sessions: int) -> None:
        pass

    def read(self, i: int) -> int:
        sessions = self.source.sessions
        return len(self.t.get_conversation_history(sessions[i % len(sessions)], limit=PAGE).messages)

    def close(self) -> None:
        self.store.close()


class SameStoreReader(Variant):
    """Reads the sessions of ``source`` through ``source``'s own store (its default, in-process cache)."""

    reads_only = True

    def __init__(self, name: str, source: Mnemo) -> None:
        self.name = name
        self.source = source

    def start_round(self, sessions: int) -> None:
        pass

    def read(self, i: int) -> int:
        sessions = self.source.sessions
        return len(self.source.t.get_conversation_history(sessions[i % len(sessions)], limit=PAGE).messages)


class Raw(Variant):
    """The driver alone: one autocommit ``INSERT INTO messages`` per append (the script tracks ``seq``); one
    ``SELECT … ORDER BY seq DESC LIMIT 50`` per read, rows turned into dicts (``_raw.py``)."""

    name = RAW

    def __init__(self, target: Target, owner: Mnemo) -> None:
        self.owner = owner
        tenant = owner.t.tenant_id
        self.raw = (
            RawSqlite(target.raw_conninfo, tenant)
            if target.backend == "sqlite"
            else RawPostgres(target.raw_conninfo, tenant)
        )
        self.sessions: list[uuid.UUID] = []
        self.messages = (new_message(0), new_message(1))

    def start_round(self, sessions: int) -> None:
        self.sessions = [self.owner.t.create_conversation(self.owner.user, title=f"r{i}").id for i in range(sessions)]

    def append(self, i: int) -> None:
        n = len(self.sessions)
        self.raw.insert_autocommit(self.sessions[i % n], i // n + 1, self.messages[(i // n) % 2])

    def read(self, i: int) -> int:
        return len(self.raw.history(self.sessions[i % len(self.sessions)], PAGE))

    def close(self) -> None:
        self.raw.close()


class LangChain(Variant):
    """A LangChain ``BaseChatMessageHistory`` per session: ``add_message`` per append, ``.messages`` per read."""

    name = LANGCHAIN

    def __init__(self, make: Callable[[str], Any], close: Callable[[], None]) -> None:
        from langchain_core.messages import AIMessage, HumanMessage

        self.make = make
        self._close = close
        self.histories: list[Any] = []
        self.messages = (
            HumanMessage(content=CONTENT, additional_kwargs={"metadata": METADATA}),
            AIMessage(content=CONTENT, additional_kwargs={"metadata": METADATA}),
        )

    def start_round(self, sessions: int) -> None:
        self.histories = [self.make(str(uuid.uuid4())) for _ in range(sessions)]

    def append(self, i: int) -> None:
        n = len(self.histories)
        self.histories[i % n].add_message(self.messages[(i // n) % 2])

    def read(self, i: int) -> int:
        return len(self.histories[i % len(self.histories)].messages)

    def close(self) -> None:
        self._close()


def langchain_postgres(target: Target) -> LangChain | str:
    """``langchain_postgres.PostgresChatMessageHistory`` on one psycopg connection (its documented use)."""
    try:
        from langchain_postgres import PostgresChatMessageHistory
    except ImportError:
        return "langchain-postgres is not installed (pip install langchain-postgres)"
    conn = psycopg.connect(target.raw_conninfo)
    PostgresChatMessageHistory.create_tables(conn, "lc_message_store")
    return LangChain(
        lambda session: PostgresChatMessageHistory("lc_message_store", session, sync_connection=conn), conn.close
    )


def langchain_sqlite(target: Target) -> LangChain | str:
    """``langchain_community.chat_message_histories.SQLChatMessageHistory`` on one SQLAlchemy engine, its own file,
    with the same PRAGMAs as mnemostore and the raw driver (WAL, synchronous=NORMAL)."""
    try:
        with warnings.catch_warnings():  # langchain-community warns that it is being sunset
            warnings.simplefilter("ignore", DeprecationWarning)
            from langchain_community.chat_message_histories import SQLChatMessageHistory
    except ImportError:  # pragma: no cover - depends on the environment
        return "langchain-community is not installed (pip install langchain-community)"
    path = Path(target.raw_conninfo).with_name("langchain.db")
    engine = sqlalchemy.create_engine(f"sqlite:///{path}")

    @sqlalchemy.event.listens_for(engine, "connect")
    def _pragmas(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    return LangChain(lambda session: SQLChatMessageHistory(session, connection=engine), engine.dispose)


# -- measurement ------------------------------------------------------------------------------------------------


@dataclass(slots=True)
class Rates:
    """ops/s of each round, per (variant, path)."""

    rounds: dict[tuple[str, str], list[float]] = field(default_factory=dict)

    def add(self, variant: str, path: str, ops: int, seconds: float) -> None:
        self.rounds.setdefault((variant, path), []).append(ops / seconds)

    def median(self, variant: str, path: str) -> float | None:
        values = self.rounds.get((variant, path))
        return statistics.median(values) if values else None


def timed(op: Callable[[int], object], count: int) -> float:
    clock = time.perf_counter
    start = clock()
    for i in range(count):
        op(i)
    return clock() - start


def run_backend(target: Target, workload: Workload, redis_url: str | None) -> tuple[Rates, list[str]]:
    """Every variant's rounds on one scratch database, and the notes (skipped peers)."""
    notes: list[str] = []
    rates = Rates()
    with ExitStack() as stack:
        mnemo = Mnemo(MNEMO, target.url)
        stack.callback(mnemo.close)
        writers: list[Variant] = [mnemo]
        raw = Raw(target, mnemo)
        stack.callback(raw.close)
        writers.insert(0, raw)
        peer = langchain_sqlite(target) if target.backend == "sqlite" else langchain_postgres(target)
        if isinstance(peer, str):
            notes.append(f"{target.backend}: skipping LangChain: {peer}")
        else:
            stack.callback(peer.close)
            writers.insert(1, peer)
        uncached = Reader(MNEMO, mnemo, target.url, cache_enabled=False)
        stack.callback(uncached.close)
        readers: list[Variant] = [v for v in writers if v is not mnemo] + [
            uncached,
            SameStoreReader(MNEMO_LOCAL, mnemo),
        ]
        if target.backend == "postgres":
            redis_reader = redis_variant(target, mnemo, redis_url, notes)
            if redis_reader is not None:
                stack.callback(redis_reader.close)
                readers.append(redis_reader)
        for r in range(workload.rounds):
            print(f"  {target.backend}: round {r + 1}/{workload.rounds}", file=sys.stderr, flush=True)
            shift = r % len(writers)
            for variant in [*writers[shift:], *writers[:shift]]:
                variant.start_round(workload.conversations)
                rates.add(variant.name, APPEND, workload.appends, timed(variant.append, workload.appends))
            analyze(target)
            shift = r % len(readers)
            for variant in [*readers[shift:], *readers[:shift]]:
                pages: list[int] = []
                seconds = timed(lambda i, v=variant, p=pages: p.append(v.read(i)), workload.reads)  # type: ignore[misc]
                if set(pages) != {min(PAGE, workload.per_conversation)}:
                    raise RuntimeError(f"{target.backend} {variant.name}: pages of {sorted(set(pages))} messages")
                rates.add(variant.name, READ, workload.reads, seconds)
    return rates, notes


def redis_variant(target: Target, mnemo: Mnemo, redis_url: str | None, notes: list[str]) -> Reader | None:
    if redis_url is None:
        notes.append("postgres: skipping mnemostore + Redis (--redis-url none)")
        return None
    try:
        import redis

        redis.Redis.from_url(redis_url, socket_connect_timeout=1).ping()
    except Exception as error:  # any reason to skip is reported
        notes.append(f"postgres: skipping mnemostore + Redis: {type(error).__name__}: {error}")
        return None
    prefix = f"bench-peers-{uuid.uuid4().hex[:8]}"
    reader = Reader(MNEMO_REDIS, mnemo, target.url, redis_url=redis_url, cache_key_prefix=prefix)
    original = reader.close

    def close() -> None:
        original()
        client = redis.Redis.from_url(redis_url)
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        if keys:
            client.delete(*keys)
        client.close()

    reader.close = close  # type: ignore[method-assign]
    return reader


# -- reporting --------------------------------------------------------------------------------------------------

# (backend, path, minimum ratio of mnemostore to raw, minimum ratio to LangChain) -- issue 13's targets
TARGETS: list[tuple[str, str, float | None, float | None]] = [
    ("postgres", APPEND, 0.5, 1.0),
    ("postgres", READ, 0.8, None),
    ("sqlite", APPEND, 0.25, 3.0),
    ("sqlite", READ, 0.5, None),
]
REDIS_TARGET = 3.0  # mnemostore + Redis read >= 3x the uncached PostgreSQL read


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def _ratio(a: float | None, b: float | None) -> str:
    return "" if a is None or b is None or not b else f"{a / b:.2f}x"


def report(results: dict[str, Rates]) -> tuple[str, list[dict[str, Any]]]:
    lines = [
        f"{'backend':<9}{'path':<9}{'raw driver':>11}{'LangChain':>11}{'mnemostore':>12}{'vs raw':>9}"
        f"{'vs LangChain':>14}  other mnemostore reads",
        "-" * 110,
    ]
    verdicts: list[dict[str, Any]] = []
    for backend, rates in results.items():
        for path in (APPEND, READ):
            raw, lc, mn = (rates.median(v, path) for v in (RAW, LANGCHAIN, MNEMO))
            extra = ""
            if path == READ:
                parts = []
                for name in (MNEMO_LOCAL, MNEMO_REDIS):
                    value = rates.median(name, path)
                    if value is not None:
                        parts.append(f"{name}: {_rate(value)}/s ({_ratio(value, mn)} of uncached)")
                extra = "; ".join(parts)
            lines.append(
                f"{backend:<9}{path:<9}{_rate(raw):>11}{_rate(lc):>11}{_rate(mn):>12}{_ratio(mn, raw):>9}"
                f"{_ratio(mn, lc):>14}  {extra}"
            )
        for t_backend, t_path, vs_raw, vs_lc in TARGETS:
            if t_backend != backend:
                continue
            mn = rates.median(MNEMO, t_path)
            for peer, minimum in ((RAW, vs_raw), (LANGCHAIN, vs_lc)):
                base = rates.median(peer, t_path)
                if minimum is None or mn is None:
                    continue
                ratio = mn / base if base else None
                verdicts.append(
                    {
                        "target": f"{backend} {t_path} mnemostore >= {minimum}x {peer}",
                        "ratio": None if ratio is None else round(ratio, 3),
                        "met": None if ratio is None else ratio >= minimum,
                    }
                )
        if backend == "postgres":
            cached, uncached = rates.median(MNEMO_REDIS, READ), rates.median(MNEMO, READ)
            if cached is not None and uncached:
                verdicts.append(
                    {
                        "target": f"postgres read 50 mnemostore + Redis >= {REDIS_TARGET}x uncached",
                        "ratio": round(cached / uncached, 3),
                        "met": cached / uncached >= REDIS_TARGET,
                    }
                )
    lines.append("")
    lines.append("targets (issue 13):")
    for v in verdicts:
        status = "skipped (peer missing)" if v["met"] is None else ("pass" if v["met"] else "FAIL")
        ratio = "" if v["ratio"] is None else f"{v['ratio']:.2f}x"
        lines.append(f"  {v['target']:<58} {ratio:>7}  {status}")
    return "\n".join(lines), verdicts


# -- command line -----------------------------------------------------------------------------------------------


@contextmanager
def scratch(backend: str, pg_dsn: str) -> Iterator[Target]:
    config = Config(0, 0, 1, 0, PAGE, 2, pg_dsn, None)
    with (scratch_sqlite if backend == "sqlite" else scratch_postgres)(config) as target:
        yield target


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--backend", choices=("sqlite", "postgres", "all"), default="all")
    parser.add_argument("--quick", action="store_true", help="smoke run: 1,000 appends over 20 sessions, 1 round")
    parser.add_argument("--pg-dsn", default=DEFAULT_PG_DSN, help=f"server for the scratch database ({DEFAULT_PG_DSN})")
    parser.add_argument("--redis-url", default=DEFAULT_REDIS_URL, help="Redis for the cached read ('none' to skip)")
    parser.add_argument("--rounds", type=int, help="alternating rounds (default 3; --quick 1)")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the figures to this JSON file")
    args = parser.parse_args(argv)
    workload = (
        Workload(appends=1000, conversations=20, reads=200, rounds=args.rounds or 1)
        if args.quick
        else Workload(appends=5000, conversations=100, reads=1000, rounds=args.rounds or 3)
    )
    redis_url = None if args.redis_url == "none" else args.redis_url
    backends = ["postgres", "sqlite"] if args.backend == "all" else [args.backend]
    started = time.perf_counter()
    results: dict[str, Rates] = {}
    notes: list[str] = []
    versions: list[str] = []
    for backend in backends:
        try:
            with scratch(backend, args.pg_dsn) as target:
                versions.append(target.server_version)
                results[backend], found = run_backend(target, workload, redis_url)
                notes += found
        except psycopg.OperationalError as error:
            if args.backend != "all":
                raise SystemExit(f"cannot reach PostgreSQL at {args.pg_dsn}: {error}") from None
            notes.append(f"skipping postgres: cannot reach {args.pg_dsn}: {error}")
    table, verdicts = report(results)
    print()
    print(
        f"{workload.appends:,} single appends over {workload.conversations} conversations, then {workload.reads:,} "
        f"reads of the newest {PAGE}; ops/s, median of {workload.rounds} alternating round(s)\n"
    )
    print(table)
    for note in notes:
        print(f"note: {note}")
    print("\n" + environment_line(versions, started))
    if args.json is not None:
        write_json(
            args.json,
            {
                "workload": asdict(workload),
                "rounds": {
                    backend: {f"{v} | {p}": values for (v, p), values in rates.rounds.items()}
                    for backend, rates in results.items()
                },
                "targets": verdicts,
                "notes": notes,
            },
        )
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
