"""Bodies of agent records: tool executions, checkpoints, interaction events, metrics."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from pydantic import ConfigDict, Field

from mnemostore.api.schemas._common import (
    MAX_BATCH,
    JsonObject,
    JsonValue,
    Name200,
    Required100,
    Required200,
    Text,
    Timestamp,
    TokenCount,
    _In,
    _Out,
)


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
