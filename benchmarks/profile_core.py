#!/usr/bin/env python
"""Where mnemostore's time goes on the paths of bench_core.py, and what a few fixes would buy.

Two reports per backend (see benchmarks/README.md, "Profile"):

1. Breakdown: each path (single append, bulk append of 1,000, history page of 50; sync and async) is timed without a
   profiler, then run under cProfile; the self time of every function is put in a bucket (SQLAlchemy statement
   construction, cache keys, engine, driver, async plumbing, …) and the buckets are scaled to the unprofiled time
   per operation. cProfile slows pure-Python code more than C, so read the buckets as proportions, not exact µs.
   Also counted: SQL statements per operation (engine events) and aiosqlite worker-thread hops per operation.
2. What-if: prototypes built only from mnemostore's own pieces (engine, transaction, validation, row mapping) that
   replace one cost each, timed side by side with the current code. They run in this script; no library file is
   changed.

    .venv/bin/python benchmarks/profile_core.py                    # both backends, ~1 minute
    .venv/bin/python benchmarks/profile_core.py --backend sqlite --pstats /tmp/prof   # keep .pstats files too
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import functools
import inspect
import itertools
import pstats
import sys
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite
import sqlalchemy as sa
from _raw import RawPostgres, RawSqlite, RawStore
from bench_core import (
    DEFAULT_PG_DSN,
    Config,
    Fixture,
    Target,
    analyze,
    message,
    message_kwargs,
    open_raw,
    prepare,
    scratch_postgres,
    scratch_sqlite,
)
from sqlalchemy import event

from mnemostore import AsyncMnemoStore, Message, MnemoStore, NewMessage, Role
from mnemostore.service._inputs import message_rows
from mnemostore.store import _mapping, to_message
from mnemostore.store._accounts import TenantRepository
from mnemostore.store._conversations import ConversationRepository, MessageRepository
from mnemostore.store.tables import conversations, messages, tenant_usage, tenants

R = TypeVar("R")
Op = Callable[[], object]
AsyncOp = Callable[[], Awaitable[object]]

# -- buckets ----------------------------------------------------------------------------------------------------

BUCKETS = (
    "database + driver",
    "event-loop wait (server / SQLite worker thread)",
    "async plumbing (asyncio, aiosqlite, greenlet)",
    "SA statement construction",
    "SA cache-key generation",
    "SA execute/result/pool/events",
    "type conversion (SA processors, json, uuid, datetime)",
    "mnemostore (validation, mapping, service)",
    "other Python",
)

_ASYNC_FILES = ("/asyncio/", "/aiosqlite/", "/concurrent/", "threading.py", "queue.py", "/ext/asyncio/")
_CONVERSION_FILES = ("/json/", "uuid.py", "/enum.py", "_strptime", "sqltypes.py", "/dialects/", "_tables.py")
_SA_ENGINE = ("/engine/", "/pool/", "/event/", "/util/", "/cyextension/", "compiler.py", "/log.py")


def bucket(key: tuple[str, int, str]) -> str:
    """The bucket of one pstats entry, from its file and function name."""
    filename, _line, name = key
    if "psycopg" in filename or "sqlite3." in name or "_socket" in name or "psycopg" in name:
        return BUCKETS[0]
    if "select.epoll" in name or "select.select" in name:
        return BUCKETS[1]
    if (
        any(f in filename for f in _ASYNC_FILES)
        or "greenlet" in name
        or "concurrency" in filename
        or "_queue" in name
        or "_contextvars" in name
        or "_thread" in name
    ):
        return BUCKETS[2]
    if "sqlalchemy" in filename:
        if "cache_key" in filename or "traversals" in filename or "cache_key" in name:
            return BUCKETS[4]
        if name in ("process", "process_bind_param", "process_result_value") or any(
            f in filename for f in ("sqltypes.py", "/dialects/")
        ):
            return BUCKETS[6]
        if any(f in filename for f in _SA_ENGINE):
            # langhelpers.get_cls_kwargs and friends are called while constructing statements
            if "langhelpers" in filename and name in ("get_cls_kwargs", "__get__", "oneshot", "__init__"):
                return BUCKETS[3]
            return BUCKETS[5]
        return BUCKETS[3]
    if "_tables.py" in filename:  # UtcDateTime, mnemostore's own type decorator
        return BUCKETS[6]
    if "/mnemostore/" in filename:
        return BUCKETS[7]
    if any(f in filename for f in _CONVERSION_FILES) or name.startswith(
        ("<method 'replace' of 'datetime", "<built-in method fromisoformat")
    ):
        return BUCKETS[6]
    return BUCKETS[8]


def breakdown(stats: pstats.Stats) -> dict[str, float]:
    """Self time per bucket, as fractions of the profiled total."""
    totals: Counter[str] = Counter()
    raw: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]  # documented in pstats, not typed
    for key, (_cc, _nc, tottime, _ct, _callers) in raw.items():
        totals[bucket(key)] += tottime
    whole = sum(totals.values()) or 1.0
    return {name: totals[name] / whole for name in BUCKETS}


# -- timing -----------------------------------------------------------------------------------------------------


def per_op_sync(op: Op, seconds: float, *, slices: int = 5) -> float:
    """Median over ``slices`` slices of ``seconds / slices`` of the mean time per call, in µs."""
    means = []
    for _ in range(slices):
        n, start = 0, time.perf_counter()
        while (elapsed := time.perf_counter() - start) < seconds / slices or n < 3:
            op()
            n += 1
        means.append(elapsed / n)
    return sorted(means)[slices // 2] * 1e6


async def per_op_async(op: AsyncOp, seconds: float, *, slices: int = 5) -> float:
    means = []
    for _ in range(slices):
        n, start = 0, time.perf_counter()
        while (elapsed := time.perf_counter() - start) < seconds / slices or n < 3:
            await op()
            n += 1
        means.append(elapsed / n)
    return sorted(means)[slices // 2] * 1e6


class Counters:
    """SQL statements (engine events) and aiosqlite thread hops, counted while ``active``."""

    _installed: Counters | None = None

    def __init__(self, *engines: sa.Engine) -> None:
        self.statements = 0
        self.hops = 0
        self.active = False
        for engine in engines:
            event.listen(engine, "before_cursor_execute", self._on_statement)
        if Counters._installed is None:
            original: Any = aiosqlite.Connection._execute

            async def counted(connection: aiosqlite.Connection, fn: Any, *args: Any, **kwargs: Any) -> Any:
                current = Counters._installed
                if current is not None and current.active:
                    current.hops += 1
                return await original(connection, fn, *args, **kwargs)

            # Every call into aiosqlite's worker thread goes through _execute; wrap it (in this process only).
            aiosqlite.Connection._execute = counted  # type: ignore[method-assign,assignment]
        Counters._installed = self

    def _on_statement(self, *_args: Any) -> None:
        if self.active:
            self.statements += 1


# -- what-if prototypes -----------------------------------------------------------------------------------------

_c, _u, _m = conversations.c, tenant_usage.c, messages.c
# Suggestion 1: statements built once, at import, with bind parameters; SQLAlchemy then reuses their cache key.
RESERVE = (
    sa.update(conversations)
    .where(_c.tenant_id == sa.bindparam("b_tenant"), _c.id == sa.bindparam("b_conversation"))
    .values(
        last_seq=_c.last_seq + sa.bindparam("b_count"),
        message_count=_c.message_count + sa.bindparam("b_count"),
        total_tokens=_c.total_tokens + sa.bindparam("b_tokens"),
        content_bytes=_c.content_bytes + sa.bindparam("b_bytes"),
        last_activity_at=sa.bindparam("b_now", type_=conversations.c.last_activity_at.type),
    )
    .returning(_c.last_seq)
)


def _limit(column: sa.ColumnElement[Any]) -> sa.ScalarSelect[Any]:
    return sa.select(column).where(tenants.c.id == sa.bindparam("b_tenant")).scalar_subquery()


CHARGE = (
    sa.update(tenant_usage)
    .where(
        _u.tenant_id == sa.bindparam("b_tenant"),
        _u.messages + sa.bindparam("b_messages")
        <= sa.func.coalesce(_limit(tenants.c.max_messages), _u.messages + sa.bindparam("b_messages")),
        _u.storage_bytes + sa.bindparam("b_bytes")
        <= sa.func.coalesce(_limit(tenants.c.max_storage_bytes), _u.storage_bytes + sa.bindparam("b_bytes")),
    )
    .values(
        messages=_u.messages + sa.bindparam("b_messages"),
        tokens=_u.tokens + sa.bindparam("b_tokens"),
        storage_bytes=_u.storage_bytes + sa.bindparam("b_bytes"),
    )
)
INSERT = sa.insert(messages)
_PAGE_WHERE = (_m.tenant_id == sa.bindparam("b_tenant"), _m.conversation_id == sa.bindparam("b_conversation"))
PAGE = sa.select(messages).where(*_PAGE_WHERE).order_by(_m.seq.desc()).limit(sa.bindparam("b_limit"))
# Suggestion 3: don't select (and decode) what the caller passed in.
_LEAN = (_m.id, _m.seq, _m.role, _m.content, _m.model, _m.prompt_tokens, _m.completion_tokens, _m.metadata)
PAGE_LEAN = (
    sa.select(*_LEAN, _m.created_at, _m.idempotency_key)
    .where(*_PAGE_WHERE)
    .order_by(_m.seq.desc())
    .limit(sa.bindparam("b_limit"))
)
_ROLES = {r.value: r for r in Role}
# Bulk experiment: the same INSERT with untyped columns, fed values already in the driver's form (no processors).
INSERT_UNTYPED = sa.insert(sa.Table("messages", sa.MetaData(), *(sa.Column(c.name) for c in messages.columns)))


def _seal(store: MnemoStore, tenant_id: uuid.UUID, row: dict[str, Any]) -> dict[str, Any]:
    """What the message repository does to a row before inserting it (encryption at rest, when configured)."""
    codec = getattr(store._db, "codec", None)
    return row if codec is None else codec.seal("messages", tenant_id, row)


def append_prebuilt(store: MnemoStore, tenant_id: uuid.UUID, conversation_id: uuid.UUID, new: NewMessage) -> Message:
    """add_message with the same validation, transaction and SQL, but statements built once."""
    settings = store.settings
    (row,) = message_rows(
        tenant_id,
        conversation_id,
        [new],
        max_content_bytes=settings.max_content_bytes,
        max_metadata_bytes=settings.max_metadata_bytes,
    )
    size = row.pop("_bytes")
    tokens = row["prompt_tokens"] + row["completion_tokens"]
    now = datetime.now(UTC)
    with store._db.transaction(tenant_id, write=True) as uow:
        conn = uow.connection
        ids = {"b_tenant": tenant_id, "b_conversation": conversation_id}
        last = conn.execute(RESERVE, {**ids, "b_count": 1, "b_tokens": tokens, "b_bytes": size, "b_now": now})
        row["seq"] = last.scalar_one()
        row["created_at"] = now
        charged = conn.execute(CHARGE, {"b_tenant": tenant_id, "b_messages": 1, "b_tokens": tokens, "b_bytes": size})
        assert charged.rowcount == 1
        conn.execute(INSERT, [_seal(store, tenant_id, row)])
    return to_message(row)


def bulk_prebuilt(
    store: MnemoStore, raw: RawStore, tenant_id: uuid.UUID, conversation_id: uuid.UUID, batch: Sequence[NewMessage]
) -> list[Message]:
    """add_messages with today's validation, prebuilt statements and rows encoded once for the driver."""
    settings = store.settings
    rows = message_rows(
        tenant_id,
        conversation_id,
        batch,
        max_content_bytes=settings.max_content_bytes,
        max_metadata_bytes=settings.max_metadata_bytes,
    )
    size = sum(row.pop("_bytes") for row in rows)
    tokens = sum(row["prompt_tokens"] + row["completion_tokens"] for row in rows)
    now = datetime.now(UTC)
    encode_id, encode_json = raw._uuid, raw._json
    tenant, conversation, at = encode_id(tenant_id), encode_id(conversation_id), raw._now()
    with store._db.transaction(tenant_id, write=True) as uow:
        conn = uow.connection
        ids = {"b_tenant": tenant_id, "b_conversation": conversation_id}
        count = len(rows)
        last = conn.execute(RESERVE, {**ids, "b_count": count, "b_tokens": tokens, "b_bytes": size, "b_now": now})
        first = last.scalar_one() - count + 1
        conn.execute(CHARGE, {"b_tenant": tenant_id, "b_messages": count, "b_tokens": tokens, "b_bytes": size})
        encoded = []
        for i, row in enumerate(rows):
            row["seq"], row["created_at"] = first + i, now
            encoded.append(
                {
                    **_seal(store, tenant_id, row),
                    "tenant_id": tenant,
                    "id": encode_id(row["id"]),
                    "conversation_id": conversation,
                    "metadata": encode_json(row["metadata"]),
                    "created_at": at,
                }
            )
        conn.execute(INSERT_UNTYPED, encoded)
    return [to_message(row) for row in rows]


