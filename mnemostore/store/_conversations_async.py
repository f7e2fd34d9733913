"""Repositories of conversations and their messages: the append and history hot paths (async; ``_conversations.py`` is
generated from this).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from mnemostore.domain import (
    Conversation,
    ConversationStats,
    Message,
)
from mnemostore.store import _mapping as m
from mnemostore.store import _statements as st
from mnemostore.store._repository_async import AsyncRepository, InsertedRow, Values
from mnemostore.store.tables import (
    checkpoints,
    conversations,
    messages,
    tool_executions,
)


class AsyncConversationRepository(AsyncRepository):
    async def insert(self, values: Values) -> Conversation:
        values = {"tenant_id": self.tenant_id, "external_id": None, **values}
        await self._conn.execute(sa.insert(conversations).values(values))
        return m.to_conversation(InsertedRow(values))

    async def insert_many(self, rows: Sequence[Values]) -> None:
        if rows:
            await self._conn.execute(sa.insert(conversations), [{"tenant_id": self.tenant_id, **r} for r in rows])

    async def get(self, conversation_id: uuid.UUID) -> Conversation | None:
        c = conversations.c
        query = sa.select(conversations).where(c.tenant_id == self.tenant_id, c.id == conversation_id)
        row = (await self._conn.execute(query)).first()
        return m.to_conversation(row) if row else None

    async def get_by_external_id(self, external_id: str) -> Conversation | None:
        c = conversations.c
        query = sa.select(conversations).where(c.tenant_id == self.tenant_id, c.external_id == external_id)
        row = (await self._conn.execute(query)).first()
        return m.to_conversation(row) if row else None

    async def list_for_user(
        self,
        user_id: uuid.UUID,
        *,
        status: str | None,
        limit: int,
        after: tuple[datetime, uuid.UUID] | None,
    ) -> list[Conversation]:
        c = conversations.c
        query = (
            sa.select(conversations)
            .where(c.tenant_id == self.tenant_id, c.user_id == user_id)
            .order_by(c.last_activity_at.desc(), c.id.desc())
            .limit(limit)
        )
        if status is not None:
            query = query.where(c.status == status)
        if after is not None:
            query = query.where(sa.tuple_(c.last_activity_at, c.id) < sa.tuple_(*after))
        return [m.to_conversation(row) for row in await self._conn.execute(query)]

    async def list_active(self, *, limit: int, after: tuple[datetime, uuid.UUID] | None) -> list[Conversation]:
        """The tenant's active conversations, most recent activity first."""
        c = conversations.c
        query = (
            sa.select(conversations)
            # A literal, not a parameter: a generic plan can only use the partial index for a constant.
            .where(c.tenant_id == self.tenant_id, sa.text("conversations.status = 'active'"))
            .order_by(c.last_activity_at.desc(), c.id.desc())
            .limit(limit)
        )
        if after is not None:
            query = query.where(sa.tuple_(c.last_activity_at, c.id) < sa.tuple_(*after))
        return [m.to_conversation(row) for row in await self._conn.execute(query)]

    async def update(self, conversation_id: uuid.UUID, values: Values) -> Conversation | None:
        c = conversations.c
        statement = (
            sa.update(conversations)
            .where(c.tenant_id == self.tenant_id, c.id == conversation_id)
            .values(values)
            .returning(conversations)
        )
        row = (await self._conn.execute(statement)).first()
        return m.to_conversation(row) if row else None

    async def reserve(
        self, conversation_id: uuid.UUID, *, count: int, tokens: int, content_bytes: int, now: datetime
    ) -> int | None:
        """Take the next ``count`` sequence numbers and bump the counters; returns the last one taken.

        The UPDATE row-locks the conversation until commit, which is what makes concurrent appends
        gap-free without a table lock. None means no such conversation in this tenant.
        """
        params = {
            "b_tenant": self.tenant_id,
            "b_conversation": conversation_id,
            "b_count": count,
            "b_tokens": tokens,
            "b_bytes": content_bytes,
            "b_now": now,
        }
        last = (await self._conn.execute(st.RESERVE, params)).scalar_one_or_none()
        return int(last) if last is not None else None

    async def owner_for_reference(self, conversation_id: uuid.UUID) -> tuple[bool, uuid.UUID | None]:
        """(exists, its user) of the conversation, key-share locked until commit on PostgreSQL, so that a row
        written to reference it cannot miss its deletion (the delete waits, then its trigger clears the reference)."""
        c = conversations.c
        query = sa.select(c.user_id).where(c.tenant_id == self.tenant_id, c.id == conversation_id)
        if self._conn.dialect.name == "postgresql":
            query = query.with_for_update(key_share=True)
        row = (await self._conn.execute(query)).first()
        return (False, None) if row is None else (True, row.user_id)

    async def lock(self, conversation_id: uuid.UUID) -> bool:
        """Row-lock the conversation until commit (SQLite's BEGIN IMMEDIATE already holds the database lock)."""
        c = conversations.c
        query = sa.select(c.id).where(c.tenant_id == self.tenant_id, c.id == conversation_id).with_for_update()
        return (await self._conn.execute(query)).first() is not None

    async def release(self, conversation_id: uuid.UUID, *, messages: int, tokens: int, content_bytes: int) -> None:
        """Take deleted messages off the counters (sequence numbers are never reused)."""
        c = conversations.c
        await self._conn.execute(
            sa.update(conversations)
            .where(c.tenant_id == self.tenant_id, c.id == conversation_id)
            .values(
                message_count=c.message_count - messages,
                total_tokens=c.total_tokens - tokens,
                content_bytes=c.content_bytes - content_bytes,
            )
        )

    async def delete(self, conversation_id: uuid.UUID) -> Conversation | None:
        """Delete the conversation (the database cascades to its messages and agent records)."""
        c = conversations.c
        statement = (
            sa.delete(conversations)
            .where(c.tenant_id == self.tenant_id, c.id == conversation_id)
            .returning(conversations)
        )
        row = (await self._conn.execute(statement)).first()
        return m.to_conversation(row) if row else None

    async def idle(self, *, status: str, before: datetime, limit: int) -> list[Conversation]:
        """Conversations in ``status`` whose last activity is before ``before``, least recently active first."""
        c = conversations.c
        query = (
            sa.select(conversations)
            .where(c.tenant_id == self.tenant_id, c.status == status, c.last_activity_at < before)
            .order_by(c.last_activity_at, c.id)
            .limit(limit)
        )
        return [m.to_conversation(row) for row in await self._conn.execute(query)]

    async def ids_for_user(self, user_id: uuid.UUID) -> list[uuid.UUID]:
        """Ids of a user's conversations (to invalidate their cached history when the user goes)."""
        c = conversations.c
        query = sa.select(c.id).where(c.tenant_id == self.tenant_id, c.user_id == user_id)
        return [row[0] for row in await self._conn.execute(query)]

    async def totals_for_user(self, user_id: uuid.UUID) -> tuple[int, int, int, int]:
        """(conversations, messages, tokens, content bytes) owned by a user, to release from usage."""
        c = conversations.c
        query = sa.select(
            sa.func.count(),
            sa.func.coalesce(sa.func.sum(c.message_count), 0),
            sa.func.coalesce(sa.func.sum(c.total_tokens), 0),
            sa.func.coalesce(sa.func.sum(c.content_bytes), 0),
        ).where(c.tenant_id == self.tenant_id, c.user_id == user_id)
        row = (await self._conn.execute(query)).one()
        return int(row[0]), int(row[1]), int(row[2]), int(row[3])

    async def stats(self, conversation: Conversation) -> ConversationStats:
        msg = messages.c
        where = (msg.tenant_id == self.tenant_id) & (msg.conversation_id == conversation.id)
        by_role_rows = await self._conn.execute(
            sa.select(
                msg.role,
                sa.func.count(),
                sa.func.coalesce(sa.func.sum(msg.prompt_tokens), 0),
                sa.func.coalesce(sa.func.sum(msg.completion_tokens), 0),
                sa.func.min(msg.created_at),
                sa.func.max(msg.created_at),
            )
            .where(where)
            .group_by(msg.role)
        )
        by_role: dict[str, int] = {}
        prompt = completion = 0
        first: datetime | None = None
        last: datetime | None = None
        for role, count, p, cpl, lo, hi in by_role_rows:
            by_role[role] = int(count)
            prompt += int(p)
            completion += int(cpl)
            lo, hi = m.utc_or_none(lo), m.utc_or_none(hi)
            first = lo if first is None or (lo is not None and lo < first) else first
            last = hi if last is None or (hi is not None and hi > last) else last
        tools = await self._count(tool_executions, conversation.id)
        saved = await self._count(checkpoints, conversation.id)
        return ConversationStats(
            conversation_id=conversation.id,
            message_count=sum(by_role.values()),
            messages_by_role=by_role,
            prompt_tokens=prompt,
            completion_tokens=completion,
            total_tokens=prompt + completion,
            tool_executions=tools,
            checkpoints=saved,
            first_message_at=first,
            last_message_at=last,
        )

    async def _count(self, table: sa.Table, conversation_id: uuid.UUID) -> int:
        query = sa.select(sa.func.count()).where(
            table.c.tenant_id == self.tenant_id, table.c.conversation_id == conversation_id
        )
        return int((await self._conn.execute(query)).scalar_one())


