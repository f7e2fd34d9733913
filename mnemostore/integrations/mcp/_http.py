"""The MCP server over streamable HTTP, for a host that authenticates each request (``mnemostore.api``).

Stateless, with JSON answers: every request stands alone (no session to keep in one process), so the endpoint
works the same behind several workers and each request is authorised on its own key. The host binds each
request's ``Access`` (``bind_access``) before handing it to ``StreamableHttpServer``.

DNS-rebinding protection (a check of the Host header) is off: it guards servers that trust any local caller,
and this one trusts no request without an API key, which a rebinding page does not have.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.server.transport_security import TransportSecuritySettings
from starlette.types import Receive, Scope, Send

from ._access import access_of_request
from ._server import build_server

__all__ = ["StreamableHttpServer"]


class StreamableHttpServer:
    """An ASGI app serving the tools over streamable HTTP, each request for the access bound to its scope.

    ``run()`` must be entered (in the host's lifespan) before requests arrive; a server runs once.
    """

    def __init__(self) -> None:
        self.server = build_server(access_of_request)
        self._manager = StreamableHTTPSessionManager(
            app=self.server,
            json_response=True,
            stateless=True,
            security_settings=TransportSecuritySettings(enable_dns_rebinding_protection=False),
        )

    @asynccontextmanager
    async def run(self) -> AsyncIterator[None]:
        """Serve requests while the block runs (it holds the tasks that answer them)."""
        async with self._manager.run():
            yield

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._manager.handle_request(scope, receive, send)
