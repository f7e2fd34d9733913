"""Tenants (admin scope: create, configure, count, delete, authenticate) and their API keys."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from collections.abc import Mapping
from typing import Any, Final

from mnemostore.cache import (
    API_KEY,
    TENANT,
)
from mnemostore.domain import (
    ApiKey,
    Page,
    Quotas,
    Tenant,
    TenantStatus,
    TenantUsage,
    new_id,
)
from mnemostore.errors import (
    ApiKeyNotFound,
    ConflictError,
    InvalidInput,
    TenantAlreadyExists,
    TenantNotFound,
)
from mnemostore.service import _validation as v
from mnemostore.service._core_async import AsyncStoreCore
from mnemostore.service._inputs import as_id, parse_api_key, tenant_ref, utc_now
from mnemostore.service._paging import id_cursor, page_after
from mnemostore.service._scope_async import AsyncTenantScope

API_KEY_PREFIX: Final = "mns"


class AsyncTenantAdmin(AsyncStoreCore):
    """Operations on tenants, across tenants (the admin scope)."""

    async def create_tenant(
        self,
        name: str,
        *,
        plan: str = "free",
        config: Mapping[str, Any] | None = None,
        quotas: Quotas | None = None,
    ) -> Tenant:
        """Create a tenant.

        Args:
            quotas: its plan limits; None gives the store's defaults (``MNEMOSTORE_DEFAULT_MAX_USERS``,
                ``_MAX_MESSAGES``, ``_MAX_STORAGE_BYTES``, ``_ALLOWED_MODELS``: unlimited and any model unless
                set), ``Quotas()`` no limit at all.

        Raises:
            TenantAlreadyExists: the name is taken.
        """
        v.check_name(name, "tenant name", max_len=200, required=True)
        if isinstance(tenant_ref(name), uuid.UUID):
            raise InvalidInput(f"tenant name {name!r} is a UUID: a name must not look like an id (ids are given)")
        v.check_name(plan, "plan", max_len=50, required=True)
        settings = v.check_json(config, "config", max_bytes=self.settings.max_metadata_bytes, allow_none=True)
        quotas = v.check_quotas(quotas if quotas is not None else self._default_quotas())
        now = utc_now()
        values = {
            "id": new_id(),
            "name": name,
            "plan": plan,
            "status": TenantStatus.ACTIVE.value,
            "max_users": quotas.max_users,
            "max_messages": quotas.max_messages,
            "max_storage_bytes": quotas.max_storage_bytes,
            "allowed_models": None if quotas.allowed_models is None else list(quotas.allowed_models),
            "config": settings,
            "created_at": now,
            "updated_at": now,
        }
        try:
            async with self._transaction(None, write=True) as uow:
                return await uow.tenants.insert(values)
        except ConflictError as error:
            raise TenantAlreadyExists(f"a tenant named {name!r} already exists: choose another name") from error

    def _default_quotas(self) -> Quotas:
        """The quotas of a tenant created without any: the store's settings."""
        models = self.settings.default_allowed_models
        return Quotas(
            max_users=self.settings.default_max_users,
            max_messages=self.settings.default_max_messages,
            max_storage_bytes=self.settings.default_max_storage_bytes,
            allowed_models=None if models is None else tuple(models),
        )

    async def _tenant_key(self, tenant: uuid.UUID | str) -> uuid.UUID:
        """The id of a tenant given by id or by name.

        Raises:
            TenantNotFound: no tenant has this name.
        """
        ref = tenant_ref(tenant)
        if isinstance(ref, uuid.UUID):
            return ref
        found = await self.get_tenant_by_name(ref)
        if found is None:
            raise TenantNotFound(repr(ref), ": no tenant has this name (see mnemostore tenant list)")
        return found.id

    async def get_tenant(self, tenant_id: uuid.UUID | str) -> Tenant | None:
        """The tenant with its config, plan and quotas (read through the cache), or None; by id or by name.

        By id it reads in the tenant's own scope (its row is visible to it), not the admin scope: every request of
        the HTTP service looks its tenant up, and must not need the admin role."""
        ref = tenant_ref(tenant_id)
        if not isinstance(ref, uuid.UUID):
            return await self.get_tenant_by_name(ref)
        tid = ref

        async def load() -> Tenant | None:
            async with self._transaction(tid, write=False) as uow:
                return await uow.tenants.get(tid)

        return await self.cache.objects.cached(self.cache.keys.obj(tid, "tenant"), load, codec=TENANT, name="tenant")

    async def get_tenant_or_raise(self, tenant_id: uuid.UUID | str) -> Tenant:
        """The tenant.

        Raises:
            TenantNotFound: no tenant has this id.
        """
        tenant = await self.get_tenant(tenant_id)
        if tenant is None:
            raise TenantNotFound(tenant_id)
        return tenant

    async def get_tenant_by_name(self, name: str) -> Tenant | None:
        """The tenant with this exact name, or None."""
        v.check_text(name, "name")
        async with self._transaction(None, write=False) as uow:
            return await uow.tenants.get_by_name(name)

    async def list_tenants(self, *, limit: int = 100, cursor: str | None = None) -> Page[Tenant]:
        """Tenants in id order, ``limit`` at a time; pass the page's ``next_cursor`` to get the next page."""
        v.check_limit(limit)
        after = id_cursor(cursor) if cursor else None
        async with self._transaction(None, write=False) as uow:
            items = await uow.tenants.list(limit=limit + 1, after=after)
        more = len(items) > limit
        items = items[:limit]
        return Page(items=items, next_cursor=str(items[-1].id) if more else None)

    async def update_tenant_config(
        self,
        tenant_id: uuid.UUID | str,
        *,
        config: Mapping[str, Any] | None = None,
        plan: str | None = None,
        quotas: Quotas | None = None,
        status: TenantStatus | str | None = None,
    ) -> Tenant:
        """Change a tenant's config (replaced whole), plan, quotas (replaced whole) or status; arguments left None
        stay as they are.

        Every process sharing the cache sees the change at once (the tenant's cached record is dropped): a model
        removed from ``allowed_models`` is refused from then on, or, should the cache miss the invalidation
        (Redis unreachable at that moment), at most ``Settings.cache_ttl_seconds`` later.
        """
        tid = await self._tenant_key(tenant_id)
        values: dict[str, Any] = {"updated_at": utc_now()}
        if config is not None:
            values["config"] = v.check_json(config, "config", max_bytes=self.settings.max_metadata_bytes)
        if plan is not None:
            values["plan"] = v.check_name(plan, "plan", max_len=50, required=True)
        if quotas is not None:
            quotas = v.check_quotas(quotas)
            values.update(
                max_users=quotas.max_users,
                max_messages=quotas.max_messages,
                max_storage_bytes=quotas.max_storage_bytes,
                allowed_models=None if quotas.allowed_models is None else list(quotas.allowed_models),
            )
        if status is not None:
            try:
                values["status"] = TenantStatus(status).value
            except ValueError:
                raise InvalidInput(f"status {status!r} is not one of: active, suspended") from None
        async with self._transaction(None, write=True) as uow:
            tenant = await uow.tenants.update(tid, values)
        await self.cache.objects.invalidate(tid, [self.cache.keys.obj(tid, "tenant")])
        if tenant is None:
            raise TenantNotFound(tid)
        return tenant

    async def delete_tenant(self, tenant_id: uuid.UUID | str) -> None:
        """Delete a tenant and, by cascade, everything it owns."""
        tid = await self._tenant_key(tenant_id)
        async with self._transaction(None, write=True) as uow:
            if not await uow.tenants.delete(tid):
                raise TenantNotFound(tid)
        await self._runtime.vectors_removed(tid)
        await self.cache.flush(tid, everything=True)
        self.search_engine.forget_tenant(tid)

    async def get_tenant_usage(self, tenant_id: uuid.UUID | str) -> TenantUsage:
        """Users, conversations, messages, tokens and stored bytes of a tenant (kept current by every write)."""
        tid = await self._tenant_key(tenant_id)
        async with self._transaction(tid, write=False) as uow:
            usage = await uow.tenants.usage(tid)
        if usage is None:
            raise TenantNotFound(tid)
        return usage

    async def recount_tenant_usage(self, tenant_id: uuid.UUID | str) -> TenantUsage:
        """Recompute a tenant's usage counters from its rows (after bulk imports or restores)."""
        tid = await self._tenant_key(tenant_id)
        async with self._transaction(tid, write=True) as uow:
            if await uow.tenants.usage(tid) is None:
                raise TenantNotFound(tid)
            return await uow.tenants.recount(tid)

    async def authenticate(self, api_key: str) -> ApiKey | None:
        """The live API key matching ``api_key``, or None (unknown, malformed or revoked).

        Read through the cache (the HTTP service authenticates every request): a live key's record is cached
        under the SHA-256 of its secret, and ``revoke_api_key`` invalidates it, so a revoked key stops working
        at once (in every process sharing the cache). Unknown and revoked keys are never cached.
        """
        parsed = parse_api_key(api_key, API_KEY_PREFIX)
        if parsed is None:
            return None
        tenant_id, digest = parsed

        async def load() -> ApiKey | None:
            async with self._transaction(tenant_id, write=False) as uow:
                found = await uow.api_keys.get_by_hash(digest)
            return found if found is not None and found.revoked_at is None else None

        key = self.cache.keys.obj(tenant_id, "apikey", digest)
        return await self.cache.objects.cached(key, load, codec=API_KEY, name="api_key")


