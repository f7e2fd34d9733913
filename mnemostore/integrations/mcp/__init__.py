"""mnemostore over the Model Context Protocol: memory, conversation and knowledge tools for any MCP client.

Two transports, one set of tools (``ALL_TOOLS``):

* stdio, one tenant per process: ``mnemostore mcp --tenant acme`` (``serve_stdio``);
* streamable HTTP at ``/mcp`` of the HTTP service (``mnemostore serve``), on the tenant API keys of the REST
  API: the service authenticates each request and binds its ``Access`` (``bind_access``), and
  ``StreamableHttpServer`` serves it. A read-only key may call the read tools only.

Needs the ``mcp`` extra (``pip install 'mnemostore[mcp]'``), the official MCP SDK.
"""

from mnemostore.integrations.mcp._access import Access, AccessResolver, access_of_request, bind_access, fixed_access
from mnemostore.integrations.mcp._http import StreamableHttpServer
from mnemostore.integrations.mcp._server import ALL_TOOLS, INSTRUCTIONS, build_server
from mnemostore.integrations.mcp._stdio import serve_stdio
from mnemostore.integrations.mcp._tool import ToolSpec

__all__ = [
    "ALL_TOOLS",
    "INSTRUCTIONS",
    "Access",
    "AccessResolver",
    "StreamableHttpServer",
    "ToolSpec",
    "access_of_request",
    "bind_access",
    "build_server",
    "fixed_access",
    "serve_stdio",
]
