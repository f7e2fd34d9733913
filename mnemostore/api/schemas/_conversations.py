"""Bodies of conversations, messages, history pages and conversation exports."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from mnemostore.api.schemas._common import (
    MAX_BATCH,
    MAX_INT64,
    JsonObject,
    ModelName,
    Name50,
    Name200,
    Name500,
    Text,
    Timestamp,
    TokenCount,
    Vector,
    _In,
    _Out,
)
from mnemostore.domain import ConversationStatus, Role


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
    external_id: Name200 | None = Field(
        default=None, description="your own key of the conversation (a session or thread id), unique in the tenant"
    )


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
    external_id: str | None = None


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
    created_at: AwareDatetime | None = Field(
        default=None,
        description="when the message was said, for past messages being imported (default: now); search filters "
        "and recency use it, the conversation's order stays the append order",
    )
    vector: Vector | None = Field(
        default=None, description="your embedding of the message (the store then does not embed it), with its model"
    )
    vector_model: ModelName | None = Field(default=None, description="the model of `vector` (default: the store's)")


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
