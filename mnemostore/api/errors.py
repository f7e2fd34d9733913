"""The one table from mnemostore's errors to HTTP statuses, and the handlers that answer with it.

Every error answer has the same body (``schemas.ErrorBody``): a stable ``code``, a ``message`` saying what to do,
and the ``request_id`` that the server's log lines carry too. The table maps by class, walking the exception's
MRO, so a new subclass gets its parent's status without an edit here (``RestoreConflict`` is a ``ConflictError``:
409).

=========================  ======  ==========================================================================
error                      status  notes
=========================  ======  ==========================================================================
RateLimited                429     ``Retry-After`` (whole seconds, at least 1)
AuthenticationError        401     (the HTTP layer answers a missing or unknown key itself: ``deps.py``)
ReadOnlyKey                403     ``read_only_key``; TenantSuspended: ``tenant_suspended``; other
                                   PermissionDenied: ``forbidden`` (``deps.py`` answers these itself too)
QuotaExceeded              403     a plan limit, not a rate: retrying will not help until data is deleted or
                                   the quota raised, so not 429
ModelNotAllowed            403     ``model_not_allowed``: the plan forbids the model; the request itself is
                                   well formed (so not 422), and only another model or plan makes it pass
NotFoundError              404     another tenant's object too, with the same message as a missing one
ConflictError              409     TenantAlreadyExists, DuplicateIdentity, an import over an existing id
InvalidInput               422     ContentTooLarge, InvalidText, InvalidMetadata, InvalidCursor,
                                   InvalidVector (VectorDimensionMismatch)
EmbedderNotConfigured      400     semantic or hybrid search asked for where no embedder is configured or
                                   installed: the message names the extra; ``mode=auto`` runs full text
VectorSearchUnavailable    501     semantic or hybrid search on a PostgreSQL without pgvector (full text works)
EmbedderUnavailable        503     the embedder fails (a model that cannot load, a service that does not
                                   answer) (``Retry-After``)
SchemaOutOfDate            503     ``Retry-After``; the operator runs ``mnemostore db upgrade``
BackendUnavailable         503     ``Retry-After``; the message is generic (the real one, which may name the
                                   database host, goes to the log)
MnemostoreError (others)   500     ConfigurationError, MigrationError, BackupError, EmbeddingDimensionMismatch:
                                   server-side problems
any other exception        500     ``internal_error`` with the request id, never a stack trace or detail
=========================  ======  ==========================================================================

A store error whose message is sent also names its class in ``error`` (``ConversationNotFound``,
``DuplicateIdentity``, ``InvalidCursor``…), so that a client maps the answer back to the very class the library
raises (``mnemostore.Client``); ``(status, code)`` alone names the row of the table.

Errors raised by the HTTP layer itself use the same body: 401 (``WWW-Authenticate: Bearer``), 403 for a
read-only key writing or a tenant key on the admin endpoints, 404/405 for unknown routes, 413 for a body over
``MNEMOSTORE_MAX_REQUEST_BYTES`` and 422 for request validation (``fields`` names each field; a body that is
not JSON, or nests deeper than ``MAX_JSON_DEPTH``, is a 422 of the field ``body`` saying which).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any, Final

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from mnemostore.errors import (
    AuthenticationError,
    BackendUnavailable,
    ConflictError,
    EmbedderNotConfigured,
    EmbedderUnavailable,
    InvalidInput,
    MnemostoreError,
    ModelNotAllowed,
    NotFoundError,
    PermissionDenied,
    QuotaExceeded,
    RateLimited,
    ReadOnlyKey,
    SchemaOutOfDate,
    TenantSuspended,
    VectorSearchUnavailable,
)

from ._context import request_id_of
from ._json_body import BodyTooDeep

__all__ = [
    "ERROR_RESPONSES",
    "ERROR_TABLE",
    "ApiError",
    "ErrorRule",
    "answer_error",
    "error_response",
    "install_error_handlers",
    "rule_for",
]

log = logging.getLogger("mnemostore.api")


@dataclass(frozen=True, slots=True)
class ErrorRule:
    status: int
    code: str
    expose: bool = True
    """Send the exception's own message; when False, ``message`` below is sent and the real one is logged."""
    message: str = ""
    retry_after: bool = False


