"""Graph state of agent frameworks (LangGraph's checkpoints and store items), as plain values.

The framework serializes; the store keeps bytes and type tags as they are given and hands them back unchanged.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

__all__ = ["GraphChannelValue", "GraphCheckpoint", "GraphItem", "GraphWrite"]


@dataclass(slots=True, kw_only=True, frozen=True)
class GraphChannelValue:
    """The serialized value of one channel at one version (``type`` "empty" with no ``blob``: no value)."""

    channel: str
    version: str
    type: str
    blob: bytes | None


@dataclass(slots=True, kw_only=True, frozen=True)
class GraphWrite:
    """One pending write of a task: ``(task_id, idx)`` identifies it within its checkpoint."""

    task_id: str
    idx: int
    channel: str
    type: str
    blob: bytes
    task_path: str = ""


@dataclass(slots=True, kw_only=True)
class GraphCheckpoint:
    """A checkpoint of a thread's namespace, with the channel values it references and its pending writes."""

    tenant_id: uuid.UUID
    thread_id: str
    checkpoint_ns: str
    checkpoint_id: str
    parent_checkpoint_id: str | None
    type: str
    checkpoint: bytes
    channel_versions: dict[str, str]
    metadata: dict[str, Any]
    run_id: str | None
    created_at: datetime
    channel_values: list[GraphChannelValue] = field(default_factory=list)
    pending_writes: list[GraphWrite] = field(default_factory=list)


@dataclass(slots=True, kw_only=True)
class GraphItem:
    """A long-term item: a JSON object under a namespace and key, with its time to live (``expires_at`` None:
    never expires). ``score`` is set on search results that ranked by a query."""

    tenant_id: uuid.UUID
    id: uuid.UUID
    namespace: tuple[str, ...]
    key: str
    value: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    expires_at: datetime | None = None
    ttl_minutes: float | None = None
    score: float | None = None
