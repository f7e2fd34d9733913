"""Who a tool call acts for: one tenant, and whether it may write.

Over stdio the process serves one tenant, fixed at start (``fixed_access``). Over HTTP each request carries an API
key: the host (``mnemostore.api``) authenticates it and binds the resulting ``Access`` to the request's ASGI scope
(``bind_access``) before the request reaches the MCP server, whose tools read it back (``access_of_request``).
"""

from __future__ import annotations

from collections.abc import Callable, MutableMapping
from dataclasses import dataclass
from typing import Any, Final

from mcp.server import ServerRequestContext

from mnemostore.service.store_async import AsyncTenantStore

__all__ = ["Access", "AccessResolver", "access_of_request", "bind_access", "fixed_access"]

_SCOPE_KEY: Final = "mnemostore.mcp.access"


@dataclass(frozen=True, slots=True)
class Access:
    """One tenant's view, and whether the caller may only read (a read-only API key)."""

    tenant: AsyncTenantStore
    read_only: bool = False


AccessResolver = Callable[[ServerRequestContext[Any, Any]], Access]
"""The access of the request a tool call belongs to."""


def fixed_access(access: Access) -> AccessResolver:
    """The same access for every call (a stdio server: one process, one tenant)."""

    def resolve(ctx: ServerRequestContext[Any, Any]) -> Access:
        return access

    return resolve


def bind_access(scope: MutableMapping[str, Any], access: Access) -> None:
    """Attach ``access`` to an HTTP request's ASGI scope, for ``access_of_request`` to find."""
    state = scope.setdefault("state", {})
    state[_SCOPE_KEY] = access


def access_of_request(ctx: ServerRequestContext[Any, Any]) -> Access:
    """The access bound to the HTTP request that carried this call.

    Raises:
        RuntimeError: nothing is bound: the endpoint was served without its authentication (a wiring bug, never
            a caller's mistake), so the call fails rather than act for nobody.
    """
    request = ctx.request
    scope = getattr(request, "scope", None)
    state = scope.get("state") if isinstance(scope, dict) else None
    access = state.get(_SCOPE_KEY) if isinstance(state, dict) else None
    if not isinstance(access, Access):
        raise RuntimeError("an MCP request reached the tools without authentication: mount the endpoint behind it")
    return access
