"""Every router of the service, collected in one place (``api_router``); one module per capability."""

from __future__ import annotations

from fastapi import APIRouter

from ..errors import ERROR_RESPONSES
from . import (
    agent,
    api_keys,
    channels,
    conversations,
    events,
    flags,
    knowledge,
    memories,
    memory,
    messages,
    ops,
    search,
    tenant,
    tenants,
    users,
)

__all__ = ["api_router", "ops_router"]

api_router = APIRouter(responses=ERROR_RESPONSES)
"""The /v1 resources; each operation documents every error status it can answer with."""

# The hot paths first: routes are matched in this order.
for _router in (
    messages.router,
    conversations.router,
    users.router,
    events.router,
    memories.router,
    memory.router,
    knowledge.router,
    agent.tool_executions,
    agent.checkpoints,
    agent.interaction_events,
    agent.metrics,
    search.router,
    channels.router,
    channels.rate_limits,
    flags.router,
    tenant.router,
    api_keys.router,
    tenants.router,
    flags.global_flags,
):
    api_router.include_router(_router)

ops_router = ops.router
"""/healthz, /readyz, /metrics: no authentication."""
