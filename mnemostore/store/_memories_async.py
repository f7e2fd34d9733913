"""Repositories of long-term memories (with versions) and knowledge chunks (async; ``_memories.py`` is generated from
this).
"""

from __future__ import annotations

import array
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from mnemostore.domain import (
    KnowledgeChunk,
    MemoryRecord,
    MemoryTier,
    MemoryVersion,
)
from mnemostore.store import _mapping as m
from mnemostore.store._repository_async import AsyncRepository, InsertedRow, Values
from mnemostore.store.tables import (
    embeddings,
    knowledge_chunks,
    memories,
    memory_versions,
    messages,
)


class AsyncKnowledgeRepository(AsyncRepository):
    async def get_by_keys(self, source: str, external_ids: Sequence[str]) -> dict[str, KnowledgeChunk]:
        c = knowledge_chunks.c
        query = sa.select(knowledge_chunks).where(
            c.tenant_id == self.tenant_id, c.source == source, c.external_id.in_(external_ids)
        )
        return {row.external_id: m.to_knowledge_chunk(row) for row in await self._conn.execute(query)}

    async def insert_many(self, rows: Sequence[Values]) -> None:
        if rows:
            await self._conn.execute(sa.insert(knowledge_chunks), [{"tenant_id": self.tenant_id, **r} for r in rows])

    async def update(self, chunk_id: uuid.UUID, values: Values) -> None:
        c = knowledge_chunks.c
        await self._conn.execute(
            sa.update(knowledge_chunks).where(c.tenant_id == self.tenant_id, c.id == chunk_id).values(values)
        )

    async def get(self, chunk_id: uuid.UUID) -> KnowledgeChunk | None:
        c = knowledge_chunks.c
        query = sa.select(knowledge_chunks).where(c.tenant_id == self.tenant_id, c.id == chunk_id)
        row = (await self._conn.execute(query)).first()
        return m.to_knowledge_chunk(row) if row else None

    async def list_by_source(self, source: str, *, limit: int, after: str | None) -> list[KnowledgeChunk]:
        c = knowledge_chunks.c
        query = (
            sa.select(knowledge_chunks)
            .where(c.tenant_id == self.tenant_id, c.source == source)
            .order_by(c.external_id)
            .limit(limit)
        )
        if after is not None:
            query = query.where(c.external_id > after)
        return [m.to_knowledge_chunk(row) for row in await self._conn.execute(query)]

    async def delete(self, chunk_id: uuid.UUID) -> KnowledgeChunk | None:
        c = knowledge_chunks.c
        statement = (
            sa.delete(knowledge_chunks)
            .where(c.tenant_id == self.tenant_id, c.id == chunk_id)
            .returning(knowledge_chunks)
        )
        row = (await self._conn.execute(statement)).first()
        return m.to_knowledge_chunk(row) if row else None

    async def delete_by_keys(self, source: str, external_ids: Sequence[str]) -> list[KnowledgeChunk]:
        """Delete the source's chunks with these external ids; returns the deleted chunks (missing ids: none)."""
        if not external_ids:
            return []
        c = knowledge_chunks.c
        statement = (
            sa.delete(knowledge_chunks)
            .where(c.tenant_id == self.tenant_id, c.source == source, c.external_id.in_(list(external_ids)))
            .returning(knowledge_chunks)
        )
        return [m.to_knowledge_chunk(row) for row in await self._conn.execute(statement)]


