"""Request and response bodies of the HTTP API (pydantic v2), with the examples ``/docs`` shows.

Responses are read straight from the domain dataclasses (``from_attributes``), so a field added to the domain
appears here only when it is added on purpose. Requests refuse unknown fields (a typo is a 422 naming it, not a
silently ignored value) and refuse what the store would refuse, where the field is known: NUL characters and
lone surrogates in text, non-finite numbers, naive timestamps. The store validates again; these checks are here
so that a 422 names the field (``loc``) rather than only describing it.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field

from mnemostore.domain import ConversationStatus, MemoryKind, MemoryTier, Role, TenantStatus

__all__ = [
    "AgentMetricBatch",
    "AgentMetricIn",
    "AgentMetricOut",
    "ApiKeyCreate",
    "ApiKeyCreated",
    "ApiKeyOut",
    "CheckpointCreate",
    "CheckpointOut",
    "ConversationCreate",
    "ConversationExport",
    "ConversationOut",
    "ConversationStatsOut",
    "ConversationUpdate",
    "ErrorBody",
    "FieldError",
    "HealthOut",
    "HistoryOut",
    "IdentityCreate",
    "IdentityOut",
    "InteractionEventCreate",
    "InteractionEventOut",
    "Items",
    "KnowledgeBulkUpsert",
    "KnowledgeChunkIn",
    "KnowledgeChunkOut",
    "KnowledgeSearchRequest",
    "KnowledgeUpsert",
    "MemoryCreate",
    "MemoryOut",
    "MemoryVersionOut",
    "MessageBatch",
    "MessageCreate",
    "MessageOut",
    "Page",
    "QuotasIn",
    "QuotasOut",
    "ReadyOut",
    "SearchFilters",
    "SearchHitOut",
    "SearchRequest",
    "TenantCreate",
    "TenantOut",
    "TenantUpdate",
    "Text",
    "Timestamp",
    "ToolExecutionCreate",
    "ToolExecutionOut",
    "UsageOut",
    "UserCreate",
    "UserOut",
    "UserResolve",
    "UserUpdate",
]

T = TypeVar("T")

MAX_INT32 = 2**31 - 1
MAX_INT64 = 2**63 - 1
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


def _clean_json(value: Any, path: str = "") -> None:
    if isinstance(value, str):
        _clean_text(value)
    elif isinstance(value, Mapping):
        for key, item in value.items():
            _clean_text(key)
            _clean_json(item)
    elif isinstance(value, list):
        for item in value:
            _clean_json(item)
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


# -- tenants and keys ----------------------------------------------------------------------------------------------


class QuotasIn(_In):
    max_users: Annotated[int, Field(ge=0, le=MAX_INT64)] | None = None
    max_messages: Annotated[int, Field(ge=0, le=MAX_INT64)] | None = None
    max_storage_bytes: Annotated[int, Field(ge=0, le=MAX_INT64)] | None = None


class QuotasOut(_Out):
    max_users: int | None
    max_messages: int | None
    max_storage_bytes: int | None


class TenantCreate(_In):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"name": "acme", "plan": "pro", "quotas": {"max_users": 1000}, "config": {"tz": "UTC"}}]
        }
    )

    name: Required200
    plan: Required50 = "free"
    config: JsonObject | None = None
    quotas: QuotasIn | None = None


class TenantUpdate(_In):
    """Fields not sent stay as they are; ``config`` is replaced whole."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"plan": "enterprise", "quotas": {"max_users": 5000}}]})

    config: JsonObject | None = None
    plan: Required50 | None = None
    quotas: QuotasIn | None = None
    status: TenantStatus | None = None


class TenantOut(_Out):
    id: uuid.UUID
    name: str
    plan: str
    status: TenantStatus
    quotas: QuotasOut
    config: dict[str, Any]
    created_at: datetime
    updated_at: datetime


class UsageOut(_Out):
    tenant_id: uuid.UUID
    users: int
    conversations: int
    messages: int
    tokens: int
    storage_bytes: int


