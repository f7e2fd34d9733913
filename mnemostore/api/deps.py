"""FastAPI dependencies, as ``Annotated`` aliases: the store, the caller, and the caller's tenant.

Authentication: ``Authorization: Bearer <key>``. The admin key (``MNEMOSTORE_ADMIN_API_KEY``) is compared in
constant time (``hmac.compare_digest`` on SHA-256 digests, so not even its length leaks); a tenant key is looked
up by the SHA-256 of its secret (``AsyncMnemoStore.authenticate``), inside its tenant's scope. A missing, unknown,
malformed or revoked key is a 401 with ``WWW-Authenticate: Bearer``, all with the same message.

Authorisation: the admin key reaches only ``/v1/tenants…`` and ``/v1/admin…``, tenant keys only the rest (403
otherwise). A read-only key may use safe methods (GET, HEAD, OPTIONS) only: anything else is a 403
``read_only_key``. A suspended tenant's keys get 403 ``tenant_suspended``. Every tenant request is counted
against the rate limits of its tenant, key and client address (``AsyncTenantStore.rate_limit``; 429 with
``Retry-After`` when one is used up, ``RateLimit-Limit``/``RateLimit-Remaining`` on the answers otherwise).
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import Annotated, Final

from fastapi import Depends, Request, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from mnemostore.domain import ApiKey, TenantStatus
from mnemostore.service.store_async import AsyncMnemoStore, AsyncTenantStore

from .errors import ApiError

__all__ = [
    "AdminDep",
    "Caller",
    "CallerDep",
    "ReadTenantDep",
    "StoreDep",
    "TenantDep",
    "admin_digest",
    "authenticate_tenant_key",
]

SAFE_METHODS: Final = frozenset({"GET", "HEAD", "OPTIONS"})

_bearer = HTTPBearer(
    auto_error=False,
    description="A tenant API key (`mnemostore tenant create-key`, `POST /v1/tenants/{id}/api-keys`), or the "
    "admin key (MNEMOSTORE_ADMIN_API_KEY) for /v1/tenants and /v1/admin.",
)


def admin_digest(key: str | None) -> bytes | None:
    return hashlib.sha256(key.encode()).digest() if key else None


def _unauthorized() -> ApiError:
    return ApiError(
        401,
        "unauthorized",
        "missing, unknown or revoked API key: send `Authorization: Bearer <key>`",
        headers={"WWW-Authenticate": "Bearer"},
    )


async def get_store(request: Request) -> AsyncMnemoStore:
    store: AsyncMnemoStore = request.app.state.store
    return store


StoreDep = Annotated[AsyncMnemoStore, Depends(get_store)]


@dataclass(frozen=True, slots=True)
class Caller:
    """Who is calling: the admin (``key`` None), or a tenant's API key."""

    key: ApiKey | None

    @property
    def admin(self) -> bool:
        return self.key is None


async def get_caller(
    request: Request,
    store: StoreDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Caller:
    if credentials is None or not credentials.credentials:
        raise _unauthorized()
    token = credentials.credentials
    expected: bytes | None = request.app.state.admin_digest
    # Always hash and compare, admin key configured or not, so the time taken says nothing about it.
    given = hashlib.sha256(token.encode()).digest()
    if hmac.compare_digest(given, expected or bytes(32)) and expected is not None:
        return Caller(key=None)
    key = await store.authenticate(token)
    if key is None:
        raise _unauthorized()
    request.state.tenant_id = str(key.tenant_id)
    request.state.api_key_id = str(key.id)
    return Caller(key=key)


CallerDep = Annotated[Caller, Depends(get_caller)]


async def get_admin(caller: CallerDep, store: StoreDep) -> AsyncMnemoStore:
    if not caller.admin:
        raise ApiError(403, "forbidden", "this endpoint needs the admin key (MNEMOSTORE_ADMIN_API_KEY)")
    return store


AdminDep = Annotated[AsyncMnemoStore, Depends(get_admin)]


async def _tenant(
    request: Request, response: Response, caller: Caller, store: AsyncMnemoStore, *, writes: bool
) -> AsyncTenantStore:
    key = caller.key
    if key is None:
        raise ApiError(
            403,
            "forbidden",
            "the admin key manages tenants (/v1/tenants, /v1/admin); use one of the tenant's API keys here",
        )
    if writes and key.read_only:
        raise ApiError(403, "read_only_key", "this API key is read-only: use a key created without read_only")
    tenant = await store.get_tenant(key.tenant_id)
    if tenant is None:
        raise _unauthorized()
    if tenant.status is TenantStatus.SUSPENDED:
        raise ApiError(403, "tenant_suspended", "this tenant is suspended: ask the service's administrator")
    scoped = store.tenant(key.tenant_id)
    client = request.client.host if request.client is not None else None
    decision = await scoped.rate_limit(api_key_id=key.id, client_ip=client)
    if decision.limit is not None and decision.remaining is not None:
        response.headers["RateLimit-Limit"] = str(decision.limit)
        response.headers["RateLimit-Remaining"] = str(decision.remaining)
    return scoped


async def get_tenant(request: Request, response: Response, caller: CallerDep, store: StoreDep) -> AsyncTenantStore:
    return await _tenant(request, response, caller, store, writes=request.method not in SAFE_METHODS)


async def get_read_tenant(request: Request, response: Response, caller: CallerDep, store: StoreDep) -> AsyncTenantStore:
    return await _tenant(request, response, caller, store, writes=False)


TenantDep = Annotated[AsyncTenantStore, Depends(get_tenant)]
"""The caller's tenant; writes (any method but GET/HEAD/OPTIONS) need a key that is not read-only."""

ReadTenantDep = Annotated[AsyncTenantStore, Depends(get_read_tenant)]
"""The caller's tenant, for POST endpoints that only read (search): read-only keys are welcome."""


async def authenticate_tenant_key(request: Request, response: Response) -> tuple[AsyncTenantStore, ApiKey]:
    """The tenant of the request's bearer key, and the key, for an endpoint outside FastAPI's dependencies (the
    MCP endpoint): the checks of ``ReadTenantDep`` (a tenant key, tenant not suspended, rate limits charged, their
    headers set on ``response``). Whether the key may write is the caller's to check (``key.read_only``).

    Raises:
        ApiError: 401 or 403, as for the REST endpoints.
        RateLimited: a rate limit is used up.
    """
    store = await get_store(request)
    caller = await get_caller(request, store, await _bearer(request))
    tenant = await _tenant(request, response, caller, store, writes=False)
    assert caller.key is not None  # _tenant refuses the admin key
    return tenant, caller.key
