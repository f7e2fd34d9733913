"""Tenants (with the admin key) and API keys: the client's part for ``/v1/tenants`` and ``/v1/api-keys``.

(async; ``_tenants.py`` is generated from this file.)
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Mapping
from typing import Any

from mnemostore.client import _endpoints as ep
from mnemostore.client._base_async import AsyncConnection, walk
from mnemostore.client._codec import decode, decode_page, jsonable, present
from mnemostore.client._endpoints import calls
from mnemostore.domain import ApiKey, Page, Quotas, Tenant, TenantStatus, TenantUsage
from mnemostore.memory import TenantMaintenance

__all__ = ["AsyncTenantsApi"]


class AsyncTenantsApi(AsyncConnection):
    """Tenants, their usage and keys (``admin_key``), and the calling tenant's own keys (``api_key``)."""

    @calls(ep.CREATE_TENANT)
    async def create_tenant(
        self,
        name: str,
        *,
        plan: str = "free",
        config: Mapping[str, Any] | None = None,
        quotas: Quotas | None = None,
    ) -> Tenant:
        """Create a tenant (admin key).

        Raises:
            TenantAlreadyExists: the name is taken.
        """
        body = present(name=name, plan=plan, config=config, quotas=quotas)
        return decode(Tenant, await self._json(ep.CREATE_TENANT, body=body))

    @calls(ep.LIST_TENANTS)
    async def list_tenants(self, *, limit: int = 100, cursor: str | None = None) -> Page[Tenant]:
        """One page of the tenants, oldest first (admin key); pass ``next_cursor`` back as ``cursor``."""
        return decode_page(Tenant, await self._json(ep.LIST_TENANTS, params={"limit": limit, "cursor": cursor}))

    @calls(ep.LIST_TENANTS)
    def iter_tenants(self, *, page_size: int = 100) -> AsyncIterator[Tenant]:
        """Every tenant, oldest first, each once, ``page_size`` per request (admin key)."""
        return walk(lambda cursor: self.list_tenants(limit=page_size, cursor=cursor))

    @calls(ep.GET_TENANT)
    async def get_tenant(self, tenant_id: uuid.UUID | str) -> Tenant:
        """A tenant (admin key).

        Raises:
            TenantNotFound: no such tenant.
        """
        return decode(Tenant, await self._json(ep.GET_TENANT, path={"tenant_id": tenant_id}))

    @calls(ep.UPDATE_TENANT)
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
        stay as they are (admin key)."""
        body = {
            name: jsonable(value)
            for name, value in (("config", config), ("plan", plan), ("quotas", quotas), ("status", status))
            if value is not None
        }
        return decode(Tenant, await self._json(ep.UPDATE_TENANT, path={"tenant_id": tenant_id}, body=body))

    @calls(ep.DELETE_TENANT)
    async def delete_tenant(self, tenant_id: uuid.UUID | str) -> None:
        """Delete the tenant and everything it owns (admin key).

        Raises:
            TenantNotFound: no such tenant.
        """
        await self._send(ep.DELETE_TENANT, path={"tenant_id": tenant_id})

    @calls(ep.GET_TENANT_USAGE)
    async def get_tenant_usage(self, tenant_id: uuid.UUID | str) -> TenantUsage:
        """What the tenant holds now: users, conversations, messages, tokens, stored bytes (admin key)."""
        return decode(TenantUsage, await self._json(ep.GET_TENANT_USAGE, path={"tenant_id": tenant_id}))

    @calls(ep.GET_TENANT_BY_NAME)
    async def get_tenant_by_name(self, name: str) -> Tenant:
        """The tenant with this exact name (admin key).

        Raises:
            TenantNotFound: no tenant has this name.
        """
        return decode(Tenant, await self._json(ep.GET_TENANT_BY_NAME, params={"name": name}))

    @calls(ep.RECOUNT_TENANT_USAGE)
    async def recount_tenant_usage(self, tenant_id: uuid.UUID | str) -> TenantUsage:
        """Recompute the tenant's usage counters from its rows (admin key)."""
        return decode(TenantUsage, await self._json(ep.RECOUNT_TENANT_USAGE, path={"tenant_id": tenant_id}))

    @calls(ep.FLUSH_CACHE)
    async def flush_cache(self, tenant_id: uuid.UUID | str) -> int:
        """Drop the tenant's cached data (the database is untouched); the number of cache keys deleted (admin
        key)."""
        return int((await self._json(ep.FLUSH_CACHE, path={"tenant_id": tenant_id}))["deleted"])

    @calls(ep.RUN_MAINTENANCE)
    async def run_maintenance(self, tenant_id: uuid.UUID | str, *, dry_run: bool = False) -> TenantMaintenance:
        """Apply the tenant's retention now; with ``dry_run``, count what would be done (admin key)."""
        data = await self._json(ep.RUN_MAINTENANCE, path={"tenant_id": tenant_id}, params={"dry_run": dry_run})
        return decode(TenantMaintenance, data)

    @calls(ep.CREATE_TENANT_API_KEY)
    async def create_tenant_api_key(
        self, tenant_id: uuid.UUID | str, name: str, *, read_only: bool = False
    ) -> tuple[ApiKey, str]:
        """A new key of the tenant and its secret, which only this answer shows (admin key)."""
        data = await self._json(
            ep.CREATE_TENANT_API_KEY, path={"tenant_id": tenant_id}, body={"name": name, "read_only": read_only}
        )
        return decode(ApiKey, data["key"]), str(data["secret"])

    @calls(ep.LIST_TENANT_API_KEYS)
    async def list_tenant_api_keys(
        self, tenant_id: uuid.UUID | str, *, limit: int = 100, cursor: str | None = None
    ) -> Page[ApiKey]:
        """One page of the tenant's keys, revoked ones too, never their secrets (admin key)."""
        data = await self._json(
            ep.LIST_TENANT_API_KEYS, path={"tenant_id": tenant_id}, params={"limit": limit, "cursor": cursor}
        )
        return decode_page(ApiKey, data)

    @calls(ep.LIST_TENANT_API_KEYS)
    def iter_tenant_api_keys(self, tenant_id: uuid.UUID | str, *, page_size: int = 100) -> AsyncIterator[ApiKey]:
        """Every key of the tenant, each once (admin key)."""
        return walk(lambda cursor: self.list_tenant_api_keys(tenant_id, limit=page_size, cursor=cursor))

    @calls(ep.REVOKE_TENANT_API_KEY)
    async def revoke_tenant_api_key(self, tenant_id: uuid.UUID | str, key_id: uuid.UUID | str) -> None:
        """Revoke a key of the tenant: it stops working at once; revoking twice is fine (admin key)."""
        await self._send(ep.REVOKE_TENANT_API_KEY, path={"tenant_id": tenant_id, "key_id": key_id})

    # -- the calling tenant's own keys ---------------------------------------------------------------------------

    @calls(ep.CREATE_API_KEY)
    async def create_api_key(self, name: str, *, read_only: bool = False) -> tuple[ApiKey, str]:
        """Another key of this client's tenant and its secret, which only this answer shows."""
        data = await self._json(ep.CREATE_API_KEY, body={"name": name, "read_only": read_only})
        return decode(ApiKey, data["key"]), str(data["secret"])

    @calls(ep.LIST_API_KEYS)
    async def list_api_keys(self, *, limit: int = 100, cursor: str | None = None) -> Page[ApiKey]:
        """One page of this tenant's keys, revoked ones too (never their secrets), oldest first."""
        return decode_page(ApiKey, await self._json(ep.LIST_API_KEYS, params={"limit": limit, "cursor": cursor}))

    @calls(ep.LIST_API_KEYS)
    def iter_api_keys(self, *, page_size: int = 100) -> AsyncIterator[ApiKey]:
        """Every key of this tenant, each once."""
        return walk(lambda cursor: self.list_api_keys(limit=page_size, cursor=cursor))

    @calls(ep.REVOKE_API_KEY)
    async def revoke_api_key(self, key_id: uuid.UUID | str) -> None:
        """Revoke a key of this tenant (this client's own too): it stops working at once.

        Raises:
            ApiKeyNotFound: no such key in this tenant.
        """
        await self._send(ep.REVOKE_API_KEY, path={"key_id": key_id})
