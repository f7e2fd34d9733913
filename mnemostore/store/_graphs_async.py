"""The repository of graph state: checkpoints, channel values, pending writes (async; ``_graphs.py`` is generated
from this).

Access paths, all prefixes of the primary keys: the latest checkpoint of a thread's namespace (``checkpoint_id``
descending), one checkpoint by id, a listing newest first, a thread's rows (delete, copy, prune). Channel values are
read by the (channel, version) pairs a checkpoint references; a value no checkpoint references any more is deleted
by the operations that delete checkpoints.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from mnemostore.domain import GraphChannelValue, GraphCheckpoint, GraphWrite
from mnemostore.store._crypto import FieldCodec
from mnemostore.store._repository_async import AsyncRepository, Values
from mnemostore.store._search_statements import _metadata_equals
from mnemostore.store.tables import graph_checkpoint_blobs, graph_checkpoint_writes, graph_checkpoints

# A listing position: (checkpoint_id, thread_id, checkpoint_ns) of the last row of the previous page.
GraphPosition = tuple[str, str, str]
_CHECKPOINT_KEY = ("thread_id", "checkpoint_ns", "checkpoint_id")


def _metadata_matches(key: str, value: Any, dialect: str) -> sa.ColumnElement[bool]:
    """``metadata[key]`` equals ``value``; an object or list compares as JSON (PostgreSQL: contains it)."""
    if dialect == "sqlite" and isinstance(value, dict | list):
        path = '$."' + key.replace('"', '""') + '"'
        column = graph_checkpoints.c.metadata
        return sa.func.json_extract(column, path) == sa.func.json(json.dumps(value, separators=(",", ":")))
    return _metadata_equals(graph_checkpoints, key, value, dialect)


class AsyncGraphRepository(AsyncRepository):
    """A tenant's graph threads: their checkpoints, the channel values those reference, the pending writes."""

    def __init__(self, conn: AsyncConnection, tenant_id: uuid.UUID | None, *, dialect: str, codec: FieldCodec) -> None:
        super().__init__(conn, tenant_id, codec=codec)
        self._dialect = dialect

    def _insert(self, table: sa.Table) -> Any:
        return (postgresql.insert if self._dialect == "postgresql" else sqlite.insert)(table)

    async def upsert_checkpoint(self, values: Values, blobs: Sequence[Values]) -> None:
        """Insert the checkpoint (or replace its content, keeping its parent and time) and the values not stored."""
        values = {"tenant_id": self.tenant_id, **values}
        insert = self._insert(graph_checkpoints)
        await self._conn.execute(
            insert.values(values).on_conflict_do_update(
                index_elements=["tenant_id", *_CHECKPOINT_KEY],
                set_={
                    name: insert.excluded[name]
                    for name in ("type", "checkpoint", "channel_versions", "metadata", "run_id")
                },
            )
        )
        if blobs:
            rows = [{"tenant_id": self.tenant_id, **blob} for blob in blobs]
            await self._conn.execute(self._insert(graph_checkpoint_blobs).on_conflict_do_nothing(), rows)

    async def put_writes(self, rows: Sequence[Values], *, replace: bool) -> None:
        """Insert writes; an existing (task_id, idx) is kept, or overwritten with ``replace``."""
        if not rows:
            return
        rows = [{"tenant_id": self.tenant_id, **row} for row in rows]
        insert = self._insert(graph_checkpoint_writes)
        if replace:
            statement = insert.on_conflict_do_update(
                index_elements=["tenant_id", *_CHECKPOINT_KEY, "task_id", "idx"],
                set_={name: insert.excluded[name] for name in ("channel", "type", "blob", "task_path")},
            )
        else:
            statement = insert.on_conflict_do_nothing()
        await self._conn.execute(statement, rows)

    async def checkpoint_exists(self, thread_id: str, checkpoint_ns: str, checkpoint_id: str) -> bool:
        c = graph_checkpoints.c
        query = sa.select(c.checkpoint_id).where(
            c.tenant_id == self.tenant_id,
            c.thread_id == thread_id,
            c.checkpoint_ns == checkpoint_ns,
            c.checkpoint_id == checkpoint_id,
        )
        return (await self._conn.execute(query)).first() is not None

    async def thread_exists(self, thread_id: str) -> bool:
        c = graph_checkpoints.c
        query = sa.select(c.checkpoint_id).where(c.tenant_id == self.tenant_id, c.thread_id == thread_id).limit(1)
        return (await self._conn.execute(query)).first() is not None

    async def get(self, thread_id: str, checkpoint_ns: str, checkpoint_id: str | None) -> GraphCheckpoint | None:
        """One checkpoint (the namespace's latest without an id), with its channel values and pending writes."""
        c = graph_checkpoints.c
        query = sa.select(graph_checkpoints).where(
            c.tenant_id == self.tenant_id, c.thread_id == thread_id, c.checkpoint_ns == checkpoint_ns
        )
        if checkpoint_id is not None:
            query = query.where(c.checkpoint_id == checkpoint_id)
        else:
            query = query.order_by(c.checkpoint_id.desc()).limit(1)
        row = (await self._conn.execute(query)).first()
        if row is None:
            return None
        found = await self._complete([row])
        return found[0]

    async def find(
        self,
        *,
        thread_id: str | None,
        checkpoint_ns: str | None,
        checkpoint_id: str | None,
        metadata: Mapping[str, Any],
        before: str | None,
        after: GraphPosition | None,
        limit: int,
    ) -> list[GraphCheckpoint]:
        """Newest first (checkpoint id descending, then thread and namespace), each with values and writes."""
        c = graph_checkpoints.c
        query = sa.select(graph_checkpoints).where(c.tenant_id == self.tenant_id)
        if thread_id is not None:
            query = query.where(c.thread_id == thread_id)
        if checkpoint_ns is not None:
            query = query.where(c.checkpoint_ns == checkpoint_ns)
        if checkpoint_id is not None:
            query = query.where(c.checkpoint_id == checkpoint_id)
        for key, value in metadata.items():
            query = query.where(_metadata_matches(key, value, self._dialect))
        if before is not None:
            query = query.where(c.checkpoint_id < before)
        if after is not None:
            query = query.where(sa.tuple_(c.checkpoint_id, c.thread_id, c.checkpoint_ns) < sa.tuple_(*after))
        query = query.order_by(c.checkpoint_id.desc(), c.thread_id.desc(), c.checkpoint_ns.desc()).limit(limit)
        rows = (await self._conn.execute(query)).all()
        return await self._complete(rows) if rows else []

    async def _complete(self, rows: Sequence[sa.Row[Any]]) -> list[GraphCheckpoint]:
        """Checkpoints of ``rows`` with their channel values and pending writes: two statements for any number."""
        b = graph_checkpoint_blobs.c
        pairs = {
            (row.thread_id, row.checkpoint_ns, channel, str(version))
            for row in rows
            for channel, version in (row.channel_versions or {}).items()
        }
        values: dict[tuple[str, str], dict[tuple[str, str], GraphChannelValue]] = {}
        if pairs:
            query = sa.select(b.thread_id, b.checkpoint_ns, b.channel, b.version, b.type, b.blob).where(
                b.tenant_id == self.tenant_id,
                sa.tuple_(b.thread_id, b.checkpoint_ns, b.channel, b.version).in_(sorted(pairs)),
            )
            for blob in await self._conn.execute(query):
                values.setdefault((blob.thread_id, blob.checkpoint_ns), {})[(blob.channel, blob.version)] = (
                    GraphChannelValue(channel=blob.channel, version=blob.version, type=blob.type, blob=blob.blob)
                )
        w = graph_checkpoint_writes.c
        keys = sorted({(row.thread_id, row.checkpoint_ns, row.checkpoint_id) for row in rows})
        writes: dict[tuple[str, str, str], list[GraphWrite]] = {}
        query = (
            sa.select(graph_checkpoint_writes)
            .where(w.tenant_id == self.tenant_id, sa.tuple_(w.thread_id, w.checkpoint_ns, w.checkpoint_id).in_(keys))
            .order_by(w.task_path, w.task_id, w.idx)
        )
        for write in await self._conn.execute(query):
            writes.setdefault((write.thread_id, write.checkpoint_ns, write.checkpoint_id), []).append(
                GraphWrite(
                    task_id=write.task_id,
                    idx=write.idx,
                    channel=write.channel,
                    type=write.type,
                    blob=write.blob,
                    task_path=write.task_path,
                )
            )
        out = []
        for row in rows:
            stored = values.get((row.thread_id, row.checkpoint_ns), {})
            versions = {str(k): str(v) for k, v in (row.channel_versions or {}).items()}
            out.append(
                GraphCheckpoint(
                    tenant_id=row.tenant_id,
                    thread_id=row.thread_id,
                    checkpoint_ns=row.checkpoint_ns,
                    checkpoint_id=row.checkpoint_id,
                    parent_checkpoint_id=row.parent_checkpoint_id,
                    type=row.type,
                    checkpoint=row.checkpoint,
                    channel_versions=versions,
                    metadata=row.metadata,
                    run_id=row.run_id,
                    created_at=row.created_at,
                    channel_values=[stored[pair] for pair in versions.items() if pair in stored],
                    pending_writes=writes.get((row.thread_id, row.checkpoint_ns, row.checkpoint_id), []),
                )
            )
        return out

    async def delete_threads(self, thread_ids: Sequence[str]) -> int:
        """Delete every row of these threads; returns how many checkpoints went."""
        deleted = 0
        for table in (graph_checkpoint_writes, graph_checkpoint_blobs, graph_checkpoints):
            statement = sa.delete(table).where(table.c.tenant_id == self.tenant_id, table.c.thread_id.in_(thread_ids))
            deleted = int((await self._conn.execute(statement)).rowcount)
        return deleted

    async def delete_runs(self, run_ids: Sequence[str]) -> int:
        """Delete the checkpoints written by these runs, their writes, and the values left unreferenced."""
        c = graph_checkpoints.c
        threads = [
            row.thread_id
            for row in await self._conn.execute(
                sa.select(c.thread_id).distinct().where(c.tenant_id == self.tenant_id, c.run_id.in_(run_ids))
            )
        ]
        if not threads:
            return 0
        statement = sa.delete(graph_checkpoints).where(c.tenant_id == self.tenant_id, c.run_id.in_(run_ids))
        deleted = int((await self._conn.execute(statement)).rowcount)
        await self._collect(threads)
        return deleted

    async def prune(self, thread_ids: Sequence[str], *, keep: int) -> int:
        """Keep the newest ``keep`` checkpoints of each namespace of these threads; delete the rest, their writes
        and the values no kept checkpoint references. Returns how many checkpoints went."""
        if keep == 0:
            return await self.delete_threads(thread_ids)
        c = graph_checkpoints.c
        rank = (
            sa.func.row_number()
            .over(partition_by=(c.thread_id, c.checkpoint_ns), order_by=c.checkpoint_id.desc())
            .label("rank")
        )
        ranked = (
            sa.select(c.thread_id, c.checkpoint_ns, c.checkpoint_id, rank)
            .where(c.tenant_id == self.tenant_id, c.thread_id.in_(thread_ids))
            .subquery()
        )
        old = sa.select(ranked.c.thread_id, ranked.c.checkpoint_ns, ranked.c.checkpoint_id).where(ranked.c.rank > keep)
        statement = sa.delete(graph_checkpoints).where(
            c.tenant_id == self.tenant_id,
            c.thread_id.in_(thread_ids),
            sa.tuple_(c.thread_id, c.checkpoint_ns, c.checkpoint_id).in_(old),
        )
        deleted = int((await self._conn.execute(statement)).rowcount)
        if deleted:
            await self._collect(thread_ids)
        return deleted

    async def _collect(self, thread_ids: Sequence[str]) -> None:
        """Delete the writes of checkpoints that are gone, and the values no checkpoint of their thread references."""
        c = graph_checkpoints.c
        w = graph_checkpoint_writes.c
        orphan_writes = sa.delete(graph_checkpoint_writes).where(
            w.tenant_id == self.tenant_id,
            w.thread_id.in_(thread_ids),
            ~sa.exists().where(
                c.tenant_id == w.tenant_id,
                c.thread_id == w.thread_id,
                c.checkpoint_ns == w.checkpoint_ns,
                c.checkpoint_id == w.checkpoint_id,
            ),
        )
        await self._conn.execute(orphan_writes)
        b = graph_checkpoint_blobs.c
        same_place = (c.tenant_id == b.tenant_id, c.thread_id == b.thread_id, c.checkpoint_ns == b.checkpoint_ns)
        if self._dialect == "postgresql":
            referenced = sa.exists().where(
                *same_place, c.channel_versions.op("->>", return_type=sa.String())(b.channel) == b.version
            )
        else:
            versions = sa.func.json_each(c.channel_versions).table_valued("key", "value")
            referenced = (
                sa.select(sa.literal(1))
                .select_from(graph_checkpoints.join(versions, sa.true()))
                .where(*same_place, versions.c.key == b.channel, versions.c.value == b.version)
                .exists()
            )
        orphan_values = sa.delete(graph_checkpoint_blobs).where(
            b.tenant_id == self.tenant_id, b.thread_id.in_(thread_ids), ~referenced
        )
        await self._conn.execute(orphan_values)

    async def copy_thread(self, source: str, target: str) -> int:
        """Copy every row of thread ``source`` to thread ``target`` (same ids); returns how many checkpoints."""
        c = graph_checkpoints.c
        count = sa.select(sa.func.count()).where(c.tenant_id == self.tenant_id, c.thread_id == source)
        copied = int((await self._conn.execute(count)).scalar_one())
        for table in (graph_checkpoints, graph_checkpoint_blobs, graph_checkpoint_writes):
            columns = [column.name for column in table.columns]
            select = sa.select(
                *(
                    sa.literal(target, sa.String()).label(name) if name == "thread_id" else table.c[name]
                    for name in columns
                )
            ).where(table.c.tenant_id == self.tenant_id, table.c.thread_id == source)
            await self._conn.execute(sa.insert(table).from_select(columns, select))
        return copied