class AsyncMessageRepository(AsyncRepository):
    async def insert_many(self, rows: Sequence[Values]) -> None:
        sealed = [self._codec.seal("messages", row["tenant_id"], row) for row in rows] if self._codec.encrypts else rows
        await self._conn.execute(st.INSERT_MESSAGES, list(sealed))

    def _message(self, row: Any) -> Message:
        return m.to_message(self._codec.open("messages", row))

    async def get(self, message_id: uuid.UUID) -> Message | None:
        query = sa.select(messages).where(messages.c.tenant_id == self.tenant_id, messages.c.id == message_id)
        row = (await self._conn.execute(query)).first()
        return self._message(row) if row else None

    async def find_by_idempotency_keys(self, conversation_id: uuid.UUID, keys: Sequence[str]) -> dict[str, Message]:
        c = messages.c
        query = sa.select(messages).where(
            c.tenant_id == self.tenant_id, c.conversation_id == conversation_id, c.idempotency_key.in_(keys)
        )
        return {row.idempotency_key: self._message(row) for row in await self._conn.execute(query)}

    async def all(self, conversation_id: uuid.UUID) -> list[Message]:
        c = messages.c
        query = (
            sa.select(messages)
            .where(c.tenant_id == self.tenant_id, c.conversation_id == conversation_id)
            .order_by(c.seq)
        )
        return [self._message(row) for row in await self._conn.execute(query)]

    async def ids_in(self, conversation_id: uuid.UUID, message_ids: Sequence[uuid.UUID]) -> set[uuid.UUID]:
        """Which of ``message_ids`` are messages of the conversation (asked 500 at a time)."""
        c = messages.c
        found: set[uuid.UUID] = set()
        wanted = list(dict.fromkeys(message_ids))
        for start in range(0, len(wanted), 500):
            query = sa.select(c.id).where(
                c.tenant_id == self.tenant_id,
                c.conversation_id == conversation_id,
                c.id.in_(wanted[start : start + 500]),
            )
            found.update(row.id for row in await self._conn.execute(query))
        return found

    async def count(self, conversation_id: uuid.UUID) -> int:
        c = messages.c
        query = sa.select(sa.func.count()).where(c.tenant_id == self.tenant_id, c.conversation_id == conversation_id)
        return int((await self._conn.execute(query)).scalar_one())

    async def delete_all(self, conversation_id: uuid.UUID) -> int:
        """Delete every message of the conversation; returns how many."""
        c = messages.c
        statement = sa.delete(messages).where(c.tenant_id == self.tenant_id, c.conversation_id == conversation_id)
        return int((await self._conn.execute(statement)).rowcount)

    async def delete(self, message_id: uuid.UUID) -> Message | None:
        statement = (
            sa.delete(messages)
            .where(messages.c.tenant_id == self.tenant_id, messages.c.id == message_id)
            .returning(messages)
        )
        row = (await self._conn.execute(statement)).first()
        # Not opened: deleting must work without the key (sealed metadata stays sealed in what is returned).
        return m.to_message(row) if row else None