class AsyncMemoryRepository(AsyncRepository):
    async def existing_sources(self, ids: Sequence[uuid.UUID], *, segments: bool) -> set[uuid.UUID]:
        """Which of ``ids`` are messages of the tenant (``segments``: or memories of it), in one statement."""
        if not ids:
            return set()
        found: sa.Select[Any] | sa.CompoundSelect[Any] = sa.select(messages.c.id).where(
            messages.c.tenant_id == self.tenant_id, messages.c.id.in_(ids)
        )
        if segments:
            found = sa.union_all(
                found, sa.select(memories.c.id).where(memories.c.tenant_id == self.tenant_id, memories.c.id.in_(ids))
            )
        return {row[0] for row in await self._conn.execute(found)}

    async def insert(self, values: Values) -> MemoryRecord:
        values = {"tenant_id": self.tenant_id, "recall_count": 0, "last_recalled_at": None, **values}
        await self._conn.execute(sa.insert(memories).values(values))
        return m.to_memory(InsertedRow(values))

    async def get(self, memory_id: uuid.UUID) -> MemoryRecord | None:
        c = memories.c
        row = (
            await self._conn.execute(sa.select(memories).where(c.tenant_id == self.tenant_id, c.id == memory_id))
        ).first()
        return m.to_memory(row) if row else None

    async def get_many(self, memory_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, MemoryRecord]:
        """The memories of these ids that exist, by id."""
        if not memory_ids:
            return {}
        c = memories.c
        query = sa.select(memories).where(c.tenant_id == self.tenant_id, c.id.in_(list(memory_ids)))
        return {row.id: m.to_memory(row) for row in await self._conn.execute(query)}

    async def query(
        self,
        *,
        user_id: uuid.UUID | None,
        agent_id: str | None,
        tier: str | None,
        kind: str | None,
        not_expired_at: datetime | None,
        limit: int,
        after: tuple[float, uuid.UUID] | None = None,
        conversation_id: uuid.UUID | None = None,
    ) -> list[MemoryRecord]:
        """Memories by importance (most important first) with every filter ``retrieve_memories`` offers.

        ``not_expired_at``: leave out memories whose ``expires_at`` is at or before it (None: keep them all).
        """
        c = memories.c
        query = (
            sa.select(memories)
            .where(c.tenant_id == self.tenant_id)
            .order_by(c.importance.desc(), c.id.desc())
            .limit(limit)
        )
        for column, value in (
            (c.user_id, user_id),
            (c.agent_id, agent_id),
            (c.tier, tier),
            (c.kind, kind),
            (c.conversation_id, conversation_id),
        ):
            if value is not None:
                query = query.where(column == value)
        if not_expired_at is not None:
            query = query.where(sa.or_(c.expires_at.is_(None), c.expires_at > not_expired_at))
        if after is not None:
            query = query.where(sa.tuple_(c.importance, c.id) < sa.tuple_(*after))
        return [m.to_memory(row) for row in await self._conn.execute(query)]

    async def dedup_candidates(
        self, *, user_id: uuid.UUID | None, agent_id: str | None, kind: str, now: datetime, limit: int
    ) -> list[MemoryRecord]:
        """The newest unexpired memories of exactly this user and agent (None matches None) and kind."""
        c = memories.c
        query = (
            sa.select(memories)
            .where(
                c.tenant_id == self.tenant_id,
                c.kind == kind,
                c.user_id.is_(None) if user_id is None else c.user_id == user_id,
                c.agent_id.is_(None) if agent_id is None else c.agent_id == agent_id,
                sa.or_(c.expires_at.is_(None), c.expires_at > now),
            )
            .order_by(c.updated_at.desc(), c.id.desc())
            .limit(limit)
        )
        return [m.to_memory(row) for row in await self._conn.execute(query)]

    async def segments_for_user(self, user_id: uuid.UUID) -> list[MemoryRecord]:
        """The user's consolidated segments (kind summary, compression level 1 or more), oldest first."""
        c = memories.c
        query = (
            sa.select(memories)
            .where(c.tenant_id == self.tenant_id, c.user_id == user_id, c.kind == "summary", c.compression_level > 0)
            .order_by(c.created_at, c.id)
        )
        return [m.to_memory(row) for row in await self._conn.execute(query)]

    async def update(self, memory_id: uuid.UUID, values: Values) -> MemoryRecord | None:
        c = memories.c
        statement = (
            sa.update(memories)
            .where(c.tenant_id == self.tenant_id, c.id == memory_id)
            .values(values)
            .returning(memories)
        )
        row = (await self._conn.execute(statement)).first()
        return m.to_memory(row) if row else None

    async def add_version(self, values: Values) -> None:
        """Keep an earlier state of a memory in ``memory_versions``."""
        await self._conn.execute(sa.insert(memory_versions).values({"tenant_id": self.tenant_id, **values}))

    async def versions(self, memory_id: uuid.UUID) -> list[MemoryVersion]:
        """The kept states of a memory, oldest first."""
        c = memory_versions.c
        query = (
            sa.select(memory_versions)
            .where(c.tenant_id == self.tenant_id, c.memory_id == memory_id)
            .order_by(c.created_at, c.id)
        )
        return [
            MemoryVersion(
                id=row.id,
                tenant_id=row.tenant_id,
                memory_id=row.memory_id,
                content=row.content,
                importance=row.importance,
                metadata=row.metadata,
                created_at=row.created_at,
                tier=None if row.tier is None else MemoryTier(row.tier),
                reason=row.reason,
            )
            for row in await self._conn.execute(query)
        ]

    async def stored_vectors(self, memory_ids: Sequence[uuid.UUID], *, model: str) -> dict[uuid.UUID, list[float]]:
        """The indexed embeddings of these memories by ``model``, when embedded since the memory last changed
        (memories not indexed yet, or changed since, are absent)."""
        if not memory_ids:
            return {}
        e, c = embeddings.c, memories.c
        query = (
            sa.select(e.item_id, e.vector)
            .join(memories, sa.and_(c.tenant_id == e.tenant_id, c.id == e.item_id))
            .where(
                e.tenant_id == self.tenant_id,
                e.item_kind == "memory",  # the search layer's job kind of memories
                e.model == model,
                e.item_id.in_(list(memory_ids)),
                e.embedded_at >= c.updated_at,
            )
        )
        out: dict[uuid.UUID, list[float]] = {}
        for row in await self._conn.execute(query):
            vector = row.vector
            # SQLite keeps float32 bytes; PostgreSQL's vector type comes back as a list of floats.
            out[row.item_id] = array.array("f", vector).tolist() if isinstance(vector, bytes) else list(vector)
        return out

    async def record_recalls(self, memory_ids: Sequence[uuid.UUID], now: datetime) -> int:
        """Count one recall of each of these memories at ``now``, in one statement; returns how many exist.

        ``last_recalled_at`` never moves back (two concurrent recalls may commit out of order)."""
        if not memory_ids:
            return 0
        c = memories.c
        statement = (
            sa.update(memories)
            .where(c.tenant_id == self.tenant_id, c.id.in_(list(memory_ids)))
            .values(
                recall_count=c.recall_count + 1,
                last_recalled_at=sa.case(
                    (sa.or_(c.last_recalled_at.is_(None), c.last_recalled_at < now), now),
                    else_=c.last_recalled_at,
                ),
            )
        )
        return int((await self._conn.execute(statement)).rowcount)

    async def lifecycle_candidates(
        self,
        *,
        tiers: Sequence[str],
        now: datetime,
        limit: int,
        recalled: tuple[int, datetime] | None = None,
        fewer_recalls_than: int | None = None,
        important: float | None = None,
        idle_before: datetime | None = None,
        below: float | None = None,
    ) -> list[MemoryRecord]:
        """Unexpired memories of ``tiers`` that a lifecycle step moves, in id order, locked for the change.

        ``recalled=(n, since)``: recalled ``n`` times or more, last at or after ``since``; ``important``: or
        importance at least this (either one qualifies). ``fewer_recalls_than``: a recall count under it.
        ``idle_before``: neither changed nor recalled since; ``below``: importance under it.
        """
        c = memories.c
        query = (
            sa.select(memories)
            .where(
                c.tenant_id == self.tenant_id,
                c.tier.in_(list(tiers)),
                sa.or_(c.expires_at.is_(None), c.expires_at > now),
            )
            .order_by(c.id)
            .limit(limit)
            .with_for_update()
        )
        qualifies: list[sa.ColumnElement[bool]] = []
        if recalled is not None:
            count, since = recalled
            qualifies.append(sa.and_(c.recall_count >= count, c.last_recalled_at >= since))
        if important is not None:
            qualifies.append(c.importance >= important)
        if qualifies:
            query = query.where(sa.or_(*qualifies))
        if idle_before is not None:
            query = query.where(
                c.updated_at < idle_before, sa.or_(c.last_recalled_at.is_(None), c.last_recalled_at < idle_before)
            )
        if fewer_recalls_than is not None:
            query = query.where(c.recall_count < fewer_recalls_than)
        if below is not None:
            query = query.where(c.importance < below)
        return [m.to_memory(row) for row in await self._conn.execute(query)]

    async def add_versions(self, rows: Sequence[Values]) -> None:
        """Keep earlier states of several memories, in one statement."""
        if rows:
            await self._conn.execute(sa.insert(memory_versions), [{"tenant_id": self.tenant_id, **r} for r in rows])

    async def update_many(self, memory_ids: Sequence[uuid.UUID], values: Values) -> int:
        """Set the same ``values`` on several memories, in one statement; returns how many exist."""
        if not memory_ids:
            return 0
        c = memories.c
        statement = sa.update(memories).where(c.tenant_id == self.tenant_id, c.id.in_(list(memory_ids))).values(values)
        return int((await self._conn.execute(statement)).rowcount)

    async def expired(self, now: datetime, *, limit: int) -> list[uuid.UUID]:
        """Ids of memories whose ``expires_at`` is at or before ``now``."""
        c = memories.c
        query = (
            sa.select(c.id)
            .where(c.tenant_id == self.tenant_id, c.expires_at.is_not(None), c.expires_at <= now)
            .order_by(c.id)
            .limit(limit)
        )
        return [row[0] for row in await self._conn.execute(query)]

    async def delete_many(self, memory_ids: Sequence[uuid.UUID]) -> int:
        if not memory_ids:
            return 0
        c = memories.c
        result = await self._conn.execute(
            sa.delete(memories).where(c.tenant_id == self.tenant_id, c.id.in_(list(memory_ids)))
        )
        return int(result.rowcount)

    async def list(
        self,
        *,
        user_id: uuid.UUID | None,
        tier: str | None,
        limit: int,
        after: tuple[float, uuid.UUID] | None = None,
    ) -> list[MemoryRecord]:
        c = memories.c
        query = (
            sa.select(memories)
            .where(c.tenant_id == self.tenant_id)
            .order_by(c.importance.desc(), c.id.desc())
            .limit(limit)
        )
        if user_id is not None:
            query = query.where(c.user_id == user_id)
        if tier is not None:
            query = query.where(c.tier == tier)
        if after is not None:
            query = query.where(sa.tuple_(c.importance, c.id) < sa.tuple_(*after))
        return [m.to_memory(row) for row in await self._conn.execute(query)]

    async def delete_owned(self, *, user_id: uuid.UUID | None, agent_id: str | None) -> int:
        """Delete the memories of a user and/or an agent (at least one is given); returns how many."""
        c = memories.c
        statement = sa.delete(memories).where(c.tenant_id == self.tenant_id)
        if user_id is not None:
            statement = statement.where(c.user_id == user_id)
        if agent_id is not None:
            statement = statement.where(c.agent_id == agent_id)
        return int((await self._conn.execute(statement)).rowcount)

    async def delete(self, memory_id: uuid.UUID) -> bool:
        c = memories.c
        result = await self._conn.execute(sa.delete(memories).where(c.tenant_id == self.tenant_id, c.id == memory_id))
        return bool(result.rowcount)