def history_prebuilt(store: MnemoStore, tenant_id: uuid.UUID, conversation_id: uuid.UUID, limit: int) -> list[Message]:
    """The history page through a prebuilt SELECT, mapped with mnemostore's to_message."""
    with store._db.transaction(tenant_id, write=False) as uow:
        params = {"b_tenant": tenant_id, "b_conversation": conversation_id, "b_limit": limit + 1}
        rows = uow.connection.execute(PAGE, params).all()
    return [_mapping.to_message(row) for row in reversed(rows)]


def history_lean(store: MnemoStore, tenant_id: uuid.UUID, conversation_id: uuid.UUID, limit: int) -> list[Message]:
    """Prebuilt SELECT without tenant_id/conversation_id (reuse the caller's UUIDs), positional row mapping."""
    with store._db.transaction(tenant_id, write=False) as uow:
        params = {"b_tenant": tenant_id, "b_conversation": conversation_id, "b_limit": limit + 1}
        rows = uow.connection.execute(PAGE_LEAN, params).all()
    roles = _ROLES
    return [
        Message(
            id=r[0],
            tenant_id=tenant_id,
            conversation_id=conversation_id,
            seq=r[1],
            role=roles[r[2]],
            content=r[3],
            model=r[4],
            prompt_tokens=r[5],
            completion_tokens=r[6],
            metadata=r[7],
            created_at=r[8],
            idempotency_key=r[9],
        )
        for r in reversed(rows)
    ]


