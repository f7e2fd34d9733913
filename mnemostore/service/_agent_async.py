"""Agent audit and state: tool executions, checkpoints, human-in-the-loop events, metrics."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from mnemostore.domain import (
    AgentMetric,
    Checkpoint,
    InteractionEvent,
    Page,
    ToolExecution,
    new_id,
)
from mnemostore.errors import (
    CheckpointNotFound,
    InvalidInput,
)
from mnemostore.service import _validation as v
from mnemostore.service._inputs import UNSET, Unset, as_id, utc_now
from mnemostore.service._paging import decode_list_cursor, page_after
from mnemostore.service._scope_async import AsyncTenantScope
from mnemostore.store import AsyncUnitOfWork


class AsyncAgentRecords(AsyncTenantScope):
    """What the tenant's agents did and where they stand."""

    async def record_tool_execution(
        self,
        tool: str,
        *,
        conversation_id: uuid.UUID | str | None = None,
        action: str | None = None,
        parameters: Mapping[str, Any] | None = None,
        result: Any = None,
        success: bool = True,
        error: str | None = None,
        duration_ms: float | None = None,
    ) -> ToolExecution:
        """Record one tool call of an agent (what ran, with what, what came back, how long it took).

        Raises:
            ConversationNotFound: ``conversation_id`` is given and is not one of the tenant's conversations.
        """
        cid = as_id(conversation_id, "conversation_id") if conversation_id is not None else None
        values = {
            "id": new_id(),
            "conversation_id": cid,
            "tool": v.check_name(tool, "tool", max_len=200, required=True),
            "action": v.check_name(action, "action", max_len=200),
            "parameters": self._json(parameters, "parameters"),
            "result": v.check_json_value(result, "result"),
            "success": bool(success),
            "error": v.check_text(error, "error") if error is not None else None,
            "duration_ms": v.check_number(duration_ms, "duration_ms") if duration_ms is not None else None,
            "created_at": utc_now(),
        }
        async with self._tx(write=True) as uow:
            await self._check_conversation(uow, cid)
            return await uow.agent.insert_tool_execution(values)

    async def list_tool_executions(
        self,
        *,
        conversation_id: uuid.UUID | str | None = None,
        tool: str | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> Page[ToolExecution]:
        """Newest first, ``limit`` at a time; pass the page's ``next_cursor`` as ``cursor`` to get the next page."""
        v.check_limit(limit)
        cid = as_id(conversation_id, "conversation_id") if conversation_id is not None else None
        if tool is not None:
            v.check_text(tool, "tool")
        after = decode_list_cursor(ToolExecution, cursor) if cursor is not None else None
        async with self._tx() as uow:
            found = await uow.agent.list_tool_executions(conversation_id=cid, tool=tool, limit=limit + 1, after=after)
        return page_after(found, limit)

    async def create_checkpoint(
        self,
        conversation_id: uuid.UUID | str,
        *,
        iteration: int,
        state: Mapping[str, Any],
        name: str | None = None,
        context_summary: str | None = None,
        parent_id: uuid.UUID | str | Unset | None = UNSET,
    ) -> Checkpoint:
        """Save the agent's state at an iteration, to resume or roll back to later.

        Args:
            parent_id: the checkpoint this one continues from; by default the latest one of the conversation.

        Raises:
            ConversationNotFound: no such conversation in this tenant.
            CheckpointNotFound: ``parent_id`` is not a checkpoint of this tenant.
        """
        cid = as_id(conversation_id, "conversation_id")
        v.check_tokens(iteration, "iteration")
        values: dict[str, Any] = {
            "id": new_id(),
            "conversation_id": cid,
            "iteration": iteration,
            "name": v.check_name(name, "name", max_len=200),
            "state": v.check_json(state, "state", max_bytes=self._settings.max_content_bytes),
            "context_summary": v.check_text(context_summary, "context_summary") if context_summary else None,
            "created_at": utc_now(),
        }
        async with self._tx(write=True) as uow:
            await self._check_conversation(uow, cid)
            if isinstance(parent_id, Unset):
                latest = await uow.agent.checkpoints(cid, limit=1)
                values["parent_id"] = latest[0].id if latest else None
            else:
                values["parent_id"] = as_id(parent_id, "parent_id") if parent_id is not None else None
                await self._check_checkpoint(uow, values["parent_id"], "parent_id")
            return await uow.agent.insert_checkpoint(values)

    async def _check_checkpoint(self, uow: AsyncUnitOfWork, checkpoint_id: uuid.UUID | None, field: str) -> None:
        """In the writing transaction, so the checkpoint cannot be deleted between the check and the write."""
        if checkpoint_id is not None and not await uow.agent.checkpoint_exists(checkpoint_id):
            raise CheckpointNotFound(
                checkpoint_id, f" in this tenant: {field} must name one of its checkpoints (create_checkpoint's id)"
            )

    async def get_latest_checkpoint(self, conversation_id: uuid.UUID | str) -> Checkpoint | None:
        """The conversation's newest checkpoint, or None when it has none."""
        cid = as_id(conversation_id, "conversation_id")
        async with self._tx() as uow:
            found = await uow.agent.checkpoints(cid, limit=1)
        return found[0] if found else None

    async def get_checkpoint(self, conversation_id: uuid.UUID | str, *, iteration: int) -> Checkpoint:
        """The newest checkpoint saved at ``iteration``."""
        cid = as_id(conversation_id, "conversation_id")
        v.check_tokens(iteration, "iteration")
        async with self._tx() as uow:
            found = await uow.agent.checkpoints(cid, iteration=iteration, limit=1)
        if not found:
            raise CheckpointNotFound(f"at iteration {iteration} of conversation {cid}")
        return found[0]

    async def get_checkpoint_by_id(self, checkpoint_id: uuid.UUID | str) -> Checkpoint:
        """One checkpoint by its id.

        Raises:
            CheckpointNotFound: no such checkpoint in this tenant.
        """
        chk = as_id(checkpoint_id, "checkpoint_id")
        async with self._tx() as uow:
            found = await uow.agent.get_checkpoint(chk)
        if found is None:
            raise CheckpointNotFound(chk)
        return found

    async def list_checkpoints(
        self, conversation_id: uuid.UUID | str, *, limit: int = 100, cursor: str | None = None
    ) -> Page[Checkpoint]:
        """Newest first, ``limit`` at a time; pass the page's ``next_cursor`` as ``cursor`` to get the next page."""
        v.check_limit(limit)
        cid = as_id(conversation_id, "conversation_id")
        after = decode_list_cursor(Checkpoint, cursor) if cursor is not None else None
        async with self._tx() as uow:
            found = await uow.agent.checkpoints(cid, limit=limit + 1, after=after)
        return page_after(found, limit)

    async def prune_checkpoints(self, conversation_id: uuid.UUID | str, *, keep: int) -> int:
        """Delete all but the newest ``keep`` checkpoints; returns how many were deleted."""
        v.check_int(keep, "keep")
        cid = as_id(conversation_id, "conversation_id")
        async with self._tx(write=True) as uow:
            return await uow.agent.prune_checkpoints(cid, keep=keep)

    async def record_interaction_event(
        self,
        event_type: str,
        *,
        conversation_id: uuid.UUID | str | None = None,
        checkpoint_id: uuid.UUID | str | None = None,
        data: Mapping[str, Any] | None = None,
        goal_modified: bool = False,
    ) -> InteractionEvent:
        """Record a human-in-the-loop event (approval, correction, goal change…).

        Raises:
            ConversationNotFound: ``conversation_id`` is given and is not a conversation of this tenant.
            CheckpointNotFound: ``checkpoint_id`` is given and is not a checkpoint of this tenant.
        """
        cid = as_id(conversation_id, "conversation_id") if conversation_id is not None else None
        chk = as_id(checkpoint_id, "checkpoint_id") if checkpoint_id is not None else None
        values = {
            "id": new_id(),
            "conversation_id": cid,
            "checkpoint_id": chk,
            "event_type": v.check_name(event_type, "event_type", max_len=100, required=True),
            "data": self._json(data, "data"),
            "goal_modified": bool(goal_modified),
            "created_at": utc_now(),
        }
        async with self._tx(write=True) as uow:
            await self._check_conversation(uow, cid)
            await self._check_checkpoint(uow, chk, "checkpoint_id")
            return await uow.agent.insert_event(values)

    async def list_interaction_events(
        self, *, conversation_id: uuid.UUID | str | None = None, limit: int = 100, cursor: str | None = None
    ) -> Page[InteractionEvent]:
        """Newest first, ``limit`` at a time; pass the page's ``next_cursor`` as ``cursor`` to get the next page."""
        v.check_limit(limit)
        cid = as_id(conversation_id, "conversation_id") if conversation_id is not None else None
        after = decode_list_cursor(InteractionEvent, cursor) if cursor is not None else None
        async with self._tx() as uow:
            found = await uow.agent.events(conversation_id=cid, limit=limit + 1, after=after)
        return page_after(found, limit)

    async def record_metric(
        self,
        metric_type: str,
        value: float,
        *,
        conversation_id: uuid.UUID | str | None = None,
        labels: Mapping[str, Any] | None = None,
        recorded_at: datetime | None = None,
    ) -> AgentMetric:
        """Record one agent metric (``record_metrics`` with a single item; same validation, one transaction)."""
        return (
            await self.record_metrics(
                [
                    {
                        "metric_type": metric_type,
                        "value": value,
                        "conversation_id": conversation_id,
                        "labels": labels,
                        "recorded_at": recorded_at,
                    }
                ]
            )
        )[0]

    async def record_metrics(self, metrics: Iterable[Mapping[str, Any]]) -> list[AgentMetric]:
        """Record agent metrics ``{"metric_type", "value", "conversation_id"?, "labels"?, "recorded_at"?}``."""
        rows: list[dict[str, Any]] = []
        conversations: set[uuid.UUID] = set()
        for index, item in enumerate(metrics):
            if not isinstance(item, Mapping):
                raise InvalidInput(f"metric {index} must be a mapping with metric_type and value")
            value = v.check_number(item.get("value"), "metric value")
            cid = item.get("conversation_id")
            cid = as_id(cid, "conversation_id") if cid is not None else None
            if cid is not None:
                conversations.add(cid)
            rows.append(
                {
                    "id": new_id(),
                    "conversation_id": cid,
                    "metric_type": v.check_name(item.get("metric_type"), "metric_type", max_len=100, required=True),
                    "value": value,
                    "labels": self._json(item.get("labels"), "labels"),
                    "recorded_at": v.check_time(item.get("recorded_at"), "recorded_at") or utc_now(),
                }
            )
        async with self._tx(write=True) as uow:
            for cid in conversations:
                await self._check_conversation(uow, cid)
            return await uow.agent.insert_metrics(rows)

    async def query_metrics(
        self,
        *,
        metric_type: str | None = None,
        conversation_id: uuid.UUID | str | None = None,
        since: datetime | None = None,
        limit: int = 1000,
        cursor: str | None = None,
    ) -> Page[AgentMetric]:
        """Newest first, ``limit`` at a time; pass the page's ``next_cursor`` as ``cursor`` to get the next page."""
        v.check_limit(limit, maximum=100_000)
        cid = as_id(conversation_id, "conversation_id") if conversation_id is not None else None
        v.check_time(since, "since")
        if metric_type is not None:
            v.check_text(metric_type, "metric_type")
        after = decode_list_cursor(AgentMetric, cursor) if cursor is not None else None
        async with self._tx() as uow:
            found = await uow.agent.metrics(
                metric_type=metric_type, conversation_id=cid, since=since, limit=limit + 1, after=after
            )
        return page_after(found, limit)
