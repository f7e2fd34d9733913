"""LangGraph values <-> mnemostore's graph state (pure: both savers use it).

The saver's serializer (``serde``, LangGraph's JsonPlusSerializer by default) turns the checkpoint, each channel
value and each pending write into a type tag and bytes; mnemostore stores those unchanged. The checkpoint is stored
without its channel values, which go to the values of their (channel, version), each stored once.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    WRITES_IDX_MAP,
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
    get_checkpoint_id,
    get_serializable_checkpoint_metadata,
)
from langgraph.checkpoint.serde.base import SerializerProtocol

from mnemostore.domain import GraphChannelValue, GraphCheckpoint, GraphWrite
from mnemostore.errors import InvalidInput

__all__ = [
    "EMPTY",
    "checkpoint_fields",
    "config_of",
    "namespace_of",
    "next_version",
    "prune_keep",
    "thread_of",
    "to_tuple",
    "write_rows",
]

# The type tag of a channel that has a version but no value.
EMPTY = "empty"
_STRATEGIES = {"keep_latest": 1, "delete": 0}


def thread_of(config: RunnableConfig) -> str:
    """The thread id of ``config`` (LangGraph's ``configurable.thread_id``), as a string."""
    configurable = config.get("configurable") or {}
    thread_id = configurable.get("thread_id")
    if thread_id is None or thread_id == "":
        raise InvalidInput(
            'the config has no thread id: pass {"configurable": {"thread_id": "..."}} to the graph or the saver'
        )
    return str(thread_id)


def namespace_of(config: RunnableConfig) -> str:
    return str((config.get("configurable") or {}).get("checkpoint_ns") or "")


def config_of(thread_id: str, checkpoint_ns: str, checkpoint_id: str) -> RunnableConfig:
    return {"configurable": {"thread_id": thread_id, "checkpoint_ns": checkpoint_ns, "checkpoint_id": checkpoint_id}}


def next_version(current: str | int | float | None) -> str:
    """A channel's next version: a zero-padded counter (so versions sort as strings) and a random tie-breaker."""
    if current is None:
        number = 0
    elif isinstance(current, str):
        number = int(current.split(".")[0])
    else:
        number = int(current)
    return f"{number + 1:032}.{random.random():016}"


def _jsonable(value: Any) -> Any:
    """Metadata as JSON holds it (tuples become lists), so what is read back equals what was filtered on."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def checkpoint_fields(
    serde: SerializerProtocol,
    config: RunnableConfig,
    checkpoint: Checkpoint,
    metadata: CheckpointMetadata,
    new_versions: ChannelVersions,
) -> dict[str, Any]:
    """The arguments of ``put_graph_checkpoint`` for LangGraph's ``put``."""
    stored: dict[str, Any] = dict(checkpoint)
    values: dict[str, Any] = stored.pop("channel_values", None) or {}
    checkpoint_type, data = serde.dumps_typed(stored)
    versions = {channel: str(version) for channel, version in checkpoint["channel_versions"].items()}
    channel_values = []
    for channel, version in new_versions.items():
        if versions.get(channel) != str(version):
            continue  # a value no checkpoint version points at would never be read
        value_type, blob = serde.dumps_typed(values[channel]) if channel in values else (EMPTY, None)
        channel_values.append(GraphChannelValue(channel=channel, version=str(version), type=value_type, blob=blob))
    return {
        "thread_id": thread_of(config),
        "checkpoint_id": checkpoint["id"],
        "checkpoint": data,
        "checkpoint_type": checkpoint_type,
        "channel_versions": versions,
        "metadata": _jsonable(get_serializable_checkpoint_metadata(config, metadata)),
        "checkpoint_ns": namespace_of(config),
        "parent_checkpoint_id": get_checkpoint_id(config),
        "channel_values": channel_values,
    }


def write_rows(
    serde: SerializerProtocol, writes: Sequence[tuple[str, Any]], task_id: str, task_path: str
) -> tuple[list[GraphWrite], bool]:
    """The writes of ``put_writes``, and whether they replace stored ones: special channels (errors, interrupts,
    resumes) have fixed indexes and the latest write wins; other writes are kept as first stored."""
    rows = []
    for idx, (channel, value) in enumerate(writes):
        value_type, blob = serde.dumps_typed(value)
        rows.append(
            GraphWrite(
                task_id=task_id,
                idx=WRITES_IDX_MAP.get(channel, idx),
                channel=channel,
                type=value_type,
                blob=blob,
                task_path=task_path,
            )
        )
    return rows, all(channel in WRITES_IDX_MAP for channel, _ in writes)


def to_tuple(serde: SerializerProtocol, found: GraphCheckpoint) -> CheckpointTuple:
    """The CheckpointTuple of a stored checkpoint: values deserialized, writes in ``writes_sort_key`` order."""
    checkpoint: Checkpoint = serde.loads_typed((found.type, found.checkpoint))
    checkpoint["channel_values"] = {
        value.channel: serde.loads_typed((value.type, value.blob))
        for value in found.channel_values
        if value.type != EMPTY and value.blob is not None
    }
    parent = found.parent_checkpoint_id
    return CheckpointTuple(
        config=config_of(found.thread_id, found.checkpoint_ns, found.checkpoint_id),
        checkpoint=checkpoint,
        metadata=found.metadata,  # type: ignore[arg-type]  # a JSON object with CheckpointMetadata's keys
        parent_config=config_of(found.thread_id, found.checkpoint_ns, parent) if parent else None,
        pending_writes=[
            (write.task_id, write.channel, serde.loads_typed((write.type, write.blob)))
            for write in found.pending_writes
        ],
    )


def prune_keep(strategy: str) -> int:
    """How many checkpoints per namespace a LangGraph prune strategy keeps."""
    if strategy not in _STRATEGIES:
        raise InvalidInput(f"unknown prune strategy {strategy!r}: use 'keep_latest' or 'delete'")
    return _STRATEGIES[strategy]
