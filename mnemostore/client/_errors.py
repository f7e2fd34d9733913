"""The service's error answers back into mnemostore's exceptions: the same classes the library raises.

The service answers every error with ``{"code", "message", "request_id"}`` (``mnemostore.api.errors``), plus
``error`` (the exception's class) for the store's errors and ``fields`` for 422. ``(status, code)`` names the row
of the service's table (``CLASSES`` is its inverse: the tests check both ways); ``error`` then names the subclass
(``ConversationNotFound`` for a ``not_found``), when it is one of ``mnemostore.errors``. The message is the
service's own; ``status``, ``code`` and ``request_id`` are set on the exception, ``fields`` on an ``InvalidInput``,
and the attributes a class has in the library (``RateLimited.retry_after``, ``QuotaExceeded.limit``,
``NotFoundError.key``…) are read back from the answer.
"""

from __future__ import annotations

import ast
import math
import re
from collections.abc import Mapping
from typing import Any, Final

from mnemostore import errors
from mnemostore.errors import (
    AuthenticationError,
    BackendUnavailable,
    ConflictError,
    ContentTooLarge,
    EmbedderNotConfigured,
    EmbedderUnavailable,
    IdempotencyConflict,
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

__all__ = ["CLASSES", "error_from_answer", "retry_after_seconds"]

CLASSES: Final[dict[tuple[int, str], type[MnemostoreError]]] = {
    (401, "unauthorized"): AuthenticationError,
    (403, "forbidden"): PermissionDenied,
    (403, "read_only_key"): ReadOnlyKey,
    (403, "tenant_suspended"): TenantSuspended,
    (403, "quota_exceeded"): QuotaExceeded,
    (403, "model_not_allowed"): ModelNotAllowed,
    (404, "not_found"): NotFoundError,
    (409, "conflict"): ConflictError,
    (413, "payload_too_large"): ContentTooLarge,
    (422, "invalid_input"): InvalidInput,
    (422, "validation_error"): InvalidInput,
    (429, "rate_limited"): RateLimited,
    (400, "embedder_not_configured"): EmbedderNotConfigured,
    (501, "search_unavailable"): VectorSearchUnavailable,
    (503, "search_unavailable"): EmbedderUnavailable,
    (503, "schema_out_of_date"): SchemaOutOfDate,
    (503, "backend_unavailable"): BackendUnavailable,
    (500, "internal_error"): MnemostoreError,
}
"""(status, code) of an error answer -> the class the service's table maps to it."""

_RATE = re.compile(r"rate limit of (?P<scope>.+?) reached \((?P<limit>\d+) per (?P<window>[0-9.e+-]+) s\)")
_IDEMPOTENCY = re.compile(
    r"idempotency key (?P<key>'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\") was used for message (?P<seq>\d+), "
    r"whose (?P<fields>[a-z_, ]+?) differ"
)
_MODEL = re.compile(
    r"model (?P<model>'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\") is not allowed by the plan of tenant (?P<tenant>\S+) "
    r"\(allowed: (?P<allowed>.*)\): use"
)
_QUOTA = re.compile(r"tenant (?P<tenant>\S+) has reached its (?P<quota>\S+) quota \((?P<limit>\d+)\)")


def retry_after_seconds(headers: Mapping[str, str]) -> float | None:
    """The ``Retry-After`` of an answer in seconds (the service sends whole seconds), or None."""
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None  # an HTTP date: the service never sends one, a proxy might; the client's backoff applies
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


def error_from_answer(status: int, headers: Mapping[str, str], body: Any) -> MnemostoreError:
    """The exception for an error answer (``status`` >= 400) with its headers and decoded JSON body (or text)."""
    if not isinstance(body, Mapping) or not isinstance(body.get("code"), str):
        return _make(
            BackendUnavailable if status in (502, 503, 504) else MnemostoreError,
            f"the service answered HTTP {status} without an error body"
            + (" (a proxy in between?): retry later" if status in (502, 503, 504) else f": {str(body)[:200]!r}"),
            status=status,
        )
    code: str = body["code"]
    message = str(body.get("message") or code)
    cls = CLASSES.get((status, code), MnemostoreError)
    named = getattr(errors, str(body.get("error")), None)
    if isinstance(named, type) and issubclass(named, cls):
        cls = named
    error = _make(cls, message, status=status, code=code, request_id=body.get("request_id"))
    if isinstance(error, InvalidInput) and isinstance(body.get("fields"), list):
        error.fields = list(body["fields"])
    _restore_attributes(error, message, headers)
    return error


def _make(cls: type[MnemostoreError], message: str, **attributes: Any) -> MnemostoreError:
    """An instance of ``cls`` whose message is ``message`` (their constructors build messages of their own)."""
    error = cls.__new__(cls)
    Exception.__init__(error, message)
    for name, value in attributes.items():
        setattr(error, name, value)
    return error


def _restore_attributes(error: MnemostoreError, message: str, headers: Mapping[str, str]) -> None:
    """Set what the library's constructor would have set, from the message it wrote and the headers."""
    if isinstance(error, RateLimited):
        match = _RATE.search(message)
        error.scope = match["scope"] if match else "unknown"
        error.limit = int(match["limit"]) if match else 0
        error.window = float(match["window"]) if match else 0.0
        error.retry_after = retry_after_seconds(headers) or 1.0
    elif isinstance(error, QuotaExceeded):
        match = _QUOTA.search(message)
        error.tenant_id = match["tenant"] if match else None
        error.quota = match["quota"] if match else "unknown"
        error.limit = int(match["limit"]) if match else 0
    elif isinstance(error, ModelNotAllowed):
        match = _MODEL.search(message)
        error.tenant_id = match["tenant"] if match else None
        error.model = str(ast.literal_eval(match["model"])) if match else "unknown"
        allowed = match["allowed"] if match else "none"
        error.allowed = () if allowed == "none" else tuple(ast.literal_eval(f"({allowed},)"))
    elif isinstance(error, NotFoundError):
        kind = f"{error.kind} "
        end = message.find(" not found")
        error.key = message[len(kind) : end] if message.startswith(kind) and end > 0 else None
    elif isinstance(error, IdempotencyConflict):
        match = _IDEMPOTENCY.search(message)
        error.key = str(ast.literal_eval(match["key"])) if match else "unknown"
        error.seq = int(match["seq"]) if match else 0
        error.fields = match["fields"].split(", ") if match else []
    elif isinstance(error, SchemaOutOfDate):
        error.current = None
        error.head = "unknown"
