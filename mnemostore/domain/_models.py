"""The domain model: plain dataclasses that every backend maps to.

Nothing here does I/O or imports SQLAlchemy, so the same objects come back from SQLite, PostgreSQL, the cache
and the HTTP API, and services can be tested against them without a database.
"""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, TypeVar

__all__ = [
    "AgentMetric",
    "ApiKey",
    "AppendResult",
    "ChannelConfig",
    "Checkpoint",
    "Conversation",
    "ConversationStats",
    "ConversationStatus",
    "HistoryPage",
    "InteractionEvent",
    "KnowledgeChunk",
    "MemoryKind",
    "MemoryRecord",
    "MemoryTier",
    "MemoryVersion",
    "Message",
    "NewMessage",
    "Page",
    "Quotas",
    "Role",
    "Tenant",
    "TenantStatus",
    "TenantUsage",
    "ToolExecution",
    "User",
    "UserIdentity",
]

JSON = dict[str, Any]
T = TypeVar("T")


class Role(enum.StrEnum):
    USER = "user"
    ASSISTANT = "assistant"
    SYSTEM = "system"
    TOOL = "tool"


class ConversationStatus(enum.StrEnum):
    ACTIVE = "active"
    ARCHIVED = "archived"


class TenantStatus(enum.StrEnum):
    ACTIVE = "active"
    SUSPENDED = "suspended"


class MemoryTier(enum.StrEnum):
    WORKING = "working"
    SHORT_TERM = "short_term"
    LONG_TERM = "long_term"


class MemoryKind(enum.StrEnum):
    FACT = "fact"
    PREFERENCE = "preference"
    EPISODE = "episode"
    SUMMARY = "summary"


@dataclass(slots=True, kw_only=True, frozen=True)
class Quotas:
    """Plan limits of a tenant; None means unlimited.

    ``allowed_models``: the models conversations and messages may name (``model_override``, a message's ``model``);
    None allows any, an empty tuple none.
    """

    max_users: int | None = None
    max_messages: int | None = None
    max_storage_bytes: int | None = None
    allowed_models: tuple[str, ...] | None = None


@dataclass(slots=True, kw_only=True)
class Tenant:
    id: uuid.UUID
    name: str
    plan: str
    status: TenantStatus
    quotas: Quotas
    config: JSON
    created_at: datetime
    updated_at: datetime


@dataclass(slots=True, kw_only=True, frozen=True)
class TenantUsage:
    """What a tenant holds now; ``storage_bytes`` counts the UTF-8 bytes of message and knowledge content."""

    tenant_id: uuid.UUID
    users: int
    conversations: int
    messages: int
    tokens: int
    storage_bytes: int


@dataclass(slots=True, kw_only=True)
class ApiKey:
    id: uuid.UUID
    tenant_id: uuid.UUID
    name: str
    prefix: str
    read_only: bool
    created_at: datetime
    revoked_at: datetime | None = None
    last_used_at: datetime | None = None


@dataclass(slots=True, kw_only=True)
class User:
    id: uuid.UUID
    tenant_id: uuid.UUID
    display_name: str | None
    email: str | None
    external_id: str | None
    preferred_model: str | None
    preferences: JSON
    metadata: JSON
    created_at: datetime
    updated_at: datetime


@dataclass(slots=True, kw_only=True)
class UserIdentity:
    tenant_id: uuid.UUID
    user_id: uuid.UUID
    channel: str
    channel_user_id: str
    username: str | None
    created_at: datetime


@dataclass(slots=True, kw_only=True)
class ChannelConfig:
    tenant_id: uuid.UUID
    channel: str
    default_model: str | None
    settings: JSON
    rate_limits: JSON
    updated_at: datetime


@dataclass(slots=True, kw_only=True)
class Conversation:
    id: uuid.UUID
    tenant_id: uuid.UUID
    user_id: uuid.UUID
    title: str | None
    status: ConversationStatus
    channel: str | None
    model_override: str | None
    metadata: JSON
    started_at: datetime
    last_activity_at: datetime
    message_count: int
    total_tokens: int
    content_bytes: int
    last_seq: int
    external_id: str | None = None


