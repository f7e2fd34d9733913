"""Repositories of tenants (usage, channel configs), API keys and users with their identities (async; ``_accounts.py``
is generated from this).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from mnemostore.domain import (
    ApiKey,
    ChannelConfig,
    Tenant,
    TenantUsage,
    User,
    UserIdentity,
)
from mnemostore.errors import ConflictError
from mnemostore.store import _mapping as m
from mnemostore.store import _statements as st
from mnemostore.store._repository_async import AsyncRepository, InsertedRow, Values
from mnemostore.store.tables import (
    api_keys,
    channel_configs,
    conversations,
    knowledge_chunks,
    tenant_usage,
    tenants,
    user_identities,
    users,
)


class AsyncTenantRepository(AsyncRepository):
    """Tenants, their usage counters and channel configs."""

    async def insert(self, values: Values) -> Tenant:
        await self._conn.execute(sa.insert(tenants).values(values))
        await self._conn.execute(
            sa.insert(tenant_usage).values(
                tenant_id=values["id"], users=0, conversations=0, messages=0, tokens=0, storage_bytes=0
            )
        )
        return m.to_tenant(InsertedRow(values))

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


class AsyncApiKeyRepository(AsyncRepository):
    async def insert(self, values: Values) -> ApiKey:
        values = {"tenant_id": self.tenant_id, **values}
        await self._conn.execute(sa.insert(api_keys).values(values))
        return m.to_api_key(InsertedRow({"revoked_at": None, "last_used_at": None, **values}))

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
        return m.to_user(InsertedRow(values))

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
        return m.to_user_identity(InsertedRow(values))

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