class _StubResult:
    rowcount = 1

    def scalar_one_or_none(self) -> int:
        return 1


class _StubConnection:
    """Stands in for a Connection: lets the repositories build their statements (and, optionally, cache keys)."""

    def __init__(self, *, cache_key: bool) -> None:
        self.cache_key = cache_key

    def execute(self, statement: Any, parameters: Any = None) -> _StubResult:
        if self.cache_key:
            statement._generate_cache_key()
        return _StubResult()


def _repository(cls: Callable[..., R], conn: Any, tenant_id: uuid.UUID, store: MnemoStore) -> R:
    """A repository on ``conn``, passing the store's field codec where the repositories take one."""
    if "codec" in inspect.signature(cls).parameters:
        return cls(conn, tenant_id, codec=store._db.codec)
    return cls(conn, tenant_id)


def build_statements(
    store: MnemoStore, tenant_id: uuid.UUID, conversation_id: uuid.UUID, row: dict[str, Any], *, cache_key: bool
) -> None:
    """What the three repository calls of one append cost before anything reaches the engine."""
    conn: Any = _StubConnection(cache_key=cache_key)
    now = datetime.now(UTC)
    conversations_repo = _repository(ConversationRepository, conn, tenant_id, store)
    conversations_repo.reserve(conversation_id, count=1, tokens=42, content_bytes=200, now=now)
    _repository(TenantRepository, conn, tenant_id, store).charge(messages=1, tokens=42, storage_bytes=200)
    _repository(MessageRepository, conn, tenant_id, store).insert_many([row])


