"""Graph state: the checkpoints of agent graphs by thread and namespace, their channel values, pending writes.

This is the storage of LangGraph's checkpointer (``mnemostore.integrations.langgraph``), in a form any graph
framework can use: the framework serializes, the store keeps the bytes with their type tags and returns them
unchanged. Each channel value is stored once per (channel, version) of a thread's namespace, and the operations that
delete checkpoints (``prune_graph_threads``, ``delete_graph_runs``) also delete the values and writes nothing
references any more, so a thread's storage stays the size of what is kept.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from mnemostore.domain import GraphChannelValue, GraphCheckpoint, GraphWrite, Page
from mnemostore.errors import ConflictError, InvalidCursor, InvalidInput
from mnemostore.service import _validation as v
from mnemostore.service._inputs import utc_now
from mnemostore.service._scope_async import AsyncTenantScope
from mnemostore.store import decode_cursor, encode_cursor

_MAX_THREAD = 255
_MAX_NS = 1000
_MAX_ID = 100
_MAX_NAME = 255
_MAX_TYPE = 50


def _thread(value: str, field: str = "thread_id") -> str:
    return v.check_name(value, field, max_len=_MAX_THREAD, required=True) or ""


def _ns(value: str) -> str:
    return v.check_name(value, "checkpoint_ns", max_len=_MAX_NS) or ""


def _checkpoint_id(value: str, field: str = "checkpoint_id") -> str:
    return v.check_name(value, field, max_len=_MAX_ID, required=True) or ""


def _bytes(value: Any, field: str, *, allow_none: bool = False) -> bytes | None:
    if value is None and allow_none:
        return None
    if not isinstance(value, bytes | bytearray | memoryview):
        raise InvalidInput(f"{field} must be bytes (the serializer's output), got {type(value).__name__}")
    return bytes(value)


def _thread_ids(values: Iterable[str], field: str) -> list[str]:
    if isinstance(values, str):
        raise InvalidInput(f"{field} must be a list of strings, not one string: wrap it in a list")
    return sorted({_thread(value, field) for value in values})


def _cursor(position: tuple[str, str, str]) -> str:
    return encode_cursor("g", *position)


def _decode(cursor: str) -> tuple[str, str, str]:
    values = decode_cursor("g", cursor, 3)
    if not all(isinstance(value, str) for value in values):
        raise InvalidCursor(f"cursor {cursor!r} is damaged: pass back the cursor the store returned")
    return (values[0], values[1], values[2])


class AsyncGraphState(AsyncTenantScope):
    """The tenant's graph threads: checkpoints by namespace, the channel values they reference, pending writes."""

    async def put_graph_checkpoint(
        self,
        thread_id: str,
        checkpoint_id: str,
        *,
        checkpoint: bytes,
        checkpoint_type: str,
        channel_versions: Mapping[str, str | int | float],
        metadata: Mapping[str, Any] | None = None,
        checkpoint_ns: str = "",
        parent_checkpoint_id: str | None = None,
        channel_values: Sequence[GraphChannelValue] = (),
    ) -> None:
        """Save a checkpoint of a thread's namespace with the values of the channels it updated, in one transaction.

        ``checkpoint`` is the serialized checkpoint (without its channel values) and ``checkpoint_type`` its
        serializer's tag; ``channel_versions`` names the version of each channel the checkpoint holds;
        ``channel_values`` are the new values. A (channel, version) already stored keeps its first value; saving
        the same checkpoint id again replaces the checkpoint and its metadata. ``metadata["run_id"]``, a string, is
        the run that wrote it (``delete_graph_runs``).

        Raises:
            InvalidInput: an id or name is empty or too long, a value is not bytes, or a value's channel and
                version are not among ``channel_versions``.
            InvalidMetadata: ``metadata`` is not a JSON object or is over the metadata size limit.
        """
        thread = _thread(thread_id)
        ns = _ns(checkpoint_ns)
        versions: dict[str, str] = {}
        for channel, version in channel_versions.items():
            v.check_name(channel, "channel", max_len=_MAX_NAME, required=True)
            versions[channel] = v.check_name(str(version), f"version of channel {channel!r}", max_len=_MAX_ID) or ""
        meta = self._json(metadata, "metadata")
        run_id = meta.get("run_id")
        values: dict[str, Any] = {
            "thread_id": thread,
            "checkpoint_ns": ns,
            "checkpoint_id": _checkpoint_id(checkpoint_id),
            "parent_checkpoint_id": (
                _checkpoint_id(parent_checkpoint_id, "parent_checkpoint_id") if parent_checkpoint_id else None
            ),
            "type": v.check_name(checkpoint_type, "checkpoint_type", max_len=_MAX_TYPE, required=True),
            "checkpoint": _bytes(checkpoint, "checkpoint"),
            "channel_versions": versions,
            "metadata": meta,
            "run_id": run_id if isinstance(run_id, str) and len(run_id) <= _MAX_NAME else None,
            "created_at": utc_now(),
        }
        blobs = []
        for value in channel_values:
            if not isinstance(value, GraphChannelValue):
                raise InvalidInput(f"channel_values must hold GraphChannelValue items, got {type(value).__name__}")
            if versions.get(value.channel) != value.version:
                raise InvalidInput(
                    f"channel value {value.channel!r} at version {value.version!r} is not in channel_versions: "
                    "pass the versions the checkpoint holds"
                )
            blobs.append(
                {
                    "thread_id": thread,
                    "checkpoint_ns": ns,
                    "channel": value.channel,
                    "version": value.version,
                    "type": v.check_name(value.type, "type", max_len=_MAX_TYPE, required=True),
                    "blob": _bytes(value.blob, f"value of channel {value.channel!r}", allow_none=True),
                }
            )
        async with self._tx(write=True) as uow:
            await uow.graphs.upsert_checkpoint(values, blobs)

    async def put_graph_writes(
        self,
        thread_id: str,
        checkpoint_id: str,
        writes: Sequence[GraphWrite],
        *,
        checkpoint_ns: str = "",
        replace: bool = False,
    ) -> None:
        """Save pending writes of a checkpoint's tasks. Idempotent per (task_id, idx): a write already stored is
        kept, or overwritten when ``replace`` is true.

        Raises:
            InvalidInput: an id or name is empty or too long, or a value is not bytes.
        """
        thread = _thread(thread_id)
        ns = _ns(checkpoint_ns)
        checkpoint = _checkpoint_id(checkpoint_id)
        rows = []
        for write in writes:
            if not isinstance(write, GraphWrite):
                raise InvalidInput(f"writes must hold GraphWrite items, got {type(write).__name__}")
            v.check_int(write.idx, "idx of a write", minimum=-(2**31), maximum=2**31 - 1)
            rows.append(
                {
                    "thread_id": thread,
                    "checkpoint_ns": ns,
                    "checkpoint_id": checkpoint,
                    "task_id": v.check_name(write.task_id, "task_id", max_len=_MAX_NAME, required=True),
                    "idx": write.idx,
                    "channel": v.check_name(write.channel, "channel", max_len=_MAX_NAME, required=True),
                    "type": v.check_name(write.type, "type", max_len=_MAX_TYPE, required=True),
                    "blob": _bytes(write.blob, f"value written to {write.channel!r}"),
                    "task_path": v.check_name(write.task_path, "task_path", max_len=_MAX_NS) or "",
                }
            )
        async with self._tx(write=True) as uow:
            await uow.graphs.put_writes(rows, replace=replace)

    async def get_graph_checkpoint(
        self, thread_id: str, *, checkpoint_ns: str = "", checkpoint_id: str | None = None
    ) -> GraphCheckpoint | None:
        """The checkpoint ``checkpoint_id`` of a thread's namespace (without an id: its latest), with the channel
        values it references and its pending writes (ordered by task path, task id, index); None when there is
        no such checkpoint."""
        thread = _thread(thread_id)
        ns = _ns(checkpoint_ns)
        wanted = _checkpoint_id(checkpoint_id) if checkpoint_id is not None else None
        async with self._tx() as uow:
            return await uow.graphs.get(thread, ns, wanted)

    async def list_graph_checkpoints(
        self,
        *,
        thread_id: str | None = None,
        checkpoint_ns: str | None = None,
        checkpoint_id: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        before: str | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> Page[GraphCheckpoint]:
        """Checkpoints newest first, each with its channel values and pending writes, ``limit`` at a time; pass
        the page's ``next_cursor`` as ``cursor`` to get the next page.

        Args:
            thread_id: only this thread's (None: every thread of the tenant).
            checkpoint_ns: only this namespace's (None: every namespace; "" is the root namespace).
            checkpoint_id: only the checkpoint with this id.
            metadata: only checkpoints whose metadata has each of these keys with this value.
            before: only checkpoints whose id sorts before this one (older).
        """
        v.check_limit(limit)
        thread = _thread(thread_id) if thread_id is not None else None
        ns = _ns(checkpoint_ns) if checkpoint_ns is not None else None
        wanted = _checkpoint_id(checkpoint_id) if checkpoint_id is not None else None
        older = _checkpoint_id(before, "before") if before is not None else None
        filters = v.check_json(metadata, "metadata", max_bytes=self._settings.max_metadata_bytes, allow_none=True)
        after = _decode(cursor) if cursor is not None else None
        async with self._tx() as uow:
            found = await uow.graphs.find(
                thread_id=thread,
                checkpoint_ns=ns,
                checkpoint_id=wanted,
                metadata=filters,
                before=older,
                after=after,
                limit=limit + 1,
            )
        more = len(found) > limit
        items = found[:limit]
        last = items[-1] if more else None
        return Page(
            items=items,
            next_cursor=_cursor((last.checkpoint_id, last.thread_id, last.checkpoint_ns)) if last else None,
        )

    async def delete_graph_thread(self, thread_id: str) -> int:
        """Delete a thread: its checkpoints in every namespace, their values and writes. Returns how many
        checkpoints were deleted (0 for a thread with none)."""
        thread = _thread(thread_id)
        async with self._tx(write=True) as uow:
            return await uow.graphs.delete_threads([thread])

    async def delete_graph_runs(self, run_ids: Iterable[str]) -> int:
        """Delete the checkpoints written by these runs (their ``metadata["run_id"]``), with their writes and the
        values no remaining checkpoint references. Returns how many checkpoints were deleted."""
        runs = _thread_ids(run_ids, "run_ids")
        if not runs:
            return 0
        async with self._tx(write=True) as uow:
            return await uow.graphs.delete_runs(runs)

    async def copy_graph_thread(self, source_thread_id: str, target_thread_id: str) -> int:
        """Copy a thread's checkpoints (same ids, every namespace), values and writes to a new thread, in one
        transaction. Returns how many checkpoints were copied (0 when the source has none).

        Raises:
            ConflictError: the target thread already has checkpoints (delete it first, or pick another id).
            InvalidInput: the source and target are the same thread.
        """
        source = _thread(source_thread_id, "source_thread_id")
        target = _thread(target_thread_id, "target_thread_id")
        if source == target:
            raise InvalidInput(f"cannot copy thread {source!r} onto itself: pick another target_thread_id")
        async with self._tx(write=True) as uow:
            if await uow.graphs.thread_exists(target):
                raise ConflictError(
                    f"thread {target!r} already has checkpoints: delete it first (delete_graph_thread) "
                    "or copy to another thread id"
                )
            return await uow.graphs.copy_thread(source, target)

    async def prune_graph_threads(self, thread_ids: Iterable[str], *, keep: int = 1) -> int:
        """Keep the newest ``keep`` checkpoints of each namespace of these threads (0: none) and delete the rest,
        with their writes and the channel values no kept checkpoint references. Returns how many checkpoints were
        deleted.

        Raises:
            InvalidInput: ``keep`` is not a non-negative integer.
        """
        v.check_int(keep, "keep")
        threads = _thread_ids(thread_ids, "thread_ids")
        if not threads:
            return 0
        async with self._tx(write=True) as uow:
            return await uow.graphs.prune(threads, keep=keep)