ERROR_TABLE: Final[dict[type[BaseException], ErrorRule]] = {
    RateLimited: ErrorRule(429, "rate_limited", retry_after=True),
    AuthenticationError: ErrorRule(401, "unauthorized"),
    ReadOnlyKey: ErrorRule(403, "read_only_key"),
    TenantSuspended: ErrorRule(403, "tenant_suspended"),
    PermissionDenied: ErrorRule(403, "forbidden"),
    QuotaExceeded: ErrorRule(403, "quota_exceeded"),
    ModelNotAllowed: ErrorRule(403, "model_not_allowed"),
    NotFoundError: ErrorRule(404, "not_found"),
    ConflictError: ErrorRule(409, "conflict"),
    InvalidInput: ErrorRule(422, "invalid_input"),
    EmbedderNotConfigured: ErrorRule(400, "embedder_not_configured"),
    VectorSearchUnavailable: ErrorRule(501, "search_unavailable"),
    EmbedderUnavailable: ErrorRule(503, "search_unavailable", retry_after=True),
    SchemaOutOfDate: ErrorRule(
        503,
        "schema_out_of_date",
        expose=False,
        message="the database schema is behind this server's code: an operator must run `mnemostore db upgrade`",
        retry_after=True,
    ),
    BackendUnavailable: ErrorRule(
        503,
        "backend_unavailable",
        expose=False,
        message="the database is not answering: retry later",
        retry_after=True,
    ),
    MnemostoreError: ErrorRule(500, "internal_error", expose=False, message="internal error"),
}

_INTERNAL: Final = ErrorRule(500, "internal_error", expose=False, message="internal error")


def rule_for(error: BaseException) -> ErrorRule:
    """The table's rule for ``error``: the entry of the nearest class in its MRO, else 500."""
    for cls in type(error).__mro__:
        rule = ERROR_TABLE.get(cls)
        if rule is not None:
            return rule
    return _INTERNAL


class ApiError(Exception):
    """An error of the HTTP layer itself (401, 403, 413…), answered with the common body."""

    def __init__(self, status: int, code: str, message: str, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}


