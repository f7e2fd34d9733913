"""Field types and the shapes every body shares: input and output bases, pages, errors, health."""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field

from mnemostore.config import MAX_INTEGER, MAX_JSON_DEPTH

T = TypeVar("T")

MAX_INT32 = 2**31 - 1
MAX_INT64 = MAX_INTEGER
MAX_BATCH = 1000


# -- field types ---------------------------------------------------------------------------------------------------


def _clean_text(value: str) -> str:
    if "\x00" in value:
        raise ValueError("contains a NUL character (\\u0000), which the store refuses")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as error:
        raise ValueError(f"is not valid Unicode (lone surrogate at {error.start})") from None
    return value


def _depth(value: Any) -> int:
    """How deep ``value`` nests (a scalar: 0), counted without recursion (it may be nested 900 deep)."""
    deepest, stack = 0, [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, Mapping | list):
            deepest = max(deepest, depth + 1)
            stack.extend((child, depth + 1) for child in (item.values() if isinstance(item, Mapping) else item))
    return deepest


def _clean_json(value: Any, depth: int = 0) -> None:
    """The store's rules for JSON (``service._validation``), checked here so the answer names the field."""
    if isinstance(value, str):
        _clean_text(value)
    elif isinstance(value, Mapping | list) and depth >= MAX_JSON_DEPTH:
        raise ValueError(
            f"is nested {depth + _depth(value)} levels deep, over the limit of {MAX_JSON_DEPTH} (MAX_JSON_DEPTH): "
            "flatten it, or send the deep part as a JSON string"
        )
    elif isinstance(value, Mapping):
        for key, item in value.items():
            _clean_text(key)
            _clean_json(item, depth + 1)
    elif isinstance(value, list):
        for item in value:
            _clean_json(item, depth + 1)
    elif isinstance(value, int) and not isinstance(value, bool) and not -MAX_INTEGER <= value <= MAX_INTEGER:
        raise ValueError(
            f"holds an integer outside -{MAX_INTEGER} to {MAX_INTEGER} (signed 64-bit), which the store does not "
            "keep: send it as a string"
        )
    elif isinstance(value, float) and not math.isfinite(value):
        raise ValueError("holds NaN or an infinity, which JSON cannot store")


def _json_object(value: dict[str, Any]) -> dict[str, Any]:
    _clean_json(value)
    return value


def _json_value(value: Any) -> Any:
    _clean_json(value)
    return value


def _utc(value: datetime) -> datetime:
    try:
        return value.astimezone(UTC)
    except (OverflowError, ValueError):
        raise ValueError("is out of range once converted to UTC") from None


Text = Annotated[str, AfterValidator(_clean_text)]
"""Any text the store keeps (message content, knowledge, memories)."""

JsonObject = Annotated[dict[str, Any], AfterValidator(_json_object)]
"""A JSON object (metadata, config, state); its size is checked by the store (MNEMOSTORE_MAX_METADATA_BYTES)."""

JsonValue = Annotated[Any, AfterValidator(_json_value)]

Timestamp = Annotated[AwareDatetime, AfterValidator(_utc)]
"""An ISO 8601 timestamp with a UTC offset (``2026-11-25T09:30:00Z``)."""


_Clean = AfterValidator(_clean_text)
Name50 = Annotated[str, Field(max_length=50), _Clean]
Name200 = Annotated[str, Field(max_length=200), _Clean]
Name320 = Annotated[str, Field(max_length=320), _Clean]
Name500 = Annotated[str, Field(max_length=500), _Clean]
Name1000 = Annotated[str, Field(max_length=1000), _Clean]
Required50 = Annotated[str, Field(min_length=1, max_length=50), _Clean]
Required100 = Annotated[str, Field(min_length=1, max_length=100), _Clean]
Required200 = Annotated[str, Field(min_length=1, max_length=200), _Clean]
Required500 = Annotated[str, Field(min_length=1, max_length=500), _Clean]
TokenCount = Annotated[int, Field(ge=0, le=MAX_INT32)]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class _Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


# -- common --------------------------------------------------------------------------------------------------------


class FieldError(BaseModel):
    """One invalid field of a request."""

    loc: list[str | int] = Field(description='where the field is: ["body", "content"], ["query", "limit"]…')
    field: str = Field(description="the same, dotted: body.content")
    message: str
    type: str = Field(description="the kind of problem, e.g. missing, string_too_long, enum")


class ErrorBody(BaseModel):
    """Every error answer: a stable code, a message saying what to do, and the request id to quote."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "code": "not_found",
                    "message": "conversation 0193a1c4-5d2e-7c3b-9f10-2b4c6d8e0f12 not found",
                    "request_id": "3f2b9c1d7e8a4b5c9d0e1f2a3b4c5d6e",
                    "error": "ConversationNotFound",
                }
            ]
        }
    )

    code: str = Field(
        description="unauthorized, forbidden, read_only_key, quota_exceeded, not_found, conflict, payload_too_large, "
        "validation_error, invalid_input, rate_limited, search_unavailable, backend_unavailable, schema_out_of_date, "
        "internal_error, method_not_allowed"
    )
    message: str
    request_id: str
    error: str | None = Field(
        default=None,
        description="with an error of the store: the mnemostore exception class, e.g. ConversationNotFound "
        "(its message is the message above)",
    )
    fields: list[FieldError] | None = Field(default=None, description="with validation_error: the invalid fields")


class Page(BaseModel, Generic[T]):
    """One page of a listing. Pass ``next_cursor`` back as ``cursor`` for the next page; null: no more."""

    items: list[T]
    next_cursor: str | None = None


class Items(BaseModel, Generic[T]):
    """The results of a batch call, in the order of the request."""

    items: list[T]


class HealthOut(BaseModel):
    status: Literal["ok"] = "ok"


class ReadyOut(BaseModel):
    """Readiness: the database answers and its schema is at head; Redis and the indexing backlog are reported."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "ready": True,
                    "checks": {
                        "database": {"status": "ok", "summary": "reachable, 0.4 ms", "latency_ms": 0.4},
                        "schema": {"status": "ok", "summary": "at head 0002"},
                        "redis": {"status": "ok", "summary": "not configured: in-process cache"},
                    },
                    "indexing_backlog": None,
                }
            ]
        }
    )

    ready: bool
    checks: dict[str, dict[str, Any]]
    indexing_backlog: int | None = Field(
        default=None, description="jobs waiting to be indexed; null until background indexing exists (issue #3)"
    )


# A vector the caller computed (its model is named beside it): finite numbers, at most pgvector's 16,000.
Vector = Annotated[
    list[Annotated[float, Field(allow_inf_nan=False)]],
    Field(min_length=1, max_length=16_000, description="an embedding computed by the caller"),
]
ModelName = Annotated[
    str,
    Field(min_length=1, max_length=200, description="the model that computed the vector (default: the store's)"),
    _Clean,
]
