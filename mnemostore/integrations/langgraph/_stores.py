"""LangGraph stores (long-term memory across threads) on a mnemostore tenant: ``AsyncMnemostoreStore`` and
``MnemostoreStore``.

Both are ``BaseStore`` subclasses over the tenant store's graph-item methods, through ``_store`` (the async source
and its generated sync twin). Items are indexed by mnemostore's own search index (its embedder, where one is
configured, and full text): ``index={"fields": [...]}`` says which parts of a value are indexed (default: all of it
as JSON); ``embed`` and ``dims`` are not used, since the store embeds with its own model.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from contextlib import asynccontextmanager, contextmanager
from datetime import datetime
from typing import Any, TypeVar

from langgraph.store.base import BaseStore, IndexConfig, Op, Result, TTLConfig

from mnemostore.integrations.langgraph._checkpointer import open_tenant as open_tenant_sync
from mnemostore.integrations.langgraph._checkpointer_async import open_tenant
from mnemostore.integrations.langgraph._loop import run_on_loop
from mnemostore.integrations.langgraph._store import ItemStore
from mnemostore.integrations.langgraph._store_async import AsyncItemStore
from mnemostore.service.store import TenantStore
from mnemostore.service.store_async import AsyncTenantStore

__all__ = ["AsyncMnemostoreStore", "MnemostoreStore"]

T = TypeVar("T")


def _fields(index: IndexConfig | None) -> list[str] | None:
    fields = index.get("fields") if index else None
    return list(fields) if fields else None


class AsyncMnemostoreStore(BaseStore):
    """LangGraph's ``BaseStore`` on a mnemostore tenant, for async graphs: namespaced items, ``put``, ``get``,
    ``delete``, ``search`` (value filters, and a ``query`` ranked by mnemostore's search), ``list_namespaces``,
    time to live.

    Example::

        store = AsyncMnemostoreStore(mnemo.tenant("acme"), ttl={"default_ttl": 60 * 24})
        graph = builder.compile(checkpointer=saver, store=store)

    Args:
        tenant: the tenant view whose items these are.
        index: ``{"fields": ["text", "tags[*]"]}``: the parts of each value indexed for ``query`` (default: the
            whole value); a put may pass its own ``index`` (or ``False``: not indexed).
        ttl: LangGraph's TTLConfig: ``default_ttl`` (minutes), ``refresh_on_read`` (default True).
        clock: the time source (default: now, UTC); tests pass their own.
    """

    supports_ttl = True

    def __init__(
        self,
        tenant: AsyncTenantStore,
        *,
        index: IndexConfig | None = None,
        ttl: TTLConfig | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.tenant = tenant
        self.index_config = index
        self.ttl_config = ttl
        self._io = AsyncItemStore(tenant, fields=_fields(index), clock=clock)
        self._loop: asyncio.AbstractEventLoop | None = None

    @classmethod
    @asynccontextmanager
    async def from_url(
        cls,
        database_url: str | None = None,
        *,
        tenant: uuid.UUID | str = "default",
        index: IndexConfig | None = None,
        ttl: TTLConfig | None = None,
        **settings: Any,
    ) -> AsyncIterator[AsyncMnemostoreStore]:
        """A store on a mnemostore it opens at ``database_url`` and closes at the end of the block (the schema of
        a new database and the tenant named ``tenant`` are created); ``settings`` go to ``AsyncMnemoStore``."""
        store, view = await open_tenant(database_url, tenant, settings)
        try:
            yield cls(view, index=index, ttl=ttl)
        finally:
            await store.close()

    async def abatch(self, ops: Iterable[Op]) -> list[Result]:
        """Run the operations in order; the result of each (None for puts and deletes)."""
        self._loop = asyncio.get_running_loop()
        return await self._io.run(ops)

    def batch(self, ops: Iterable[Op]) -> list[Result]:
        """``abatch``, from another thread than the store's event loop."""
        operations = list(ops)
        return self._sync(lambda: self.abatch(operations))

    async def asweep_ttl(self) -> int:
        """Delete the items whose time to live ran out; returns how many (expired items are never returned
        anyway: this frees their space)."""
        return await self._io.sweep()

    def _sync(self, call: Callable[[], Awaitable[T]]) -> T:
        return run_on_loop(
            self._loop,
            call,
            refusal=(
                "AsyncMnemostoreStore's sync methods run only from another thread while its event loop runs: "
                "use the async API (await store.aget(...), graph.ainvoke(...)), or MnemostoreStore"
            ),
        )


class MnemostoreStore(BaseStore):
    """LangGraph's ``BaseStore`` on a mnemostore tenant, for sync graphs (arguments as ``AsyncMnemostoreStore``).
    The async methods run the sync ones on a worker thread."""

    supports_ttl = True

    def __init__(
        self,
        tenant: TenantStore,
        *,
        index: IndexConfig | None = None,
        ttl: TTLConfig | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.tenant = tenant
        self.index_config = index
        self.ttl_config = ttl
        self._io = ItemStore(tenant, fields=_fields(index), clock=clock)

    @classmethod
    @contextmanager
    def from_url(
        cls,
        database_url: str | None = None,
        *,
        tenant: uuid.UUID | str = "default",
        index: IndexConfig | None = None,
        ttl: TTLConfig | None = None,
        **settings: Any,
    ) -> Iterator[MnemostoreStore]:
        """A store on a mnemostore it opens at ``database_url`` and closes at the end of the block (the schema of
        a new database and the tenant named ``tenant`` are created); ``settings`` go to ``MnemoStore``."""
        store, view = open_tenant_sync(database_url, tenant, settings)
        try:
            yield cls(view, index=index, ttl=ttl)
        finally:
            store.close()

    def batch(self, ops: Iterable[Op]) -> list[Result]:
        """Run the operations in order; the result of each (None for puts and deletes)."""
        return self._io.run(ops)

    async def abatch(self, ops: Iterable[Op]) -> list[Result]:
        """``batch`` on a worker thread."""
        return await asyncio.to_thread(self.batch, list(ops))

    def sweep_ttl(self) -> int:
        """Delete the items whose time to live ran out; returns how many."""
        return self._io.sweep()
