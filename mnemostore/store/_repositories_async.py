"""Repositories and the unit of work that carries them (async; ``_repositories.py`` is generated from this).

A repository turns one access path into SQL and rows into domain objects; it never commits. Every statement it
builds names ``tenant_id`` explicitly: on SQLite that is the isolation, on PostgreSQL it is the index prefix and
row-level security is the guard behind it.
"""

from __future__ import annotations

import array
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from mnemostore.domain import (
    AgentMetric,
    ApiKey,
    ChannelConfig,
    Checkpoint,
    Conversation,
    ConversationStats,
    InteractionEvent,
    KnowledgeChunk,
    Memory,
    MemoryVersion,
    Message,
    Tenant,
    TenantUsage,
    ToolExecution,
    User,
    UserIdentity,
)
from mnemostore.errors import ConflictError
from mnemostore.store import _mapping as m
from mnemostore.store import _statements as st
from mnemostore.store._crypto import SEALED_COLUMNS, FieldCodec
from mnemostore.store._search_async import (
    AsyncIndexRepository,
    AsyncSearchRepository,
    ensure_pg_vectors,
    vector_column_is_vector,
)
from mnemostore.store.tables import (
    agent_metrics,
    api_keys,
    channel_configs,
    checkpoints,
    conversations,
    embeddings,
    interaction_events,
    knowledge_chunks,
    memories,
    memory_versions,
    messages,
    tenant_usage,
    tenants,
    tool_executions,
    user_identities,
    users,
)

__all__ = ["AsyncUnitOfWork", "ResealBatch"]

Values = dict[str, Any]


class AsyncRepository:
    def __init__(self, conn: AsyncConnection, tenant_id: uuid.UUID | None, *, codec: FieldCodec) -> None:
        self._conn = conn
        self._tenant_id = tenant_id
        # Every sensitive value written is sealed, and every row read opened, by this codec (store._crypto).
        self._codec = codec

    @property
    def tenant_id(self) -> uuid.UUID:
        if self._tenant_id is None:
            raise RuntimeError("this operation needs a tenant scope, not the admin scope")
        return self._tenant_id