class ApiKeyCreate(_In):
    model_config = ConfigDict(json_schema_extra={"examples": [{"name": "ci-bot", "read_only": True}]})

    name: Required200
    read_only: bool = False


class ApiKeyOut(_Out):
    id: uuid.UUID
    tenant_id: uuid.UUID
    name: str
    prefix: str = Field(description="the first characters of the secret, to recognise the key")
    read_only: bool
    created_at: datetime
    revoked_at: datetime | None = None
    last_used_at: datetime | None = None


class ApiKeyCreated(BaseModel):
    """The new key and its secret, which is shown only in this answer (the store keeps its SHA-256)."""

    key: ApiKeyOut
    secret: str = Field(description="send it as `Authorization: Bearer <secret>`")


# -- users ---------------------------------------------------------------------------------------------------------


class UserCreate(_In):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"display_name": "Ada", "email": "ada@example.com", "external_id": "crm-7"}]}
    )

    display_name: Name200 | None = None
    email: Name320 | None = None
    external_id: Name200 | None = None
    preferred_model: Name200 | None = None
    preferences: JsonObject | None = None
    metadata: JsonObject | None = None


class UserResolve(_In):
    """The user behind a channel identity, created on first sight (safe under concurrency)."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"channel": "discord", "channel_user_id": "81234", "username": "ada"}]}
    )

    channel: Required50
    channel_user_id: Required200
    username: Name200 | None = None
    display_name: Name200 | None = None
    email: Name320 | None = None
    preferred_model: Name200 | None = None
    preferences: JsonObject | None = None
    metadata: JsonObject | None = None


class UserUpdate(_In):
    """Only the fields sent change; send null to clear a field."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"preferred_model": "gpt-4o", "external_id": None}]})

    display_name: Name200 | None = None
    email: Name320 | None = None
    external_id: Name200 | None = None
    preferred_model: Name200 | None = None
    preferences: JsonObject | None = None
    metadata: JsonObject | None = None


class UserOut(_Out):
    id: uuid.UUID
    tenant_id: uuid.UUID
    display_name: str | None
    email: str | None
    external_id: str | None
    preferred_model: str | None
    preferences: dict[str, Any]
    metadata: dict[str, Any]
    created_at: datetime
    updated_at: datetime


class IdentityCreate(_In):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"channel": "telegram", "channel_user_id": "5550001", "username": "ada"}]}
    )

    channel: Required50
    channel_user_id: Required200
    username: Name200 | None = None


class IdentityOut(_Out):
    user_id: uuid.UUID
    channel: str
    channel_user_id: str
    username: str | None
    created_at: datetime


# -- conversations and messages ------------------------------------------------------------------------------------


class ConversationCreate(_In):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"user_id": "0193a1c4-5d2e-7c3b-9f10-2b4c6d8e0f12", "title": "Trip to Lisbon", "channel": "discord"}
            ]
        }
    )

    user_id: uuid.UUID
    title: Name500 | None = None
    channel: Name50 | None = None
    model_override: Name200 | None = None
    metadata: JsonObject | None = None


