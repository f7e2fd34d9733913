"""The agent's audit trail and state: tool executions, checkpoints, interaction events, agent metrics.

One router per capability, all in this module because each is a few lines over the store.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, status

from mnemostore.domain import AgentMetric, Checkpoint, InteractionEvent, ToolExecution
from mnemostore.errors import CheckpointNotFound

from .._json_body import JsonRoute
from ..deps import TenantDep
from ..schemas import (
    AgentMetricBatch,
    AgentMetricOut,
    CheckpointCreate,
    CheckpointOut,
    CheckpointPrune,
    DeletedOut,
    InteractionEventCreate,
    InteractionEventOut,
    Items,
    Page,
    Timestamp,
    ToolExecutionCreate,
    ToolExecutionOut,
)
from ..schemas._common import MAX_INT32
from ._common import Cursor, Limit, page_from_store

__all__ = ["checkpoints", "interaction_events", "metrics", "tool_executions"]

tool_executions = APIRouter(route_class=JsonRoute, prefix="/v1/tool-executions", tags=["tool executions"])
checkpoints = APIRouter(route_class=JsonRoute, tags=["checkpoints"])
interaction_events = APIRouter(route_class=JsonRoute, prefix="/v1/interaction-events", tags=["interaction events"])
metrics = APIRouter(route_class=JsonRoute, prefix="/v1/agent-metrics", tags=["agent metrics"])

ConversationFilter = Annotated[uuid.UUID | None, Query(description="only this conversation's")]


@tool_executions.post("", status_code=status.HTTP_201_CREATED, response_model=ToolExecutionOut)
async def record_tool_execution(body: ToolExecutionCreate, t: TenantDep) -> ToolExecution:
    """Record a tool call: parameters (encrypted at rest when keys are set), result, success, duration."""
    return await t.record_tool_execution(**body.model_dump())


@tool_executions.get("", response_model=Page[ToolExecutionOut])
async def list_tool_executions(
    t: TenantDep,
    conversation_id: ConversationFilter = None,
    tool: Annotated[str | None, Query(max_length=200, description="only this tool's")] = None,
    limit: Limit = 100,
    cursor: Cursor = None,
) -> dict[str, object]:
    """Newest first."""
    items = await t.list_tool_executions(conversation_id=conversation_id, tool=tool, limit=limit, cursor=cursor)
    return page_from_store(items)


@checkpoints.post(
    "/v1/conversations/{conversation_id}/checkpoints", status_code=status.HTTP_201_CREATED, response_model=CheckpointOut
)
async def save_checkpoint(conversation_id: uuid.UUID, body: CheckpointCreate, t: TenantDep) -> Checkpoint:
    """Save the agent's state at an iteration; ``parent_id`` left out: it continues from the latest checkpoint."""
    extra: dict[str, Any] = {"parent_id": body.parent_id} if "parent_id" in body.model_fields_set else {}
    return await t.create_checkpoint(
        conversation_id,
        iteration=body.iteration,
        state=body.state,
        name=body.name,
        context_summary=body.context_summary,
        **extra,
    )


@checkpoints.get("/v1/conversations/{conversation_id}/checkpoints", response_model=Page[CheckpointOut])
async def list_checkpoints(
    conversation_id: uuid.UUID, t: TenantDep, limit: Limit = 100, cursor: Cursor = None
) -> dict[str, object]:
    """Newest first (highest iteration, then latest saved)."""
    await t.get_conversation_or_raise(conversation_id)
    return page_from_store(await t.list_checkpoints(conversation_id, limit=limit, cursor=cursor))


@checkpoints.get("/v1/conversations/{conversation_id}/checkpoints/latest", response_model=CheckpointOut)
async def get_latest_checkpoint(conversation_id: uuid.UUID, t: TenantDep) -> Checkpoint:
    """The checkpoint to resume from (404 when the conversation has none)."""
    await t.get_conversation_or_raise(conversation_id)
    latest = await t.get_latest_checkpoint(conversation_id)
    if latest is None:
        raise CheckpointNotFound(f"of conversation {conversation_id}", ": none saved yet")
    return latest


@checkpoints.get("/v1/conversations/{conversation_id}/checkpoints/{iteration}", response_model=CheckpointOut)
async def get_checkpoint_at_iteration(
    conversation_id: uuid.UUID, iteration: Annotated[int, Path(ge=0, le=MAX_INT32)], t: TenantDep
) -> Checkpoint:
    """The conversation's checkpoint of this iteration (the latest saved, when there are several)."""
    return await t.get_checkpoint(conversation_id, iteration=iteration)


@checkpoints.post("/v1/conversations/{conversation_id}/checkpoints/prune", response_model=DeletedOut)
async def prune_checkpoints(conversation_id: uuid.UUID, body: CheckpointPrune, t: TenantDep) -> dict[str, int]:
    """Keep the conversation's newest ``keep`` checkpoints and delete the others; ``deleted`` counts them."""
    await t.get_conversation_or_raise(conversation_id)
    return {"deleted": await t.prune_checkpoints(conversation_id, keep=body.keep)}


@checkpoints.get("/v1/checkpoints/{checkpoint_id}", response_model=CheckpointOut)
async def get_checkpoint(checkpoint_id: uuid.UUID, t: TenantDep) -> Checkpoint:
    return await t.get_checkpoint_by_id(checkpoint_id)


@interaction_events.post("", status_code=status.HTTP_201_CREATED, response_model=InteractionEventOut)
async def record_interaction_event(body: InteractionEventCreate, t: TenantDep) -> InteractionEvent:
    """Record a human-in-the-loop event: an approval, a correction, a goal change…"""
    return await t.record_interaction_event(**body.model_dump())


@interaction_events.get("", response_model=Page[InteractionEventOut])
async def list_interaction_events(
    t: TenantDep, conversation_id: ConversationFilter = None, limit: Limit = 100, cursor: Cursor = None
) -> dict[str, object]:
    """Newest first."""
    items = await t.list_interaction_events(conversation_id=conversation_id, limit=limit, cursor=cursor)
    return page_from_store(items)


@metrics.post("", status_code=status.HTTP_201_CREATED, response_model=Items[AgentMetricOut])
async def record_metrics(body: AgentMetricBatch, t: TenantDep) -> dict[str, list[AgentMetric]]:
    """Record one or more agent metrics (latency, tokens, cost…), in one transaction."""
    return {"items": await t.record_metrics([m.model_dump() for m in body.metrics])}


@metrics.get("", response_model=Page[AgentMetricOut])
async def query_metrics(
    t: TenantDep,
    metric_type: Annotated[str | None, Query(max_length=100, description="only this type")] = None,
    conversation_id: ConversationFilter = None,
    since: Annotated[Timestamp | None, Query(description="recorded at or after (ISO 8601 with offset)")] = None,
    limit: Limit = 100,
    cursor: Cursor = None,
) -> dict[str, object]:
    """Newest first."""
    items = await t.query_metrics(
        metric_type=metric_type, conversation_id=conversation_id, since=since, limit=limit, cursor=cursor
    )
    return page_from_store(items)
