"""LangGraph checkpointers on a mnemostore tenant: ``AsyncMnemostoreSaver`` and ``MnemostoreSaver``.

Both are ``BaseCheckpointSaver`` subclasses whose methods call the tenant store's graph-state methods
(``put_graph_checkpoint``, ``get_graph_checkpoint``, ``list_graph_checkpoints``, ``put_graph_writes``,
``delete_graph_thread``, ``delete_graph_runs``, ``copy_graph_thread``, ``prune_graph_threads``) through
``_checkpointer`` (the async source and its generated sync twin). Checkpoints, values and writes are serialized by
the saver's ``serde`` and stored as bytes.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from typing import Any, TypeVar

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import BaseCheckpointSaver, ChannelVersions, Checkpoint, CheckpointMetadata
from langgraph.checkpoint.base import CheckpointTuple as CheckpointTuple
from langgraph.checkpoint.serde.base import SerializerProtocol

from mnemostore.integrations.langgraph._checkpointer import Checkpointer
from mnemostore.integrations.langgraph._checkpointer import open_tenant as open_tenant_sync
from mnemostore.integrations.langgraph._checkpointer_async import AsyncCheckpointer, open_tenant
from mnemostore.integrations.langgraph._convert import next_version
from mnemostore.integrations.langgraph._loop import run_on_loop
from mnemostore.service.store import TenantStore
from mnemostore.service.store_async import AsyncTenantStore

__all__ = ["AsyncMnemostoreSaver", "MnemostoreSaver"]

T = TypeVar("T")
_DONE = object()


class _Saver(BaseCheckpointSaver[str]):
    """What both savers share: string channel versions that sort (``next_version``)."""

    def get_next_version(self, current: str | None, channel: None) -> str:
        """The next version of a channel: a zero-padded counter and a random tie-breaker."""
        return next_version(current)


class AsyncMnemostoreSaver(_Saver):
    """LangGraph's checkpointer on a mnemostore tenant, for async graphs (``ainvoke``, ``astream``).

    Example::

        store = AsyncMnemoStore("postgresql://…")
        graph = builder.compile(checkpointer=AsyncMnemostoreSaver(store.tenant("acme")))
        await graph.ainvoke(inputs, {"configurable": {"thread_id": "t-1"}})

    Or ``async with AsyncMnemostoreSaver.from_url(url) as saver:``, which opens (and closes) the store.

    The sync methods work from another thread than the event loop the saver runs on (as LangGraph's own async
    savers do); from the loop's thread, use the async API, or ``MnemostoreSaver`` for sync graphs.
    """

    def __init__(self, tenant: AsyncTenantStore, *, serde: SerializerProtocol | None = None) -> None:
        super().__init__(serde=serde)
        self.tenant = tenant
        self._io = AsyncCheckpointer(tenant, self.serde)
        self._loop: asyncio.AbstractEventLoop | None = None

    @classmethod
    @asynccontextmanager
    async def from_url(
        cls,
        database_url: str | None = None,
        *,
        tenant: uuid.UUID | str = "default",
        serde: SerializerProtocol | None = None,
        **settings: Any,
    ) -> AsyncIterator[AsyncMnemostoreSaver]:
        """A saver on a store it opens at ``database_url`` (``AsyncMnemoStore``'s default without one) and closes
        at the end of the block. The schema of a database that has none is created, and the tenant named
        ``tenant`` when there is none; ``settings`` go to ``AsyncMnemoStore``."""
        store, view = await open_tenant(database_url, tenant, settings)
        try:
            yield cls(view, serde=serde)
        finally:
            await store.close()

    def _seen(self) -> None:
        self._loop = asyncio.get_running_loop()

    def _sync(self, call: Callable[[], Awaitable[T]]) -> T:
        """Run ``call`` on the saver's event loop from another thread, and wait for its result."""
        return run_on_loop(
            self._loop,
            call,
            refusal=(
                "AsyncMnemostoreSaver's sync methods run only from another thread while its event loop runs: "
                "use the async API (await graph.ainvoke(...), graph.aget_state(...)), or MnemostoreSaver"
            ),
        )

    async def aget_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        """The checkpoint ``config`` names (without ``checkpoint_id``: its namespace's latest), or None."""
        self._seen()
        return await self._io.get_tuple(config)

    async def alist(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[CheckpointTuple]:
        """Checkpoints newest first, of ``config``'s thread (and namespace when given), filtered on metadata."""
        self._seen()
        async for found in self._io.list(config, filter=filter, before=before, limit=limit):
            yield found

    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        """Save a checkpoint and the values of its new channel versions; returns the checkpoint's config."""
        self._seen()
        return await self._io.put(config, checkpoint, metadata, new_versions)

    async def aput_writes(
        self, config: RunnableConfig, writes: Sequence[tuple[str, Any]], task_id: str, task_path: str = ""
    ) -> None:
        """Save a task's pending writes (idempotent per task and index)."""
        self._seen()
        await self._io.put_writes(config, writes, task_id, task_path)

    async def adelete_thread(self, thread_id: str) -> None:
        """Delete a thread's checkpoints, values and writes."""
        self._seen()
        await self._io.delete_thread(thread_id)

    async def adelete_for_runs(self, run_ids: Sequence[str]) -> None:
        """Delete the checkpoints these runs wrote, with what only they reference."""
        self._seen()
        await self._io.delete_for_runs(run_ids)

    async def acopy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        """Copy a thread's checkpoints, values and writes to a thread that has none."""
        self._seen()
        await self._io.copy_thread(source_thread_id, target_thread_id)

    async def aprune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        """Keep each namespace's latest checkpoint (``keep_latest``) or none (``delete``); frees what is gone.

        ``keep_latest`` drops every ancestor of the latest checkpoint: do not use it on threads of a graph with
        LangGraph's (beta) ``DeltaChannel``, whose values are rebuilt from their ancestors' writes.
        """
        self._seen()
        await self._io.prune(thread_ids, strategy=strategy)

    def get_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        """``aget_tuple``, from another thread than the saver's event loop."""
        return self._sync(lambda: self.aget_tuple(config))

    def list(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> Iterator[CheckpointTuple]:
        """``alist``, from another thread than the saver's event loop."""
        found: Any = self._sync(lambda: _collect(self.alist(config, filter=filter, before=before, limit=limit)))
        yield from found

    def put(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        """``aput``, from another thread than the saver's event loop."""
        return self._sync(lambda: self.aput(config, checkpoint, metadata, new_versions))

    def put_writes(
        self, config: RunnableConfig, writes: Sequence[tuple[str, Any]], task_id: str, task_path: str = ""
    ) -> None:
        """``aput_writes``, from another thread than the saver's event loop."""
        self._sync(lambda: self.aput_writes(config, writes, task_id, task_path))

    def delete_thread(self, thread_id: str) -> None:
        """``adelete_thread``, from another thread than the saver's event loop."""
        self._sync(lambda: self.adelete_thread(thread_id))

    def delete_for_runs(self, run_ids: Sequence[str]) -> None:
        """``adelete_for_runs``, from another thread than the saver's event loop."""
        self._sync(lambda: self.adelete_for_runs(run_ids))

    def copy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        """``acopy_thread``, from another thread than the saver's event loop."""
        self._sync(lambda: self.acopy_thread(source_thread_id, target_thread_id))

    def prune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        """``aprune``, from another thread than the saver's event loop."""
        self._sync(lambda: self.aprune(thread_ids, strategy=strategy))


async def _collect(items: AsyncIterator[T]) -> list[T]:
    return [item async for item in items]


class MnemostoreSaver(_Saver):
    """LangGraph's checkpointer on a mnemostore tenant, for sync graphs (``invoke``, ``stream``).

    Example::

        store = MnemoStore("sqlite:///agent.db")
        graph = builder.compile(checkpointer=MnemostoreSaver(store.tenant("acme")))
        graph.invoke(inputs, {"configurable": {"thread_id": "t-1"}})

    Or ``with MnemostoreSaver.from_url(url) as saver:``, which opens (and closes) the store. The async methods
    run the sync ones on a worker thread, so an async graph works too (``AsyncMnemostoreSaver`` does not need one).
    """

    def __init__(self, tenant: TenantStore, *, serde: SerializerProtocol | None = None) -> None:
        super().__init__(serde=serde)
        self.tenant = tenant
        self._io = Checkpointer(tenant, self.serde)

    @classmethod
    @contextmanager
    def from_url(
        cls,
        database_url: str | None = None,
        *,
        tenant: uuid.UUID | str = "default",
        serde: SerializerProtocol | None = None,
        **settings: Any,
    ) -> Iterator[MnemostoreSaver]:
        """A saver on a store it opens at ``database_url`` (``MnemoStore``'s default without one) and closes at
        the end of the block. The schema of a database that has none is created, and the tenant named ``tenant``
        when there is none; ``settings`` go to ``MnemoStore``."""
        store, view = open_tenant_sync(database_url, tenant, settings)
        try:
            yield cls(view, serde=serde)
        finally:
            store.close()

    def get_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        """The checkpoint ``config`` names (without ``checkpoint_id``: its namespace's latest), or None."""
        return self._io.get_tuple(config)

    def list(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> Iterator[CheckpointTuple]:
        """Checkpoints newest first, of ``config``'s thread (and namespace when given), filtered on metadata."""
        return self._io.list(config, filter=filter, before=before, limit=limit)

    def put(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        """Save a checkpoint and the values of its new channel versions; returns the checkpoint's config."""
        return self._io.put(config, checkpoint, metadata, new_versions)

    def put_writes(
        self, config: RunnableConfig, writes: Sequence[tuple[str, Any]], task_id: str, task_path: str = ""
    ) -> None:
        """Save a task's pending writes (idempotent per task and index)."""
        self._io.put_writes(config, writes, task_id, task_path)

    def delete_thread(self, thread_id: str) -> None:
        """Delete a thread's checkpoints, values and writes."""
        self._io.delete_thread(thread_id)

    def delete_for_runs(self, run_ids: Sequence[str]) -> None:
        """Delete the checkpoints these runs wrote, with what only they reference."""
        self._io.delete_for_runs(run_ids)

    def copy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        """Copy a thread's checkpoints, values and writes to a thread that has none."""
        self._io.copy_thread(source_thread_id, target_thread_id)

    def prune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        """Keep each namespace's latest checkpoint (``keep_latest``) or none (``delete``); frees what is gone.

        ``keep_latest`` drops every ancestor of the latest checkpoint: do not use it on threads of a graph with
        LangGraph's (beta) ``DeltaChannel``, whose values are rebuilt from their ancestors' writes.
        """
        self._io.prune(thread_ids, strategy=strategy)

    async def aget_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        """``get_tuple`` on a worker thread."""
        return await asyncio.to_thread(self.get_tuple, config)

    async def alist(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[CheckpointTuple]:
        """``list`` on a worker thread, one checkpoint at a time."""
        found = self.list(config, filter=filter, before=before, limit=limit)
        lock = threading.Lock()

        def step() -> Any:
            with lock:
                return next(found, _DONE)

        while (item := await asyncio.to_thread(step)) is not _DONE:
            yield item

    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        """``put`` on a worker thread."""
        return await asyncio.to_thread(self.put, config, checkpoint, metadata, new_versions)

    async def aput_writes(
        self, config: RunnableConfig, writes: Sequence[tuple[str, Any]], task_id: str, task_path: str = ""
    ) -> None:
        """``put_writes`` on a worker thread."""
        await asyncio.to_thread(self.put_writes, config, writes, task_id, task_path)

    async def adelete_thread(self, thread_id: str) -> None:
        """``delete_thread`` on a worker thread."""
        await asyncio.to_thread(self.delete_thread, thread_id)

    async def adelete_for_runs(self, run_ids: Sequence[str]) -> None:
        """``delete_for_runs`` on a worker thread."""
        await asyncio.to_thread(self.delete_for_runs, run_ids)

    async def acopy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        """``copy_thread`` on a worker thread."""
        await asyncio.to_thread(self.copy_thread, source_thread_id, target_thread_id)

    async def aprune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        """``prune`` on a worker thread."""
        await asyncio.to_thread(self.prune, thread_ids, strategy=strategy)