class ConversationUpdate(_In):
    """Only the fields sent change; send null to clear ``title`` or ``model_override``."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"title": "Lisbon, May"}]})

    title: Name500 | None = None
    status: ConversationStatus | None = None
    model_override: Name200 | None = None
    metadata: JsonObject | None = None


class ConversationOut(_Out):
    id: uuid.UUID
    tenant_id: uuid.UUID
    user_id: uuid.UUID
    title: str | None
    status: ConversationStatus
    channel: str | None
    model_override: str | None
    metadata: dict[str, Any]
    started_at: datetime
    last_activity_at: datetime
    message_count: int
    total_tokens: int
    content_bytes: int
    last_seq: int


class ConversationStatsOut(_Out):
    conversation_id: uuid.UUID
    message_count: int
    messages_by_role: dict[str, int]
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    tool_executions: int
    checkpoints: int
    first_message_at: datetime | None
    last_message_at: datetime | None


class ExportedConversation(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: uuid.UUID | None = None
    user_id: uuid.UUID
    title: Name500 | None = None
    status: ConversationStatus = ConversationStatus.ACTIVE
    channel: Name50 | None = None
    model_override: Name200 | None = None
    metadata: JsonObject | None = None
    started_at: Timestamp
    last_activity_at: Timestamp


class ExportedMessage(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    id: uuid.UUID | None = None
    seq: Annotated[int, Field(ge=1, le=MAX_INT64)]
    role: Role
    content: Text
    model: Name200 | None = None
    prompt_tokens: TokenCount = 0
    completion_tokens: TokenCount = 0
    metadata: JsonObject | None = None
    created_at: Timestamp
    idempotency_key: Name200 | None = None


class ConversationExport(BaseModel):
    """A conversation with all its messages (``GET …/export``), as ``POST /v1/conversations/import`` takes it."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "format": "mnemostore.conversation",
                    "version": 1,
                    "conversation": {
                        "id": "0193a1c4-5d2e-7c3b-9f10-2b4c6d8e0f12",
                        "user_id": "0193a1c4-5d2e-7c3b-9f10-2b4c6d8e0f13",
                        "title": "Trip to Lisbon",
                        "status": "active",
                        "channel": "discord",
                        "model_override": None,
                        "metadata": {},
                        "started_at": "2026-11-25T09:30:00Z",
                        "last_activity_at": "2026-11-25T09:31:00Z",
                    },
                    "messages": [
                        {
                            "id": "0193a1c4-5d2e-7c3b-9f10-2b4c6d8e0f14",
                            "seq": 1,
                            "role": "user",
                            "content": "Find me a hotel near Alfama",
                            "model": None,
                            "prompt_tokens": 0,
                            "completion_tokens": 0,
                            "metadata": {},
                            "created_at": "2026-11-25T09:30:00Z",
                            "idempotency_key": None,
                        }
                    ],
                }
            ]
        },
    )

    format: Literal["mnemostore.conversation"]
    version: Literal[1]
    conversation: ExportedConversation
    messages: list[ExportedMessage]


class MessageCreate(_In):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"role": "user", "content": "Find me a hotel near Alfama"},
                {
                    "role": "assistant",
                    "content": "Here are three options…",
                    "model": "gpt-4o",
                    "prompt_tokens": 412,
                    "completion_tokens": 96,
                },
            ]
        }
    )

    role: Role
    content: Text
    model: Name200 | None = None
    prompt_tokens: TokenCount = 0
    completion_tokens: TokenCount = 0
    metadata: JsonObject | None = None
    idempotency_key: Name200 | None = Field(
        default=None, description="retrying with the same key returns the first message; or use the header"
    )


class MessageBatch(_In):
    """Messages appended in order, in one transaction (all or none)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "messages": [
                        {"role": "user", "content": "And a restaurant?"},
                        {"role": "assistant", "content": "Try Taberna…", "model": "gpt-4o"},
                    ]
                }
            ]
        }
    )

    messages: Annotated[list[MessageCreate], Field(min_length=1, max_length=MAX_BATCH)]


class MessageOut(_Out):
    id: uuid.UUID
    tenant_id: uuid.UUID
    conversation_id: uuid.UUID
    seq: int
    role: Role
    content: str
    model: str | None
    prompt_tokens: int
    completion_tokens: int
    metadata: dict[str, Any]
    created_at: datetime
    idempotency_key: str | None = None


class HistoryOut(_Out):
    """Messages in conversation order. ``before``: cursor of the older page; ``after``: of the newer one."""

    messages: list[MessageOut]
    before: str | None
    after: str | None


# -- memories, knowledge, search -----------------------------------------------------------------------------------


class MemoryCreate(_In):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "content": "Ada prefers hotels within walking distance of the old town",
                    "user_id": "0193a1c4-5d2e-7c3b-9f10-2b4c6d8e0f13",
                    "kind": "preference",
                    "tier": "long_term",
                    "importance": 0.8,
                }
            ]
        }
    )

    content: Text
    user_id: uuid.UUID | None = None
    agent_id: Name200 | None = None
    kind: MemoryKind = MemoryKind.FACT
    tier: MemoryTier = MemoryTier.SHORT_TERM
    importance: Annotated[float, Field(ge=0.0, le=1.0)] = 0.5
    source_message_ids: Annotated[list[uuid.UUID], Field(max_length=MAX_BATCH)] = []
    compression_level: TokenCount = 0
    expires_at: Timestamp | None = None
    metadata: JsonObject | None = None


class MemoryOut(_Out):
    id: uuid.UUID
    tenant_id: uuid.UUID
    user_id: uuid.UUID | None
    agent_id: str | None
    content: str
    kind: MemoryKind
    tier: MemoryTier
    importance: float
    source_message_ids: list[str]
    compression_level: int
    expires_at: datetime | None
    metadata: dict[str, Any]
    created_at: datetime
    updated_at: datetime


class KnowledgeChunkIn(_In):
    external_id: Required500
    content: Text
    title: Name1000 | None = None
    metadata: JsonObject | None = None


class KnowledgeUpsert(KnowledgeChunkIn):
    """Insert or update the chunk keyed by (source, external_id); unchanged content writes nothing."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "source": "handbook",
                    "external_id": "travel-policy#3",
                    "content": "Hotels up to 180 EUR a night are approved.",
                    "title": "Travel policy: hotels",
                }
            ]
        }
    )

    source: Required500