@dataclass(slots=True, kw_only=True)
class NewMessage:
    """A message to append; the store assigns id and sequence number, and the time unless ``created_at`` is given.

    ``created_at`` is for messages said before they are stored (importing past conversations): a timezone-aware
    time that search filters (``since``/``until``) and recency then use. The conversation's order stays its
    sequence numbers, whatever the times. ``vector`` is the caller's embedding of the message, computed by
    ``vector_model`` (default: the store's embedder, whose dimension it must then have): the store keeps it and
    does not embed the message itself (as ``store_memory(vector=...)``).
    """

    role: Role | str
    content: str
    model: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    metadata: JSON = field(default_factory=dict)
    idempotency_key: str | None = None
    created_at: datetime | None = None
    vector: list[float] | None = None
    vector_model: str | None = None


@dataclass(slots=True, kw_only=True)
class Message:
    id: uuid.UUID
    tenant_id: uuid.UUID
    conversation_id: uuid.UUID
    seq: int
    role: Role
    content: str
    model: str | None
    prompt_tokens: int
    completion_tokens: int
    metadata: JSON
    created_at: datetime
    idempotency_key: str | None = None

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(slots=True, kw_only=True)
class AppendResult:
    """The messages of an append, in the order given, and which of them are replays: stored by an earlier call
    with the same idempotency key (and the same body), returned as stored and not written again."""

    messages: list[Message]
    replayed: list[bool]

    @property
    def all_replayed(self) -> bool:
        """True when nothing was written: every message came back from an earlier call."""
        return bool(self.replayed) and all(self.replayed)


@dataclass(slots=True, kw_only=True)
class HistoryPage:
    """Messages in conversation order, with opaque cursors to page older (``before``) or newer (``after``)."""

    messages: list[Message]
    before: str | None
    after: str | None


@dataclass(slots=True, kw_only=True)
class Page(Generic[T]):
    """A page of a listing; pass ``next_cursor`` back to get the following page (None: no more)."""

    items: list[T]
    next_cursor: str | None


@dataclass(slots=True, kw_only=True, frozen=True)
class ConversationStats:
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


@dataclass(slots=True, kw_only=True)
class MemoryRecord:
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
    metadata: JSON
    created_at: datetime
    updated_at: datetime
    recall_count: int = 0
    last_recalled_at: datetime | None = None
    # The conversation the memory was stored from; None once that conversation is deleted (the memory stays).
    conversation_id: uuid.UUID | None = None


@dataclass(slots=True, kw_only=True, frozen=True)
class MemoryVersion:
    """An earlier state of a memory, kept when an update, a near-duplicate or the lifecycle replaced it.

    ``created_at`` is when that state was replaced (the memory's ``updated_at`` at the time is not kept).
    ``tier`` is the tier the memory had then, ``reason`` what replaced the state: ``update``, ``merge``,
    ``promote``, ``demote`` or ``retire`` (both None on versions kept before schema revision 0010).
    """

    id: uuid.UUID
    tenant_id: uuid.UUID
    memory_id: uuid.UUID
    content: str
    importance: float
    metadata: JSON
    created_at: datetime
    tier: MemoryTier | None = None
    reason: str | None = None


@dataclass(slots=True, kw_only=True)
class KnowledgeChunk:
    id: uuid.UUID
    tenant_id: uuid.UUID
    source: str
    external_id: str
    title: str | None
    content: str
    content_hash: str
    metadata: JSON
    created_at: datetime
    updated_at: datetime


@dataclass(slots=True, kw_only=True)
class ToolExecution:
    id: uuid.UUID
    tenant_id: uuid.UUID
    conversation_id: uuid.UUID | None
    tool: str
    action: str | None
    parameters: JSON
    result: Any
    success: bool
    error: str | None
    duration_ms: float | None
    created_at: datetime


@dataclass(slots=True, kw_only=True)
class Checkpoint:
    id: uuid.UUID
    tenant_id: uuid.UUID
    conversation_id: uuid.UUID
    iteration: int
    name: str | None
    state: JSON
    context_summary: str | None
    parent_id: uuid.UUID | None
    created_at: datetime


@dataclass(slots=True, kw_only=True)
class InteractionEvent:
    id: uuid.UUID
    tenant_id: uuid.UUID
    conversation_id: uuid.UUID | None
    checkpoint_id: uuid.UUID | None
    event_type: str
    data: JSON
    goal_modified: bool
    created_at: datetime


@dataclass(slots=True, kw_only=True)
class AgentMetric:
    id: uuid.UUID
    tenant_id: uuid.UUID
    conversation_id: uuid.UUID | None
    metric_type: str
    value: float
    labels: JSON
    recorded_at: datetime
