"""The MCP server: the tools of mnemostore for one caller's tenant, on the SDK's low-level ``Server``.

The low-level server rather than ``MCPServer``: the tools are declared with their own pydantic models (exact
schemas, descriptions written for a model, one error policy in ``ToolSpec.call``), and ``MCPServer`` would also
configure the process's root logger, which is the host's to configure (the HTTP service logs JSON lines).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Final

from mcp.server import Server, ServerRequestContext
from mcp.types import CallToolRequestParams, CallToolResult, ListToolsResult, PaginatedRequestParams

from mnemostore._version import __version__

from ._access import AccessResolver
from ._conversation_tools import CONVERSATION_TOOLS
from ._knowledge_tools import KNOWLEDGE_TOOLS
from ._memory_tools import MEMORY_TOOLS
from ._tool import ToolSpec, error_result

__all__ = ["ALL_TOOLS", "INSTRUCTIONS", "build_server"]

ALL_TOOLS: Final[tuple[ToolSpec[Any, Any], ...]] = (*MEMORY_TOOLS, *CONVERSATION_TOOLS, *KNOWLEDGE_TOOLS)

INSTRUCTIONS: Final = """\
mnemostore keeps an assistant's long-term memory, its conversations and a knowledge base.
Users are named by your own ids (any stable string: a name, an email, your app's key).
Before answering a user, search_memories for what they told you before; when they tell you something worth
keeping (a preference, a fact, a decision), add_memory; when they correct it, update_memory.
To keep a conversation's record, start_conversation once (give external_id to find it again later) and
add_message for each turn; get_recent_messages gives the context back. search_knowledge searches the documents
the application loaded. Errors come back as tool errors whose text says what to do."""


def build_server(resolve: AccessResolver, tools: Iterable[ToolSpec[Any, Any]] = ALL_TOOLS) -> Server[Any]:
    """An MCP server offering ``tools``; each call acts for ``resolve(request context)``.

    Unknown tool names and every error a caller can cause answer as tool errors (``isError``), see ``ToolSpec``.
    """
    by_name: dict[str, ToolSpec[Any, Any]] = {spec.name: spec for spec in tools}
    listing = [spec.definition for spec in by_name.values()]

    async def list_tools(ctx: ServerRequestContext[Any, Any], params: PaginatedRequestParams | None) -> ListToolsResult:
        return ListToolsResult(tools=listing)

    async def call_tool(ctx: ServerRequestContext[Any, Any], params: CallToolRequestParams) -> CallToolResult:
        spec = by_name.get(params.name)
        if spec is None:
            names = ", ".join(by_name)
            return error_result(f"there is no tool {params.name!r}: this server has {names}")
        return await spec.call(resolve(ctx), dict(params.arguments or {}))

    def input_schema(name: str) -> Mapping[str, Any] | None:
        spec = by_name.get(name)
        return spec.definition.input_schema if spec is not None else None

    return Server(
        "mnemostore",
        version=__version__,
        title="mnemostore",
        instructions=INSTRUCTIONS,
        get_tool_input_schema=input_schema,
        on_list_tools=list_tools,
        on_call_tool=call_tool,
    )
