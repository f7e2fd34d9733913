"""LangGraph's checkpointer operations over a tenant store (async; ``_checkpointer.py`` is generated from this).

One tenant store call per operation (a listing: one per page); ``_convert`` does the rest. The savers of
``_savers`` expose these under LangGraph's method names.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Sequence
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
    get_checkpoint_id,
)
from langgraph.checkpoint.serde.base import SerializerProtocol

from mnemostore.errors import InvalidInput, TenantAlreadyExists
from mnemostore.integrations.langgraph._convert import (
    checkpoint_fields,
    config_of,
    namespace_of,
    prune_keep,
    thread_of,
    to_tuple,
    write_rows,
)
from mnemostore.service.store_async import AsyncMnemoStore, AsyncTenantStore

# Checkpoints read per listing call: each comes with its values and writes, so pages stay small.
PAGE = 50


async def open_tenant(
    database_url: str | None, tenant: uuid.UUID | str, settings: dict[str, Any]
) -> tuple[AsyncMnemoStore, AsyncTenantStore]:
    """A store on ``database_url`` and the view of ``tenant``: the schema of a database that has none is created,
    and a tenant named ``tenant`` when there is none (a database behind the code raises SchemaOutOfDate)."""
    store = AsyncMnemoStore(database_url, **settings)
    try:
        if (await store.get_migration_status()).current is None:
            await store.migrate()
        if isinstance(tenant, str) and not _is_uuid(tenant) and await store.get_tenant_by_name(tenant) is None:
            with contextlib.suppress(TenantAlreadyExists):  # created meanwhile by another process
                await store.create_tenant(tenant)
        view = store.tenant(tenant)
        await view.resolve()
    except BaseException:
        await store.close()
        raise
    return store, view


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


class AsyncCheckpointer:
    """The operations of LangGraph's ``BaseCheckpointSaver`` on one tenant's graph state."""

    def __init__(self, tenant: AsyncTenantStore, serde: SerializerProtocol) -> None:
        self.tenant = tenant
        self.serde = serde

    async def get_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        """The checkpoint ``config`` names (without ``checkpoint_id``: the latest of its namespace), or None."""
        found = await self.tenant.get_graph_checkpoint(
            thread_of(config), checkpoint_ns=namespace_of(config), checkpoint_id=get_checkpoint_id(config)
        )
        return to_tuple(self.serde, found) if found is not None else None

    async def list(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[CheckpointTuple]:
        """Checkpoints newest first: of ``config``'s thread (and namespace, when it names one; every thread
        without a config), whose metadata matches ``filter``, older than ``before``, at most ``limit``."""
        configurable = (config or {}).get("configurable") or {}
        thread_id = thread_of(config) if config is not None else None
        namespace = configurable.get("checkpoint_ns")
        checkpoint_id = get_checkpoint_id(config) if config is not None else None
        older = get_checkpoint_id(before) if before is not None else None
        left = limit
        cursor: str | None = None
        while left is None or left > 0:
            page = await self.tenant.list_graph_checkpoints(
                thread_id=thread_id,
                checkpoint_ns=str(namespace) if namespace is not None else None,
                checkpoint_id=checkpoint_id,
                metadata=filter,
                before=older,
                limit=PAGE if left is None else min(left, PAGE),
                cursor=cursor,
            )
            for found in page.items:
                yield to_tuple(self.serde, found)
            if left is not None:
                left -= len(page.items)
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    async def put(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        """Save a checkpoint with the values of the channels in ``new_versions``; returns its config."""
        fields = checkpoint_fields(self.serde, config, checkpoint, metadata, new_versions)
        await self.tenant.put_graph_checkpoint(**fields)
        return config_of(fields["thread_id"], fields["checkpoint_ns"], checkpoint["id"])

    async def put_writes(
        self, config: RunnableConfig, writes: Sequence[tuple[str, Any]], task_id: str, task_path: str = ""
    ) -> None:
        """Save a task's pending writes on the checkpoint ``config`` names (idempotent per task and index)."""
        rows, replace = write_rows(self.serde, writes, task_id, task_path)
        checkpoint_id = get_checkpoint_id(config)
        if checkpoint_id is None:
            raise InvalidInput("put_writes needs a config with a checkpoint_id: pass the config that put returned")
        await self.tenant.put_graph_writes(
            thread_of(config), checkpoint_id, rows, checkpoint_ns=namespace_of(config), replace=replace
        )

    async def delete_thread(self, thread_id: str) -> None:
        """Delete the thread's checkpoints in every namespace, their values and writes."""
        await self.tenant.delete_graph_thread(str(thread_id))

    async def delete_for_runs(self, run_ids: Sequence[str]) -> None:
        """Delete the checkpoints these runs wrote, with their writes and the values nothing else references."""
        await self.tenant.delete_graph_runs([str(run_id) for run_id in run_ids])

    async def copy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        """Copy every checkpoint, value and write of one thread to another that has none."""
        await self.tenant.copy_graph_thread(str(source_thread_id), str(target_thread_id))

    async def prune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        """``keep_latest``: keep each namespace's latest checkpoint; ``delete``: delete them all. Writes and
        values of deleted checkpoints that nothing kept references go too."""
        await self.tenant.prune_graph_threads([str(t) for t in thread_ids], keep=prune_keep(strategy))