class AsyncTenantRepository(AsyncRepository):
    """Tenants, their usage counters and channel configs."""

    async def insert(self, values: Values) -> Tenant:
        await self._conn.execute(sa.insert(tenants).values(values))
        await self._conn.execute(
            sa.insert(tenant_usage).values(
                tenant_id=values["id"], users=0, conversations=0, messages=0, tokens=0, storage_bytes=0
            )
        )
        return m.to_tenant(_Row(values))

    async def get(self, tenant_id: uuid.UUID) -> Tenant | None:
        row = (await self._conn.execute(sa.select(tenants).where(tenants.c.id == tenant_id))).first()
        return m.to_tenant(row) if row else None

    async def get_by_name(self, name: str) -> Tenant | None:
        row = (await self._conn.execute(sa.select(tenants).where(tenants.c.name == name))).first()
        return m.to_tenant(row) if row else None

    async def list(self, *, limit: int, after: uuid.UUID | None) -> list[Tenant]:
        query = sa.select(tenants).order_by(tenants.c.id).limit(limit)
        if after is not None:
            query = query.where(tenants.c.id > after)
        return [m.to_tenant(row) for row in await self._conn.execute(query)]

    async def update(self, tenant_id: uuid.UUID, values: Values) -> Tenant | None:
        row = (
            await self._conn.execute(
                sa.update(tenants).where(tenants.c.id == tenant_id).values(values).returning(tenants)
            )
        ).first()
        return m.to_tenant(row) if row else None

    async def delete(self, tenant_id: uuid.UUID) -> bool:
        result = await self._conn.execute(sa.delete(tenants).where(tenants.c.id == tenant_id))
        return bool(result.rowcount)

    async def usage(self, tenant_id: uuid.UUID) -> TenantUsage | None:
        query = sa.select(tenant_usage).where(tenant_usage.c.tenant_id == tenant_id)
        row = (await self._conn.execute(query)).first()
        return m.to_tenant_usage(row) if row else None

    async def charge(
        self,
        *,
        users: int = 0,
        conversations: int = 0,
        messages: int = 0,
        tokens: int = 0,
        storage_bytes: int = 0,
    ) -> bool:
        """Add to the tenant's usage counters unless a quota would be passed; False if it would.

        One conditional UPDATE, so two concurrent writers can never both slip under the limit. Negative
        amounts (deletes) always succeed.
        """
        statement = st.charge_statement(users > 0, messages > 0, storage_bytes > 0)
        params = {
            "b_tenant": self.tenant_id,
            "b_users": users,
            "b_conversations": conversations,
            "b_messages": messages,
            "b_tokens": tokens,
            "b_storage_bytes": storage_bytes,
        }
        return bool((await self._conn.execute(statement, params)).rowcount)

    async def recount(self, tenant_id: uuid.UUID) -> TenantUsage:
        """Recompute the usage counters from the rows themselves (after an import or a restore)."""
        c = conversations.c
        conv = (
            await self._conn.execute(
                sa.select(
                    sa.func.count(),
                    sa.func.coalesce(sa.func.sum(c.message_count), 0),
                    sa.func.coalesce(sa.func.sum(c.total_tokens), 0),
                    sa.func.coalesce(sa.func.sum(c.content_bytes), 0),
                ).where(c.tenant_id == tenant_id)
            )
        ).one()
        user_count = await self._scalar(sa.select(sa.func.count()).where(users.c.tenant_id == tenant_id))
        knowledge_bytes = await self._scalar(
            sa.select(sa.func.coalesce(sa.func.sum(knowledge_chunks.c.content_bytes), 0)).where(
                knowledge_chunks.c.tenant_id == tenant_id
            )
        )
        values = {
            "users": user_count,
            "conversations": conv[0],
            "messages": conv[1],
            "tokens": conv[2],
            "storage_bytes": int(conv[3]) + int(knowledge_bytes),
        }
        await self._conn.execute(sa.update(tenant_usage).where(tenant_usage.c.tenant_id == tenant_id).values(values))
        return TenantUsage(tenant_id=tenant_id, **{k: int(v) for k, v in values.items()})

    async def _scalar(self, query: sa.Select[Any]) -> int:
        return int((await self._conn.execute(query)).scalar_one())

    async def upsert_channel_config(self, values: Values) -> ChannelConfig:
        key = (channel_configs.c.tenant_id == self.tenant_id) & (channel_configs.c.channel == values["channel"])
        result = await self._conn.execute(
            sa.update(channel_configs).where(key).values(values).returning(channel_configs)
        )
        row = result.first()
        if row is None:
            await self._conn.execute(sa.insert(channel_configs).values(tenant_id=self.tenant_id, **values))
            row = (await self._conn.execute(sa.select(channel_configs).where(key))).one()
        return m.to_channel_config(row)

    async def get_channel_config(self, channel: str) -> ChannelConfig | None:
        query = sa.select(channel_configs).where(
            channel_configs.c.tenant_id == self.tenant_id, channel_configs.c.channel == channel
        )
        row = (await self._conn.execute(query)).first()
        return m.to_channel_config(row) if row else None


class _Row:
    """Attribute access over a dict, so values we just inserted map like a fetched row (no RETURNING trip)."""

    __slots__ = ("_values",)

    def __init__(self, values: Values) -> None:
        self._values = values

    def __getattr__(self, name: str) -> Any:
        try:
            return self._values[name]
        except KeyError:
            raise AttributeError(name) from None


class AsyncApiKeyRepository(AsyncRepository):
    async def insert(self, values: Values) -> ApiKey:
        values = {"tenant_id": self.tenant_id, **values}
        await self._conn.execute(sa.insert(api_keys).values(values))
        return m.to_api_key(_Row({"revoked_at": None, "last_used_at": None, **values}))

    async def list(self, *, limit: int, after: uuid.UUID | None = None) -> list[ApiKey]:
        query = sa.select(api_keys).where(api_keys.c.tenant_id == self.tenant_id).order_by(api_keys.c.id).limit(limit)
        if after is not None:
            query = query.where(api_keys.c.id > after)
        return [m.to_api_key(row) for row in await self._conn.execute(query)]

    async def get_by_hash(self, key_hash: str) -> ApiKey | None:
        query = sa.select(api_keys).where(api_keys.c.tenant_id == self.tenant_id, api_keys.c.key_hash == key_hash)
        row = (await self._conn.execute(query)).first()
        return m.to_api_key(row) if row else None

    async def revoke(self, key_id: uuid.UUID, now: datetime) -> str | None:
        """Revoke the key (again: a no-op); returns its hash, or None when there is no such key."""
        statement = (
            sa.update(api_keys)
            .where(api_keys.c.tenant_id == self.tenant_id, api_keys.c.id == key_id)
            .values(revoked_at=sa.func.coalesce(api_keys.c.revoked_at, now))
            .returning(api_keys.c.key_hash)
        )
        digest: str | None = (await self._conn.execute(statement)).scalar_one_or_none()
        return digest