def error_response(
    request_id: str,
    status: int,
    code: str,
    message: str,
    *,
    headers: dict[str, str] | None = None,
    fields: list[dict[str, Any]] | None = None,
    error: str | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {"code": code, "message": message, "request_id": request_id}
    if error is not None:
        body["error"] = error
    if fields is not None:
        body["fields"] = fields
    return JSONResponse(body, status_code=status, headers=headers)


def _store_error(request: Request, error: Exception) -> JSONResponse:
    rule = rule_for(error)
    request_id = request_id_of(request.scope)
    headers: dict[str, str] = {}
    if rule.retry_after:
        seconds = getattr(error, "retry_after", 1.0)
        headers["Retry-After"] = str(max(1, math.ceil(seconds)))
    if isinstance(error, RateLimited):
        metrics = getattr(request.app.state, "metrics", None)
        if metrics is not None:
            metrics.rate_limited.labels(scope=error.scope).inc()
    name: str | None = None
    if rule.expose:
        message = str(error)
        name = type(error).__name__
    else:
        message = rule.message
        # The real message may name hosts or paths: it goes to the log, with the request id, not to the client.
        log.error(
            "request failed: %s: %s",
            type(error).__name__,
            error,
            extra={"request_id": request_id, "status": rule.status},
        )
    return error_response(request_id, rule.status, rule.code, message, headers=headers, error=name)


def _api_error(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, ApiError)
    return error_response(request_id_of(request.scope), error.status, error.code, error.message, headers=error.headers)


def answer_error(request: Request, error: ApiError | MnemostoreError) -> JSONResponse:
    """The answer the exception handlers give ``error``, for an endpoint that catches it itself (``/mcp``)."""
    if isinstance(error, ApiError):
        return _api_error(request, error)
    return _store_error(request, error)


_HTTP_CODES: Final = {
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
}


def _http_error(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, StarletteHTTPException)
    if error.status_code == 400 or isinstance(error, BodyTooDeep):
        # FastAPI's answer to a body it cannot decode (not UTF-8, not parseable), or one nested too deep for the
        # parser (``_json_body``): a validation error of the body.
        if isinstance(error, BodyTooDeep):
            problem = {"loc": ["body"], "field": "body", "message": error.detail, "type": "json_too_deep"}
        else:
            problem = {
                "loc": ["body"],
                "field": "body",
                "message": "not a JSON document in UTF-8",
                "type": "json_invalid",
            }
        return error_response(
            request_id_of(request.scope), 422, "validation_error", "invalid request: check body", fields=[problem]
        )
    code = _HTTP_CODES.get(error.status_code, "http_error")
    message = "no such endpoint: see /docs" if error.status_code == 404 else str(error.detail)
    return error_response(
        request_id_of(request.scope), error.status_code, code, message, headers=dict(error.headers or {})
    )


def _location(loc: tuple[int | str, ...]) -> list[str | int]:
    # pydantic adds the tag of a union member (``str``, ``function-after[...]``) to the path: not a field.
    return [part for part in loc if isinstance(part, int) or ("[" not in part and part not in {"str", "int"})]


def _validation_error(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, RequestValidationError)
    fields: list[dict[str, Any]] = []
    names: dict[str, None] = {}
    for problem in error.errors():
        loc = _location(tuple(problem.get("loc", ())))
        name = ".".join(str(part) for part in loc)
        names[name] = None
        # The input is not echoed back: it may be large, and it may be a message a log or proxy should not keep.
        fields.append(
            {
                "loc": loc,
                "field": name,
                "message": str(problem.get("msg", "invalid")),
                "type": str(problem.get("type", "value_error")),
            }
        )
    return error_response(
        request_id_of(request.scope),
        422,
        "validation_error",
        f"invalid request: check {', '.join(names) or 'the request'}",
        fields=jsonable_encoder(fields),
    )


def install_error_handlers(app: FastAPI) -> None:
    """Answer every error with the common body. Unknown exceptions are caught by the outermost middleware
    (``_middleware.RequestMiddleware``), which logs them with their traceback and answers 500."""
    app.add_exception_handler(MnemostoreError, _store_error)
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)


def _doc(description: str, *, headers: dict[str, str] | None = None) -> dict[str, Any]:
    from .schemas import ErrorBody

    entry: dict[str, Any] = {"model": ErrorBody, "description": description}
    if headers:
        entry["headers"] = {name: {"description": text, "schema": {"type": "string"}} for name, text in headers.items()}
    return entry


ERROR_RESPONSES: Final[dict[int | str, dict[str, Any]]] = {
    401: _doc("missing or unknown API key", headers={"WWW-Authenticate": "Bearer"}),
    403: _doc("read-only key writing, tenant key on an admin endpoint, a quota reached, or a model the plan forbids"),
    404: _doc("no such object in this tenant (another tenant's objects do not exist here)"),
    409: _doc("the write would break a uniqueness rule"),
    413: _doc("the request body is larger than MNEMOSTORE_MAX_REQUEST_BYTES"),
    422: _doc("invalid request: `fields` names each invalid field"),
    429: _doc("a rate limit is used up", headers={"Retry-After": "seconds to wait"}),
    500: _doc("internal error: quote the request_id"),
    503: _doc("database unavailable or schema behind", headers={"Retry-After": "seconds to wait"}),
}
"""Documented on every /v1 operation, so clients (and the schema fuzzing in the tests) know every answer."""
