"""The outermost layer of the service: request id, body size limit, metrics, access log, last-resort 500.

A plain ASGI middleware rather than Starlette's ``BaseHTTPMiddleware``: it does not buffer streaming responses
(the SSE endpoint), and it costs one function call per message rather than a task per request.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ._context import REQUEST_ID, new_request_id
from ._logging import safe_traceback
from .metrics import ApiMetrics

__all__ = ["RequestMiddleware"]

log = logging.getLogger("mnemostore.api")
access = logging.getLogger("mnemostore.api.access")


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return bytes(value).decode("latin-1")
    return None


class RequestMiddleware:
    """Gives each request an id (``X-Request-ID``, echoed back), refuses bodies over ``max_body`` bytes with 413,
    counts and times it by route template and status, writes one access log line, and answers 500 with the
    request id (and nothing else) when something unexpected escapes the handlers."""

    def __init__(self, app: ASGIApp, *, max_body: int, metrics: ApiMetrics | None = None) -> None:
        self.app = app
        self.max_body = max_body
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = new_request_id(_header(scope, b"x-request-id"))
        state = scope.get("state")
        if not isinstance(state, dict):
            state = scope["state"] = {}
        state["request_id"] = request_id
        token = REQUEST_ID.set(request_id)
        started = time.perf_counter()
        response: dict[str, Any] = {"status": None}
        metrics = self.metrics
        if metrics is not None:
            metrics.in_flight.inc()

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                response["status"] = message["status"]
                message["headers"] = [*message.get("headers", ()), (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            declared = _header(scope, b"content-length")
            if declared is not None and declared.isdigit() and int(declared) > self.max_body:
                await self._too_large(scope, send_with_id, request_id)
                return
            await self.app(scope, self._limited(receive), send_with_id)
        except Exception as error:
            # Anything the exception handlers did not answer: log it (without its message, see _logging) and
            # answer 500 if nothing was sent yet. Not re-raised: the server would log the message and trace.
            log.error(
                "unhandled error",
                extra={
                    "request_id": request_id,
                    "error_type": type(error).__name__,
                    "traceback": safe_traceback(error),
                },
            )
            if response["status"] is None:
                await _send_json(
                    send_with_id,
                    500,
                    {"code": "internal_error", "message": "internal error", "request_id": request_id},
                )
        finally:
            elapsed = time.perf_counter() - started
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            status = response["status"] or 500
            if metrics is not None:
                metrics.in_flight.dec()
                metrics.observe_request(scope["method"], template, status, elapsed)
            if access.isEnabledFor(logging.INFO):
                access.info(
                    "request",
                    extra={
                        "request_id": request_id,
                        "method": scope["method"],
                        "route": template,
                        "status": status,
                        "duration_ms": round(elapsed * 1000, 3),
                        "tenant_id": state.get("tenant_id"),
                        "api_key_id": state.get("api_key_id"),
                    },
                )
            REQUEST_ID.reset(token)

    def _limited(self, receive: Receive) -> Receive:
        limit = self.max_body
        received = 0

        async def limited() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    # An HTTPException is what FastAPI lets through from body parsing (others become 400).
                    raise HTTPException(413, f"request body over {limit} bytes (MNEMOSTORE_MAX_REQUEST_BYTES)")
            return message

        return limited

    async def _too_large(self, scope: Scope, send: Send, request_id: str) -> None:
        message = f"request body over {self.max_body} bytes (MNEMOSTORE_MAX_REQUEST_BYTES)"
        await _send_json(send, 413, {"code": "payload_too_large", "message": message, "request_id": request_id})


async def _send_json(send: Send, status: int, body: dict[str, Any]) -> None:
    payload = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": payload})