class AsyncUserRepository(AsyncRepository):
    async def insert(self, values: Values) -> User:
        values = {"tenant_id": self.tenant_id, **values}
        await self._check_clear_email(values.get("email"))
        await self._conn.execute(sa.insert(users).values(self._codec.seal("users", self.tenant_id, values)))
        return m.to_user(_Row(values))

    async def _check_clear_email(self, email: str | None) -> None:
        """Refuse an email that a row written before encryption holds in clear.

        Neither unique rule sees that duplicate (one compares ciphertexts, the other hashes that row lacks);
        `mnemostore rotate-keys` seals those rows, after which this finds none.
        """
        if email is None or not self._codec.encrypts:
            return
        c = users.c
        query = sa.select(c.id).where(c.tenant_id == self.tenant_id, c.email_hash.is_(None), c.email == email)
        if (await self._conn.execute(query.limit(1))).first() is not None:
            raise ConflictError("another user of this tenant already has this email")

    async def get(self, user_id: uuid.UUID) -> User | None:
        return await self._one(users.c.id == user_id)

    async def get_by_email(self, email: str) -> User | None:
        digest = self._codec.blind_index(self.tenant_id, email)
        if digest is None:
            return await self._one(users.c.email == email)
        # Rows written before the blind index key was set have no hash yet, and a clear email.
        return await self._one(
            (users.c.email_hash == digest) | (users.c.email_hash.is_(None) & (users.c.email == email))
        )

    async def get_by_external_id(self, external_id: str) -> User | None:
        return await self._one(users.c.external_id == external_id)

    async def _one(self, condition: sa.ColumnElement[bool]) -> User | None:
        query = sa.select(users).where(users.c.tenant_id == self.tenant_id, condition)
        row = (await self._conn.execute(query)).first()
        return self._user(row) if row else None

    def _user(self, row: Any) -> User:
        return m.to_user(self._codec.open("users", row))

    async def get_by_identity(self, channel: str, channel_user_id: str) -> User | None:
        ident = user_identities.c
        query = (
            sa.select(users)
            .join(user_identities, (ident.tenant_id == users.c.tenant_id) & (ident.user_id == users.c.id))
            .where(
                ident.tenant_id == self.tenant_id,
                ident.channel == channel,
                ident.channel_user_id == channel_user_id,
            )
        )
        row = (await self._conn.execute(query)).first()
        return self._user(row) if row else None

    async def get_identity(self, channel: str, channel_user_id: str) -> UserIdentity | None:
        ident = user_identities.c
        query = sa.select(user_identities).where(
            ident.tenant_id == self.tenant_id, ident.channel == channel, ident.channel_user_id == channel_user_id
        )
        row = (await self._conn.execute(query)).first()
        return m.to_user_identity(row) if row else None

    async def add_identity(self, values: Values) -> UserIdentity:
        values = {"tenant_id": self.tenant_id, **values}
        await self._conn.execute(sa.insert(user_identities).values(values))
        return m.to_user_identity(_Row(values))

    async def identities(self, user_id: uuid.UUID) -> list[UserIdentity]:
        ident = user_identities.c
        query = (
            sa.select(user_identities)
            .where(ident.tenant_id == self.tenant_id, ident.user_id == user_id)
            .order_by(ident.channel, ident.channel_user_id)
        )
        return [m.to_user_identity(row) for row in await self._conn.execute(query)]

    async def update(self, user_id: uuid.UUID, values: Values) -> User | None:
        await self._check_clear_email(values.get("email"))
        statement = (
            sa.update(users)
            .where(users.c.tenant_id == self.tenant_id, users.c.id == user_id)
            .values(self._codec.seal("users", self.tenant_id, values))
            .returning(users)
        )
        row = (await self._conn.execute(statement)).first()
        return self._user(row) if row else None

    async def delete(self, user_id: uuid.UUID) -> bool:
        statement = sa.delete(users).where(users.c.tenant_id == self.tenant_id, users.c.id == user_id)
        return bool((await self._conn.execute(statement)).rowcount)

    async def list(self, *, limit: int, after: uuid.UUID | None) -> list[User]:
        query = sa.select(users).where(users.c.tenant_id == self.tenant_id).order_by(users.c.id).limit(limit)
        if after is not None:
            query = query.where(users.c.id > after)
        return [self._user(row) for row in await self._conn.execute(query)]


