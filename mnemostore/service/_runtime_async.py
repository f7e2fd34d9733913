"""What one store owns and its tenant views share: settings, the database pool, the cache, the search engine and
the indexer, with the one way to open a transaction on them (the schema is checked before the first one).

``AsyncMnemoStore`` builds one runtime and hands it to every tenant view it makes, so a tenant view never reaches
into its store's private members: this class is the seam between them, and its members are public to the
service package (the package itself is private).
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from mnemostore.cache import AsyncCache
from mnemostore.config import Settings
from mnemostore.errors import IndexingTimeout
from mnemostore.ops import migrate as migrations
from mnemostore.search import Embedder, IndexingStatus, ItemKind
from mnemostore.service._indexer_async import AsyncIndexer
from mnemostore.service._search_async import AsyncSearchEngine
from mnemostore.service._vectors_async import AsyncVectorMirror
from mnemostore.store import AsyncDatabase, AsyncHotPath, AsyncUnitOfWork

__all__ = ["AsyncStoreRuntime"]


class AsyncStoreRuntime:
    """The resources of one store. Creating it does no I/O."""

    def __init__(self, settings: Settings, cache: AsyncCache, embedder: Embedder | None) -> None:
        self.settings = settings
        self.db = AsyncDatabase(settings)
        self.cache = cache
        # With encryption on, what the database seals stays sealed in Redis and on the event channel.
        cache.seal_with(self.db.codec)
        # With vector_backend=milvus, Milvus answers vector queries, kept in step with the embeddings table.
        self.vectors = AsyncVectorMirror(self.db, settings) if settings.vector_backend == "milvus" else None
        # The embedder (its model loads on first use) and, on SQLite, the in-process vector indexes.
        self.search_engine = AsyncSearchEngine(self.db, settings, embedder, vectors=self.vectors)
        self.schema_ok = False
        self._indexer: AsyncIndexer | None = None
        self._indexer_stop: Any = None
        self._indexer_task: Any = None
        # Set when a write queued items to embed: the store then starts its indexer after the commit
        # (indexer_autostart); cleared once it runs, or once it is known that it cannot.
        self.autostart_due = False

    async def check_schema(self) -> None:
        """Raise SchemaOutOfDate unless the database is at the newest revision this code knows."""
        await self.db.check_schema(migrations.head_revision())
        self.schema_ok = True

    async def ensure_schema(self) -> None:
        """Check the schema once; after a migration (``schema_ok`` reset) check it again."""
        if not self.schema_ok:
            await self.check_schema()

    @asynccontextmanager
    async def transaction(self, tenant_id: uuid.UUID | None, *, write: bool) -> AsyncIterator[AsyncUnitOfWork]:
        """One transaction bound to ``tenant_id`` (None: the admin scope), on a schema known to be current."""
        await self.ensure_schema()
        async with self.db.transaction(tenant_id, write=write) as uow:
            yield uow
        await self.after_commit()

    async def hot_path(self) -> AsyncHotPath:
        """The append and the history page in one call on the driver each, on a schema known to be current."""
        await self.ensure_schema()
        return self.db.hot_path

    async def after_commit(self) -> None:
        """What follows a committed write: the indexer starts if the write queued items for it."""
        if self.autostart_due:
            await self._autostart_indexer()

    def queued_for_indexing(self) -> None:
        """A write queued items to embed: start the indexer after its commit (``indexer_autostart``)."""
        if self._indexer_task is None and self.settings.indexer_autostart:
            self.autostart_due = True

    async def _autostart_indexer(self) -> None:
        self.autostart_due = False
        if self._indexer_task is None and self.search_engine.embedder() is not None:
            await self.start_indexer()

    def indexer(self) -> AsyncIndexer:
        """The indexer of this store (built on first use; it embeds with the search engine's embedder)."""
        if self._indexer is None:
            self._indexer = AsyncIndexer(
                self.db, self.settings, self.search_engine.require_embedder, vectors=self.vectors
            )
        return self._indexer

    @property
    def indexer_running(self) -> bool:
        """Whether this process runs the indexer in the background (``start_indexer``)."""
        return self._indexer_task is not None

    async def start_indexer(self) -> None:
        """Run the indexer in the background of this process (a no-op when it runs already)."""
        if self._indexer_task is not None:
            return
        self.search_engine.require_embedder()
        await self.check_schema()
        indexer = self.indexer()
        if True:  # ASYNC
            self._indexer_stop = asyncio.Event()
            self._indexer_task = asyncio.create_task(indexer.run(self._indexer_stop))
        else:
            self._indexer_stop = threading.Event()
            self._indexer_task = threading.Thread(
                target=indexer.run, args=(self._indexer_stop,), name="mnemostore-indexer", daemon=True
            )
            self._indexer_task.start()

    async def stop_indexer(self) -> None:
        """Stop the background indexer after its current batch (a no-op when it is not running)."""
        if self._indexer_task is None:
            return
        self._indexer_stop.set()
        if True:  # ASYNC
            await self._indexer_task
        else:
            self._indexer_task.join()
        self._indexer_task = None

    async def drain(
        self, *, tenant_id: uuid.UUID | None, timeout_seconds: float, inline: bool | None
    ) -> IndexingStatus:
        """Wait until no index job (of ``tenant_id``, or of any tenant) is open; ``inline`` None: process the
        jobs here unless the background indexer runs."""
        await self.ensure_schema()
        run_here = not self.indexer_running if inline is None else inline
        return await self.indexer().drain(tenant_id=tenant_id, timeout_seconds=timeout_seconds, inline=run_here)

    async def embed_few_waiting(self, tenant_id: uuid.UUID, waiting: int) -> bool:
        """After a search that counted ``waiting`` items of the tenant not yet embedded: embed them here when
        they are at most ``search_embeds_pending`` (``embed_pending``); True when it did, and the search should
        run again to see them."""
        if waiting == 0 or waiting > self.settings.search_embeds_pending:
            return False
        await self.embed_pending(tenant_id)
        return True

    async def embed_pending(self, tenant_id: uuid.UUID) -> int:
        """Read-your-writes for search: embed the tenant's items still waiting for the indexer, when there are at
        most ``search_embeds_pending`` of them, here and now; returns how many still wait (0: search sees all).

        Writes never wait for the model; the first search after them does, briefly and boundedly. Items above the
        bound, or claimed by a worker at this moment, are left to the indexer (full text finds them meanwhile).
        """
        limit = self.settings.search_embeds_pending
        async with self.transaction(tenant_id, write=False) as uow:
            waiting = await uow.index_jobs.open_jobs()
        if waiting == 0 or waiting > limit:
            return waiting
        await self.indexer().run_once(batch_size=limit, tenant_id=tenant_id)
        async with self.transaction(tenant_id, write=False) as uow:
            waiting = await uow.index_jobs.open_jobs()
        if waiting and self.indexer_running and self.settings.search_wait_indexer_seconds > 0:
            # Claimed by this process's own indexer, most likely in its first batch, loading the model: it is
            # about to finish them, so wait for it (bounded) rather than answer without them.
            try:
                status = await self.indexer().drain(
                    tenant_id=tenant_id, timeout_seconds=self.settings.search_wait_indexer_seconds, inline=False
                )
            except IndexingTimeout:
                return waiting
            return status.pending + status.running
        return waiting

    async def vectors_removed(
        self,
        tenant_id: uuid.UUID,
        *,
        kind: ItemKind | None = None,
        ids: list[uuid.UUID] | None = None,
        owner_id: uuid.UUID | None = None,
        conversation_id: uuid.UUID | None = None,
        agent_id: str | None = None,
        sweep: bool = False,
    ) -> None:
        """After a delete committed: remove the deleted items' vectors from Milvus (``vector_backend=milvus``;
        a no-op otherwise). See ``AsyncVectorMirror.removed``: by ``ids``, by scope, or a ``sweep`` of the scope;
        it never raises."""
        if self.vectors is not None and (ids is None or ids):
            await self.vectors.removed(
                tenant_id,
                kind=kind,
                ids=ids or (),
                owner_id=owner_id,
                conversation_id=conversation_id,
                agent_id=agent_id,
                sweep=sweep,
            )

    async def close(self) -> None:
        """Stop the indexer, save the in-process vector indexes, close the database pool, Milvus and the cache."""
        try:
            await self.stop_indexer()
            self.search_engine.save_indexes()
            await self.db.close()
            if self.vectors is not None:
                self.vectors.close()
        finally:
            await self.cache.close()
