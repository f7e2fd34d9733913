"""The SQL behind analytics snapshots: which columns of which tables, read incrementally (sync only).

Analytics runs offline from the CLI or a notebook, on the sync engine, so this module has no async twin. It
only reads, inside one ``Database.snapshot`` transaction (REPEATABLE READ on PostgreSQL), so the tables it reads
agree with each other. Column selection is deliberate: no message text, no metadata, no tool parameters, so a
snapshot on disk holds neither plaintext of sensitive fields nor their ciphertext.

Two ways to read a table:

* ``append``: rows never change once written (messages, tool executions; memories, whose ``updated_at`` is
  watched). Ids are UUIDv7, so they grow with time: each run reads the rows whose id is above the previous run's
  high-water mark. Because an id is drawn before its transaction commits, and imports bring older ids, a row can
  also appear *below* the mark, and deletes remove rows there; ``rows_below`` counts the rows at or below the
  mark (and ``changed_below`` those updated since), and the caller starts the table over when the count differs
  from what it holds;
* ``whole``: mutable tables (conversations: title, status, counters) are read entirely each run.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import sqlalchemy as sa

from mnemostore.store.tables import UtcDateTime, conversations, memories, messages, tool_executions

__all__ = ["SNAPSHOT_TABLES", "ColumnKind", "SnapshotTable", "changed_below", "read_rows", "rows_below"]

ColumnKind = Literal["uuid", "timestamp", "int", "float", "bool", "text"]


@dataclass(frozen=True, slots=True)
class SnapshotTable:
    table: sa.Table
    columns: tuple[str, ...]
    mode: Literal["append", "whole"]
    updated: str | None = None  # in append mode: the column that moves when a row changes

    @property
    def name(self) -> str:
        return self.table.name

    def kinds(self) -> dict[str, ColumnKind]:
        """Each snapshot column's kind, which the Parquet schema is derived from."""
        return {name: _kind(self.table.c[name].type) for name in self.columns}


SNAPSHOT_TABLES: tuple[SnapshotTable, ...] = (
    SnapshotTable(
        messages,
        ("tenant_id", "id", "conversation_id", "role", "model", "prompt_tokens", "completion_tokens", "created_at"),
        "append",
    ),
    SnapshotTable(
        tool_executions,
        ("tenant_id", "id", "conversation_id", "tool", "action", "success", "duration_ms", "created_at"),
        "append",
    ),
    SnapshotTable(
        memories,
        ("tenant_id", "id", "user_id", "kind", "tier", "created_at", "updated_at"),
        "append",
        updated="updated_at",
    ),
    SnapshotTable(
        conversations,
        (
            "tenant_id",
            "id",
            "user_id",
            "status",
            "channel",
            "started_at",
            "last_activity_at",
            "message_count",
            "total_tokens",
        ),
        "whole",
    ),
)


def _kind(type_: sa.types.TypeEngine[Any]) -> ColumnKind:
    if isinstance(type_, sa.Uuid):
        return "uuid"
    if isinstance(type_, UtcDateTime | sa.DateTime):
        return "timestamp"
    if isinstance(type_, sa.Boolean):
        return "bool"
    if isinstance(type_, sa.Integer):
        return "int"
    if isinstance(type_, sa.Float):
        return "float"
    return "text"


def _scope(spec: SnapshotTable, tenant_id: uuid.UUID | None) -> list[sa.ColumnElement[bool]]:
    return [spec.table.c.tenant_id == tenant_id] if tenant_id is not None else []


def read_rows(
    conn: sa.Connection,
    spec: SnapshotTable,
    *,
    tenant_id: uuid.UUID | None,
    after: uuid.UUID | None,
    batch_size: int = 10_000,
) -> Iterator[Sequence[sa.Row[Any]]]:
    """The table's rows (of one tenant, or all) with an id above ``after``, in batches, in no particular order.

    One streamed query (a server-side cursor on PostgreSQL), not keyset pages: across tenants the primary key
    starts with ``tenant_id``, so paging by id alone would sort the table once per page.
    """
    c = spec.table.c
    query = sa.select(*(c[name] for name in spec.columns)).where(*_scope(spec, tenant_id))
    if after is not None:
        query = query.where(c.id > after)
    result = conn.execute(query, execution_options={"yield_per": batch_size})
    yield from result.partitions()


def rows_below(conn: sa.Connection, spec: SnapshotTable, *, tenant_id: uuid.UUID | None, mark: uuid.UUID) -> int:
    """How many rows have an id at or below ``mark`` now."""
    c = spec.table.c
    query = sa.select(sa.func.count()).select_from(spec.table).where(*_scope(spec, tenant_id), c.id <= mark)
    return int(conn.execute(query).scalar_one())


def changed_below(
    conn: sa.Connection,
    spec: SnapshotTable,
    *,
    tenant_id: uuid.UUID | None,
    mark: uuid.UUID,
    since: datetime,
) -> int:
    """How many rows at or below ``mark`` were updated after ``since`` (the newest update already read)."""
    assert spec.updated is not None
    c = spec.table.c
    query = (
        sa.select(sa.func.count())
        .select_from(spec.table)
        .where(*_scope(spec, tenant_id), c.id <= mark, c[spec.updated] > since)
    )
    return int(conn.execute(query).scalar_one())
