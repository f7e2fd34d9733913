"""Graph state of agent frameworks (LangGraph's checkpoints): what the store keeps of it, as plain values.

The framework serializes; the store keeps bytes and type tags as they are given and hands them back unchanged.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

__all__ = ["GraphChannelValue", "GraphCheckpoint", "GraphWrite"]


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