# -- the run ----------------------------------------------------------------------------------------------------


def profile_paths(
    target: Target,
    fx: Fixture,
    runner: asyncio.Runner,
    astore: AsyncMnemoStore,
    seconds: float,
    pstats_dir: Path | None,
) -> list[dict[str, Any]]:
    t, at = fx.tenant, astore.tenant(fx.tenant.tenant_id)
    conv_sync, conv_async = fx.conversation("profile sync"), fx.conversation("profile async")
    bulk_sync, bulk_async = fx.conversation("profile bulk sync"), fx.conversation("profile bulk async")
    history, batch, kw = fx.history_conversation, fx.batch, message_kwargs(message(0))
    counters = Counters(fx.store._db.engine, astore._db.engine.sync_engine)
    cases: list[tuple[str, str, Op | None, AsyncOp | None]] = [
        ("single append", "sync", lambda: t.add_message(conv_sync, **kw), None),
        ("single append", "async", None, lambda: at.add_message(conv_async, **kw)),
        ("bulk append", "sync", lambda: t.add_messages(bulk_sync, batch), None),
        ("bulk append", "async", None, lambda: at.add_messages(bulk_async, batch)),
        ("history read", "sync", lambda: t.get_conversation_history(history, limit=50), None),
        ("history read", "async", None, lambda: at.get_conversation_history(history, limit=50)),
    ]
    reports = []
    for path, flavour, op, async_op in cases:
        if path == "history read" and flavour == "sync":
            analyze(target)
        print(f"  {target.backend}: profiling {path} ({flavour}) ...", file=sys.stderr, flush=True)
        n_profiled = 10 if path == "bulk append" else 500
        if op is not None:
            us = per_op_sync(op, seconds)
            runner_op: Callable[[int], None] = functools.partial(_repeat_sync, op)
        else:
            assert async_op is not None
            us = runner.run(per_op_async(async_op, seconds))
            runner_op = functools.partial(_repeat_async, runner, async_op)
        counters.statements = counters.hops = 0
        counters.active = True
        runner_op(10)
        counters.active = False
        statements, hops = counters.statements / 10, counters.hops / 10
        profiler = cProfile.Profile()
        profiler.enable()
        runner_op(n_profiled)
        profiler.disable()
        stats = pstats.Stats(profiler)
        if pstats_dir is not None:
            pstats_dir.mkdir(parents=True, exist_ok=True)
            stats.dump_stats(pstats_dir / f"{target.backend}-{path.replace(' ', '_')}-{flavour}.pstats")
        shares = breakdown(stats)
        reports.append(
            {
                "backend": target.backend,
                "path": path,
                "flavour": flavour,
                "us_per_op": us,
                "statements": statements,
                "hops": hops,
                "buckets": {name: share * us for name, share in shares.items()},
            }
        )
    return reports


