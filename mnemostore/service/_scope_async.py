"""What every per-tenant capability stands on: the tenant's id, its transactions, usage charges, the index outbox."""

from __future__ import annotations

import uuid
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from typing import TYPE_CHECKING, Any

from mnemostore.domain import (
    Tenant,
)
from mnemostore.errors import (
    ConversationNotFound,
    QuotaExceeded,
    TenantNotFound,
)
from mnemostore.search import ItemKind
from mnemostore.service import _validation as v
from mnemostore.service._runtime_async import AsyncStoreRuntime
from mnemostore.store import AsyncUnitOfWork

if TYPE_CHECKING:
    from mnemostore.service.store_async import AsyncMnemoStore


class AsyncTenantScope:
    """The tenant binding shared by the capability mixins of ``AsyncTenantStore``."""

    def __init__(self, store: AsyncMnemoStore, runtime: AsyncStoreRuntime, tenant_id: uuid.UUID) -> None:
        self.store = store
        self.tenant_id = tenant_id
        self._runtime = runtime
        self._settings = runtime.settings
        self._cache = runtime.cache

    def _tx(self, *, write: bool = False) -> AbstractAsyncContextManager[AsyncUnitOfWork]:
        return self._runtime.transaction(self.tenant_id, write=write)

    def _json(self, value: Any, field: str) -> dict[str, Any]:
        return v.check_json(value, field, max_bytes=self._settings.max_metadata_bytes, allow_none=True)

    async def _charge(self, uow: AsyncUnitOfWork, **amounts: int) -> None:
        """Count a write against the tenant's usage, or raise QuotaExceeded (the transaction then rolls back)."""
        if await uow.tenants.charge(**amounts):
            return
        tenant = await uow.tenants.get(self.tenant_id)
        if tenant is None:
            raise TenantNotFound(self.tenant_id)
        usage = await uow.tenants.usage(self.tenant_id)
        assert usage is not None
        q = tenant.quotas
        for name, limit, used, amount in (
            ("max_users", q.max_users, usage.users, amounts.get("users", 0)),
            ("max_messages", q.max_messages, usage.messages, amounts.get("messages", 0)),
            ("max_storage_bytes", q.max_storage_bytes, usage.storage_bytes, amounts.get("storage_bytes", 0)),
        ):
            if limit is not None and amount > 0 and used + amount > limit:
                raise QuotaExceeded(self.tenant_id, name, limit)
        raise QuotaExceeded(self.tenant_id, "usage", 0)  # pragma: no cover - charge() and this check agree

    async def _enqueue(self, uow: AsyncUnitOfWork, kind: ItemKind, item_ids: list[uuid.UUID], now: datetime) -> None:
        """The outbox: index jobs of written items, in the transaction that writes them."""
        if item_ids and self._settings.embedder != "none":
            await uow.index_jobs.enqueue(kind, item_ids, now)

    async def _check_conversation(self, uow: AsyncUnitOfWork, conversation_id: uuid.UUID | None) -> None:
        if conversation_id is not None and await uow.conversations.get(conversation_id) is None:
            raise ConversationNotFound(conversation_id)

    async def _tenant_or_raise(self) -> Tenant:
        tenant = await self.store.get_tenant(self.tenant_id)
        if tenant is None:
            raise TenantNotFound(self.tenant_id)
        return tenant
