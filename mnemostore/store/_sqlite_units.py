"""The chat-history hot path on SQLite: an append and a history page as one unit of work on the driver.

SQLite has no round trips to save, but SQLAlchemy's execution layer costs several times the statement itself
(an append spent two thirds of its time there). These units run the same statements, compiled once from the same
Core statements (``_statements``) and converted with the same column types, straight on the ``sqlite3``
connection: one function call, and under the async twin one hop to aiosqlite's thread instead of one per
statement. Shared by both twins of the hot path (``_routines_async``), so it has no twin of its own.
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, Final, cast

import sqlalchemy as sa
from sqlalchemy.engine import Dialect
from sqlalchemy.sql.compiler import SQLCompiler

from mnemostore.errors import ConversationNotFound
from mnemostore.store import _statements as st
from mnemostore.store._mapping import json_value
from mnemostore.store._outcomes import AppendOutcome, UsageRefused
from mnemostore.store.tables import conversations, index_jobs, messages

__all__ = ["SqliteStatements", "append_unit", "history_unit", "statements_for"]

_INSERT_COLUMNS: Final = (
    "tenant_id",
    "id",
    "conversation_id",
    "seq",
    "role",
    "content",
    "model",
    "prompt_tokens",
    "completion_tokens",
    "metadata",
    "created_at",
    "idempotency_key",
)
_JOB_COLUMNS: Final = (
    "tenant_id",
    "id",
    "item_kind",
    "item_id",
    "state",
    "attempts",
    "next_attempt_at",
    "created_at",
    "updated_at",
)
Processor = Callable[[Any], Any] | None


class _Compiled:
    """One Core statement compiled for a dialect, with the bind converters of its parameters in order."""

    def __init__(self, statement: sa.ClauseElement, dialect: Dialect, column_keys: Sequence[str] | None = None):
        compiled = cast(
            SQLCompiler, statement.compile(dialect=dialect, column_keys=list(column_keys) if column_keys else None)
        )
        self.sql = str(compiled)
        self.names: tuple[str, ...] = tuple(compiled.positiontup or ())
        self._convert = [compiled.binds[name].type.dialect_impl(dialect).bind_processor(dialect) for name in self.names]
        # Parameters the compiler added with values of their own (SQLite's OFFSET 0 after a bound LIMIT).
        self._fixed = {name: compiled.binds[name].value for name in self.names if name.startswith("param_")}

    def params(self, values: Mapping[str, Any]) -> tuple[Any, ...]:
        given = {**self._fixed, **values} if self._fixed else values
        return tuple(
            value if convert is None or value is None else convert(value)
            for convert, value in zip(self._convert, (given[name] for name in self.names), strict=True)
        )


def _utc_text(value: str) -> datetime:
    """A ``UtcDateTime`` column's value as SQLAlchemy stores it on SQLite (``YYYY-MM-DD HH:MM:SS.ffffff``, UTC):
    ``fromisoformat`` in C instead of the dialect's regular expression."""
    return datetime.fromisoformat(value + "+00:00")  # an offset parsed in C: 5x faster than .replace(tzinfo=UTC)


# The history columns whose SQLAlchemy result processors are replaced by these equivalents: they run for every
# message of every page (tests/test_hot_path.py holds the page to what the repositories read).
_LEAN: dict[str, Processor] = {"metadata": json_value, "created_at": _utc_text}


class SqliteStatements:
    """The hot path's statements and converters for one SQLite dialect (built once per dialect)."""

    def __init__(self, dialect: Dialect) -> None:
        self.reserve = _Compiled(st.RESERVE, dialect)
        self.charge = _Compiled(st.charge_statement(False, True, True), dialect)
        self.insert = _Compiled(sa.insert(messages), dialect, _INSERT_COLUMNS)
        self.jobs = _Compiled(sa.insert(index_jobs), dialect, _JOB_COLUMNS)
        c, msg = conversations.c, messages.c
        tenant: sa.BindParameter[uuid.UUID] = sa.bindparam("b_tenant", type_=sa.Uuid())
        conversation: sa.BindParameter[uuid.UUID] = sa.bindparam("b_conversation", type_=sa.Uuid())
        self.last_seq = _Compiled(sa.select(c.last_seq).where(c.tenant_id == tenant, c.id == conversation), dialect)
        self.existing = _Compiled(
            sa.select(msg.idempotency_key).where(
                msg.tenant_id == tenant,
                msg.conversation_id == conversation,
                msg.idempotency_key.in_(
                    sa.select(sa.column("value")).select_from(sa.func.json_each(sa.bindparam("b_keys")))
                ),
            ),
            dialect,
        )
        self.pages = {
            direction: _Compiled(st.history_statement(direction), dialect)
            for direction in ("newest", "before", "after")
        }
        processors: list[Processor] = [
            _LEAN.get(column.key) or column.type.dialect_impl(dialect).result_processor(dialect, None)
            for column in st.HISTORY_COLUMNS
        ]
        # Only the columns that need converting (the id, the metadata, the time): the others are as stored.
        self._decoders = [(index, convert) for index, convert in enumerate(processors) if convert is not None]

    def decode(self, rows: Sequence[Sequence[Any]]) -> list[list[Any]]:
        """History rows with their values as the column types give them (UUID, JSON, aware datetimes)."""
        decoders = self._decoders
        decoded = []
        for row in rows:
            values = list(row)
            for index, convert in decoders:
                value = values[index]
                if value is not None:
                    values[index] = convert(value)
            decoded.append(values)
        return decoded