class KnowledgeBulkUpsert(_In):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "source": "handbook",
                    "chunks": [
                        {"external_id": "travel-policy#1", "content": "Book trains for trips under 4 hours."},
                        {"external_id": "travel-policy#2", "content": "Economy class for flights under 6 hours."},
                    ],
                }
            ]
        }
    )

    source: Required500
    chunks: Annotated[list[KnowledgeChunkIn], Field(min_length=1, max_length=MAX_BATCH)]


class KnowledgeChunkOut(_Out):
    id: uuid.UUID
    tenant_id: uuid.UUID
    source: str
    external_id: str
    title: str | None
    content: str
    content_hash: str
    metadata: dict[str, Any]
    created_at: datetime
    updated_at: datetime


class SearchFilters(_In):
    """Filters of a search. One a kind cannot satisfy leaves that kind out: ``role`` and ``conversation_id`` apply
    to messages, ``tier`` and ``agent_id`` to memories, ``user_id`` to the user's messages and memories."""

    user_id: uuid.UUID | None = None
    agent_id: Name200 | None = None
    conversation_id: uuid.UUID | None = None
    tier: MemoryTier | None = None
    role: Role | None = None
    since: Timestamp | None = None
    until: Timestamp | None = None
    metadata: dict[Annotated[str, _Clean], Annotated[str, _Clean] | int | float | bool | None] | None = Field(
        default=None, description="top-level metadata keys that must equal these values"
    )


class KnowledgeSearchRequest(_In):
    """Search knowledge chunks: semantic (by meaning), fulltext (by words) or hybrid (both, fused)."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"query": "hotel budget", "mode": "hybrid", "limit": 5}]})

    query: Annotated[str, Field(min_length=1, max_length=10_000), _Clean]
    mode: Literal["semantic", "fulltext", "hybrid"] = "hybrid"
    filters: SearchFilters | None = None
    limit: Annotated[int, Field(ge=1, le=100)] = 10
    min_score: float | None = Field(
        default=None, description="drop hits scoring lower before boosts (cosine, text score or fused score)"
    )
    weights: dict[Literal["semantic", "fulltext"], Annotated[float, Field(ge=0, allow_inf_nan=False)]] | None = Field(
        default=None,
        description='hybrid mode: how much each retriever counts in the fusion, default {"semantic": 1, "fulltext": 1}',
    )


class SearchRequest(KnowledgeSearchRequest):
    """Search messages, memories and knowledge: semantic (by meaning), fulltext (by words) or hybrid (both, fused
    by reciprocal rank). Full text finds an item once it is committed; semantic search once it is indexed."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "query": "what can't Ada eat?",
                    "mode": "hybrid",
                    "scope": "memories",
                    "filters": {"user_id": "0193a1c4-5d2e-7c3b-9f10-2b4c6d8e0f13"},
                    "limit": 5,
                }
            ]
        }
    )

    scope: Literal["messages", "memories", "knowledge", "all"] = "all"


