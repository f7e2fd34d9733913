"""Request bodies too deep for the JSON parser: refused as 422 naming their depth and the limit.

Python's parser gives up near 1,000 levels with a RecursionError, which FastAPI answers as an undecodable body (400).
Every router is made with ``route_class=JsonRoute``, whose request turns that error into ``BodyTooDeep``, an
``HTTPException`` (the one kind FastAPI lets out of body parsing), answered by ``errors._http_error`` as 422
``validation_error`` on the field ``body``. A body that parses but nests deeper than ``MAX_JSON_DEPTH`` is refused
by the schemas' JSON fields (``schemas._common``) or by the store, also with 422. Valid bodies cost nothing more:
the depth is only measured on the failure path.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Coroutine
from typing import Any, Final

from fastapi import Request, Response
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException

from mnemostore.config import MAX_JSON_DEPTH

__all__ = ["BodyTooDeep", "JsonRoute", "nesting_depth"]

_STRING: Final = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_NOT_BRACKETS: Final = bytes(b for b in range(256) if b not in b"[]{}")


def nesting_depth(body: bytes) -> int:
    """How deep the arrays and objects of a JSON text nest (brackets inside strings do not count)."""
    depth = deepest = 0
    for char in _STRING.sub(b"", body).translate(None, _NOT_BRACKETS):
        if char in b"[{":
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth -= 1
    return deepest


class BodyTooDeep(HTTPException):
    """The body nests deeper than the parser can go (and so than ``MAX_JSON_DEPTH``)."""

    def __init__(self, depth: int) -> None:
        self.depth = depth
        super().__init__(
            422,
            f"the JSON body is nested {depth} levels deep, over the limit of {MAX_JSON_DEPTH} "
            "(MAX_JSON_DEPTH): flatten it, or send the deep part as a JSON string",
        )


class _JsonRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            body = await self.body()
            try:
                self._json = json.loads(body)
            except RecursionError:
                raise BodyTooDeep(nesting_depth(body)) from None
        return self._json


class JsonRoute(APIRoute):
    """An ``APIRoute`` whose body parsing refuses a too-deep body with ``BodyTooDeep`` instead of a bare 400."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            return await handler(_JsonRequest(request.scope, request.receive))

        return route