class AsyncApiKeys(AsyncTenantScope):
    """The tenant's API keys: create, list, revoke."""

    async def create_api_key(self, name: str, *, read_only: bool = False) -> tuple[ApiKey, str]:
        """Create an API key for this tenant.

        Returns:
            The key's record and its secret. The secret is shown only here: the store keeps its SHA-256 hash.
        """
        v.check_name(name, "key name", max_len=200, required=True)
        secret = secrets.token_urlsafe(32)
        token = f"{API_KEY_PREFIX}_{self.tenant_id.hex}_{secret}"
        values = {
            "id": new_id(),
            "name": name,
            "prefix": secret[:8],
            "key_hash": hashlib.sha256(secret.encode()).hexdigest(),
            "read_only": read_only,
            "created_at": utc_now(),
        }
        async with self._tx(write=True) as uow:
            if await uow.tenants.get(self.tenant_id) is None:
                raise TenantNotFound(self.tenant_id)
            key = await uow.api_keys.insert(values)
        return key, token

    async def list_api_keys(self, *, limit: int = 1000, cursor: str | None = None) -> Page[ApiKey]:
        """The tenant's keys (revoked ones too), oldest first.

        Args:
            cursor: the ``next_cursor`` of the previous page, to get the next one.
        """
        v.check_limit(limit)
        after = id_cursor(cursor) if cursor is not None else None
        async with self._tx() as uow:
            found = await uow.api_keys.list(limit=limit + 1, after=after)
        return page_after(found, limit)

    async def revoke_api_key(self, key_id: uuid.UUID | str) -> None:
        """Revoke a key: from the moment this returns, ``authenticate`` refuses it (its cache entry is dropped).

        Raises:
            ApiKeyNotFound: the tenant has no key with this id.
        """
        kid = as_id(key_id, "key_id")
        async with self._tx(write=True) as uow:
            digest = await uow.api_keys.revoke(kid, utc_now())
        if digest is None:
            raise ApiKeyNotFound(kid)
        await self._cache.objects.invalidate(self.tenant_id, [self._cache.keys.obj(self.tenant_id, "apikey", digest)])
