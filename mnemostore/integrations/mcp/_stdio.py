"""The MCP server over stdio: one process, one tenant (``mnemostore mcp``)."""

from __future__ import annotations

from mcp.server.stdio import stdio_server

from mnemostore.service.store_async import AsyncTenantStore

from ._access import Access, fixed_access
from ._server import build_server

__all__ = ["serve_stdio"]


async def serve_stdio(tenant: AsyncTenantStore, *, read_only: bool = False) -> None:
    """Serve the tools for ``tenant`` on this process's stdin and stdout until the client closes stdin.

    Nothing else may write to stdout meanwhile: it carries the protocol (logs go to stderr).
    """
    server = build_server(fixed_access(Access(tenant=tenant, read_only=read_only)))
    async with stdio_server() as (read_stream, write_stream):
        await server.run(read_stream, write_stream, server.create_initialization_options())
