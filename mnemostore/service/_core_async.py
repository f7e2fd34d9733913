"""The store's core: construction, lifecycle, schema migrations and the indexer (over ``_runtime_async``)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any, Self

from mnemostore.cache import (
    AsyncCache,
)
from mnemostore.config import Settings
from mnemostore.errors import (
    ConfigurationError,
    MnemostoreError,
    VectorSearchUnavailable,
)
from mnemostore.ops import migrate as migrations
from mnemostore.search import Embedder, IndexingStatus, ItemKind
from mnemostore.service import _validation as v
from mnemostore.service._inputs import utc_now
from mnemostore.service._runtime_async import AsyncStoreRuntime
from mnemostore.store import AsyncUnitOfWork, QueryObserver, observe_queries

if TYPE_CHECKING:
    from mnemostore.service.store_async import AsyncTenantStore


class AsyncStoreCore:
    """The state every store-level capability shares; ``AsyncMnemoStore`` documents the arguments."""

    def __init__(
        self,
        database_url: str | None = None,
        *,
        settings: Settings | None = None,
        cache: AsyncCache | None = None,
        embedder: Embedder | None = None,
        **overrides: Any,
    ) -> None:
        if embedder is not None and not isinstance(embedder, Embedder):
            raise ConfigurationError(
                f"embedder= takes an Embedder object (e.g. SentenceTransformerEmbedder()), got {embedder!r}: to "
                "choose one by name, set MNEMOSTORE_EMBEDDER or pass settings=Settings(embedder=...)"
            )
        updates = dict(overrides)
        if database_url is not None:
            updates["database_url"] = database_url
        if settings is None:
            # Arguments win over the environment, so a bad MNEMOSTORE_DATABASE_URL is not read when one is given.
            self.settings = Settings(**updates)
        else:
            self.settings = Settings(**{**settings.model_dump(), **updates}) if updates else settings
        # The one place the cache is built: everything cached goes through self.cache.
        cache = cache if cache is not None else AsyncCache.from_settings(self.settings)
        # What this store's tenant views share with it. The indexer runs when started (start_indexer,
        # `mnemostore worker`) or, with indexer_autostart, once a write has queued items to embed.
        self._runtime = AsyncStoreRuntime(self.settings, cache, embedder)
        self._db = self._runtime.db
        self.cache = self._runtime.cache
        self.search_engine = self._runtime.search_engine

    async def __aenter__(self) -> Self:
        return self

    if TYPE_CHECKING:

        def tenant(self, tenant_id: uuid.UUID | str) -> AsyncTenantStore:
            """The operations of one tenant (defined by ``AsyncMnemoStore``)."""
            ...

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Stop the in-process indexer, if started, and close every pooled connection (database and Redis)."""
        await self._runtime.close()

    @property
    def embedder(self) -> Embedder | None:
        """The embedder the store indexes and searches with; None: full-text search only (``embedder=none``,
        or the default local model without the embeddings extra installed)."""
        return self.search_engine.embedder()

    async def start_indexer(self) -> None:
        """Embed pending index jobs in the background of this process until ``stop_indexer()`` or ``close()``.

        Raises:
            EmbedderUnavailable: no embedder is configured or installed.
        """
        await self._runtime.start_indexer()

    @property
    def indexer_running(self) -> bool:
        """Whether this store runs the indexer in the background of this process (started, or autostarted)."""
        return self._runtime.indexer_running

    async def stop_indexer(self) -> None:
        """Stop the in-process indexer after its current batch (a no-op when it is not running)."""
        await self._runtime.stop_indexer()

    async def run_indexer(self, stop: asyncio.Event) -> None:
        """Process index jobs until ``stop`` is set (``mnemostore worker`` runs this)."""
        self.search_engine.require_embedder()
        await self.check_schema()
        await self._runtime.indexer().run(stop)

    async def wait_for_indexing(self, *, timeout_seconds: float = 60.0, inline: bool | None = None) -> IndexingStatus:
        """Wait until no index job of any tenant is pending or running, so search sees everything written.

        Args:
            inline: process the jobs here (default: yes, unless this store's indexer is running).

        Raises:
            IndexingTimeout: jobs were still open after ``timeout_seconds``.
        """
        return await self._runtime.drain(tenant_id=None, timeout_seconds=timeout_seconds, inline=inline)

    async def indexing_status(self) -> IndexingStatus:
        """Index jobs by state across tenants, with the newest failures and their errors."""
        async with self._runtime.transaction(None, write=False) as uow:
            return await uow.index_jobs.status()

    async def reindex(
        self,
        *,
        batch_size: int = 1000,
        timeout_seconds: float = 86_400.0,
        progress: Callable[[int, int], None] | None = None,
        max_jobs: int | None = None,
        stop: asyncio.Event | None = None,
    ) -> IndexingStatus:
        """Embed every item that has no vector of the configured model, then wait until they are indexed.

        This is how the model is changed: set the new one and run it (``mnemostore reindex``). Items keep their
        old vector until the new one replaces it, and are found by full text throughout. Interrupted, it resumes:
        items already embedded with the model are skipped. Failed jobs are retried. On PostgreSQL it first makes
        sure the vector column and the HNSW index of the model's dimension exist (after pgvector was installed).

        Args:
            batch_size: items looked at per transaction while enqueueing the missing ones.
            progress: called with (jobs done so far, jobs in total) as batches finish.
            max_jobs: stop after embedding this many jobs (the rest stay pending; run again to go on).
            stop: stop after the current batch when it is set (``mnemostore reindex`` sets it on Ctrl-C).

        Returns:
            The jobs by state: ``pending`` > 0 when it stopped early.
        """
        v.check_int(batch_size, "batch_size", minimum=1, maximum=100_000)
        if max_jobs is not None:
            v.check_int(max_jobs, "max_jobs (None: all)", minimum=1)
        embedder = self.search_engine.require_embedder()
        await self.check_schema()
        if self._db.dialect == "postgresql":
            try:
                async with self._db.transaction(None, write=True) as uow:
                    await uow.ensure_pg_vectors(embedder.dimension)
            except MnemostoreError as error:
                raise VectorSearchUnavailable(
                    f"cannot set up vector search ({error}): install the pgvector extension on the PostgreSQL "
                    "server (e.g. apt install postgresql-<version>-pgvector), then run `mnemostore reindex` again"
                ) from error
            self.search_engine.forget_vector_support()
        async with self._db.transaction(None, write=True) as uow:
            await uow.index_jobs.retry_failed(utc_now())
        for kind in ItemKind:
            after: uuid.UUID | None = None
            while True:
                async with self._db.transaction(None, write=True) as uow:
                    repo = uow.index_jobs
                    _, after = await repo.enqueue_missing(
                        kind, model=embedder.name, after=after, limit=batch_size, now=utc_now()
                    )
                if after is None:
                    break
        indexer = self._runtime.indexer()
        total = await indexer.open_jobs()
        done = 0

        def advance(count: int) -> None:
            nonlocal done
            done += count
            if progress is not None:
                progress(min(done, total), total)

        if progress is not None:
            progress(0, total)
        status = await indexer.drain(
            timeout_seconds=timeout_seconds, inline=True, progress=advance, max_jobs=max_jobs, stop=stop
        )
        if self._runtime.vectors is not None and status.pending == 0 and status.running == 0:
            await self.sync_vector_index()
        return status

    async def sync_vector_index(self) -> dict[str, int]:
        """``vector_backend=milvus``: make Milvus hold exactly the vectors of the embeddings table, every tenant's:
        write the entities it lacks (a new or emptied Milvus, a restore) and remove the stale ones (of deleted
        items, of vectors replaced by another model's). ``reindex`` ends with it. Safe while the store is in use.

        Returns:
            ``{"written": entities written, "removed": stale entities removed}``.

        Raises:
            ConfigurationError: the vector backend is not milvus.
            BackendUnavailable: Milvus did not answer.
        """
        if self._runtime.vectors is None:
            raise ConfigurationError(
                f"sync_vector_index keeps Milvus in step, and MNEMOSTORE_VECTOR_BACKEND is "
                f"{self.settings.vector_backend}: set it to milvus (and MNEMOSTORE_MILVUS_URI) to use Milvus"
            )
        await self.check_schema()
        written, removed = await self._runtime.vectors.rebuild()
        return {"written": written, "removed": removed}

    def observe_queries(self, observer: QueryObserver) -> None:
        """Call ``observer(kind, seconds)`` after each SQL statement the store runs (kind: ``select``, ``insert``,
        ``update``, ``delete`` or ``other``; never the statement's text). The HTTP service's metrics use it."""
        for engine in self._db.engines:
            observe_queries(engine, observer)

    async def check_schema(self) -> None:
        """Raise SchemaOutOfDate unless the database is at the newest revision this code knows."""
        await self._runtime.check_schema()

    async def migrate(self, revision: str = "head") -> None:
        """Upgrade the schema to ``revision`` (default: newest). Safe to call when already there."""
        if True:  # ASYNC
            await asyncio.to_thread(migrations.upgrade, self.settings, revision)
        else:
            migrations.upgrade(self.settings, revision)
        self._runtime.schema_ok = False
        await self.cache.flush()

    async def rollback_to_version(self, revision: str) -> None:
        """Downgrade the schema to ``revision`` (``base`` removes every mnemostore table)."""
        if True:  # ASYNC
            await asyncio.to_thread(migrations.downgrade, self.settings, revision)
        else:
            migrations.downgrade(self.settings, revision)
        self._runtime.schema_ok = False
        await self.cache.flush()

    async def get_migration_status(self) -> migrations.MigrationStatus:
        """The database's schema revision against the newest one this version of mnemostore knows."""
        if True:  # ASYNC
            return await asyncio.to_thread(migrations.get_migration_status, self.settings)
        else:
            return migrations.get_migration_status(self.settings)

    def _transaction(self, tenant_id: uuid.UUID | None, *, write: bool) -> AbstractAsyncContextManager[AsyncUnitOfWork]:
        return self._runtime.transaction(tenant_id, write=write)