_BY_DIALECT: dict[type[Dialect], SqliteStatements] = {}


def statements_for(dialect: Dialect) -> SqliteStatements:
    """The statements compiled for ``dialect``'s kind (pysqlite or aiosqlite), built on first use."""
    kind = type(dialect)
    if kind not in _BY_DIALECT:
        _BY_DIALECT[kind] = SqliteStatements(dialect)
    return _BY_DIALECT[kind]


def append_unit(
    conn: sqlite3.Connection,
    *,
    statements: SqliteStatements,
    tenant_id: uuid.UUID,
    conversation_id: uuid.UUID,
    rows: Sequence[dict[str, Any]],
    sizes: Sequence[int],
    now: datetime,
    job_ids: Sequence[uuid.UUID] | None,
) -> AppendOutcome:
    """The append as one write transaction (BEGIN IMMEDIATE: the database lock is ours from the start, so keys
    looked up are still absent when written, as the conversation's row lock gives on PostgreSQL). When the
    conversation holds any of the idempotency keys, nothing is written and those keys come back."""
    s = statements
    keys = [row["idempotency_key"] for row in rows if row["idempotency_key"] is not None]
    conn.execute("BEGIN IMMEDIATE")
    try:
        scope = {"b_tenant": tenant_id, "b_conversation": conversation_id}
        existing: frozenset[str] = frozenset()
        jobs: Sequence[uuid.UUID | None] = job_ids if job_ids is not None else [None] * len(rows)
        fresh = list(zip(rows, sizes, jobs, strict=True))
        if keys:
            found = conn.execute(s.existing.sql, s.existing.params({**scope, "b_keys": json.dumps(keys)}))
            existing = frozenset(row[0] for row in found)
        last: int | None = None
        parent = {"tenant_id": tenant_id, "conversation_id": conversation_id}
        if not existing:
            count = len(fresh)
            tokens = sum(row["prompt_tokens"] + row["completion_tokens"] for row, _, _ in fresh)
            size = sum(bytes_ for _, bytes_, _ in fresh)
            amounts = {"b_count": count, "b_tokens": tokens, "b_bytes": size, "b_now": now}
            reserved = conn.execute(s.reserve.sql, s.reserve.params({**scope, **amounts})).fetchone()
            if reserved is None:
                raise ConversationNotFound(conversation_id)
            last = int(reserved[0])
            charge = {"b_tenant": tenant_id, "b_users": 0, "b_conversations": 0, "b_messages": count}
            charged = conn.execute(
                s.charge.sql, s.charge.params({**charge, "b_tokens": tokens, "b_storage_bytes": size})
            )
            if charged.rowcount != 1:
                raise UsageRefused("the tenant's usage refused the append")
            conn.executemany(
                s.insert.sql,
                [
                    s.insert.params({**row, **parent, "seq": seq, "created_at": now})
                    for seq, (row, _, _) in enumerate(fresh, start=last - count + 1)
                ],
            )
            if job_ids is not None:
                conn.executemany(
                    s.jobs.sql,
                    [
                        s.jobs.params(
                            {
                                "tenant_id": tenant_id,
                                "id": job_id,
                                "item_kind": "message",
                                "item_id": row["id"],
                                "state": "pending",
                                "attempts": 0,
                                "next_attempt_at": now,
                                "created_at": now,
                                "updated_at": now,
                            }
                        )
                        for row, _, job_id in fresh
                    ],
                )
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return AppendOutcome(last_seq=last, existing=existing)


def history_unit(
    conn: sqlite3.Connection,
    *,
    statements: SqliteStatements,
    tenant_id: uuid.UUID,
    conversation_id: uuid.UUID,
    limit: int,
    direction: str,
    seq: int | None,
) -> tuple[int, list[list[Any]]]:
    """(the conversation's last_seq, the page's decoded rows in the statement's order), in one read transaction:
    the page sees every message up to that last_seq."""
    s = statements
    scope = {"b_tenant": tenant_id, "b_conversation": conversation_id}
    conn.execute("BEGIN")
    try:
        found = conn.execute(s.last_seq.sql, s.last_seq.params(scope)).fetchone()
        if found is None:
            raise ConversationNotFound(conversation_id)
        page = s.pages[direction]
        values = {**scope, "b_limit": limit}
        if direction != "newest":
            values["b_seq"] = seq
        rows = conn.execute(page.sql, page.params(values)).fetchall()
    finally:
        conn.execute("COMMIT")
    return int(found[0]), s.decode(rows)