class AsyncConversationRepository(AsyncRepository):
    async def insert(self, values: Values) -> Conversation:
        values = {"tenant_id": self.tenant_id, **values}
        await self._conn.execute(sa.insert(conversations).values(values))
        return m.to_conversation(_Row(values))

    async def insert_many(self, rows: Sequence[Values]) -> None:
        if rows:
            await self._conn.execute(sa.insert(conversations), [{"tenant_id": self.tenant_id, **r} for r in rows])

    async def get(self, conversation_id: uuid.UUID) -> Conversation | None:
        c = conversations.c
        query = sa.select(conversations).where(c.tenant_id == self.tenant_id, c.id == conversation_id)
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

    async def page(
        self,
        conversation_id: uuid.UUID,
        *,
        limit: int,
        before: int | None = None,
        after: int | None = None,
    ) -> list[Message]:
        """Up to ``limit`` messages next to a sequence number, in conversation order.

        With ``after``, the oldest ones newer than it; otherwise the newest ones older than ``before`` (or the
        newest of all). Both walk the unique (tenant, conversation, seq) index.
        """
        params: dict[str, Any] = {"b_tenant": self.tenant_id, "b_conversation": conversation_id, "b_limit": limit}
        direction = "after" if after is not None else "newest" if before is None else "before"
        if direction != "newest":
            params["b_seq"] = after if after is not None else before
        rows: list[Any] = list((await self._conn.execute(st.history_statement(direction), params)).all())
        if direction != "after":
            rows.reverse()
        tenant_id, codec = self.tenant_id, self._codec
        return [
            m.message_from_columns(tenant_id, conversation_id, row, codec.open_metadata(tenant_id, row[7]))
            for row in rows
        ]

    async def all(self, conversation_id: uuid.UUID) -> list[Message]:
        c = messages.c
        query = (
            sa.select(messages)
            .where(c.tenant_id == self.tenant_id, c.conversation_id == conversation_id)
            .order_by(c.seq)
        )
        return [self._message(row) for row in await self._conn.execute(query)]

    async def count(self, conversation_id: uuid.UUID) -> int:
        c = messages.c
        query = sa.select(sa.func.count()).where(c.tenant_id == self.tenant_id, c.conversation_id == conversation_id)
        return int((await self._conn.execute(query)).scalar_one())

    async def delete(self, message_id: uuid.UUID) -> Message | None:
        statement = (
            sa.delete(messages)
            .where(messages.c.tenant_id == self.tenant_id, messages.c.id == message_id)
            .returning(messages)
        )
        row = (await self._conn.execute(statement)).first()
        # Not opened: deleting must work without the key (sealed metadata stays sealed in what is returned).
        return m.to_message(row) if row else None


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


class AsyncMemoryRepository(AsyncRepository):
    async def insert(self, values: Values) -> Memory:
        values = {"tenant_id": self.tenant_id, **values}
        await self._conn.execute(sa.insert(memories).values(values))
        return m.to_memory(_Row(values))

    async def get(self, memory_id: uuid.UUID) -> Memory | None:
        c = memories.c
        row = (
            await self._conn.execute(sa.select(memories).where(c.tenant_id == self.tenant_id, c.id == memory_id))
        ).first()
        return m.to_memory(row) if row else None

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
    ) -> list[Memory]:
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
        for column, value in ((c.user_id, user_id), (c.agent_id, agent_id), (c.tier, tier), (c.kind, kind)):
            if value is not None:
                query = query.where(column == value)
        if not_expired_at is not None:
            query = query.where(sa.or_(c.expires_at.is_(None), c.expires_at > not_expired_at))
        if after is not None:
            query = query.where(sa.tuple_(c.importance, c.id) < sa.tuple_(*after))
        return [m.to_memory(row) for row in await self._conn.execute(query)]

    async def dedup_candidates(
        self, *, user_id: uuid.UUID | None, agent_id: str | None, kind: str, now: datetime, limit: int
    ) -> list[Memory]:
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

    async def segments_for_user(self, user_id: uuid.UUID) -> list[Memory]:
        """The user's consolidated segments (kind summary, compression level 1 or more), oldest first."""
        c = memories.c
        query = (
            sa.select(memories)
            .where(c.tenant_id == self.tenant_id, c.user_id == user_id, c.kind == "summary", c.compression_level > 0)
            .order_by(c.created_at, c.id)
        )
        return [m.to_memory(row) for row in await self._conn.execute(query)]

    async def update(self, memory_id: uuid.UUID, values: Values) -> Memory | None:
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
    ) -> list[Memory]:
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

    async def delete(self, memory_id: uuid.UUID) -> bool:
        c = memories.c
        result = await self._conn.execute(sa.delete(memories).where(c.tenant_id == self.tenant_id, c.id == memory_id))
        return bool(result.rowcount)