class SearchHitOut(_Out):
    """One item found, with each retriever's score and rank (``scores``/``ranks``: ``semantic``, ``fulltext``)."""

    kind: Literal["messages", "memories", "knowledge"]
    id: uuid.UUID
    content: str
    score: float
    scores: dict[str, float]
    ranks: dict[str, int]
    created_at: datetime
    metadata: dict[str, Any]
    user_id: uuid.UUID | None = None
    conversation_id: uuid.UUID | None = None
    role: str | None = None
    agent_id: str | None = None
    tier: str | None = None
    importance: float | None = None
    title: str | None = None
    source: str | None = None


class MemoryVersionOut(_Out):
    """An earlier state of a memory, replaced at ``created_at`` by an update or a near-duplicate."""

    id: uuid.UUID
    memory_id: uuid.UUID
    content: str
    importance: float
    metadata: dict[str, Any]
    created_at: datetime


# -- agent audit and state -----------------------------------------------------------------------------------------


class ToolExecutionCreate(_In):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "tool": "hotel_search",
                    "conversation_id": "0193a1c4-5d2e-7c3b-9f10-2b4c6d8e0f12",
                    "parameters": {"area": "Alfama"},
                    "result": {"hits": 3},
                    "duration_ms": 240.5,
                }
            ]
        }
    )

    tool: Required200
    conversation_id: uuid.UUID | None = None
    action: Name200 | None = None
    parameters: JsonObject | None = None
    result: JsonValue = None
    success: bool = True
    error: Text | None = None
    duration_ms: Annotated[float, Field(ge=0)] | None = None


class ToolExecutionOut(_Out):
    id: uuid.UUID
    tenant_id: uuid.UUID
    conversation_id: uuid.UUID | None
    tool: str
    action: str | None
    parameters: dict[str, Any]
    result: Any
    success: bool
    error: str | None
    duration_ms: float | None
    created_at: datetime


class CheckpointCreate(_In):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"iteration": 1, "name": "after-search", "state": {"step": "compare"}}]}
    )

    iteration: TokenCount
    state: JsonObject
    name: Name200 | None = None
    context_summary: Text | None = None
    parent_id: uuid.UUID | None = Field(
        default=None, description="the checkpoint this one continues from; not sent: the latest one"
    )


class CheckpointOut(_Out):
    id: uuid.UUID
    tenant_id: uuid.UUID
    conversation_id: uuid.UUID
    iteration: int
    name: str | None
    state: dict[str, Any]
    context_summary: str | None
    parent_id: uuid.UUID | None
    created_at: datetime


class InteractionEventCreate(_In):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "event_type": "approval",
                    "conversation_id": "0193a1c4-5d2e-7c3b-9f10-2b4c6d8e0f12",
                    "data": {"approved": "packing list"},
                }
            ]
        }
    )

    event_type: Required100
    conversation_id: uuid.UUID | None = None
    checkpoint_id: uuid.UUID | None = None
    data: JsonObject | None = None
    goal_modified: bool = False


class InteractionEventOut(_Out):
    id: uuid.UUID
    tenant_id: uuid.UUID
    conversation_id: uuid.UUID | None
    checkpoint_id: uuid.UUID | None
    event_type: str
    data: dict[str, Any]
    goal_modified: bool
    created_at: datetime


class AgentMetricIn(_In):
    metric_type: Required100
    value: float
    conversation_id: uuid.UUID | None = None
    labels: JsonObject | None = None
    recorded_at: Timestamp | None = None


class AgentMetricBatch(_In):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"metrics": [{"metric_type": "response_latency_ms", "value": 812.0, "labels": {"m": "a"}}]}]
        }
    )

    metrics: Annotated[list[AgentMetricIn], Field(min_length=1, max_length=MAX_BATCH)]


class AgentMetricOut(_Out):
    id: uuid.UUID
    tenant_id: uuid.UUID
    conversation_id: uuid.UUID | None
    metric_type: str
    value: float
    labels: dict[str, Any]
    recorded_at: datetime
