"""The agent's records: tool executions, interaction events, metrics (``/v1/tool-executions``,
``/v1/interaction-events``, ``/v1/agent-metrics``).

(async; ``_agent.py`` is generated from this file.)
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterable, Mapping
from datetime import datetime
from typing import Any

from mnemostore.client import _endpoints as ep
from mnemostore.client._base_async import AsyncConnection, walk
from mnemostore.client._codec import decode, decode_list, decode_page, jsonable, present
from mnemostore.client._endpoints import calls
from mnemostore.domain import AgentMetric, InteractionEvent, Page, ToolExecution

__all__ = ["AsyncAgentApi"]


class AsyncAgentApi(AsyncConnection):
    """The agent's audit trail: tool executions, human-in-the-loop events, and metrics."""

    @calls(ep.RECORD_TOOL_EXECUTION)
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
        """Record one tool call of an agent: what ran, with what, what came back, how long it took."""
        body = present(
            tool=tool,
            conversation_id=conversation_id,
            action=action,
            parameters=parameters,
            result=result,
            success=success,
            error=error,
            duration_ms=duration_ms,
        )
        return decode(ToolExecution, await self._json(ep.RECORD_TOOL_EXECUTION, body=body))

    @calls(ep.LIST_TOOL_EXECUTIONS)
    async def list_tool_executions(
        self,
        *,
        conversation_id: uuid.UUID | str | None = None,
        tool: str | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> Page[ToolExecution]:
        """One page of tool executions, newest first, of one conversation or tool when given."""
        params = {"conversation_id": conversation_id, "tool": tool, "limit": limit, "cursor": cursor}
        return decode_page(ToolExecution, await self._json(ep.LIST_TOOL_EXECUTIONS, params=params))

    @calls(ep.LIST_TOOL_EXECUTIONS)
    def iter_tool_executions(
        self, *, conversation_id: uuid.UUID | str | None = None, tool: str | None = None, page_size: int = 100
    ) -> AsyncIterator[ToolExecution]:
        """Every tool execution ``list_tool_executions`` would page through, newest first, each once."""
        return walk(
            lambda cursor: self.list_tool_executions(
                conversation_id=conversation_id, tool=tool, limit=page_size, cursor=cursor
            )
        )

    @calls(ep.RECORD_INTERACTION_EVENT)
    async def record_interaction_event(
        self,
        event_type: str,
        *,
        conversation_id: uuid.UUID | str | None = None,
        checkpoint_id: uuid.UUID | str | None = None,
        data: Mapping[str, Any] | None = None,
        goal_modified: bool = False,
    ) -> InteractionEvent:
        """Record a human-in-the-loop event (approval, correction, goal change…)."""
        body = present(
            event_type=event_type,
            conversation_id=conversation_id,
            checkpoint_id=checkpoint_id,
            data=data,
            goal_modified=goal_modified,
        )
        return decode(InteractionEvent, await self._json(ep.RECORD_INTERACTION_EVENT, body=body))

    @calls(ep.LIST_INTERACTION_EVENTS)
    async def list_interaction_events(
        self, *, conversation_id: uuid.UUID | str | None = None, limit: int = 100, cursor: str | None = None
    ) -> Page[InteractionEvent]:
        """One page of interaction events, newest first, of one conversation when given."""
        params = {"conversation_id": conversation_id, "limit": limit, "cursor": cursor}
        return decode_page(InteractionEvent, await self._json(ep.LIST_INTERACTION_EVENTS, params=params))

    @calls(ep.LIST_INTERACTION_EVENTS)
    def iter_interaction_events(
        self, *, conversation_id: uuid.UUID | str | None = None, page_size: int = 100
    ) -> AsyncIterator[InteractionEvent]:
        """Every interaction event ``list_interaction_events`` would page through, newest first, each once."""
        return walk(
            lambda cursor: self.list_interaction_events(conversation_id=conversation_id, limit=page_size, cursor=cursor)
        )

    @calls(ep.RECORD_METRICS)
    async def record_metric(
        self,
        metric_type: str,
        value: float,
        *,
        conversation_id: uuid.UUID | str | None = None,
        labels: Mapping[str, Any] | None = None,
        recorded_at: datetime | None = None,
    ) -> AgentMetric:
        """Record one agent metric (``record_metrics`` with a single item)."""
        metric = {
            "metric_type": metric_type,
            "value": value,
            "conversation_id": conversation_id,
            "labels": labels,
            "recorded_at": recorded_at,
        }
        return (await self.record_metrics([metric]))[0]

    @calls(ep.RECORD_METRICS)
    async def record_metrics(self, metrics: Iterable[Mapping[str, Any]]) -> list[AgentMetric]:
        """Record one or more agent metrics ``{"metric_type", "value", "conversation_id"?, "labels"?,
        "recorded_at"?}`` (latency, tokens, cost…) in one transaction."""
        body = {"metrics": [jsonable({k: v for k, v in m.items() if v is not None}) for m in metrics]}
        return decode_list(AgentMetric, await self._json(ep.RECORD_METRICS, body=body))

    @calls(ep.QUERY_METRICS)
    async def query_metrics(
        self,
        *,
        metric_type: str | None = None,
        conversation_id: uuid.UUID | str | None = None,
        since: datetime | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> Page[AgentMetric]:
        """One page of agent metrics, newest first, of one type or conversation, or since a time, when given."""
        params = {
            "metric_type": metric_type,
            "conversation_id": conversation_id,
            "since": since,
            "limit": limit,
            "cursor": cursor,
        }
        return decode_page(AgentMetric, await self._json(ep.QUERY_METRICS, params=params))

    @calls(ep.QUERY_METRICS)
    def iter_metrics(
        self,
        *,
        metric_type: str | None = None,
        conversation_id: uuid.UUID | str | None = None,
        since: datetime | None = None,
        page_size: int = 100,
    ) -> AsyncIterator[AgentMetric]:
        """Every agent metric ``query_metrics`` would page through, newest first, each once."""
        return walk(
            lambda cursor: self.query_metrics(
                metric_type=metric_type, conversation_id=conversation_id, since=since, limit=page_size, cursor=cursor
            )
        )
