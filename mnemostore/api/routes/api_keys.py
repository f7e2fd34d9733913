"""``/v1/api-keys``: a tenant's own keys (create, list, revoke), with one of its keys."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Response, status

from .._json_body import JsonRoute
from ..deps import TenantDep
from ..schemas import ApiKeyCreate, ApiKeyCreated, ApiKeyOut, Page
from ._common import Cursor, Limit, no_content, page_from_store

__all__ = ["router"]

router = APIRouter(route_class=JsonRoute, prefix="/v1/api-keys", tags=["api keys"])


@router.post("", status_code=status.HTTP_201_CREATED, response_model=ApiKeyCreated)
async def create_api_key(body: ApiKeyCreate, t: TenantDep) -> dict[str, object]:
    """Create another key of this tenant. The secret is in this answer only: the store keeps its SHA-256."""
    key, secret = await t.create_api_key(body.name, read_only=body.read_only)
    return {"key": key, "secret": secret}


@router.get("", response_model=Page[ApiKeyOut])
async def list_api_keys(t: TenantDep, limit: Limit = 100, cursor: Cursor = None) -> dict[str, object]:
    """This tenant's keys, revoked ones too (never their secrets), oldest first."""
    return page_from_store(await t.list_api_keys(limit=limit, cursor=cursor))


@router.delete("/{key_id}", status_code=status.HTTP_204_NO_CONTENT, response_class=Response)
async def revoke_api_key(key_id: uuid.UUID, t: TenantDep) -> Response:
    """Revoke a key of this tenant (this one too): it stops working at once."""
    await t.revoke_api_key(key_id)
    return no_content()