def _repeat_sync(op: Op, n: int) -> None:
    for _ in range(n):
        op()


def _repeat_async(runner: asyncio.Runner, op: AsyncOp, n: int) -> None:
    async def go() -> None:
        for _ in range(n):
            await op()

    runner.run(go())


def interleaved(
    cases: Sequence[tuple[str, Op | AsyncOp]], runner: asyncio.Runner, seconds: float, rounds: int = 5
) -> list[tuple[str, float]]:
    """µs per call of each case: the median of ``rounds`` slices, the cases taking turns slice by slice.

    A case whose callable is a coroutine function (or a partial of one) runs on ``runner``'s event loop.
    """
    slices: dict[str, list[float]] = {name: [] for name, _ in cases}
    for _ in range(rounds):
        for name, op in cases:
            if inspect.iscoroutinefunction(op):
                slices[name].append(runner.run(per_op_async(op, seconds / rounds, slices=1)))
            else:
                slices[name].append(per_op_sync(op, seconds / rounds, slices=1))
    return [(name, sorted(values)[len(values) // 2]) for name, values in slices.items()]


def what_if(
    target: Target, fx: Fixture, runner: asyncio.Runner, astore: AsyncMnemoStore, seconds: float
) -> list[tuple[str, float]]:
    """µs per operation of the current code and of each prototype, measured side by side."""
    print(f"  {target.backend}: what-if prototypes ...", file=sys.stderr, flush=True)
    store, t, tid = fx.store, fx.tenant, fx.tenant.tenant_id
    at = astore.tenant(tid)
    one, batch, history = message(0), fx.batch, fx.history_conversation
    kw = message_kwargs(one)
    conv = {name: fx.conversation(f"what-if {name}") for name in "abcdefghijklmno"}
    seq = itertools.count(1)
    raw = open_raw(target, tid)
    # The prototypes write no cache, so they are compared with a store whose cache is off too.
    plain = MnemoStore(target.url, cache_enabled=False)
    no_ping = MnemoStore(target.url, cache_enabled=False, pool_pre_ping=False)
    t_plain, t_no_ping = plain.tenant(tid), no_ping.tenant(tid)
    limits = {"max_content_bytes": store.settings.max_content_bytes, "max_metadata_bytes": 10**5}
    (row,) = message_rows(tid, conv["a"], [one], **limits)
    row.update(seq=1, created_at=datetime.now(UTC))
    row.pop("_bytes")

    def empty_transaction(write: bool) -> Op:
        def run() -> None:
            with plain._db.transaction(tid, write=write):
                pass

        return run

    async def to_thread_append() -> object:
        return await asyncio.to_thread(t.add_message, conv["g"], **kw)

    async def to_thread_history() -> object:
        return await asyncio.to_thread(t.get_conversation_history, history, limit=50)

    P = functools.partial
    build = P(build_statements, plain, tid, conv["a"], row)
    pg = target.backend == "postgres"
    cases: list[tuple[str, Op | AsyncOp]] = [
        ("append: mnemostore add_message (sync), default settings", P(t.add_message, conv["n"], **kw)),
        ("append: mnemostore add_message (sync), cache_enabled=False", P(t_plain.add_message, conv["a"], **kw)),
        ("append: raw driver, same SQL in 1 tx", P(raw.append_same_sql, conv["b"], [one])),
        (
            "append: raw driver, same SQL without the usage UPDATE",
            P(raw.append_same_sql, conv["k"], [one], charge=False),
        ),
        (
            "append: raw driver, autocommit INSERT (the baseline)",
            lambda: raw.insert_autocommit(conv["l"], next(seq), one),
        ),
        ("append: empty write transaction (pool, BEGIN, tenant, COMMIT)", empty_transaction(True)),
        ("append: build the 3 statements only", P(build, cache_key=False)),
        ("append: build the 3 statements + cache keys", P(build, cache_key=True)),
        ("append: prototype, prebuilt statements (fix 1)", P(append_prebuilt, plain, tid, conv["c"], one)),
    ]
    if isinstance(raw, RawSqlite):
        cases += [
            ("append: raw, autocommit INSERT ... SELECT max(seq)+1, no counters", P(raw.append_max_seq, conv["m"], one))
        ]
    if isinstance(raw, RawPostgres):
        cases += [("append: raw, the 3 statements as one CTE statement", P(raw.append_cte, conv["m"], one))]
    if pg:
        cases += [
            ("append: mnemostore, pool_pre_ping=False (fix 2)", P(t_no_ping.add_message, conv["d"], **kw)),
            ("append: prebuilt + pool_pre_ping=False (fix 1+2)", P(append_prebuilt, no_ping, tid, conv["e"], one)),
        ]
    cases += [
        ("append: mnemostore async add_message", P(at.add_message, conv["f"], **kw)),
        ("append: async as to_thread(sync add_message) (fix 4)", to_thread_append),
        ("bulk: mnemostore add_messages(1000) (sync), default settings", P(t.add_messages, conv["o"], batch)),
        ("bulk: mnemostore add_messages(1000) (sync), cache_enabled=False", P(t_plain.add_messages, conv["h"], batch)),
        ("bulk: raw driver, same SQL + executemany", P(raw.append_same_sql, conv["i"], batch)),
        ("bulk: message_rows() validation alone", P(message_rows, tid, conv["h"], batch, **limits)),
        (
            "bulk: prototype, prebuilt + rows pre-encoded (no SA processors)",
            P(bulk_prebuilt, plain, raw, tid, conv["j"], batch),
        ),
        ("history: mnemostore (sync), default settings", P(t.get_conversation_history, history, limit=50)),
        ("history: mnemostore (sync), cache_enabled=False", P(t_plain.get_conversation_history, history, limit=50)),
        ("history: raw driver -> Message objects", P(raw.history_typed, history, 51)),
        ("history: raw driver -> dicts", P(raw.history, history, 51)),
        ("history: empty read transaction", empty_transaction(False)),
        ("history: prototype, prebuilt SELECT + to_message (fix 1)", P(history_prebuilt, plain, tid, history, 50)),
        ("history: prototype, lean SELECT + positional mapping (fix 3)", P(history_lean, plain, tid, history, 50)),
    ]
    if pg:
        cases += [
            (
                "history: mnemostore, pool_pre_ping=False (fix 2)",
                P(t_no_ping.get_conversation_history, history, limit=50),
            ),
            ("history: lean prototype + pool_pre_ping=False (fix 1+2+3)", P(history_lean, no_ping, tid, history, 50)),
        ]
    cases += [
        ("history: mnemostore async", P(at.get_conversation_history, history, limit=50)),
        ("history: async as to_thread(sync) (fix 4)", to_thread_history),
    ]
    analyze(target)
    try:
        return interleaved(cases, runner, seconds)
    finally:
        raw.close()
        plain.close()
        no_ping.close()


def print_breakdown(reports: Sequence[dict[str, Any]]) -> None:
    short = [b.split(" (")[0] for b in BUCKETS]
    for report in reports:
        print(
            f"\n{report['backend']} {report['path']} ({report['flavour']}): {report['us_per_op']:,.0f} µs/op, "
            f"{report['statements']:.0f} SQL statements/op"
            + (f", {report['hops']:.0f} aiosqlite thread hops/op" if report["hops"] else "")
        )
        total = report["us_per_op"]
        for name, label in zip(BUCKETS, short, strict=True):
            us = report["buckets"][name]
            if us / total >= 0.01:
                print(f"    {label:<34} {us:9,.0f} µs  {100 * us / total:4.0f}%")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Profile mnemostore's core paths (see benchmarks/README.md).")
    parser.add_argument("--backend", choices=("sqlite", "postgres", "all"), default="all")
    parser.add_argument("--pg-dsn", default=DEFAULT_PG_DSN)
    parser.add_argument("--seconds", type=float, default=1.0, help="timing per measurement (1.0)")
    parser.add_argument("--pstats", type=Path, metavar="DIR", help="also write each profile as a .pstats file")
    parser.add_argument("--skip-what-if", action="store_true")
    args = parser.parse_args(argv)
    config = Config(
        duration=args.seconds,
        warmup=0.1,
        rounds=1,
        history_size=10_000,
        history_limit=50,
        batch=1000,
        pg_dsn=args.pg_dsn,
        sqlite_dir=None,
    )
    backends = ["sqlite", "postgres"] if args.backend == "all" else [args.backend]
    for backend in backends:
        scratch = scratch_sqlite if backend == "sqlite" else scratch_postgres
        with scratch(config) as target, asyncio.Runner() as runner:
            fx = prepare(target, config)
            astore = AsyncMnemoStore(target.url)
            try:
                reports = profile_paths(target, fx, runner, astore, args.seconds, args.pstats)
                whatif = [] if args.skip_what_if else what_if(target, fx, runner, astore, args.seconds)
            finally:
                runner.run(astore.close())
                fx.store.close()
        print(f"\n== {target.server_version}: breakdown (self time by bucket, scaled to the unprofiled µs/op)")
        print_breakdown(reports)
        if whatif:
            print(f"\n== {target.server_version}: what-if (µs per operation, lower is better)")
            width = max(len(name) for name, _ in whatif)
            for name, us in whatif:
                print(f"    {name:<{width}} {us:9,.0f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
