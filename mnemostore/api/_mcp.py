"""``/mcp``: the MCP tools over streamable HTTP, on the tenant API keys of the REST API.

Each request is authenticated like any /v1 request (``deps.authenticate_tenant_key``: bearer key, suspended
tenant, rate limits), and refused with the same error body (401, 403, 429…) before the MCP server sees it; the
request's tenant is its key's, and a read-only key may call the read tools only. The MCP server itself
(``mnemostore.integrations.mcp``) runs while the app does: ``McpEndpoint.running`` is entered in the lifespan.
Without the ``mcp`` extra the endpoint answers 501, naming it.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from fastapi import Request, Response
from starlette.types import Message, Receive, Scope, Send

from mnemostore.errors import MnemostoreError

from ._context import request_id_of
from .deps import authenticate_tenant_key
from .errors import ApiError, answer_error, error_response

if TYPE_CHECKING:
    from mnemostore.integrations.mcp import StreamableHttpServer

__all__ = ["MCP_PATH", "McpEndpoint"]

log = logging.getLogger("mnemostore.api")

MCP_PATH = "/mcp"
MCP_METHODS = ["GET", "POST", "DELETE"]


class McpEndpoint:
    """The ASGI endpoint at ``/mcp``: authenticates, then hands the request to the running MCP server."""

    def __init__(self) -> None:
        self._server: StreamableHttpServer | None = None
        self._missing: str | None = None

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Run the MCP server for the block (the app's lifespan); without the SDK, note why and run nothing."""
        try:
            from mnemostore.integrations.mcp import StreamableHttpServer
        except ImportError as error:
            if (error.name or "").partition(".")[0] not in {"mcp", "mcp_types"}:
                raise
            self._missing = (
                "the MCP endpoint needs the mcp package, which is not installed: pip install 'mnemostore[mcp]'"
            )
            log.info("no MCP endpoint at %s: %s", MCP_PATH, self._missing)
            yield
            return
        server = StreamableHttpServer()
        async with server.run():
            self._server = server
            try:
                yield
            finally:
                self._server = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        server = self._server
        if server is None:
            message = self._missing or "the MCP endpoint is not running: the service is starting or stopping"
            status = 501 if self._missing else 503
            await error_response(request_id_of(scope), status, "mcp_unavailable", message)(scope, receive, send)
            return
        from mnemostore.integrations.mcp import Access, bind_access

        limits = Response()
        try:
            tenant, key = await authenticate_tenant_key(request, limits)
        except (ApiError, MnemostoreError) as error:
            await answer_error(request, error)(scope, receive, send)
            return
        bind_access(scope, Access(tenant=tenant, read_only=key.read_only))
        extra = [(name.encode("latin-1"), value.encode("latin-1")) for name, value in limits.headers.items()]
        extra = [(name, value) for name, value in extra if name.startswith(b"ratelimit-")]

        async def send_with_limits(message: Message) -> None:
            if message["type"] == "http.response.start" and extra:
                message["headers"] = [*message.get("headers", ()), *extra]
            await send(message)

        await server(scope, receive, send_with_limits)
