"""Bodies of the operations beside the resources: memory updates and segments, consolidation, resolving users and
conversations by their keys, erasure, pruning, indexing and maintenance."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from mnemostore.api.schemas._common import (
    MAX_BATCH,
    MAX_INT32,
    JsonObject,
    ModelName,
    Name50,
    Name200,
    Name320,
    Name500,
    Required200,
    Text,
    Timestamp,
    Vector,
    _In,
    _Out,
)
from mnemostore.api.schemas._memories import MemoryOut
from mnemostore.domain import MemoryKind, MemoryTier

Importance = Annotated[float, Field(ge=0.0, le=1.0)]

# -- memories ------------------------------------------------------------------------------------------------------


class MemoryUpdate(_In):
    """Only the fields sent change (``expires_at`` null: the memory never expires); a change of content,
    importance or metadata keeps the previous state as a version (``/history``)."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"content": "Ada is vegan since 2026", "tier": "long_term", "importance": 0.9}]}
    )

    content: Text | None = None
    kind: MemoryKind | None = None
    tier: MemoryTier | None = None
    importance: Importance | None = None
    expires_at: Timestamp | None = None
    metadata: JsonObject | None = None
    vector: Vector | None = Field(
        default=None, description="the caller's new embedding of the memory (see POST /v1/memories), with `model`"
    )
    model: ModelName | None = None


class MemorySegmentCreate(_In):
    """A compressed memory segment: a summary of the messages it names (never merged as a near-duplicate)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "content": "Ada planned a week in Lisbon in May; she wants hotels near Alfama.",
                    "source_message_ids": ["0193a1c4-5d2e-7c3b-9f10-2b4c6d8e0f20"],
                    "user_id": "0193a1c4-5d2e-7c3b-9f10-2b4c6d8e0f13",
                }
            ]
        }
    )

    content: Text
    source_message_ids: Annotated[list[uuid.UUID], Field(max_length=MAX_BATCH)]
    user_id: uuid.UUID | None = None
    agent_id: Name200 | None = None
    tier: MemoryTier = MemoryTier.LONG_TERM
    compression_level: Annotated[int, Field(ge=1, le=MAX_INT32)] = 1
    importance: Importance = 0.5
    expires_at: Timestamp | None = None
    metadata: JsonObject | None = None


class ConsolidateRequest(_In):
    """Summarise the older messages of a conversation (all but the newest ``keep_recent``) into a memory segment
    of its user, with the service's extractive summariser; messages no segment covers yet only."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"keep_recent": 20}, {"keep_recent": 0}]})

    keep_recent: Annotated[int, Field(ge=0, le=MAX_INT32)] = 20
    min_messages: Annotated[int, Field(ge=0, le=MAX_INT32)] = 2
    tier: MemoryTier = MemoryTier.LONG_TERM
    importance: Importance = 0.5
    agent_id: Name200 | None = None


class ConsolidationOut(BaseModel):
    segment: MemoryOut | None = Field(description="the new segment; null: nothing (new) to consolidate")


class DeletedOut(BaseModel):
    deleted: int = Field(description="how many were deleted")


# -- users and conversations by their keys ---------------------------------------------------------------------------


class UserResolveEmail(_In):
    """The user with this email, created with the other fields when there is none (safe under concurrency)."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"email": "ada@example.com", "display_name": "Ada"}]})

    email: Annotated[Name320, Field(min_length=1)]
    display_name: Name200 | None = None
    external_id: Name200 | None = None
    preferred_model: Name200 | None = None
    preferences: JsonObject | None = None
    metadata: JsonObject | None = None


class UserResolveExternalId(_In):
    """The user with this external id (your system's id), created with the other fields when there is none."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"external_id": "crm-7", "display_name": "Ada"}]})

    external_id: Required200
    display_name: Name200 | None = None
    email: Name320 | None = None
    preferred_model: Name200 | None = None
    preferences: JsonObject | None = None
    metadata: JsonObject | None = None


class ConversationResolve(_In):
    """The conversation with this external id (your session or thread key), created for ``user_id`` with the
    other fields when there is none (safe under concurrency)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"external_id": "slack-T01-C02", "user_id": "0193a1c4-5d2e-7c3b-9f10-2b4c6d8e0f13", "title": "Support"}
            ]
        }
    )

    external_id: Required200
    user_id: uuid.UUID
    title: Name500 | None = None
    channel: Name50 | None = None
    model_override: Name200 | None = None
    metadata: JsonObject | None = None


class ErasedOut(BaseModel):
    """What ``erase`` removed: rows per table, in foreign-key order (``users`` first)."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"removed": {"users": 1, "messages": 40}}]})

    removed: dict[str, int]


# -- checkpoints, indexing, maintenance ------------------------------------------------------------------------------


class CheckpointPrune(_In):
    """Keep the newest ``keep`` checkpoints of the conversation, delete the others."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"keep": 10}]})

    keep: Annotated[int, Field(ge=0, le=MAX_INT32)]


class IndexingStatusOut(_Out):
    """The tenant's indexing backlog: semantic search sees an item once its job is done."""

    pending: int
    running: int
    done: int
    failed: int
    oldest_pending_at: datetime | None
    failures: list[dict[str, Any]]


class MaintenanceOut(BaseModel):
    """What maintenance did (or, with ``dry_run``, would do) in the tenant."""

    model_config = ConfigDict(extra="allow")

    tenant_id: uuid.UUID
    expired_memories: int
    archived_conversations: int
    deleted_conversations: int
    error: str | None = None


__all__ = [
    "CheckpointPrune",
    "ConsolidateRequest",
    "ConsolidationOut",
    "ConversationResolve",
    "DeletedOut",
    "ErasedOut",
    "IndexingStatusOut",
    "MaintenanceOut",
    "MemorySegmentCreate",
    "MemoryUpdate",
    "UserResolveEmail",
    "UserResolveExternalId",
]