class AsyncAgentRepository(AsyncRepository):
    """The agent's audit trail and state: tool executions, checkpoints, interaction events, metrics."""

    async def insert_tool_execution(self, values: Values) -> ToolExecution:
        values = {"tenant_id": self.tenant_id, **values}
        sealed = self._codec.seal("tool_executions", self.tenant_id, values)
        await self._conn.execute(sa.insert(tool_executions).values(sealed))
        return m.to_tool_execution(_Row(values))

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
        return m.to_checkpoint(_Row(values))

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

    async def insert_event(self, values: Values) -> InteractionEvent:
        values = {"tenant_id": self.tenant_id, **values}
        await self._conn.execute(sa.insert(interaction_events).values(values))
        return m.to_interaction_event(_Row(values))

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
        return [m.to_agent_metric(_Row(r)) for r in rows]

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


@dataclass(frozen=True, slots=True)
class ResealBatch:
    scanned: int
    rewritten: int
    last: tuple[uuid.UUID, uuid.UUID] | None


_SEALED_TABLES = {"users": users, "messages": messages, "tool_executions": tool_executions}


class AsyncUnitOfWork:
    """One transaction in one tenant scope, with a repository per aggregate.

    Created by ``AsyncDatabase.transaction``, which commits or rolls back. It hands out every repository (the
    search ones too: ``index_jobs``, ``search``) and the schema probes of vector search, so services need not see
    a connection. ``connection`` stays for the callers that still build repositories from it.
    """

    def __init__(self, conn: AsyncConnection, tenant_id: uuid.UUID | None, *, dialect: str, codec: FieldCodec) -> None:
        self.connection = conn
        self.tenant_id = tenant_id
        self.dialect = dialect
        self.codec = codec
        self.tenants = AsyncTenantRepository(conn, tenant_id, codec=codec)
        self.api_keys = AsyncApiKeyRepository(conn, tenant_id, codec=codec)
        self.users = AsyncUserRepository(conn, tenant_id, codec=codec)
        self.conversations = AsyncConversationRepository(conn, tenant_id, codec=codec)
        self.messages = AsyncMessageRepository(conn, tenant_id, codec=codec)
        self.knowledge = AsyncKnowledgeRepository(conn, tenant_id, codec=codec)
        self.memories = AsyncMemoryRepository(conn, tenant_id, codec=codec)
        self.agent = AsyncAgentRepository(conn, tenant_id, codec=codec)
        self.maintenance = AsyncMaintenanceRepository(conn, tenant_id, codec=codec)

    # The search repositories are built on first use: most transactions need neither.

    @property
    def index_jobs(self) -> AsyncIndexRepository:
        """The indexing outbox, in this unit of work's scope (the admin scope sees every tenant's jobs)."""
        return AsyncIndexRepository(self.connection, self.tenant_id, dialect=self.dialect)

    @property
    def search(self) -> AsyncSearchRepository:
        """The search queries of this unit of work's tenant (searching needs a tenant scope)."""
        if self.tenant_id is None:
            raise ValueError("search runs in one tenant's scope, not in the admin scope")
        return AsyncSearchRepository(self.connection, self.tenant_id, dialect=self.dialect, codec=self.codec)

    async def vector_column_is_vector(self) -> bool:
        """Whether ``embeddings.vector`` holds vectors: always on SQLite; on PostgreSQL when it is pgvector's."""
        return await vector_column_is_vector(self.connection, self.dialect)

    async def ensure_pg_vectors(self, dimension: int) -> None:
        """PostgreSQL: make ``embeddings.vector`` pgvector's type and the HNSW index of ``dimension`` exist."""
        await ensure_pg_vectors(self.connection, dimension)
