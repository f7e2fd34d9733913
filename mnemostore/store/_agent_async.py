"""Repositories of agent records (tool executions, checkpoints, events, metrics) and of maintenance (re-sealing
encrypted fields) (async; ``_agent.py`` is generated from this).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from mnemostore.domain import (
    AgentMetric,
    Checkpoint,
    InteractionEvent,
    ToolExecution,
)
from mnemostore.store import _mapping as m
from mnemostore.store._crypto import SEALED_COLUMNS
from mnemostore.store._repository_async import AsyncRepository, InsertedRow, Values
from mnemostore.store.tables import (
    agent_metrics,
    checkpoints,
    interaction_events,
    messages,
    tool_executions,
    users,
)


class AsyncAgentRepository(AsyncRepository):
    """The agent's audit trail and state: tool executions, checkpoints, interaction events, metrics."""

    async def insert_tool_execution(self, values: Values) -> ToolExecution:
        values = {"tenant_id": self.tenant_id, **values}
        sealed = self._codec.seal("tool_executions", self.tenant_id, values)
        await self._conn.execute(sa.insert(tool_executions).values(sealed))
        return m.to_tool_execution(InsertedRow(values))

    async def list_tool_executions(
        self,
        *,
        conversation_id: uuid.UUID | None,
        tool: str | None,
        limit: int,
        after: tuple[datetime, uuid.UUID] | None = None,
    ) -> list[ToolExecution]:
        c = tool_executions.c
        query = sa.select(tool_executions).where(c.tenant_id == self.tenant_id)
        if conversation_id is not None:
            query = query.where(c.conversation_id == conversation_id)
        if tool is not None:
            query = query.where(c.tool == tool)
        if after is not None:
            query = query.where(sa.tuple_(c.created_at, c.id) < sa.tuple_(*after))
        query = query.order_by(c.created_at.desc(), c.id.desc()).limit(limit)
        return [
            m.to_tool_execution(self._codec.open("tool_executions", row)) for row in await self._conn.execute(query)
        ]

    async def insert_checkpoint(self, values: Values) -> Checkpoint:
        values = {"tenant_id": self.tenant_id, **values}
        await self._conn.execute(sa.insert(checkpoints).values(values))
        return m.to_checkpoint(InsertedRow(values))

    async def checkpoints(
        self,
        conversation_id: uuid.UUID,
        *,
        iteration: int | None = None,
        limit: int,
        after: tuple[int, uuid.UUID] | None = None,
    ) -> list[Checkpoint]:
        """Newest first (highest iteration, then latest saved)."""
        c = checkpoints.c
        query = sa.select(checkpoints).where(c.tenant_id == self.tenant_id, c.conversation_id == conversation_id)
        if iteration is not None:
            query = query.where(c.iteration == iteration)
        if after is not None:
            query = query.where(sa.tuple_(c.iteration, c.id) < sa.tuple_(*after))
        query = query.order_by(c.iteration.desc(), c.id.desc()).limit(limit)
        return [m.to_checkpoint(row) for row in await self._conn.execute(query)]

    async def get_checkpoint(self, checkpoint_id: uuid.UUID) -> Checkpoint | None:
        c = checkpoints.c
        query = sa.select(checkpoints).where(c.tenant_id == self.tenant_id, c.id == checkpoint_id)
        row = (await self._conn.execute(query)).first()
        return m.to_checkpoint(row) if row else None

    async def checkpoint_exists(self, checkpoint_id: uuid.UUID) -> bool:
        c = checkpoints.c
        query = sa.select(c.id).where(c.tenant_id == self.tenant_id, c.id == checkpoint_id)
        return (await self._conn.execute(query)).first() is not None

    async def prune_checkpoints(self, conversation_id: uuid.UUID, *, keep: int) -> int:
        c = checkpoints.c
        newest = (
            sa.select(c.id)
            .where(c.tenant_id == self.tenant_id, c.conversation_id == conversation_id)
            .order_by(c.iteration.desc(), c.id.desc())
            .limit(keep)
        )
        statement = sa.delete(checkpoints).where(
            c.tenant_id == self.tenant_id, c.conversation_id == conversation_id, c.id.not_in(newest.scalar_subquery())
        )
        return int((await self._conn.execute(statement)).rowcount)

    async def crowded_conversations(self, keep: int, *, after: uuid.UUID | None, limit: int) -> list[uuid.UUID]:
        """Conversations holding more than ``keep`` checkpoints, in id order after ``after``, ``limit`` of them."""
        c = checkpoints.c
        query = (
            sa.select(c.conversation_id)
            .where(c.tenant_id == self.tenant_id)
            .group_by(c.conversation_id)
            .having(sa.func.count() > keep)
            .order_by(c.conversation_id)
            .limit(limit)
        )
        if after is not None:
            query = query.where(c.conversation_id > after)
        return [row[0] for row in await self._conn.execute(query)]

    async def expendable_checkpoints(
        self, conversation_id: uuid.UUID, *, keep_last: int, keep_after: datetime, limit: int
    ) -> list[uuid.UUID]:
        """Checkpoints of the conversation that retention deletes, oldest first, ``limit`` of them.

        Kept: the newest ``keep_last`` (by iteration, then id), those created at or after ``keep_after``, and the
        parent of each kept one; the parent of a checkpoint of another conversation is kept too, whatever that
        checkpoint's fate (rare; a later run frees it).
        """
        c = checkpoints.c

        def newest() -> sa.ScalarSelect[Any]:
            n = checkpoints.alias()
            return (
                sa.select(n.c.id)
                .where(n.c.tenant_id == self.tenant_id, n.c.conversation_id == conversation_id)
                .order_by(n.c.iteration.desc(), n.c.id.desc())
                .limit(keep_last)
                .scalar_subquery()
            )

        p = checkpoints.alias()
        parents = sa.select(p.c.parent_id).where(
            p.c.tenant_id == self.tenant_id,
            p.c.parent_id.is_not(None),
            sa.or_(p.c.conversation_id != conversation_id, p.c.id.in_(newest()), p.c.created_at >= keep_after),
        )
        query = (
            sa.select(c.id)
            .where(
                c.tenant_id == self.tenant_id,
                c.conversation_id == conversation_id,
                c.created_at < keep_after,
                c.id.not_in(newest()),
                c.id.not_in(parents.scalar_subquery()),
            )
            .order_by(c.iteration, c.id)
            .limit(limit)
        )
        return [row[0] for row in await self._conn.execute(query)]

    async def delete_checkpoints(self, checkpoint_ids: Sequence[uuid.UUID]) -> int:
        if not checkpoint_ids:
            return 0
        c = checkpoints.c
        statement = sa.delete(checkpoints).where(c.tenant_id == self.tenant_id, c.id.in_(list(checkpoint_ids)))
        return int((await self._conn.execute(statement)).rowcount)

    async def insert_event(self, values: Values) -> InteractionEvent:
        values = {"tenant_id": self.tenant_id, **values}
        await self._conn.execute(sa.insert(interaction_events).values(values))
        return m.to_interaction_event(InsertedRow(values))

    async def events(
        self,
        *,
        conversation_id: uuid.UUID | None,
        limit: int,
        after: tuple[datetime, uuid.UUID] | None = None,
    ) -> list[InteractionEvent]:
        c = interaction_events.c
        query = sa.select(interaction_events).where(c.tenant_id == self.tenant_id)
        if conversation_id is not None:
            query = query.where(c.conversation_id == conversation_id)
        if after is not None:
            query = query.where(sa.tuple_(c.created_at, c.id) < sa.tuple_(*after))
        query = query.order_by(c.created_at.desc(), c.id.desc()).limit(limit)
        return [m.to_interaction_event(row) for row in await self._conn.execute(query)]

    async def insert_metrics(self, rows: Sequence[Values]) -> list[AgentMetric]:
        rows = [{"tenant_id": self.tenant_id, **r} for r in rows]
        if rows:
            await self._conn.execute(sa.insert(agent_metrics), rows)
        return [m.to_agent_metric(InsertedRow(r)) for r in rows]

    async def metrics(
        self,
        *,
        metric_type: str | None,
        conversation_id: uuid.UUID | None,
        since: datetime | None,
        limit: int,
        after: tuple[datetime, uuid.UUID] | None = None,
    ) -> list[AgentMetric]:
        c = agent_metrics.c
        query = sa.select(agent_metrics).where(c.tenant_id == self.tenant_id)
        if metric_type is not None:
            query = query.where(c.metric_type == metric_type)
        if conversation_id is not None:
            query = query.where(c.conversation_id == conversation_id)
        if since is not None:
            query = query.where(c.recorded_at >= since)
        if after is not None:
            query = query.where(sa.tuple_(c.recorded_at, c.id) < sa.tuple_(*after))
        query = query.order_by(c.recorded_at.desc(), c.id.desc()).limit(limit)
        return [m.to_agent_metric(row) for row in await self._conn.execute(query)]


