"""A tool: its name, description and JSON schemas (from pydantic models), and the one way every call runs.

``ToolSpec.call`` validates the arguments, refuses writes to a read-only caller, runs the tool and shapes the
answer (the result as structured content, and as JSON text for clients that read only text). Whatever a caller
can cause comes back as a tool error (``isError``) whose text says what to do, never as a protocol error: invalid
arguments (each field named), and the store's own errors (not found, invalid input, conflict, quota, rate limit,
search not available) with their messages. Server-side failures (database down, schema behind, a bug) come back
as tool errors too, with a generic message; the real one goes to the log, as the HTTP service does.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Generic, TypeVar

from mcp.types import CallToolResult, TextContent, Tool, ToolAnnotations
from pydantic import BaseModel, ValidationError

from mnemostore.errors import (
    BackendUnavailable,
    ConflictError,
    EmbeddingDimensionMismatch,
    IndexingTimeout,
    InvalidInput,
    MnemostoreError,
    NotFoundError,
    QuotaExceeded,
    RateLimited,
    SchemaOutOfDate,
    SearchError,
)

from ._access import Access

__all__ = ["ToolSpec", "error_result", "tool"]

log = logging.getLogger("mnemostore.mcp")

P = TypeVar("P", bound=BaseModel)
R = TypeVar("R", bound=BaseModel)

# Errors whose message is for the caller: each says what happened and what to do.
_CALLER_ERRORS: tuple[type[MnemostoreError], ...] = (
    NotFoundError,
    InvalidInput,
    ConflictError,
    QuotaExceeded,
    RateLimited,
    SearchError,
)
# ... except these, which are the server's to fix.
_SERVER_SIDE: tuple[type[MnemostoreError], ...] = (EmbeddingDimensionMismatch, IndexingTimeout)
# Errors whose message may name hosts or paths: the caller gets this instead, the log gets the real one.
_SERVER_MESSAGES: tuple[tuple[type[MnemostoreError], str], ...] = (
    (SchemaOutOfDate, "the database schema is behind this server's code: an operator must run `mnemostore db upgrade`"),
    (BackendUnavailable, "the database is not answering: retry later"),
)


def error_result(message: str) -> CallToolResult:
    """A failed call: ``isError`` with the message as its text, for the model to read and act on."""
    return CallToolResult(content=[TextContent(type="text", text=message)], is_error=True)


def _store_error_message(error: MnemostoreError, tool: str) -> str:
    if isinstance(error, _CALLER_ERRORS) and not isinstance(error, _SERVER_SIDE):
        return str(error)
    fallback = f"internal error in {tool}: the server's log has the details"
    message = next((text for cls, text in _SERVER_MESSAGES if isinstance(error, cls)), fallback)
    log.error("MCP tool %s failed: %s: %s", tool, type(error).__name__, error)
    return message


def _validation_message(tool: str, error: ValidationError) -> str:
    problems = []
    for problem in error.errors():
        where = ".".join(str(part) for part in problem.get("loc", ())) or "arguments"
        problems.append(f"{where}: {problem.get('msg', 'invalid')}")
    return f"invalid arguments for {tool}: " + "; ".join(problems) + " (see the tool's input schema)"


@dataclass(frozen=True)  # not slots: ``definition`` is cached in the instance
class ToolSpec(Generic[P, R]):
    """One tool. ``run`` gets the caller's access and the validated arguments, and returns the result model."""

    name: str
    title: str
    description: str
    params: type[P]
    result: type[R]
    run: Callable[[Access, P], Awaitable[R]]
    writes: bool
    destructive: bool = False
    idempotent: bool = False

    @cached_property
    def definition(self) -> Tool:
        """What ``tools/list`` says of the tool: schemas, description, and hints (read-only, destructive)."""
        return Tool(
            name=self.name,
            title=self.title,
            description=self.description,
            input_schema=self.params.model_json_schema(),
            output_schema=self.result.model_json_schema(mode="serialization"),
            annotations=ToolAnnotations(
                title=self.title,
                read_only_hint=not self.writes,
                destructive_hint=self.destructive if self.writes else None,
                idempotent_hint=self.idempotent if self.writes else None,
                open_world_hint=False,
            ),
        )

    async def call(self, access: Access, arguments: dict[str, Any]) -> CallToolResult:
        """Run the tool for ``access``; every failure a caller can cause is an ``isError`` result."""
        if self.writes and access.read_only:
            return error_result(
                f"{self.name} writes, and this API key is read-only: use a key created without read_only "
                "(or call only the read tools)"
            )
        try:
            params = self.params.model_validate(arguments)
        except ValidationError as error:
            return error_result(_validation_message(self.name, error))
        try:
            result = await self.run(access, params)
        except MnemostoreError as error:
            return error_result(_store_error_message(error, self.name))
        except Exception:
            log.exception("MCP tool %s raised an unexpected error", self.name)
            return error_result(f"internal error in {self.name}: the server's log has the details")
        data = result.model_dump(mode="json")
        text = json.dumps(data, ensure_ascii=False)
        return CallToolResult(content=[TextContent(type="text", text=text)], structured_content=data)


def tool(
    name: str,
    params: type[P],
    result: type[R],
    *,
    title: str,
    writes: bool,
    destructive: bool = False,
    idempotent: bool = False,
) -> Callable[[Callable[[Access, P], Awaitable[R]]], ToolSpec[P, R]]:
    """Declare a tool from its function; the function's docstring is the description the model reads."""

    def declare(run: Callable[[Access, P], Awaitable[R]]) -> ToolSpec[P, R]:
        description = " ".join((run.__doc__ or "").split())
        if not description:
            raise ValueError(f"tool {name} needs a docstring: it is the description the model reads")
        return ToolSpec(
            name=name,
            title=title,
            description=description,
            params=params,
            result=result,
            run=run,
            writes=writes,
            destructive=destructive,
            idempotent=idempotent,
        )

    return declare
