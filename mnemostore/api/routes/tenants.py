"""``/v1/tenants``: the admin key's endpoints (create, list, look up by name, get, update, delete, usage and its
recount, cache flush, maintenance, and the tenant's keys)."""

from __future__ import annotations

import dataclasses
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response, status

from mnemostore.domain import Quotas, Tenant, TenantUsage
from mnemostore.errors import TenantNotFound

from .._json_body import JsonRoute
from ..deps import AdminDep
from ..schemas import (
    ApiKeyCreate,
    ApiKeyCreated,
    ApiKeyOut,
    DeletedOut,
    MaintenanceOut,
    Page,
    TenantCreate,
    TenantOut,
    TenantUpdate,
    UsageOut,
)
from ._common import Cursor, Limit, no_content, page_from_store

__all__ = ["router"]

router = APIRouter(route_class=JsonRoute, prefix="/v1/tenants", tags=["tenants (admin)"])


@router.post("", status_code=status.HTTP_201_CREATED, response_model=TenantOut)
async def create_tenant(body: TenantCreate, store: AdminDep) -> Tenant:
    """Create a tenant (409 when the name is taken)."""
    quotas = Quotas(**body.quotas.model_dump()) if body.quotas is not None else None
    return await store.create_tenant(body.name, plan=body.plan, config=body.config, quotas=quotas)


@router.get("", response_model=Page[TenantOut])
async def list_tenants(store: AdminDep, limit: Limit = 100, cursor: Cursor = None) -> dict[str, object]:
    """Every tenant, oldest first."""
    return page_from_store(await store.list_tenants(limit=limit, cursor=cursor))


@router.get("/lookup", response_model=TenantOut)
async def get_tenant_by_name(
    store: AdminDep, name: Annotated[str, Query(min_length=1, max_length=200, description="the tenant's name")]
) -> Tenant:
    """The tenant with this exact name (404 when there is none)."""
    tenant = await store.get_tenant_by_name(name)
    if tenant is None:
        raise TenantNotFound(repr(name))
    return tenant


@router.get("/{tenant_id}", response_model=TenantOut)
async def get_tenant(tenant_id: uuid.UUID, store: AdminDep) -> Tenant:
    return await store.get_tenant_or_raise(tenant_id)


@router.patch("/{tenant_id}", response_model=TenantOut)
async def update_tenant(tenant_id: uuid.UUID, body: TenantUpdate, store: AdminDep) -> Tenant:
    """Change config (replaced whole), plan, quotas (replaced whole: a limit left out is unlimited) or status."""
    quotas = Quotas(**body.quotas.model_dump()) if body.quotas is not None else None
    return await store.update_tenant_config(
        tenant_id, config=body.config, plan=body.plan, quotas=quotas, status=body.status
    )


@router.delete("/{tenant_id}", status_code=status.HTTP_204_NO_CONTENT, response_class=Response)
async def delete_tenant(tenant_id: uuid.UUID, store: AdminDep) -> Response:
    """Delete the tenant and everything it owns."""
    await store.delete_tenant(tenant_id)
    return no_content()


@router.get("/{tenant_id}/usage", response_model=UsageOut)
async def get_tenant_usage(tenant_id: uuid.UUID, store: AdminDep) -> TenantUsage:
    """Users, conversations, messages, tokens and stored bytes (kept current by every write)."""
    return await store.get_tenant_usage(tenant_id)


@router.post("/{tenant_id}/usage/recount", response_model=UsageOut)
async def recount_tenant_usage(tenant_id: uuid.UUID, store: AdminDep) -> TenantUsage:
    """Recompute the usage counters from the tenant's rows (after a bulk import, or to check them)."""
    return await store.recount_tenant_usage(tenant_id)


@router.post("/{tenant_id}/cache/flush", response_model=DeletedOut)
async def flush_cache(tenant_id: uuid.UUID, store: AdminDep) -> dict[str, int]:
    """Drop the tenant's cached data (histories, lookups, sessions); the database is untouched. ``deleted``
    counts the cache keys."""
    await store.get_tenant_or_raise(tenant_id)
    return {"deleted": await store.flush_cache(tenant_id)}


@router.post("/{tenant_id}/maintenance", response_model=MaintenanceOut)
async def run_maintenance(
    tenant_id: uuid.UUID,
    store: AdminDep,
    dry_run: Annotated[bool, Query(description="count what would be done, change nothing")] = False,
) -> dict[str, Any]:
    """Apply the tenant's retention now (expired memories, idle and old conversations: its config's
    ``retention``), as the scheduled ``mnemostore maintenance`` does for every tenant."""
    return dataclasses.asdict(await store.tenant(tenant_id).run_maintenance(dry_run=dry_run))


@router.post("/{tenant_id}/api-keys", status_code=status.HTTP_201_CREATED, response_model=ApiKeyCreated)
async def create_tenant_api_key(tenant_id: uuid.UUID, body: ApiKeyCreate, store: AdminDep) -> dict[str, object]:
    """Create a key for the tenant. The secret is in this answer only: the store keeps its SHA-256."""
    key, secret = await store.tenant(tenant_id).create_api_key(body.name, read_only=body.read_only)
    return {"key": key, "secret": secret}


@router.get("/{tenant_id}/api-keys", response_model=Page[ApiKeyOut])
async def list_tenant_api_keys(
    tenant_id: uuid.UUID, store: AdminDep, limit: Limit = 100, cursor: Cursor = None
) -> dict[str, object]:
    """The tenant's keys, revoked ones too (never their secrets)."""
    await store.get_tenant_or_raise(tenant_id)
    return page_from_store(await store.tenant(tenant_id).list_api_keys(limit=limit, cursor=cursor))


@router.delete("/{tenant_id}/api-keys/{key_id}", status_code=status.HTTP_204_NO_CONTENT, response_class=Response)
async def revoke_tenant_api_key(tenant_id: uuid.UUID, key_id: uuid.UUID, store: AdminDep) -> Response:
    """Revoke a key: it stops working at once (revoking twice is fine)."""
    await store.tenant(tenant_id).revoke_api_key(key_id)
    return no_content()