@dataclass(frozen=True, slots=True)
class ResealBatch:
    scanned: int
    rewritten: int
    last: tuple[uuid.UUID, uuid.UUID] | None


_SEALED_TABLES = {"users": users, "messages": messages, "tool_executions": tool_executions}


class AsyncMaintenanceRepository(AsyncRepository):
    """Whole-table passes of the admin scope, in keyset batches: re-encryption after a key rotation."""

    async def reseal(self, table_name: str, *, after: tuple[uuid.UUID, uuid.UUID] | None, limit: int) -> ResealBatch:
        """Re-seal with the current key the next ``limit`` rows of ``table_name`` after ``after`` (tenant, id).

        The rows are locked as they are read (PostgreSQL; SQLite's write transaction holds the database), so a
        concurrent update is neither lost nor overwritten with the old value.
        """
        table = _SEALED_TABLES[table_name]
        c = table.c
        query = (
            sa.select(c.tenant_id, c.id, *(c[name] for name in SEALED_COLUMNS[table_name]))
            .order_by(c.tenant_id, c.id)
            .limit(limit)
            .with_for_update()
        )
        if after is not None:
            query = query.where((c.tenant_id > after[0]) | ((c.tenant_id == after[0]) & (c.id > after[1])))
        rows = (await self._conn.execute(query)).all()
        rewritten = 0
        for row in rows:
            values = self._codec.reseal(table_name, row)
            if values is not None:
                await self._conn.execute(
                    sa.update(table).where(c.tenant_id == row.tenant_id, c.id == row.id).values(values)
                )
                rewritten += 1
        last = (rows[-1].tenant_id, rows[-1].id) if rows else None
        return ResealBatch(scanned=len(rows), rewritten=rewritten, last=last)
