"""The mnemostore API: ``AsyncMnemoStore`` and its per-tenant view ``AsyncTenantStore``.

This file is the source of truth; ``store.py`` (``MnemoStore``/``TenantStore``, same method names, no ``await``) is
generated from it by ``tools/async_to_sync.py``. Edit here, then run ``python tools/async_to_sync.py --all``.

Every tenant operation goes through ``store.tenant(tenant_id)``: the returned view binds each transaction to that
tenant, so a caller cannot forget the scope. Each public method is one transaction: it validates its input first,
then writes everything or nothing.

Example::

    async with AsyncMnemoStore("sqlite:///mnemostore.db") as store:
        tenant = await store.create_tenant("acme")
        t = store.tenant(tenant.id)
        user = await t.get_or_create_user_by_identity("discord", "1234", display_name="Ada")
        conv = await t.create_conversation(user.id, title="Hello")
        await t.add_message(conv.id, role="user", content="Hi!")
        page = await t.get_conversation_history(conv.id, limit=50)
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import logging
import os
import secrets
import threading
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import mnemostore.ops._backup_async as backups
from mnemostore.cache import _flags, _ratelimit
from mnemostore.cache._cache_async import (
    API_KEY,
    CHANNEL_CONFIG,
    TENANT,
    USER,
    AsyncCache,
    AsyncEventSubscription,
    build_cache,
)
from mnemostore.cache._types import ChannelSession, EventType, RateLimitDecision
from mnemostore.config import Settings
from mnemostore.domain import (
    AgentMetric,
    ApiKey,
    ChannelConfig,
    Checkpoint,
    Conversation,
    ConversationStats,
    ConversationStatus,
    HistoryPage,
    InteractionEvent,
    KnowledgeChunk,
    Memory,
    MemoryKind,
    MemoryTier,
    MemoryVersion,
    Message,
    NewMessage,
    Page,
    Quotas,
    Role,
    Tenant,
    TenantStatus,
    TenantUsage,
    ToolExecution,
    User,
    UserIdentity,
    new_id,
)
from mnemostore.errors import (
    CheckpointNotFound,
    ConfigurationError,
    ConflictError,
    ConversationNotFound,
    DuplicateIdentity,
    InvalidInput,
    KnowledgeChunkNotFound,
    MemoryNotFound,
    MessageNotFound,
    MnemostoreError,
    QuotaExceeded,
    RateLimited,
    SummarizationError,
    TenantAlreadyExists,
    TenantNotFound,
    UserNotFound,
    VectorSearchUnavailable,
)
from mnemostore.memory import (
    DuplicateMatch,
    ExtractiveSummarizer,
    MaintenanceReport,
    RetentionPolicy,
    Summarizer,
    TenantMaintenance,
    find_duplicate,
)
from mnemostore.ops import migrate as migrations
from mnemostore.ops._archive import BackupResult, ProgressReporter, RestoreResult, Scope
from mnemostore.ops._health_async import AsyncHealthChecker, HealthReport
from mnemostore.search._embedders import Embedder
from mnemostore.search._statements import SearchFilters
from mnemostore.search._types import IndexingStatus, ItemKind, SearchHit, SearchMode, parse_kind, parse_mode
from mnemostore.service import _validation as v
from mnemostore.service._base import (
    UNSET,
    Unset,
    as_id,
    conversation_cursor,
    decode_conversation_cursor,
    decode_history_cursor,
    decode_list_cursor,
    history_cursor,
    id_cursor,
    message_from_row,
    message_rows,
    parse_api_key,
    to_export,
)
from mnemostore.service._history import page_from_window, window_from_rows
from mnemostore.service._indexer_async import AsyncIndexer
from mnemostore.service._search_async import AsyncSearchEngine
from mnemostore.store._crypto import SEALED_COLUMNS, KeyRotationReport
from mnemostore.store._database_async import AsyncDatabase
from mnemostore.store._instrument import QueryObserver, observe_queries
from mnemostore.store._repositories_async import AsyncUnitOfWork
from mnemostore.store._search_async import AsyncIndexRepository, ensure_pg_vectors

__all__ = ["AsyncMnemoStore", "AsyncTenantStore"]

API_KEY_PREFIX: Final = "mns"


log = logging.getLogger("mnemostore.memory")


def _now() -> datetime:
    return datetime.now(UTC)


class AsyncMnemoStore:
    """A connection pool to one database plus the operations that span tenants.

    Creating it does no I/O; the schema is checked on first use, and a database that is behind raises
    SchemaOutOfDate naming the command to run. Use it as an async context manager, or call ``close()``.

    Args:
        database_url: ``sqlite:///path.db`` or ``postgresql://…``; defaults to ``MNEMOSTORE_DATABASE_URL``
            and then to ``mnemostore.db`` in the current folder.
        settings: a full Settings object, instead of (or refined by) ``database_url`` and ``overrides``.
        cache: the cache to use instead of the one the settings describe (Redis at ``redis_url``, else
            in-process); for tests and for sharing one cache between stores.
    """

    def __init__(
        self,
        database_url: str | None = None,
        *,
        settings: Settings | None = None,
        cache: AsyncCache | None = None,
        embedder: Embedder | None = None,
        **overrides: Any,
    ) -> None:
        updates = dict(overrides)
        if database_url is not None:
            updates["database_url"] = database_url
        if settings is None:
            # Arguments win over the environment, so a bad MNEMOSTORE_DATABASE_URL is not read when one is given.
            self.settings = Settings(**updates)
        else:
            self.settings = Settings(**{**settings.model_dump(), **updates}) if updates else settings
        self._db = AsyncDatabase(self.settings)
        self._schema_ok = False
        # The one place the cache is built: everything cached goes through self.cache.
        self.cache = cache if cache is not None else build_cache(self.settings)
        # Search: the embedder (from the settings unless given; its model loads on first use) and, on SQLite,
        # the in-process vector indexes. The indexer runs only when started (start_indexer, `mnemostore worker`).
        self.search_engine = AsyncSearchEngine(self._db, self.settings, embedder)
        self._indexer: AsyncIndexer | None = None
        self._indexer_stop: Any = None
        self._indexer_task: Any = None

    async def __aenter__(self) -> AsyncMnemoStore:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Stop the in-process indexer, if started, and close every pooled connection (database and Redis)."""
        try:
            await self.stop_indexer()
            self.search_engine.save_indexes()
            await self._db.close()
        finally:
            await self.cache.close()

    # -- search: the embedder and background indexing (mnemostore.search) --------------------------------------

    @property
    def embedder(self) -> Embedder | None:
        """The embedder the store indexes and searches with; None: full-text search only (``embedder=none``,
        or the default local model without the embeddings extra installed)."""
        return self.search_engine.embedder()

    def _get_indexer(self) -> AsyncIndexer:
        if self._indexer is None:
            self._indexer = AsyncIndexer(self._db, self.settings, self.search_engine.require_embedder)
        return self._indexer

    async def start_indexer(self) -> None:
        """Embed pending index jobs in the background of this process until ``stop_indexer()`` or ``close()``.

        Raises:
            EmbedderUnavailable: no embedder is configured or installed.
        """
        if self._indexer_task is not None:
            return
        self.search_engine.require_embedder()
        await self.check_schema()
        indexer = self._get_indexer()
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
        """Stop the in-process indexer after its current batch (a no-op when it is not running)."""
        if self._indexer_task is None:
            return
        self._indexer_stop.set()
        if True:  # ASYNC
            await self._indexer_task
        else:
            self._indexer_task.join()
        self._indexer_task = None

    async def run_indexer(self, stop: asyncio.Event) -> None:
        """Process index jobs until ``stop`` is set (``mnemostore worker`` runs this)."""
        self.search_engine.require_embedder()
        await self.check_schema()
        await self._get_indexer().run(stop)

    async def wait_for_indexing(self, *, timeout_seconds: float = 60.0, inline: bool | None = None) -> IndexingStatus:
        """Wait until no index job of any tenant is pending or running, so search sees everything written.

        Args:
            inline: process the jobs here (default: yes, unless this store's indexer is running).

        Raises:
            IndexingTimeout: jobs were still open after ``timeout_seconds``.
        """
        if not self._schema_ok:
            await self.check_schema()
        indexer = self._get_indexer()
        run_here = self._indexer_task is None if inline is None else inline
        return await indexer.drain(timeout_seconds=timeout_seconds, inline=run_here)

    async def indexing_status(self) -> IndexingStatus:
        """Index jobs by state across tenants, with the newest failures and their errors."""
        if not self._schema_ok:
            await self.check_schema()
        async with self._db.transaction(None) as uow:
            return await AsyncIndexRepository(uow.connection, None, dialect=self._db.dialect).status()

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
        if max_jobs is not None and (isinstance(max_jobs, bool) or not isinstance(max_jobs, int) or max_jobs < 1):
            raise InvalidInput(f"max_jobs must be a positive integer or None, got {max_jobs!r}")
        embedder = self.search_engine.require_embedder()
        await self.check_schema()
        if self._db.dialect == "postgresql":
            try:
                async with self._db.transaction(None, write=True) as uow:
                    await ensure_pg_vectors(uow.connection, embedder.dimension)
            except MnemostoreError as error:
                raise VectorSearchUnavailable(
                    f"cannot set up vector search ({error}): install the pgvector extension on the PostgreSQL "
                    "server (e.g. apt install postgresql-<version>-pgvector), then run `mnemostore reindex` again"
                ) from error
            self.search_engine.forget_vector_support()
        async with self._db.transaction(None, write=True) as uow:
            await AsyncIndexRepository(uow.connection, None, dialect=self._db.dialect).retry_failed(_now())
        for kind in ItemKind:
            after: uuid.UUID | None = None
            while True:
                async with self._db.transaction(None, write=True) as uow:
                    repo = AsyncIndexRepository(uow.connection, None, dialect=self._db.dialect)
                    _, after = await repo.enqueue_missing(
                        kind, model=embedder.name, after=after, limit=batch_size, now=_now()
                    )
                if after is None:
                    break
        indexer = self._get_indexer()
        total = await indexer.open_jobs()
        done = 0

        def advance(count: int) -> None:
            nonlocal done
            done += count
            if progress is not None:
                progress(min(done, total), total)

        if progress is not None:
            progress(0, total)
        return await indexer.drain(
            timeout_seconds=timeout_seconds, inline=True, progress=advance, max_jobs=max_jobs, stop=stop
        )

    # -- cache ----------------------------------------------------------------------------------------------

    def cache_health(self) -> dict[str, Any]:
        """The cache's state as plain data: backend, breaker state, rate-limiter mode, hit/miss counters per
        cache, Redis latency. ``degraded`` is True while Redis is unavailable and the database serves alone."""
        return self.cache.health()

    async def flush_cache(self, tenant_id: uuid.UUID | str | None = None) -> int:
        """Drop cached data (histories, lookups, sessions) of one tenant, or of all; the database is untouched.

        Call it after restoring a backup or editing the database behind the store's back. Returns the number
        of keys deleted.
        """
        return await self.cache.flush(as_id(tenant_id, "tenant_id") if tenant_id is not None else None)

    async def set_global_feature_flag(self, flag: str, value: Any) -> None:
        """Override a global feature flag at run time, for every process sharing the cache (None: remove).

        Global overrides live in the cache only (Settings.feature_flags is the durable default); tenant and
        channel flags are stored in their configs, see ``AsyncTenantStore.set_feature_flag``.
        """
        v.check_name(flag, "flag", max_len=200, required=True)
        await self.cache.flags.set_global(flag, None if value is None else _flags.check_flag(flag, value))

    def observe_queries(self, observer: QueryObserver) -> None:
        """Call ``observer(kind, seconds)`` after each SQL statement the store runs (kind: ``select``, ``insert``,
        ``update``, ``delete`` or ``other``; never the statement's text). The HTTP service's metrics use it."""
        observe_queries(self._db.engine, observer)

    # -- schema ---------------------------------------------------------------------------------------------

    async def check_schema(self) -> None:
        """Raise SchemaOutOfDate unless the database is at the newest revision this code knows."""
        await self._db.check_schema(migrations.head_revision())
        self._schema_ok = True

    async def migrate(self, revision: str = "head") -> None:
        """Upgrade the schema to ``revision`` (default: newest). Safe to call when already there."""
        if True:  # ASYNC
            await asyncio.to_thread(migrations.upgrade, self.settings, revision)
        else:
            migrations.upgrade(self.settings, revision)
        self._schema_ok = False
        await self.cache.flush()

    async def rollback_to_version(self, revision: str) -> None:
        """Downgrade the schema to ``revision`` (``base`` removes every mnemostore table)."""
        if True:  # ASYNC
            await asyncio.to_thread(migrations.downgrade, self.settings, revision)
        else:
            migrations.downgrade(self.settings, revision)
        self._schema_ok = False
        await self.cache.flush()

    async def get_migration_status(self) -> migrations.MigrationStatus:
        if True:  # ASYNC
            return await asyncio.to_thread(migrations.get_migration_status, self.settings)
        else:
            return migrations.get_migration_status(self.settings)

    # -- operations: health, key rotation -------------------------------------------------------------------

    async def health(self, *, timeout_seconds: float | None = None) -> HealthReport:
        """Check the database, schema, Redis, disk and encryption, concurrently; never raises for a bad answer.

        Args:
            timeout_seconds: how long each check may take (default: ``health_timeout_seconds``).

        Returns:
            One result per check, each saying what to do when it is not ok; ``report.healthy`` is False when
            one failed (the store cannot work as it is).
        """
        checker = AsyncHealthChecker(
            self._db,
            self.settings,
            cache_health=self.cache_health,
            timeout_seconds=timeout_seconds,
            embedder=self.search_engine.embedder,
        )
        return await checker.run()

    async def rotate_keys(self, *, batch_size: int = 500) -> KeyRotationReport:
        """Re-encrypt with the current (first) encryption key every sensitive value sealed with another key or
        stored in clear, and recompute the email blind index; afterwards the older keys can be removed.

        Each batch of ``batch_size`` rows is its own transaction, so a long rotation never holds locks for long;
        run it again after an interruption and it carries on (rows already current are read, not written).

        Raises:
            ConfigurationError: no encryption key is configured.
            EncryptionKeyError: a row is sealed with a key that is not configured.
        """
        codec = self._db.codec
        if codec.current_key_id is None:
            raise ConfigurationError(
                "no encryption key is configured: set MNEMOSTORE_ENCRYPTION_KEYS (the first key is the one "
                "rotate-keys encrypts with) and MNEMOSTORE_BLIND_INDEX_KEY"
            )
        if not isinstance(batch_size, int) or isinstance(batch_size, bool) or not 1 <= batch_size <= 10_000:
            raise InvalidInput(f"batch_size must be an integer from 1 to 10000, got {batch_size!r}")
        scanned = dict.fromkeys(SEALED_COLUMNS, 0)
        rewritten = dict.fromkeys(SEALED_COLUMNS, 0)
        for table in SEALED_COLUMNS:
            after = None
            while True:
                async with self._transaction(None, write=True) as uow:
                    batch = await uow.maintenance.reseal(table, after=after, limit=batch_size)
                scanned[table] += batch.scanned
                rewritten[table] += batch.rewritten
                if batch.last is None or batch.scanned < batch_size:
                    break
                after = batch.last
        return KeyRotationReport(key_id=codec.current_key_id, scanned=scanned, rewritten=rewritten)

    async def run_maintenance(
        self,
        tenant_id: uuid.UUID | str | None = None,
        *,
        dry_run: bool = False,
        now: datetime | None = None,
        batch_size: int = 500,
    ) -> MaintenanceReport:
        """Apply retention in one tenant, or in every tenant (see ``AsyncTenantStore.run_maintenance``), and
        prune the search outbox.

        A tenant whose retention config is malformed is reported (``error``) and skipped; the others go on.
        Index jobs done more than ``Settings.index_jobs_retention_hours`` before ``now`` are deleted (of
        ``tenant_id``, or of every tenant), ``batch_size`` rows per transaction so a large backlog never holds
        a long lock; pending, running and failed jobs are kept (failed ones until ``reindex`` retries them).

        Args:
            dry_run: count what would be done, change nothing.
            now: the moment ages are measured from (default: now).
            batch_size: rows changed per transaction (1 to 10000).

        Returns:
            Per-tenant counts of purged memories, archived and deleted conversations, their totals, and the
            number of index jobs pruned.

        Raises:
            TenantNotFound: ``tenant_id`` names no tenant.
        """
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or not 1 <= batch_size <= 10_000:
            raise InvalidInput(f"batch_size must be an integer from 1 to 10000, got {batch_size!r}")
        started = v.check_time(now, "now") or _now()
        report = MaintenanceReport(dry_run=dry_run, started_at=started)
        tid = as_id(tenant_id, "tenant_id") if tenant_id is not None else None
        if tid is not None:
            report.tenants.append(
                await self.tenant(tid).run_maintenance(dry_run=dry_run, now=started, batch_size=batch_size)
            )
        else:
            cursor: str | None = None
            while True:
                page = await self.list_tenants(limit=500, cursor=cursor)
                for tenant in page.items:
                    try:
                        result = await self.tenant(tenant.id).run_maintenance(
                            dry_run=dry_run, now=started, batch_size=batch_size
                        )
                    except (ConfigurationError, TenantNotFound) as error:
                        result = TenantMaintenance(tenant_id=tenant.id, error=str(error))
                    report.tenants.append(result)
                if page.next_cursor is None:
                    break
                cursor = page.next_cursor
        before = started - timedelta(hours=self.settings.index_jobs_retention_hours)
        report.index_jobs_done_before = before
        report.pruned_index_jobs = await self._prune_index_jobs(tid, before, dry_run=dry_run, batch_size=batch_size)
        return report

    async def _prune_index_jobs(
        self, tenant_id: uuid.UUID | None, before: datetime, *, dry_run: bool, batch_size: int
    ) -> int:
        """Delete index jobs done before ``before``, one short transaction per batch; returns how many."""
        if dry_run:
            async with self._transaction(tenant_id, write=False) as uow:
                return await AsyncIndexRepository(uow.connection, tenant_id, dialect=uow.dialect).count_done_before(
                    before
                )
        pruned = 0
        while True:
            async with self._transaction(tenant_id, write=True) as uow:
                repo = AsyncIndexRepository(uow.connection, tenant_id, dialect=uow.dialect)
                deleted = await repo.prune_done(before, limit=batch_size)
            pruned += deleted
            if deleted < batch_size:
                return pruned

    @asynccontextmanager
    async def _transaction(self, tenant_id: uuid.UUID | None, *, write: bool) -> AsyncIterator[AsyncUnitOfWork]:
        if not self._schema_ok:
            await self.check_schema()
        async with self._db.transaction(tenant_id, write=write) as uow:
            yield uow

    # -- tenants (admin scope) ------------------------------------------------------------------------------

    def tenant(self, tenant_id: uuid.UUID | str) -> AsyncTenantStore:
        """The operations of one tenant; every statement they run is confined to it."""
        return AsyncTenantStore(self, as_id(tenant_id, "tenant_id"))

    async def create_tenant(
        self,
        name: str,
        *,
        plan: str = "free",
        config: Mapping[str, Any] | None = None,
        quotas: Quotas | None = None,
    ) -> Tenant:
        """Create a tenant.

        Raises:
            TenantAlreadyExists: the name is taken.
        """
        v.check_name(name, "tenant name", max_len=200, required=True)
        v.check_name(plan, "plan", max_len=50, required=True)
        settings = v.check_json(config, "config", max_bytes=self.settings.max_metadata_bytes, allow_none=True)
        quotas = v.check_quotas(quotas or Quotas())
        now = _now()
        values = {
            "id": new_id(),
            "name": name,
            "plan": plan,
            "status": TenantStatus.ACTIVE.value,
            "max_users": quotas.max_users,
            "max_messages": quotas.max_messages,
            "max_storage_bytes": quotas.max_storage_bytes,
            "config": settings,
            "created_at": now,
            "updated_at": now,
        }
        try:
            async with self._transaction(None, write=True) as uow:
                return await uow.tenants.insert(values)
        except ConflictError as error:
            raise TenantAlreadyExists(f"a tenant named {name!r} already exists: choose another name") from error

    async def get_tenant(self, tenant_id: uuid.UUID | str) -> Tenant | None:
        """The tenant with its config, plan and quotas (read through the cache), or None."""
        tid = as_id(tenant_id, "tenant_id")

        async def load() -> Tenant | None:
            async with self._transaction(None, write=False) as uow:
                return await uow.tenants.get(tid)

        return await self.cache.objects.cached(self.cache.keys.obj(tid, "tenant"), load, codec=TENANT, name="tenant")

    async def get_tenant_or_raise(self, tenant_id: uuid.UUID | str) -> Tenant:
        tenant = await self.get_tenant(tenant_id)
        if tenant is None:
            raise TenantNotFound(tenant_id)
        return tenant

    async def get_tenant_by_name(self, name: str) -> Tenant | None:
        v.check_text(name, "name")
        async with self._transaction(None, write=False) as uow:
            return await uow.tenants.get_by_name(name)

    async def list_tenants(self, *, limit: int = 100, cursor: str | None = None) -> Page[Tenant]:
        v.check_limit(limit)
        after = id_cursor(cursor) if cursor else None
        async with self._transaction(None, write=False) as uow:
            items = await uow.tenants.list(limit=limit + 1, after=after)
        more = len(items) > limit
        items = items[:limit]
        return Page(items=items, next_cursor=str(items[-1].id) if more else None)

    async def update_tenant_config(
        self,
        tenant_id: uuid.UUID | str,
        *,
        config: Mapping[str, Any] | None = None,
        plan: str | None = None,
        quotas: Quotas | None = None,
        status: TenantStatus | str | None = None,
    ) -> Tenant:
        """Change a tenant's config (replaced whole), plan, quotas or status; arguments left None stay as they are."""
        tid = as_id(tenant_id, "tenant_id")
        values: dict[str, Any] = {"updated_at": _now()}
        if config is not None:
            values["config"] = v.check_json(config, "config", max_bytes=self.settings.max_metadata_bytes)
        if plan is not None:
            values["plan"] = v.check_name(plan, "plan", max_len=50, required=True)
        if quotas is not None:
            v.check_quotas(quotas)
            values.update(
                max_users=quotas.max_users,
                max_messages=quotas.max_messages,
                max_storage_bytes=quotas.max_storage_bytes,
            )
        if status is not None:
            try:
                values["status"] = TenantStatus(status).value
            except ValueError:
                raise InvalidInput(f"status {status!r} is not one of: active, suspended") from None
        async with self._transaction(None, write=True) as uow:
            tenant = await uow.tenants.update(tid, values)
        await self.cache.objects.invalidate(tid, [self.cache.keys.obj(tid, "tenant")])
        if tenant is None:
            raise TenantNotFound(tid)
        return tenant

    async def delete_tenant(self, tenant_id: uuid.UUID | str) -> None:
        """Delete a tenant and, by cascade, everything it owns."""
        tid = as_id(tenant_id, "tenant_id")
        async with self._transaction(None, write=True) as uow:
            if not await uow.tenants.delete(tid):
                raise TenantNotFound(tid)
        await self.cache.flush(tid, everything=True)
        self.search_engine.forget_tenant(tid)

    async def get_tenant_usage(self, tenant_id: uuid.UUID | str) -> TenantUsage:
        """Users, conversations, messages, tokens and stored bytes of a tenant (kept current by every write)."""
        tid = as_id(tenant_id, "tenant_id")
        async with self._transaction(tid, write=False) as uow:
            usage = await uow.tenants.usage(tid)
        if usage is None:
            raise TenantNotFound(tid)
        return usage

    async def recount_tenant_usage(self, tenant_id: uuid.UUID | str) -> TenantUsage:
        """Recompute a tenant's usage counters from its rows (after bulk imports or restores)."""
        tid = as_id(tenant_id, "tenant_id")
        async with self._transaction(tid, write=True) as uow:
            if await uow.tenants.usage(tid) is None:
                raise TenantNotFound(tid)
            return await uow.tenants.recount(tid)

    async def authenticate(self, api_key: str) -> ApiKey | None:
        """The live API key matching ``api_key``, or None (unknown, malformed or revoked).

        Read through the cache (the HTTP service authenticates every request): a live key's record is cached
        under the SHA-256 of its secret, and ``revoke_api_key`` invalidates it, so a revoked key stops working
        at once (in every process sharing the cache). Unknown and revoked keys are never cached.
        """
        parsed = parse_api_key(api_key, API_KEY_PREFIX)
        if parsed is None:
            return None
        tenant_id, digest = parsed

        async def load() -> ApiKey | None:
            async with self._transaction(tenant_id, write=False) as uow:
                found = await uow.api_keys.get_by_hash(digest)
            return found if found is not None and found.revoked_at is None else None

        key = self.cache.keys.obj(tenant_id, "apikey", digest)
        return await self.cache.objects.cached(key, load, codec=API_KEY, name="api_key")

    # -- backup and restore (mnemostore.ops._backup_async) ----------------------------------------------------

    async def backup(
        self,
        path: str | os.PathLike[str],
        *,
        tenant_id: uuid.UUID | str | None = None,
        compress: bool = False,
        progress: ProgressReporter | None = None,
    ) -> BackupResult:
        """Write an archive of the whole database, or of one tenant, from one consistent snapshot.

        The store keeps serving writes meanwhile; the archive holds the data as of the backup's start. It is a
        folder, or one ``.tar`` / ``.tar.gz`` file, with one JSON Lines file per table and a manifest of schema
        revision, row counts and SHA-256 checksums; either backend restores it (``restore``).

        Args:
            path: where to write it; it must not exist yet (an empty folder will do).
            tenant_id: back up only this tenant (see also ``AsyncTenantStore.export``).
            compress: write one ``.tar.gz`` file (the suffix is added to ``path`` when missing).
            progress: told how far the backup is (the CLI draws its progress bar with it).

        Returns:
            The archive's final path and its manifest.

        Raises:
            BackupError: ``path`` exists or cannot be written. TenantNotFound: no such tenant.
        """
        scope = Scope("tenant", as_id(tenant_id, "tenant_id")) if tenant_id is not None else Scope()
        await self.check_schema()
        return await backups.backup(self._db, path, scope=scope, compress=compress, progress=progress)

    async def restore(
        self,
        path: str | os.PathLike[str],
        *,
        tenant: uuid.UUID | str | None = None,
        verify: bool = False,
        progress: ProgressReporter | None = None,
    ) -> RestoreResult:
        """Restore an archive written by ``backup`` or ``export``, from either backend, in one transaction.

        Without ``tenant`` the database must be empty; with it, only that tenant of the archive is restored and
        the database must not have it yet. The archive is checked completely (format, schema revision, every
        size, row count and SHA-256) before anything is written; a damaged one writes nothing. Usage counters of
        the restored tenants are recounted, and their cached data dropped.

        Args:
            path: the archive (folder, ``.tar`` or ``.tar.gz``).
            tenant: the id or name (as in the archive) of the one tenant to restore.
            verify: re-read the restored rows before committing and compare counts and checksums with the
                archive; a difference rolls the restore back.
            progress: told how far the check, restore and verification are.

        Raises:
            ArchiveCorrupted: the archive is truncated, damaged or was altered.
            ArchiveVersionUnsupported: it was written in another format version or at another schema revision.
            SchemaOutOfDate: this database is not at the newest revision: run `mnemostore db upgrade` first.
            RestoreConflict: the database is not empty, or already has that tenant.
            TenantNotFound: ``tenant`` is not in the archive.
        """
        result = await backups.restore(self._db, path, tenant=tenant, verify=verify, progress=progress)
        if tenant is None:
            await self.flush_cache()  # the database was empty: nothing cached for it can be right
        else:
            for restored in result.tenant_ids:
                await self.flush_cache(restored)
        return result


class AsyncTenantStore:
    """Everything one tenant owns. Get one from ``AsyncMnemoStore.tenant(tenant_id)``.

    Objects of other tenants do not exist here: asking for one by id raises the same NotFoundError as asking
    for an id nobody has.
    """

    def __init__(self, store: AsyncMnemoStore, tenant_id: uuid.UUID) -> None:
        self.store = store
        self.tenant_id = tenant_id
        self._settings = store.settings
        self._cache = store.cache

    def _tx(self, *, write: bool = False) -> AbstractAsyncContextManager[AsyncUnitOfWork]:
        return self.store._transaction(self.tenant_id, write=write)

    def _json(self, value: Any, field: str) -> dict[str, Any]:
        return v.check_json(value, field, max_bytes=self._settings.max_metadata_bytes, allow_none=True)

    async def _charge(self, uow: AsyncUnitOfWork, **amounts: int) -> None:
        """Count a write against the tenant's usage, or raise QuotaExceeded (the transaction then rolls back)."""
        if await uow.tenants.charge(**amounts):
            return
        tenant = await uow.tenants.get(self.tenant_id)
        if tenant is None:
            raise TenantNotFound(self.tenant_id)
        usage = await uow.tenants.usage(self.tenant_id)
        assert usage is not None
        q = tenant.quotas
        for name, limit, used, amount in (
            ("max_users", q.max_users, usage.users, amounts.get("users", 0)),
            ("max_messages", q.max_messages, usage.messages, amounts.get("messages", 0)),
            ("max_storage_bytes", q.max_storage_bytes, usage.storage_bytes, amounts.get("storage_bytes", 0)),
        ):
            if limit is not None and amount > 0 and used + amount > limit:
                raise QuotaExceeded(self.tenant_id, name, limit)
        raise QuotaExceeded(self.tenant_id, "usage", 0)  # pragma: no cover - charge() and this check agree

    # -- API keys ---------------------------------------------------------------------------------------------

    async def create_api_key(self, name: str, *, read_only: bool = False) -> tuple[ApiKey, str]:
        """Create an API key for this tenant.

        Returns:
            The key's record and its secret. The secret is shown only here: the store keeps its SHA-256 hash.
        """
        v.check_name(name, "key name", max_len=200, required=True)
        secret = secrets.token_urlsafe(32)
        token = f"{API_KEY_PREFIX}_{self.tenant_id.hex}_{secret}"
        values = {
            "id": new_id(),
            "name": name,
            "prefix": secret[:8],
            "key_hash": hashlib.sha256(secret.encode()).hexdigest(),
            "read_only": read_only,
            "created_at": _now(),
        }
        async with self._tx(write=True) as uow:
            if await uow.tenants.get(self.tenant_id) is None:
                raise TenantNotFound(self.tenant_id)
            key = await uow.api_keys.insert(values)
        return key, token

    async def list_api_keys(self, *, limit: int = 1000, cursor: str | None = None) -> list[ApiKey]:
        """The tenant's keys (revoked ones too), oldest first.

        Args:
            cursor: ``list_cursor`` of the last key of the previous call, to continue after it.
        """
        v.check_limit(limit)
        after = id_cursor(cursor) if cursor is not None else None
        async with self._tx() as uow:
            return await uow.api_keys.list(limit=limit, after=after)

    async def revoke_api_key(self, key_id: uuid.UUID | str) -> None:
        from mnemostore.errors import ApiKeyNotFound

        kid = as_id(key_id, "key_id")
        async with self._tx(write=True) as uow:
            digest = await uow.api_keys.revoke(kid, _now())
        if digest is None:
            raise ApiKeyNotFound(kid)
        await self._cache.objects.invalidate(self.tenant_id, [self._cache.keys.obj(self.tenant_id, "apikey", digest)])

    # -- users ------------------------------------------------------------------------------------------------

    def _user_values(
        self,
        *,
        display_name: str | None,
        email: str | None,
        external_id: str | None,
        preferred_model: str | None,
        preferences: Mapping[str, Any] | None,
        metadata: Mapping[str, Any] | None,
    ) -> dict[str, Any]:
        now = _now()
        return {
            "id": new_id(),
            "display_name": v.check_name(display_name, "display_name", max_len=200),
            "email": v.check_name(email, "email", max_len=320),
            "external_id": v.check_name(external_id, "external_id", max_len=200),
            "preferred_model": v.check_name(preferred_model, "preferred_model", max_len=200),
            "preferences": self._json(preferences, "preferences"),
            "metadata": self._json(metadata, "metadata"),
            "created_at": now,
            "updated_at": now,
        }

    async def create_user(
        self,
        *,
        display_name: str | None = None,
        email: str | None = None,
        external_id: str | None = None,
        preferred_model: str | None = None,
        preferences: Mapping[str, Any] | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> User:
        """Create a user.

        Raises:
            ConflictError: another user of this tenant has that email or external id.
            QuotaExceeded: the tenant is at its ``max_users``.
        """
        values = self._user_values(
            display_name=display_name,
            email=email,
            external_id=external_id,
            preferred_model=preferred_model,
            preferences=preferences,
            metadata=metadata,
        )
        try:
            async with self._tx(write=True) as uow:
                await self._charge(uow, users=1)
                return await uow.users.insert(values)
        except ConflictError as error:
            raise ConflictError(
                "another user of this tenant already has this email or external_id: look it up with "
                "get_user_by_email / get_user_by_external_id"
            ) from error

    async def get_user(self, user_id: uuid.UUID | str) -> User | None:
        """The user (read through the cache), or None."""
        uid = as_id(user_id, "user_id")

        async def load() -> User | None:
            async with self._tx() as uow:
                return await uow.users.get(uid)

        key = self._cache.keys.obj(self.tenant_id, "user", uid)
        return await self._cache.objects.cached(key, load, codec=USER, name="user")

    async def get_user_or_raise(self, user_id: uuid.UUID | str) -> User:
        user = await self.get_user(user_id)
        if user is None:
            raise UserNotFound(user_id)
        return user

    async def get_user_by_email(self, email: str) -> User | None:
        v.check_text(email, "email")
        async with self._tx() as uow:
            return await uow.users.get_by_email(email)

    async def get_user_by_external_id(self, external_id: str) -> User | None:
        v.check_text(external_id, "external_id")
        async with self._tx() as uow:
            return await uow.users.get_by_external_id(external_id)

    async def get_user_by_identity(self, channel: str, channel_user_id: str) -> User | None:
        """The user behind a channel identity (read through the cache), or None."""
        v.check_text(channel, "channel")
        v.check_text(channel_user_id, "channel_user_id")

        async def load() -> User | None:
            async with self._tx() as uow:
                return await uow.users.get_by_identity(channel, channel_user_id)

        key = self._cache.keys.obj(self.tenant_id, "ident", channel, channel_user_id)
        return await self._cache.objects.cached(key, load, codec=USER, name="identity")

    def _user_keys(self, user_id: uuid.UUID, identities: Sequence[UserIdentity]) -> list[str]:
        keys = self._cache.keys
        return [
            keys.obj(self.tenant_id, "user", user_id),
            *(keys.obj(self.tenant_id, "ident", i.channel, i.channel_user_id) for i in identities),
        ]

    async def get_or_create_user_by_identity(
        self,
        channel: str,
        channel_user_id: str,
        *,
        username: str | None = None,
        display_name: str | None = None,
        email: str | None = None,
        preferred_model: str | None = None,
        preferences: Mapping[str, Any] | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> User:
        """The user behind a channel identity (a Discord id, a Telegram id…), created on first sight.

        Safe under concurrency: two simultaneous first messages from one identity make one user.
        """
        v.check_name(channel, "channel", max_len=50, required=True)
        v.check_name(channel_user_id, "channel_user_id", max_len=200, required=True)
        v.check_name(username, "username", max_len=200)
        for _attempt in range(3):
            existing = await self.get_user_by_identity(channel, channel_user_id)
            if existing is not None:
                return existing
            values = self._user_values(
                display_name=display_name or username,
                email=email,
                external_id=None,
                preferred_model=preferred_model,
                preferences=preferences,
                metadata=metadata,
            )
            try:
                async with self._tx(write=True) as uow:
                    await self._charge(uow, users=1)
                    user = await uow.users.insert(values)
                    await uow.users.add_identity(
                        {
                            "user_id": user.id,
                            "channel": channel,
                            "channel_user_id": channel_user_id,
                            "username": username,
                            "created_at": values["created_at"],
                        }
                    )
                    return user
            except ConflictError:
                # Another request created the identity (or took the email) between our read and write.
                if email is not None and await self.get_user_by_identity(channel, channel_user_id) is None:
                    raise
        raise ConflictError(f"could not create a user for {channel}:{channel_user_id} after 3 attempts: retry")

    async def get_or_create_user_by_email(self, email: str, **fields: Any) -> User:
        for _attempt in range(3):
            user = await self.get_user_by_email(email)
            if user is not None:
                return user
            try:
                return await self.create_user(email=email, **fields)
            except ConflictError:
                continue
        raise ConflictError(f"could not create a user with email {email!r} after 3 attempts: retry")

    async def get_or_create_user_by_external_id(self, external_id: str, **fields: Any) -> User:
        for _attempt in range(3):
            user = await self.get_user_by_external_id(external_id)
            if user is not None:
                return user
            try:
                return await self.create_user(external_id=external_id, **fields)
            except ConflictError:
                continue
        raise ConflictError(f"could not create a user with external id {external_id!r} after 3 attempts: retry")

    async def link_identity(
        self, user_id: uuid.UUID | str, channel: str, channel_user_id: str, *, username: str | None = None
    ) -> UserIdentity:
        """Attach another channel identity to a user.

        Raises:
            DuplicateIdentity: the identity already belongs to a user (this one or another).
        """
        uid = as_id(user_id, "user_id")
        v.check_name(channel, "channel", max_len=50, required=True)
        v.check_name(channel_user_id, "channel_user_id", max_len=200, required=True)
        v.check_name(username, "username", max_len=200)
        async with self._tx(write=True) as uow:
            if await uow.users.get(uid) is None:
                raise UserNotFound(uid)
            owner = await uow.users.get_identity(channel, channel_user_id)
            if owner is not None:
                raise DuplicateIdentity(
                    f"{channel}:{channel_user_id} already belongs to user {owner.user_id}: unlink it there first"
                )
            return await uow.users.add_identity(
                {
                    "user_id": uid,
                    "channel": channel,
                    "channel_user_id": channel_user_id,
                    "username": username,
                    "created_at": _now(),
                }
            )

    async def list_identities(self, user_id: uuid.UUID | str) -> list[UserIdentity]:
        async with self._tx() as uow:
            return await uow.users.identities(as_id(user_id, "user_id"))

    async def update_user(
        self,
        user_id: uuid.UUID | str,
        *,
        display_name: str | Unset | None = UNSET,
        email: str | Unset | None = UNSET,
        external_id: str | Unset | None = UNSET,
        preferred_model: str | Unset | None = UNSET,
        preferences: Mapping[str, Any] | Unset = UNSET,
        metadata: Mapping[str, Any] | Unset = UNSET,
    ) -> User:
        """Change the given fields (pass None to clear one); fields not passed stay as they are."""
        uid = as_id(user_id, "user_id")
        values: dict[str, Any] = {"updated_at": _now()}
        for name, value, max_len in (
            ("display_name", display_name, 200),
            ("email", email, 320),
            ("external_id", external_id, 200),
            ("preferred_model", preferred_model, 200),
        ):
            if not isinstance(value, Unset):
                values[name] = v.check_name(value, name, max_len=max_len)
        if not isinstance(preferences, Unset):
            values["preferences"] = self._json(preferences, "preferences")
        if not isinstance(metadata, Unset):
            values["metadata"] = self._json(metadata, "metadata")
        try:
            async with self._tx(write=True) as uow:
                user = await uow.users.update(uid, values)
                identities = await uow.users.identities(uid) if user is not None else []
        except ConflictError as error:
            raise ConflictError("another user of this tenant already has this email or external_id") from error
        if user is None:
            raise UserNotFound(uid)
        await self._cache.objects.invalidate(self.tenant_id, self._user_keys(uid, identities))
        return user

    async def delete_user(self, user_id: uuid.UUID | str) -> None:
        """Delete a user and everything they own: identities, conversations, messages, memories."""
        uid = as_id(user_id, "user_id")
        async with self._tx(write=True) as uow:
            convs, msgs, tokens, size = await uow.conversations.totals_for_user(uid)
            identities = await uow.users.identities(uid)
            conversation_ids = await uow.conversations.ids_for_user(uid)
            if not await uow.users.delete(uid):
                raise UserNotFound(uid)
            await self._charge(uow, users=-1, conversations=-convs, messages=-msgs, tokens=-tokens, storage_bytes=-size)
        sessions = [self._cache.keys.session(self.tenant_id, i.channel, i.channel_user_id) for i in identities]
        await self._cache.objects.invalidate(self.tenant_id, [*self._user_keys(uid, identities), *sessions])
        await self._cache.context.invalidate(self.tenant_id, conversation_ids, reset=True)

    async def erase_user(self, user_id: uuid.UUID | str) -> dict[str, int]:
        """Erase a user everywhere: their rows in every table, their share of the usage counters, their caches.

        Like ``delete_user``, in one transaction, but it locks the user's conversations first (so no append slips
        in between), checks that nothing of theirs is left, and says what it removed. Rows that do not reference
        the user (tool executions or metrics without a conversation, knowledge chunks) are not theirs and stay.

        Returns:
            Rows removed per table, in foreign-key order (``users`` first), e.g. ``{"users": 1, "messages": 40}``.

        Raises:
            UserNotFound: no such user in this tenant.
        """
        uid = as_id(user_id, "user_id")
        removed = await backups.erase_user(self.store._db, self.tenant_id, uid)
        await self.store.flush_cache(self.tenant_id)  # sessions, lookups and histories; limits and presence expire
        return removed

    async def export(
        self,
        path: str | os.PathLike[str],
        *,
        user_id: uuid.UUID | str | None = None,
        compress: bool = False,
        progress: ProgressReporter | None = None,
    ) -> BackupResult:
        """Write a backup archive of this tenant, or of one user's rows in it (see ``AsyncMnemoStore.backup``).

        A user's archive holds their row, identities, conversations with everything in them, and memories, plus
        the tenant's row so that it can be restored into an empty database.

        Raises:
            TenantNotFound, UserNotFound, BackupError: as ``backup``.
        """
        if user_id is not None:
            scope = Scope("user", self.tenant_id, as_id(user_id, "user_id"))
        else:
            scope = Scope("tenant", self.tenant_id)
        await self.store.check_schema()
        return await backups.backup(self.store._db, path, scope=scope, compress=compress, progress=progress)

    async def list_users(self, *, limit: int = 100, cursor: str | None = None) -> Page[User]:
        v.check_limit(limit)
        after = id_cursor(cursor) if cursor else None
        async with self._tx() as uow:
            items = await uow.users.list(limit=limit + 1, after=after)
        more = len(items) > limit
        items = items[:limit]
        return Page(items=items, next_cursor=str(items[-1].id) if more else None)

    # -- channel config ---------------------------------------------------------------------------------------

    async def set_channel_config(
        self,
        channel: str,
        *,
        default_model: str | None = None,
        settings: Mapping[str, Any] | None = None,
        rate_limits: Mapping[str, Any] | None = None,
    ) -> ChannelConfig:
        """Create or replace the tenant's configuration for one channel."""
        v.check_name(channel, "channel", max_len=50, required=True)
        values = {
            "channel": channel,
            "default_model": v.check_name(default_model, "default_model", max_len=200),
            "settings": self._json(settings, "settings"),
            "rate_limits": self._json(rate_limits, "rate_limits"),
            "updated_at": _now(),
        }
        async with self._tx(write=True) as uow:
            if await uow.tenants.get(self.tenant_id) is None:
                raise TenantNotFound(self.tenant_id)
            config = await uow.tenants.upsert_channel_config(values)
        await self._cache.objects.invalidate(self.tenant_id, [self._cache.keys.obj(self.tenant_id, "chan", channel)])
        return config

    async def get_channel_config(self, channel: str) -> ChannelConfig | None:
        """The channel's config (read through the cache), or None."""
        v.check_text(channel, "channel")

        async def load() -> ChannelConfig | None:
            async with self._tx() as uow:
                return await uow.tenants.get_channel_config(channel)

        key = self._cache.keys.obj(self.tenant_id, "chan", channel)
        return await self._cache.objects.cached(key, load, codec=CHANNEL_CONFIG, name="channel_config")

    # -- conversations ----------------------------------------------------------------------------------------

    async def create_conversation(
        self,
        user_id: uuid.UUID | str,
        *,
        title: str | None = None,
        channel: str | None = None,
        model_override: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> Conversation:
        uid = as_id(user_id, "user_id")
        now = _now()
        values = {
            "id": new_id(),
            "user_id": uid,
            "title": v.check_name(title, "title", max_len=500),
            "status": ConversationStatus.ACTIVE.value,
            "channel": v.check_name(channel, "channel", max_len=50),
            "model_override": v.check_name(model_override, "model_override", max_len=200),
            "metadata": self._json(metadata, "metadata"),
            "started_at": now,
            "last_activity_at": now,
            "message_count": 0,
            "total_tokens": 0,
            "content_bytes": 0,
            "last_seq": 0,
        }
        async with self._tx(write=True) as uow:
            if await uow.users.get(uid) is None:
                raise UserNotFound(uid)
            await self._charge(uow, conversations=1)
            return await uow.conversations.insert(values)

    async def get_conversation(self, conversation_id: uuid.UUID | str) -> Conversation | None:
        async with self._tx() as uow:
            return await uow.conversations.get(as_id(conversation_id, "conversation_id"))

    async def get_conversation_or_raise(self, conversation_id: uuid.UUID | str) -> Conversation:
        conversation = await self.get_conversation(conversation_id)
        if conversation is None:
            raise ConversationNotFound(conversation_id)
        return conversation

    async def list_conversations(
        self,
        user_id: uuid.UUID | str,
        *,
        status: ConversationStatus | str | None = None,
        limit: int = 20,
        cursor: str | None = None,
    ) -> Page[Conversation]:
        """A user's conversations, most recently active first."""
        uid = as_id(user_id, "user_id")
        v.check_limit(limit)
        status_value = v.check_enum(ConversationStatus, status).value if status is not None else None
        after = decode_conversation_cursor(cursor) if cursor else None
        async with self._tx() as uow:
            items = await uow.conversations.list_for_user(uid, status=status_value, limit=limit + 1, after=after)
        more = len(items) > limit
        items = items[:limit]
        return Page(items=items, next_cursor=conversation_cursor(items[-1]) if more else None)

    async def list_active_conversations(self, *, limit: int = 100, cursor: str | None = None) -> Page[Conversation]:
        """The tenant's active conversations across users, most recently active first."""
        v.check_limit(limit)
        after = decode_conversation_cursor(cursor) if cursor else None
        async with self._tx() as uow:
            items = await uow.conversations.list_active(limit=limit + 1, after=after)
        more = len(items) > limit
        items = items[:limit]
        return Page(items=items, next_cursor=conversation_cursor(items[-1]) if more else None)

    async def update_conversation(
        self,
        conversation_id: uuid.UUID | str,
        *,
        title: str | Unset | None = UNSET,
        status: ConversationStatus | str | Unset = UNSET,
        model_override: str | Unset | None = UNSET,
        metadata: Mapping[str, Any] | Unset = UNSET,
    ) -> Conversation:
        """Change the given fields (pass None to clear title or model_override)."""
        cid = as_id(conversation_id, "conversation_id")
        values: dict[str, Any] = {}
        if not isinstance(title, Unset):
            values["title"] = v.check_name(title, "title", max_len=500)
        if not isinstance(status, Unset):
            values["status"] = v.check_enum(ConversationStatus, status).value
        if not isinstance(model_override, Unset):
            values["model_override"] = v.check_name(model_override, "model_override", max_len=200)
        if not isinstance(metadata, Unset):
            values["metadata"] = self._json(metadata, "metadata")
        async with self._tx(write=True) as uow:
            conversation = await (uow.conversations.update(cid, values) if values else uow.conversations.get(cid))
        if conversation is None:
            raise ConversationNotFound(cid)
        if values.get("status") == ConversationStatus.ARCHIVED.value:
            data = {"conversation_id": str(cid), "user_id": str(conversation.user_id)}
            await self._cache.events.publish(self.tenant_id, EventType.CONVERSATION_ARCHIVED, data)
        return conversation

    async def archive_conversation(self, conversation_id: uuid.UUID | str) -> Conversation:
        return await self.update_conversation(conversation_id, status=ConversationStatus.ARCHIVED)

    async def delete_conversation(self, conversation_id: uuid.UUID | str) -> None:
        """Delete a conversation with its messages, tool executions, checkpoints, events and metrics."""
        cid = as_id(conversation_id, "conversation_id")
        async with self._tx(write=True) as uow:
            gone = await uow.conversations.delete(cid)
            if gone is None:
                raise ConversationNotFound(cid)
            await self._charge(
                uow,
                conversations=-1,
                messages=-gone.message_count,
                tokens=-gone.total_tokens,
                storage_bytes=-gone.content_bytes,
            )
        await self._cache.context.invalidate(self.tenant_id, [cid], reset=True)

    async def get_conversation_stats(self, conversation_id: uuid.UUID | str) -> ConversationStats:
        cid = as_id(conversation_id, "conversation_id")
        async with self._tx() as uow:
            conversation = await uow.conversations.get(cid)
            if conversation is None:
                raise ConversationNotFound(cid)
            return await uow.conversations.stats(conversation)

    # -- messages ---------------------------------------------------------------------------------------------

    async def add_message(
        self,
        conversation_id: uuid.UUID | str,
        *,
        role: Role | str,
        content: str,
        model: str | None = None,
        prompt_tokens: int = 0,
        completion_tokens: int = 0,
        metadata: Mapping[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> Message:
        """Append a message; the conversation's counters and last activity move in the same transaction.

        Args:
            idempotency_key: when given, retrying with the same key returns the first message instead of
                appending a copy.

        Raises:
            ConversationNotFound, InvalidInput (and subclasses), QuotaExceeded.
        """
        new = NewMessage(
            role=role,
            content=content,
            model=model,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            metadata=self._json(metadata, "metadata"),
            idempotency_key=idempotency_key,
        )
        return (await self.add_messages(conversation_id, [new]))[0]

    async def add_messages(
        self, conversation_id: uuid.UUID | str, new_messages: Sequence[NewMessage | Mapping[str, Any]]
    ) -> list[Message]:
        """Append several messages in order, in one transaction (all or none).

        Messages whose idempotency key was already used come back as the stored originals.
        """
        cid = as_id(conversation_id, "conversation_id")
        prepared = message_rows(
            self.tenant_id,
            cid,
            new_messages,
            max_content_bytes=self._settings.max_content_bytes,
            max_metadata_bytes=self._settings.max_metadata_bytes,
        )
        if not prepared:
            return []
        keys = [row["idempotency_key"] for row in prepared if row["idempotency_key"] is not None]
        if len(set(keys)) != len(keys):
            raise InvalidInput("two messages in one call share an idempotency_key: give each its own")
        sizes = {row["id"]: row.pop("_bytes") for row in prepared}
        existing: dict[str, Message] = {}
        async with self._tx(write=True) as uow:
            fresh = prepared
            if keys:
                # Lock the conversation before looking for the keys: a concurrent retry of the same append
                # waits here, then finds ours, so a key is never written twice.
                if not await uow.conversations.lock(cid):
                    raise ConversationNotFound(cid)
                existing = await uow.messages.find_by_idempotency_keys(cid, keys)
                fresh = [row for row in prepared if row["idempotency_key"] not in existing]
            if fresh:
                now = _now()
                tokens = sum(row["prompt_tokens"] + row["completion_tokens"] for row in fresh)
                size = sum(sizes[row["id"]] for row in fresh)
                last = await uow.conversations.reserve(
                    cid, count=len(fresh), tokens=tokens, content_bytes=size, now=now
                )
                if last is None:
                    raise ConversationNotFound(cid)
                for seq, row in enumerate(fresh, start=last - len(fresh) + 1):
                    row["seq"] = seq
                    row["created_at"] = now
                await self._charge(uow, messages=len(fresh), tokens=tokens, storage_bytes=size)
                await uow.messages.insert_many(fresh)
                await self._enqueue(uow, ItemKind.MESSAGE, [row["id"] for row in fresh], now)
        # Committed: write the new messages through to the recent-context window (and publish them).
        added = [message_from_row(row) for row in fresh]
        await self._cache.messages_added(self.tenant_id, cid, added)
        by_id = {m.id: m for m in added}
        return [
            existing[row["idempotency_key"]] if row["idempotency_key"] in existing else by_id[row["id"]]
            for row in prepared
        ]

    async def get_conversation_history(
        self,
        conversation_id: uuid.UUID | str,
        *,
        limit: int = 50,
        before: str | None = None,
        after: str | None = None,
    ) -> HistoryPage:
        """Messages of a conversation in order: the newest ``limit`` by default.

        Args:
            before: a cursor from a previous page's ``before``: the ``limit`` messages just older than it.
            after: a cursor from a previous page's ``after``: the ``limit`` messages just newer than it.

        Returns:
            A page whose ``before``/``after`` cursors are None when nothing older/newer exists.
        """
        cid = as_id(conversation_id, "conversation_id")
        v.check_limit(limit)
        if before is not None and after is not None:
            raise InvalidInput("pass either before or after, not both")
        before_seq = decode_history_cursor(before) if before is not None else None
        after_seq = decode_history_cursor(after) if after is not None else None
        context = self._cache.context
        # Read through the recent-context window when it can hold the answer (see mnemostore.service._history).
        default_read = before_seq is None and after_seq is None
        seen: str | None = None
        if context.enabled and (limit <= context.size or not default_read):
            window = await context.read(self.tenant_id, cid, count=limit + 1 if default_read else 0)
            seen = window.version if default_read else None
            if window.messages is not None:
                page = page_from_window(
                    window.messages,
                    window.floor,
                    limit=limit,
                    before=before_seq,
                    after=after_seq,
                    complete=not default_read,
                )
                if page is not None:
                    return page
        fetch = max(limit, context.size) + 1 if seen is not None else limit + 1
        async with self._tx() as uow:
            # A refill reads last_seq before the messages: every message up to it is then in the rows.
            conversation = await uow.conversations.get(cid) if seen is not None else None
            rows = await uow.messages.page(cid, limit=fetch, before=before_seq, after=after_seq)
            if seen is not None and conversation is None:
                raise ConversationNotFound(cid)
            if not rows and seen is None and await uow.conversations.get(cid) is None:
                raise ConversationNotFound(cid)
        if seen is not None and conversation is not None:
            refill = window_from_rows(
                rows, last_seq=conversation.last_seq, fetched_all=len(rows) < fetch, size=context.size
            )
            if refill is not None:
                await context.refill(
                    self.tenant_id, cid, seen=seen, last=conversation.last_seq, floor=refill[1], messages=refill[0]
                )
            rows = rows[-(limit + 1) :]
        older: str | None
        newer: str | None
        if after_seq is not None:
            more_newer, items = len(rows) > limit, rows[:limit]
            newer = history_cursor(items[-1].seq) if more_newer else None
            older = history_cursor(items[0].seq if items else after_seq + 1)
            return HistoryPage(messages=items, before=older, after=newer)
        more_older, items = len(rows) > limit, rows[-limit:] if rows else rows
        older = history_cursor(items[0].seq) if more_older else None
        newer = None if before_seq is None else history_cursor(items[-1].seq if items else before_seq - 1)
        return HistoryPage(messages=items, before=older, after=newer)

    async def count_messages(self, conversation_id: uuid.UUID | str) -> int:
        cid = as_id(conversation_id, "conversation_id")
        async with self._tx() as uow:
            conversation = await uow.conversations.get(cid)
            if conversation is None:
                raise ConversationNotFound(cid)
            return conversation.message_count

    async def get_message(self, message_id: uuid.UUID | str) -> Message | None:
        async with self._tx() as uow:
            return await uow.messages.get(as_id(message_id, "message_id"))

    async def delete_message(self, message_id: uuid.UUID | str) -> None:
        """Delete one message (its sequence number is not reused)."""
        mid = as_id(message_id, "message_id")
        async with self._tx(write=True) as uow:
            gone = await uow.messages.delete(mid)
            if gone is None:
                raise MessageNotFound(mid)
            size = len(gone.content.encode())
            await uow.conversations.release(
                gone.conversation_id, messages=1, tokens=gone.total_tokens, content_bytes=size
            )
            await self._charge(uow, messages=-1, tokens=-gone.total_tokens, storage_bytes=-size)
        await self._cache.context.invalidate(self.tenant_id, [gone.conversation_id])

    # -- export / import --------------------------------------------------------------------------------------

    async def export_conversation(self, conversation_id: uuid.UUID | str) -> dict[str, Any]:
        """The conversation and all its messages as one JSON-ready dict (see ``import_conversation``)."""
        cid = as_id(conversation_id, "conversation_id")
        async with self._tx() as uow:
            conversation = await uow.conversations.get(cid)
            if conversation is None:
                raise ConversationNotFound(cid)
            all_messages = await uow.messages.all(cid)
        return to_export(conversation, all_messages)

    async def import_conversation(
        self, data: Mapping[str, Any], *, user_id: uuid.UUID | str | None = None, new_ids: bool = False
    ) -> Conversation:
        """Recreate an exported conversation in this tenant.

        Args:
            user_id: the owner here (default: the exported owner, who must exist in this tenant).
            new_ids: give the conversation and messages fresh ids (to import a copy next to the original).

        Raises:
            InvalidInput: ``data`` is not an export of this format.
            ConflictError: the conversation id exists already here (pass ``new_ids=True``).
        """
        from mnemostore.service._base import conversation_from_export

        conversation, rows = conversation_from_export(
            data,
            max_content_bytes=self._settings.max_content_bytes,
            max_metadata_bytes=self._settings.max_metadata_bytes,
        )
        if user_id is not None:
            conversation["user_id"] = as_id(user_id, "user_id")
        if new_ids:
            conversation["id"] = new_id()
            for row in rows:
                row["id"] = new_id()
        for row in rows:
            row["conversation_id"] = conversation["id"]
            row["tenant_id"] = self.tenant_id
        try:
            async with self._tx(write=True) as uow:
                if await uow.users.get(conversation["user_id"]) is None:
                    raise UserNotFound(conversation["user_id"], ": pass user_id= to import for another user")
                if await uow.conversations.get(conversation["id"]) is not None:
                    raise ConflictError(
                        f"conversation {conversation['id']} already exists here: pass new_ids=True to import a copy"
                    )
                await self._charge(
                    uow,
                    conversations=1,
                    messages=len(rows),
                    tokens=conversation["total_tokens"],
                    storage_bytes=conversation["content_bytes"],
                )
                result = await uow.conversations.insert(conversation)
                if rows:
                    await uow.messages.insert_many(rows)
                    await self._enqueue(uow, ItemKind.MESSAGE, [row["id"] for row in rows], _now())
        except ConflictError as error:
            if "already exists here" in str(error):
                raise
            raise ConflictError(f"import conflicts with existing data ({error}): pass new_ids=True") from error
        # The id may have had a window before (a deleted conversation imported back): start from scratch.
        await self._cache.context.invalidate(self.tenant_id, [result.id], reset=True)
        return result

    # -- knowledge --------------------------------------------------------------------------------------------

    async def upsert_knowledge(
        self,
        source: str,
        external_id: str,
        content: str,
        *,
        title: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> KnowledgeChunk:
        """Insert or update the chunk keyed by (source, external_id); unchanged content writes nothing."""
        return (
            await self.upsert_knowledge_chunks(
                source, [{"external_id": external_id, "content": content, "title": title, "metadata": metadata}]
            )
        )[0]

    async def upsert_knowledge_chunks(self, source: str, chunks: Iterable[Mapping[str, Any]]) -> list[KnowledgeChunk]:
        """Bulk upsert of chunks ``{"external_id", "content", "title"?, "metadata"?}`` from one source.

        Idempotent: re-sending the same chunks changes nothing (not even ``updated_at``).
        """
        from mnemostore.service._base import knowledge_rows

        v.check_name(source, "source", max_len=500, required=True)
        rows = knowledge_rows(
            chunks,
            max_content_bytes=self._settings.max_content_bytes,
            max_metadata_bytes=self._settings.max_metadata_bytes,
        )
        if not rows:
            return []
        now = _now()
        async with self._tx(write=True) as uow:
            existing = await uow.knowledge.get_by_keys(source, [r["external_id"] for r in rows])
            inserts: list[dict[str, Any]] = []
            changed: list[uuid.UUID] = []
            delta = 0
            out: list[KnowledgeChunk] = []
            for row in rows:
                old = existing.get(row["external_id"])
                if old is None:
                    values = {"id": new_id(), "source": source, "created_at": now, "updated_at": now, **row}
                    inserts.append(values)
                    delta += row["content_bytes"]
                    out.append(KnowledgeChunk(tenant_id=self.tenant_id, **_chunk_fields(values)))
                elif (old.content_hash, old.title, old.metadata) == (
                    row["content_hash"],
                    row["title"],
                    row["metadata"],
                ):
                    out.append(old)
                else:
                    delta += row["content_bytes"] - len(old.content.encode())
                    await uow.knowledge.update(old.id, {**row, "updated_at": now})
                    if old.content_hash != row["content_hash"]:
                        changed.append(old.id)
                    values = {"id": old.id, "source": source, "created_at": old.created_at, "updated_at": now, **row}
                    out.append(KnowledgeChunk(tenant_id=self.tenant_id, **_chunk_fields(values)))
            if delta:
                await self._charge(uow, storage_bytes=delta)
            await uow.knowledge.insert_many(inserts)
            await self._enqueue(uow, ItemKind.KNOWLEDGE, [row["id"] for row in inserts] + changed, now)
        return out

    async def get_knowledge_chunk(self, chunk_id: uuid.UUID | str) -> KnowledgeChunk | None:
        async with self._tx() as uow:
            return await uow.knowledge.get(as_id(chunk_id, "chunk_id"))

    async def list_knowledge(self, source: str, *, limit: int = 100, cursor: str | None = None) -> Page[KnowledgeChunk]:
        """Chunks of one source, ordered by external id."""
        v.check_limit(limit)
        v.check_text(source, "source")
        if cursor is not None:
            v.check_text(cursor, "cursor")
        async with self._tx() as uow:
            items = await uow.knowledge.list_by_source(source, limit=limit + 1, after=cursor)
        more = len(items) > limit
        items = items[:limit]
        return Page(items=items, next_cursor=items[-1].external_id if more else None)

    async def delete_knowledge_chunk(self, chunk_id: uuid.UUID | str) -> None:
        cid = as_id(chunk_id, "chunk_id")
        async with self._tx(write=True) as uow:
            gone = await uow.knowledge.delete(cid)
            if gone is None:
                raise KnowledgeChunkNotFound(cid)
            await self._charge(uow, storage_bytes=-len(gone.content.encode()))

    # -- memories: tiers, kinds, near-duplicates, versions, segments, consolidation (mnemostore.memory) ----------

    async def store_memory(
        self,
        content: str,
        *,
        user_id: uuid.UUID | str | None = None,
        agent_id: str | None = None,
        kind: MemoryKind | str = MemoryKind.FACT,
        tier: MemoryTier | str = MemoryTier.SHORT_TERM,
        importance: float = 0.5,
        source_message_ids: Sequence[uuid.UUID | str] = (),
        compression_level: int = 0,
        expires_at: datetime | None = None,
        metadata: Mapping[str, Any] | None = None,
        dedup: bool | None = None,
    ) -> Memory:
        """Store a memory, or merge it into the existing memory of the same user that says the same thing.

        Near-duplicates (rule in ``mnemostore.memory._dedup``): among the newest unexpired memories of the same
        user, agent and kind, one whose normalised text is equal, or, with an embedder configured, whose
        embedding has cosine similarity >= ``Settings.memory_dedup_threshold``, or, without one, whose word-token
        Jaccard index is >= ``Settings.memory_dedup_jaccard``. The existing memory then takes the new text, the
        higher importance and tier, the later expiry, the union of source messages and the merged metadata; its
        old text and importance are kept as a version (``get_memory_history``). Summaries are never merged.
        Under concurrent stores of the same text, detection is best effort (both may be inserted).

        With an embedder this embeds the new text before writing (one model call: the candidates bring their
        stored vectors, and at most ``Settings.memory_dedup_embed_limit`` not yet indexed are embedded with it).
        When the embedder fails, the textual rules decide and a warning is logged (``mnemostore.memory``): the
        write is never refused for it. ``dedup=False`` (or ``MNEMOSTORE_MEMORY_DEDUP=false``) skips all this.

        Args:
            dedup: merge near-duplicates (default: ``Settings.memory_dedup``, true).

        Returns:
            The new memory, or the existing one it was merged into (same id, ``metadata["merged"]`` counted).

        Raises:
            UserNotFound: ``user_id`` is not a user of this tenant.
        """
        v.check_content(content, max_bytes=self._settings.max_content_bytes)
        if not 0.0 <= v.check_number(importance, "importance") <= 1.0:
            raise InvalidInput(f"importance must be between 0 and 1, got {importance!r}")
        uid = as_id(user_id, "user_id") if user_id is not None else None
        now = _now()
        values = {
            "id": new_id(),
            "user_id": uid,
            "agent_id": v.check_name(agent_id, "agent_id", max_len=200),
            "content": content,
            "kind": v.check_enum(MemoryKind, kind).value,
            "tier": v.check_enum(MemoryTier, tier).value,
            "importance": float(importance),
            "source_message_ids": [str(as_id(m, "source_message_ids")) for m in source_message_ids],
            "compression_level": v.check_tokens(compression_level, "compression_level"),
            "expires_at": v.check_time(expires_at, "expires_at"),
            "metadata": self._json(metadata, "metadata"),
            "created_at": now,
            "updated_at": now,
        }
        memory: Memory | None = None
        if (self._settings.memory_dedup if dedup is None else dedup) and values["kind"] != MemoryKind.SUMMARY.value:
            memory = await self._merge_duplicate(values)
        if memory is None:
            async with self._tx(write=True) as uow:
                if uid is not None and await uow.users.get(uid) is None:
                    raise UserNotFound(uid)
                memory = await uow.memories.insert(values)
                await self._enqueue(uow, ItemKind.MEMORY, [memory.id], now)
        data = {
            "memory_id": str(memory.id),
            "user_id": None if uid is None else str(uid),
            "agent_id": memory.agent_id,
            "kind": memory.kind.value,
            "tier": memory.tier.value,
            "importance": memory.importance,
            "content": memory.content,
        }
        await self._cache.events.publish(self.tenant_id, EventType.MEMORY_STORED, data)
        return memory

    def _memory_embedder(self) -> Embedder | None:
        embedder = getattr(self.store, "embedder", None)
        return embedder if isinstance(embedder, Embedder) else None

    async def _embed(self, embedder: Embedder, texts: list[str]) -> list[list[float]]:
        if True:  # ASYNC
            return await asyncio.to_thread(embedder.embed, texts)
        else:
            return embedder.embed(texts)

    async def _merge_duplicate(self, values: dict[str, Any]) -> Memory | None:
        """Merge ``values`` into the near-duplicate it has, if any (see ``store_memory``); None: no duplicate."""
        now = values["created_at"]
        async with self._tx() as uow:
            candidates = await uow.memories.dedup_candidates(
                user_id=values["user_id"],
                agent_id=values["agent_id"],
                kind=values["kind"],
                now=now,
                limit=self._settings.memory_dedup_candidates,
            )
        if not candidates:
            return None
        texts = [c.content for c in candidates]
        match = find_duplicate(values["content"], texts, jaccard=self._settings.memory_dedup_jaccard)
        embedder = self._memory_embedder()
        if embedder is not None and (match is None or match.method != "exact"):
            # Indexed memories bring their vectors.
            async with self._tx() as uow:
                stored = await uow.memories.stored_vectors([c.id for c in candidates], model=embedder.name)
            # Memories not indexed yet (no worker running, or written just now) are embedded here, the newest
            # ``memory_dedup_embed_limit`` of them: without a worker the cost of a call stays bounded. Older
            # unindexed ones are judged by text (the Jaccard rule) instead.
            missing = [c for c in candidates if c.id not in stored][: self._settings.memory_dedup_embed_limit]
            try:
                fresh = await self._embed(embedder, [values["content"], *(c.content for c in missing)])
            except Exception as error:  # an embedding service down must not refuse the write
                log.warning(
                    "store_memory: embedder %s failed (%s: %s); near-duplicates judged by text only",
                    embedder.name,
                    type(error).__name__,
                    error,
                )
                return await self._merge_into(candidates, match, values) if match is not None else None
            vectors = {**stored, **{c.id: vector for c, vector in zip(missing, fresh[1:], strict=True)}}
            with_vector = [i for i, c in enumerate(candidates) if c.id in vectors]
            semantic = find_duplicate(
                values["content"],
                [texts[i] for i in with_vector],
                vector=fresh[0],
                candidate_vectors=[vectors[candidates[i].id] for i in with_vector],
                threshold=self._settings.memory_dedup_threshold,
            )
            if semantic is not None:
                match = DuplicateMatch(index=with_vector[semantic.index], method=semantic.method, score=semantic.score)
            elif match is not None and candidates[match.index].id in vectors:
                match = None  # the textual rule matched a memory the model says is different
        if match is None:
            return None
        return await self._merge_into(candidates, match, values)

    async def _merge_into(
        self, candidates: list[Memory], match: DuplicateMatch, values: dict[str, Any]
    ) -> Memory | None:
        """Merge ``values`` into the matched candidate, keeping its previous state as a version."""
        now = values["created_at"]
        old = candidates[match.index]
        tiers = list(MemoryTier)
        merged_meta = {**old.metadata, **values["metadata"]}
        merged_meta["merged"] = int(old.metadata.get("merged", 0) or 0) + 1
        sources = list(dict.fromkeys([*old.source_message_ids, *values["source_message_ids"]]))
        expiry = values["expires_at"]
        if expiry is not None and old.expires_at is not None:
            expiry = max(expiry, old.expires_at)
        elif old.expires_at is None and values["expires_at"] is not None:
            expiry = None  # the old memory never expired: merging does not make it expire
        update = {
            "content": values["content"],
            "importance": max(old.importance, values["importance"]),
            "tier": max(old.tier, MemoryTier(values["tier"]), key=tiers.index).value,
            "source_message_ids": sources,
            "expires_at": expiry,
            "metadata": self._json(merged_meta, "metadata"),
            "updated_at": now,
        }
        async with self._tx(write=True) as uow:
            current = await uow.memories.get(old.id)
            if current is None:
                return None  # deleted meanwhile: store a new one
            if current.content != values["content"] or current.importance != update["importance"]:
                await self._keep_version(uow, current, now)
            if current.content != values["content"]:
                await self._enqueue(uow, ItemKind.MEMORY, [old.id], now)
            return await uow.memories.update(old.id, update)

    async def _keep_version(self, uow: AsyncUnitOfWork, memory: Memory, now: datetime) -> None:
        await uow.memories.add_version(
            {
                "id": new_id(),
                "memory_id": memory.id,
                "content": memory.content,
                "importance": memory.importance,
                "metadata": memory.metadata,
                "created_at": now,
            }
        )

    async def get_memory(self, memory_id: uuid.UUID | str) -> Memory | None:
        async with self._tx() as uow:
            return await uow.memories.get(as_id(memory_id, "memory_id"))

    async def get_memory_or_raise(self, memory_id: uuid.UUID | str) -> Memory:
        memory = await self.get_memory(memory_id)
        if memory is None:
            raise MemoryNotFound(memory_id)
        return memory

    async def retrieve_memories(
        self,
        *,
        user_id: uuid.UUID | str | None = None,
        agent_id: str | None = None,
        tier: MemoryTier | str | None = None,
        kind: MemoryKind | str | None = None,
        include_expired: bool = False,
        limit: int = 20,
        cursor: str | None = None,
    ) -> list[Memory]:
        """Memories by importance (most important first), optionally for one user, agent, tier or kind.

        Args:
            include_expired: also return memories whose ``expires_at`` has passed (not purged yet).
            cursor: ``list_cursor`` of the last memory of the previous call, to continue after it.
        """
        v.check_limit(limit)
        uid = as_id(user_id, "user_id") if user_id is not None else None
        tier_value = v.check_enum(MemoryTier, tier).value if tier is not None else None
        kind_value = v.check_enum(MemoryKind, kind).value if kind is not None else None
        agent = v.check_name(agent_id, "agent_id", max_len=200)
        after = decode_list_cursor(Memory, cursor) if cursor is not None else None
        async with self._tx() as uow:
            return await uow.memories.query(
                user_id=uid,
                agent_id=agent,
                tier=tier_value,
                kind=kind_value,
                not_expired_at=None if include_expired else _now(),
                limit=limit,
                after=after,
            )

    async def update_memory(
        self,
        memory_id: uuid.UUID | str,
        *,
        content: str | Unset = UNSET,
        kind: MemoryKind | str | Unset = UNSET,
        tier: MemoryTier | str | Unset = UNSET,
        importance: float | Unset = UNSET,
        expires_at: datetime | Unset | None = UNSET,
        metadata: Mapping[str, Any] | Unset = UNSET,
    ) -> Memory:
        """Change the given fields of a memory (pass ``expires_at=None`` to make it permanent).

        When the content, importance or metadata change, the previous state is kept as a version
        (``get_memory_history``).

        Raises:
            MemoryNotFound: no such memory in this tenant.
        """
        mid = as_id(memory_id, "memory_id")
        values: dict[str, Any] = {}
        if not isinstance(content, Unset):
            v.check_content(content, max_bytes=self._settings.max_content_bytes)
            values["content"] = content
        if not isinstance(kind, Unset):
            values["kind"] = v.check_enum(MemoryKind, kind).value
        if not isinstance(tier, Unset):
            values["tier"] = v.check_enum(MemoryTier, tier).value
        if not isinstance(importance, Unset):
            if not 0.0 <= v.check_number(importance, "importance") <= 1.0:
                raise InvalidInput(f"importance must be between 0 and 1, got {importance!r}")
            values["importance"] = float(importance)
        if not isinstance(expires_at, Unset):
            values["expires_at"] = v.check_time(expires_at, "expires_at")
        if not isinstance(metadata, Unset):
            values["metadata"] = self._json(metadata, "metadata")
        now = _now()
        async with self._tx(write=True) as uow:
            current = await uow.memories.get(mid)
            if current is None:
                raise MemoryNotFound(mid)
            if not values:
                return current
            if any(k in values and values[k] != getattr(current, k) for k in ("content", "importance", "metadata")):
                await self._keep_version(uow, current, now)
            updated = await uow.memories.update(mid, {**values, "updated_at": now})
            if "content" in values and values["content"] != current.content:
                await self._enqueue(uow, ItemKind.MEMORY, [mid], now)
        assert updated is not None
        return updated

    async def get_memory_history(self, memory_id: uuid.UUID | str) -> list[MemoryVersion]:
        """The earlier states of a memory (replaced by ``update_memory`` or a near-duplicate), oldest first.

        The current state is the memory itself (``get_memory``); a memory never changed has an empty history.

        Raises:
            MemoryNotFound: no such memory in this tenant.
        """
        mid = as_id(memory_id, "memory_id")
        async with self._tx() as uow:
            if await uow.memories.get(mid) is None:
                raise MemoryNotFound(mid)
            return await uow.memories.versions(mid)

    async def delete_memory(self, memory_id: uuid.UUID | str) -> None:
        mid = as_id(memory_id, "memory_id")
        async with self._tx(write=True) as uow:
            if not await uow.memories.delete(mid):
                raise MemoryNotFound(mid)

    async def add_memory_segment(
        self,
        content: str,
        *,
        source_message_ids: Sequence[uuid.UUID | str],
        user_id: uuid.UUID | str | None = None,
        agent_id: str | None = None,
        tier: MemoryTier | str = MemoryTier.LONG_TERM,
        compression_level: int = 1,
        importance: float = 0.5,
        expires_at: datetime | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> Memory:
        """Store a compressed memory segment: a summary (kind ``summary``) of the messages it names.

        Args:
            compression_level: 1 for a summary of raw messages, 2 for a summary of level-1 segments, and so on.

        Returns:
            The segment (segments are never merged as near-duplicates).
        """
        if isinstance(compression_level, bool) or not isinstance(compression_level, int) or compression_level < 1:
            raise InvalidInput(f"compression_level of a segment must be an integer >= 1, got {compression_level!r}")
        return await self.store_memory(
            content,
            user_id=user_id,
            agent_id=agent_id,
            kind=MemoryKind.SUMMARY,
            tier=tier,
            importance=importance,
            source_message_ids=source_message_ids,
            compression_level=compression_level,
            expires_at=expires_at,
            metadata=metadata,
            dedup=False,
        )

    async def consolidate_conversation(
        self,
        conversation_id: uuid.UUID | str,
        *,
        keep_recent: int = 20,
        summarizer: Summarizer | None = None,
        min_messages: int = 2,
        tier: MemoryTier | str = MemoryTier.LONG_TERM,
        importance: float = 0.5,
        agent_id: str | None = None,
    ) -> Memory | None:
        """Summarise the older messages of a conversation into a memory segment of its user.

        The newest ``keep_recent`` messages are left alone; of the older ones, those no earlier segment of this
        conversation covers are summarised (``ExtractiveSummarizer()`` unless ``summarizer`` is given) into
        one segment (kind summary, compression level 1, the messages as ``source_message_ids``,
        ``metadata["conversation_id"]`` and the seq range). So consolidating again only adds a segment for
        messages that have aged out since: the same messages are never summarised twice, also when two
        consolidations race (the second finds the conversation locked, then covered). Messages are kept.

        Args:
            summarizer: any ``Summarizer``; the async store also awaits one that returns an awaitable.
            min_messages: do nothing while fewer uncovered old messages than this exist.

        Returns:
            The new segment, or None when there was nothing (new) to consolidate.

        Raises:
            ConversationNotFound: no such conversation in this tenant.
            SummarizationError: the summariser failed.
        """
        cid = as_id(conversation_id, "conversation_id")
        for name, number in (("keep_recent", keep_recent), ("min_messages", min_messages)):
            if isinstance(number, bool) or not isinstance(number, int) or number < 0:
                raise InvalidInput(f"{name} must be a non-negative integer, got {number!r}")
        async with self._tx() as uow:
            conversation = await uow.conversations.get(cid)
            if conversation is None:
                raise ConversationNotFound(cid)
            messages = await uow.messages.all(cid)
            covered = _covered_messages(await uow.memories.segments_for_user(conversation.user_id), cid)
        old = messages[: max(0, len(messages) - keep_recent)]
        pending = [m for m in old if str(m.id) not in covered]
        if not pending or len(pending) < min_messages:
            return None
        chosen = summarizer if summarizer is not None else ExtractiveSummarizer()
        summary = chosen.summarize(pending)
        if True:  # ASYNC
            if inspect.isawaitable(summary):
                summary = await summary
        else:
            if inspect.isawaitable(summary):
                close = getattr(summary, "close", None)
                if close is not None:
                    close()  # a coroutine never awaited would warn
                raise InvalidInput("the summariser returned an awaitable: use AsyncMnemoStore for an async summariser")
        if not isinstance(summary, str):
            raise SummarizationError(f"the summariser returned {type(summary).__name__}: it must return text")
        if not summary.strip():
            return None
        async with self._tx(write=True) as uow:
            if not await uow.conversations.lock(cid):
                raise ConversationNotFound(cid)
            covered = _covered_messages(await uow.memories.segments_for_user(conversation.user_id), cid)
            if any(str(m.id) in covered for m in pending):
                return None  # a concurrent consolidation took these messages
            now = _now()
            values = {
                "id": new_id(),
                "user_id": conversation.user_id,
                "agent_id": v.check_name(agent_id, "agent_id", max_len=200),
                "content": summary.strip(),
                "kind": MemoryKind.SUMMARY.value,
                "tier": v.check_enum(MemoryTier, tier).value,
                "importance": float(v.check_number(importance, "importance")),
                "source_message_ids": [str(m.id) for m in pending],
                "compression_level": 1,
                "expires_at": None,
                "metadata": {
                    "conversation_id": str(cid),
                    "first_seq": pending[0].seq,
                    "last_seq": pending[-1].seq,
                    "message_count": len(pending),
                    "summarizer": type(chosen).__name__,
                },
                "created_at": now,
                "updated_at": now,
            }
            segment = await uow.memories.insert(values)
            await self._enqueue(uow, ItemKind.MEMORY, [segment.id], now)
            return segment

    # -- retention (mnemostore.memory._retention) ---------------------------------------------------------------

    async def run_maintenance(
        self, *, dry_run: bool = False, now: datetime | None = None, batch_size: int = 500
    ) -> TenantMaintenance:
        """Apply the tenant's retention: purge expired memories, archive idle conversations, delete old archives.

        The ages come from the tenant config's ``retention`` (``archive_after_days``,
        ``delete_archived_after_days``; see ``mnemostore.memory.RetentionPolicy``). Deleting a conversation
        goes through ``delete_conversation`` (usage, cached history); the database cascades to messages,
        vectors and full-text rows. Each batch is its own transaction, so an interrupted run resumes.

        Args:
            dry_run: count what would be done, change nothing.
            now: the moment ages are measured from (default: now).

        Raises:
            TenantNotFound: the tenant does not exist.
            ConfigurationError: the tenant's ``retention`` config is malformed.
        """
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or not 1 <= batch_size <= 10_000:
            raise InvalidInput(f"batch_size must be an integer from 1 to 10000, got {batch_size!r}")
        now = v.check_time(now, "now") or _now()
        policy = RetentionPolicy.from_config((await self._tenant_or_raise()).config)
        result = TenantMaintenance(tenant_id=self.tenant_id)
        everything = 2**31 - 1
        while True:
            async with self._tx(write=not dry_run) as uow:
                expired = await uow.memories.expired(now, limit=everything if dry_run else batch_size)
                if not dry_run:
                    await uow.memories.delete_many(expired)
            result.expired_memories += len(expired)
            if dry_run or len(expired) < batch_size:
                break
        archive_before, delete_before = policy.archive_before(now), policy.delete_before(now)
        active, archived = ConversationStatus.ACTIVE.value, ConversationStatus.ARCHIVED.value
        if dry_run:
            async with self._tx() as uow:
                if archive_before is not None:
                    idle = await uow.conversations.idle(status=active, before=archive_before, limit=everything)
                    result.archived_conversations = len(idle)
                if delete_before is not None:
                    old = await uow.conversations.idle(status=archived, before=delete_before, limit=everything)
                    result.deleted_conversations = len(old)
                    if archive_before is not None:
                        # Archived by this run and old enough to go in the same run.
                        soon = min(archive_before, delete_before)
                        gone = await uow.conversations.idle(status=active, before=soon, limit=everything)
                        result.deleted_conversations += len(gone)
            return result
        while archive_before is not None:
            async with self._tx(write=True) as uow:
                idle = await uow.conversations.idle(status=active, before=archive_before, limit=batch_size)
                for conversation in idle:
                    await uow.conversations.update(conversation.id, {"status": archived})
            for conversation in idle:
                data = {"conversation_id": str(conversation.id), "user_id": str(conversation.user_id)}
                await self._cache.events.publish(self.tenant_id, EventType.CONVERSATION_ARCHIVED, data)
            result.archived_conversations += len(idle)
            if len(idle) < batch_size:
                break
        while delete_before is not None:
            async with self._tx() as uow:
                old = await uow.conversations.idle(status=archived, before=delete_before, limit=batch_size)
            for conversation in old:
                try:
                    await self.delete_conversation(conversation.id)
                except ConversationNotFound:
                    continue  # deleted meanwhile
                result.deleted_conversations += 1
            if len(old) < batch_size:
                break
        return result

    # -- search (mnemostore.search) ---------------------------------------------------------------------------

    async def _enqueue(self, uow: AsyncUnitOfWork, kind: ItemKind, item_ids: list[uuid.UUID], now: datetime) -> None:
        """The outbox: index jobs of written items, in the transaction that writes them."""
        if item_ids and self._settings.embedder != "none":
            await AsyncIndexRepository(uow.connection, self.tenant_id, dialect=uow.dialect).enqueue(kind, item_ids, now)

    async def search(
        self,
        query: str,
        *,
        mode: SearchMode | str = SearchMode.HYBRID,
        kinds: Iterable[ItemKind | str] = (ItemKind.MESSAGE, ItemKind.MEMORY, ItemKind.KNOWLEDGE),
        user_id: uuid.UUID | str | None = None,
        agent_id: str | None = None,
        conversation_id: uuid.UUID | str | None = None,
        tier: MemoryTier | str | None = None,
        role: Role | str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        metadata: Mapping[str, Any] | None = None,
        min_score: float | None = None,
        limit: int = 10,
        recency_boost: float = 0.0,
        importance_boost: float = 0.0,
        weights: Mapping[str, float] | None = None,
    ) -> list[SearchHit]:
        """Search the tenant's messages, memories and knowledge chunks.

        Args:
            mode: ``semantic`` (embedding similarity), ``fulltext`` (words, stemmed; any may match, items
                matching more of them first) or ``hybrid`` (both, fused by weighted reciprocal rank fusion;
                full-text hits count only when they contain more than half of the query's words). Full text finds
                an item as soon as it is committed; semantic search once the indexer has embedded it.
            kinds: any of ``messages``, ``memories``, ``knowledge``.
            user_id, agent_id, conversation_id, tier, role, since, until, metadata: filters. A filter that a kind
                cannot satisfy leaves that kind out (role and conversation_id: messages; tier and agent_id:
                memories; user_id: messages of the user's conversations and the user's memories).
                ``metadata`` matches top-level keys to equal scalar values.
            min_score: drop hits whose score before boosts is lower: the cosine similarity in semantic mode, the
                text score in fulltext mode (the share of the query's words matched, plus the text rank over the
                number of words: 0 to 1), the fused score (at most ``sum(weights) / 61``) in hybrid mode.
            recency_boost, importance_boost: multiply the score by ``1 + recency_boost * 0.5 ** (age_days / 30)``
                and ``1 + importance_boost * importance`` (memories).
            weights: hybrid mode: how much each retriever's ranking counts in the fusion, ``{"semantic": 1.0,
                "fulltext": 1.0}`` by default; a missing retriever keeps its default. Ignored in other modes.

        Returns:
            Up to ``limit`` hits, best first; each carries ``scores`` and ``ranks`` per retriever.

        Raises:
            EmbedderUnavailable: semantic or hybrid mode without an embedder (names the extra to install).
            VectorSearchUnavailable: semantic or hybrid mode on a PostgreSQL without pgvector.
        """
        v.check_text(query, "query")
        if not query.strip():
            raise InvalidInput("query is empty: pass the words or the question to search for")
        v.check_limit(limit)
        search_mode = parse_mode(mode)
        kind_list = list(dict.fromkeys(parse_kind(kind) for kind in kinds))
        filters = self._filters(user_id, agent_id, conversation_id, tier, role, since, until, metadata)
        for value, name in ((recency_boost, "recency_boost"), (importance_boost, "importance_boost")):
            if v.check_number(value, name) < 0:
                raise InvalidInput(f"{name} must be 0 or more, got {value!r}")
        if min_score is not None:
            v.check_number(min_score, "min_score")
        if not self.store._schema_ok:
            await self.store.check_schema()
        return await self.store.search_engine.search(
            self.tenant_id,
            query,
            mode=search_mode,
            kinds=kind_list,
            filters=filters,
            min_score=min_score,
            limit=limit,
            recency_boost=float(recency_boost),
            importance_boost=float(importance_boost),
            weights=weights,
        )

    def _filters(
        self,
        user_id: uuid.UUID | str | None,
        agent_id: str | None,
        conversation_id: uuid.UUID | str | None,
        tier: MemoryTier | str | None,
        role: Role | str | None,
        since: datetime | None,
        until: datetime | None,
        metadata: Mapping[str, Any] | None,
    ) -> SearchFilters:
        wanted = self._json(metadata, "metadata")
        for key, value in wanted.items():
            if isinstance(value, dict | list):
                raise InvalidInput(f"metadata filter {key!r} must be a string, number, boolean or null")
        return SearchFilters(
            user_id=as_id(user_id, "user_id") if user_id is not None else None,
            agent_id=v.check_name(agent_id, "agent_id", max_len=200),
            conversation_id=as_id(conversation_id, "conversation_id") if conversation_id is not None else None,
            tier=v.check_enum(MemoryTier, tier).value if tier is not None else None,
            role=v.check_enum(Role, role).value if role is not None else None,
            since=v.check_time(since, "since"),
            until=v.check_time(until, "until"),
            metadata=wanted,
        )

    async def semantic_search(
        self,
        query: str,
        *,
        kinds: Iterable[ItemKind | str] = (ItemKind.MESSAGE, ItemKind.MEMORY, ItemKind.KNOWLEDGE),
        limit: int = 10,
        **filters: Any,
    ) -> list[SearchHit]:
        """``search(query, mode="semantic", ...)``: items by meaning (see ``search`` for the filters)."""
        return await self.search(query, mode=SearchMode.SEMANTIC, kinds=kinds, limit=limit, **filters)

    async def search_similar_memories(
        self,
        query: str,
        *,
        user_id: uuid.UUID | str | None = None,
        agent_id: str | None = None,
        tier: MemoryTier | str | None = None,
        min_score: float | None = None,
        limit: int = 10,
    ) -> list[SearchHit]:
        """Memories closest in meaning to ``query`` (semantic search over memories only)."""
        return await self.search(
            query,
            mode=SearchMode.SEMANTIC,
            kinds=(ItemKind.MEMORY,),
            user_id=user_id,
            agent_id=agent_id,
            tier=tier,
            min_score=min_score,
            limit=limit,
        )

    async def wait_for_indexing(self, *, timeout_seconds: float = 60.0, inline: bool | None = None) -> IndexingStatus:
        """Wait until this tenant has no pending or running index job (see ``AsyncMnemoStore.wait_for_indexing``)."""
        if not self.store._schema_ok:
            await self.store.check_schema()
        run_here = self.store._indexer_task is None if inline is None else inline
        return await self.store._get_indexer().drain(
            tenant_id=self.tenant_id, timeout_seconds=timeout_seconds, inline=run_here
        )

    async def indexing_status(self) -> IndexingStatus:
        """This tenant's index jobs by state, with its newest failures."""
        async with self._tx() as uow:
            return await AsyncIndexRepository(uow.connection, self.tenant_id, dialect=uow.dialect).status()

    # -- agent audit and state --------------------------------------------------------------------------------

    async def _check_conversation(self, uow: AsyncUnitOfWork, conversation_id: uuid.UUID | None) -> None:
        if conversation_id is not None and await uow.conversations.get(conversation_id) is None:
            raise ConversationNotFound(conversation_id)

    async def record_tool_execution(
        self,
        tool: str,
        *,
        conversation_id: uuid.UUID | str | None = None,
        action: str | None = None,
        parameters: Mapping[str, Any] | None = None,
        result: Any = None,
        success: bool = True,
        error: str | None = None,
        duration_ms: float | None = None,
    ) -> ToolExecution:
        cid = as_id(conversation_id, "conversation_id") if conversation_id is not None else None
        values = {
            "id": new_id(),
            "conversation_id": cid,
            "tool": v.check_name(tool, "tool", max_len=200, required=True),
            "action": v.check_name(action, "action", max_len=200),
            "parameters": self._json(parameters, "parameters"),
            "result": v.check_json_value(result, "result"),
            "success": bool(success),
            "error": v.check_text(error, "error") if error is not None else None,
            "duration_ms": v.check_number(duration_ms, "duration_ms") if duration_ms is not None else None,
            "created_at": _now(),
        }
        async with self._tx(write=True) as uow:
            await self._check_conversation(uow, cid)
            return await uow.agent.insert_tool_execution(values)

    async def list_tool_executions(
        self,
        *,
        conversation_id: uuid.UUID | str | None = None,
        tool: str | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> list[ToolExecution]:
        """Newest first; ``cursor``: ``list_cursor`` of the last one of the previous call, to continue after it."""
        v.check_limit(limit)
        cid = as_id(conversation_id, "conversation_id") if conversation_id is not None else None
        if tool is not None:
            v.check_text(tool, "tool")
        after = decode_list_cursor(ToolExecution, cursor) if cursor is not None else None
        async with self._tx() as uow:
            return await uow.agent.list_tool_executions(conversation_id=cid, tool=tool, limit=limit, after=after)

    async def create_checkpoint(
        self,
        conversation_id: uuid.UUID | str,
        *,
        iteration: int,
        state: Mapping[str, Any],
        name: str | None = None,
        context_summary: str | None = None,
        parent_id: uuid.UUID | str | Unset | None = UNSET,
    ) -> Checkpoint:
        """Save the agent's state at an iteration, to resume or roll back to later.

        Args:
            parent_id: the checkpoint this one continues from; by default the latest one of the conversation.
        """
        cid = as_id(conversation_id, "conversation_id")
        v.check_tokens(iteration, "iteration")
        values: dict[str, Any] = {
            "id": new_id(),
            "conversation_id": cid,
            "iteration": iteration,
            "name": v.check_name(name, "name", max_len=200),
            "state": v.check_json(state, "state", max_bytes=self._settings.max_content_bytes),
            "context_summary": v.check_text(context_summary, "context_summary") if context_summary else None,
            "created_at": _now(),
        }
        async with self._tx(write=True) as uow:
            await self._check_conversation(uow, cid)
            if isinstance(parent_id, Unset):
                latest = await uow.agent.checkpoints(cid, limit=1)
                values["parent_id"] = latest[0].id if latest else None
            else:
                values["parent_id"] = as_id(parent_id, "parent_id") if parent_id is not None else None
            return await uow.agent.insert_checkpoint(values)

    async def get_latest_checkpoint(self, conversation_id: uuid.UUID | str) -> Checkpoint | None:
        cid = as_id(conversation_id, "conversation_id")
        async with self._tx() as uow:
            found = await uow.agent.checkpoints(cid, limit=1)
        return found[0] if found else None

    async def get_checkpoint(self, conversation_id: uuid.UUID | str, *, iteration: int) -> Checkpoint:
        """The newest checkpoint saved at ``iteration``."""
        cid = as_id(conversation_id, "conversation_id")
        v.check_tokens(iteration, "iteration")
        async with self._tx() as uow:
            found = await uow.agent.checkpoints(cid, iteration=iteration, limit=1)
        if not found:
            raise CheckpointNotFound(f"at iteration {iteration} of conversation {cid}")
        return found[0]

    async def get_checkpoint_by_id(self, checkpoint_id: uuid.UUID | str) -> Checkpoint:
        chk = as_id(checkpoint_id, "checkpoint_id")
        async with self._tx() as uow:
            found = await uow.agent.get_checkpoint(chk)
        if found is None:
            raise CheckpointNotFound(chk)
        return found

    async def list_checkpoints(
        self, conversation_id: uuid.UUID | str, *, limit: int = 100, cursor: str | None = None
    ) -> list[Checkpoint]:
        """Newest first; ``cursor``: ``list_cursor`` of the last one of the previous call, to continue after it."""
        v.check_limit(limit)
        cid = as_id(conversation_id, "conversation_id")
        after = decode_list_cursor(Checkpoint, cursor) if cursor is not None else None
        async with self._tx() as uow:
            return await uow.agent.checkpoints(cid, limit=limit, after=after)

    async def prune_checkpoints(self, conversation_id: uuid.UUID | str, *, keep: int) -> int:
        """Delete all but the newest ``keep`` checkpoints; returns how many were deleted."""
        if not isinstance(keep, int) or keep < 0:
            raise InvalidInput(f"keep must be a non-negative integer, got {keep!r}")
        cid = as_id(conversation_id, "conversation_id")
        async with self._tx(write=True) as uow:
            return await uow.agent.prune_checkpoints(cid, keep=keep)

    async def record_interaction_event(
        self,
        event_type: str,
        *,
        conversation_id: uuid.UUID | str | None = None,
        checkpoint_id: uuid.UUID | str | None = None,
        data: Mapping[str, Any] | None = None,
        goal_modified: bool = False,
    ) -> InteractionEvent:
        """Record a human-in-the-loop event (approval, correction, goal change…)."""
        cid = as_id(conversation_id, "conversation_id") if conversation_id is not None else None
        values = {
            "id": new_id(),
            "conversation_id": cid,
            "checkpoint_id": as_id(checkpoint_id, "checkpoint_id") if checkpoint_id is not None else None,
            "event_type": v.check_name(event_type, "event_type", max_len=100, required=True),
            "data": self._json(data, "data"),
            "goal_modified": bool(goal_modified),
            "created_at": _now(),
        }
        async with self._tx(write=True) as uow:
            await self._check_conversation(uow, cid)
            return await uow.agent.insert_event(values)

    async def list_interaction_events(
        self, *, conversation_id: uuid.UUID | str | None = None, limit: int = 100, cursor: str | None = None
    ) -> list[InteractionEvent]:
        """Newest first; ``cursor``: ``list_cursor`` of the last one of the previous call, to continue after it."""
        v.check_limit(limit)
        cid = as_id(conversation_id, "conversation_id") if conversation_id is not None else None
        after = decode_list_cursor(InteractionEvent, cursor) if cursor is not None else None
        async with self._tx() as uow:
            return await uow.agent.events(conversation_id=cid, limit=limit, after=after)

    async def record_metric(
        self,
        metric_type: str,
        value: float,
        *,
        conversation_id: uuid.UUID | str | None = None,
        labels: Mapping[str, Any] | None = None,
        recorded_at: datetime | None = None,
    ) -> AgentMetric:
        return (
            await self.record_metrics(
                [
                    {
                        "metric_type": metric_type,
                        "value": value,
                        "conversation_id": conversation_id,
                        "labels": labels,
                        "recorded_at": recorded_at,
                    }
                ]
            )
        )[0]

    async def record_metrics(self, metrics: Iterable[Mapping[str, Any]]) -> list[AgentMetric]:
        """Record agent metrics ``{"metric_type", "value", "conversation_id"?, "labels"?, "recorded_at"?}``."""
        rows: list[dict[str, Any]] = []
        conversations: set[uuid.UUID] = set()
        for index, item in enumerate(metrics):
            if not isinstance(item, Mapping):
                raise InvalidInput(f"metric {index} must be a mapping with metric_type and value")
            value = v.check_number(item.get("value"), "metric value")
            cid = item.get("conversation_id")
            cid = as_id(cid, "conversation_id") if cid is not None else None
            if cid is not None:
                conversations.add(cid)
            rows.append(
                {
                    "id": new_id(),
                    "conversation_id": cid,
                    "metric_type": v.check_name(item.get("metric_type"), "metric_type", max_len=100, required=True),
                    "value": value,
                    "labels": self._json(item.get("labels"), "labels"),
                    "recorded_at": v.check_time(item.get("recorded_at"), "recorded_at") or _now(),
                }
            )
        async with self._tx(write=True) as uow:
            for cid in conversations:
                await self._check_conversation(uow, cid)
            return await uow.agent.insert_metrics(rows)

    async def query_metrics(
        self,
        *,
        metric_type: str | None = None,
        conversation_id: uuid.UUID | str | None = None,
        since: datetime | None = None,
        limit: int = 1000,
        cursor: str | None = None,
    ) -> list[AgentMetric]:
        """Newest first; ``cursor``: ``list_cursor`` of the last one of the previous call, to continue after it."""
        v.check_limit(limit, maximum=100_000)
        cid = as_id(conversation_id, "conversation_id") if conversation_id is not None else None
        v.check_time(since, "since")
        if metric_type is not None:
            v.check_text(metric_type, "metric_type")
        after = decode_list_cursor(AgentMetric, cursor) if cursor is not None else None
        async with self._tx() as uow:
            return await uow.agent.metrics(
                metric_type=metric_type, conversation_id=cid, since=since, limit=limit, after=after
            )

    # -- rate limits, sessions, presence, feature flags, events (mnemostore.cache) ----------------------------

    async def _tenant_or_raise(self) -> Tenant:
        tenant = await self.store.get_tenant(self.tenant_id)
        if tenant is None:
            raise TenantNotFound(self.tenant_id)
        return tenant

    async def rate_limit(
        self,
        *,
        user_id: uuid.UUID | str | None = None,
        api_key_id: uuid.UUID | str | None = None,
        client_ip: str | None = None,
        channel: str | None = None,
        cost: int = 1,
        raise_on_limit: bool = True,
    ) -> RateLimitDecision:
        """Count one request (of weight ``cost``) against every limit that applies to it, atomically.

        The limits come from the channel's ``rate_limits``, then the tenant's ``config["rate_limits"]``, then
        ``Settings.default_rate_limits``, per scope: ``tenant``, ``user``, ``api_key``, ``ip`` (see
        mnemostore.cache._ratelimit for the format). Either every applicable bucket is charged or none is.
        While Redis is unavailable the check runs on this process's own buckets and says so (``degraded``).

        Returns:
            The decision: remaining requests of the tightest limit, or the refusing limit and ``retry_after``.

        Raises:
            RateLimited: a limit is used up (unless ``raise_on_limit=False``: then the decision says so).
        """
        if not isinstance(cost, int) or isinstance(cost, bool) or cost < 1:
            raise InvalidInput(f"cost must be a positive integer, got {cost!r}")
        if channel is not None:
            v.check_name(channel, "channel", max_len=50, required=True)
        tenant = await self._tenant_or_raise()
        config = await self.get_channel_config(channel) if channel is not None else None
        limits = _ratelimit.resolve_limits(
            self._settings.default_rate_limits,
            tenant.config.get("rate_limits"),
            config.rate_limits if config is not None else None,
        )
        subjects: dict[str, object | None] = {
            "tenant": "all",
            "user": as_id(user_id, "user_id") if user_id is not None else None,
            "api_key": as_id(api_key_id, "api_key_id") if api_key_id is not None else None,
            "ip": v.check_name(client_ip, "client_ip", max_len=100),
        }
        scopes = [s for s in _ratelimit.SCOPES if s in limits and subjects[s] is not None]
        if not scopes:
            return RateLimitDecision(allowed=True, scope=None, limit=None, window=None, remaining=None, retry_after=0)
        keys = self._cache.keys
        buckets = [
            keys.rate(self.tenant_id, channel if limits[s].source == "channel" else "*", s, subjects[s]) for s in scopes
        ]
        caps = [(float(limits[s].limit), limits[s].rate_per_ms) for s in scopes]
        deny, wait_ms, left, degraded = await self._cache.rate_limiter.acquire(buckets, caps, cost)
        if deny:
            scope = scopes[deny - 1]
            rule = limits[scope]
            decision = RateLimitDecision(
                allowed=False,
                scope=scope,
                limit=rule.limit,
                window=rule.window,
                remaining=max(0, left[deny - 1]),
                retry_after=wait_ms / 1000,
                degraded=degraded,
            )
            if raise_on_limit:
                raise RateLimited(scope, rule.limit, rule.window, decision.retry_after)
            return decision
        tightest = min(range(len(scopes)), key=lambda i: left[i])
        rule = limits[scopes[tightest]]
        return RateLimitDecision(
            allowed=True,
            scope=scopes[tightest],
            limit=rule.limit,
            window=rule.window,
            remaining=max(0, left[tightest]),
            retry_after=0,
            degraded=degraded,
        )

    async def get_session(self, channel: str, channel_user_id: str) -> ChannelSession | None:
        """The channel user's session, its sliding TTL renewed; rebuilt from the database when not cached.

        Rebuilt means: the user behind the identity, their most recently active conversation on this channel,
        and the model that conversation, the user or the channel config names. None when the identity is
        unknown.
        """
        v.check_name(channel, "channel", max_len=50, required=True)
        v.check_name(channel_user_id, "channel_user_id", max_len=200, required=True)
        session = await self._cache.sessions.get(self.tenant_id, channel, channel_user_id)
        if session is not None:
            return session
        user = await self.get_user_by_identity(channel, channel_user_id)
        if user is None:
            return None
        conversation: Conversation | None = None
        async with self._tx() as uow:
            for candidate in await uow.conversations.list_for_user(
                user.id, status=ConversationStatus.ACTIVE.value, limit=20, after=None
            ):
                if candidate.channel == channel:
                    conversation = candidate
                    break
        config = await self.get_channel_config(channel)
        model = (
            (conversation.model_override if conversation else None)
            or user.preferred_model
            or (config.default_model if config else None)
        )
        now = _now()
        session = ChannelSession(
            tenant_id=self.tenant_id,
            channel=channel,
            channel_user_id=channel_user_id,
            user_id=user.id,
            conversation_id=conversation.id if conversation else None,
            model=model,
            started_at=now,
            last_activity_at=now,
        )
        await self._cache.sessions.put(session)
        return session

    async def update_session(
        self,
        channel: str,
        channel_user_id: str,
        *,
        user_id: uuid.UUID | str | None = None,
        conversation_id: uuid.UUID | str | Unset | None = UNSET,
        model: str | Unset | None = UNSET,
        data: Mapping[str, Any] | Unset = UNSET,
    ) -> ChannelSession:
        """Create or change a channel session and mark it active now (fields not passed stay as they are).

        Args:
            user_id: needed only when the identity is not linked to a user yet.

        Raises:
            UserNotFound: no session, no linked identity and no ``user_id``.
            ConversationNotFound: ``conversation_id`` is not a conversation of this tenant.
        """
        session = await self.get_session(channel, channel_user_id)
        now = _now()
        if session is None or (user_id is not None and as_id(user_id, "user_id") != session.user_id):
            if user_id is None:
                raise UserNotFound(f"{channel}:{channel_user_id}", ": pass user_id= to start a session")
            uid = as_id(user_id, "user_id")
            if await self.get_user(uid) is None:
                raise UserNotFound(uid)
            session = ChannelSession(
                tenant_id=self.tenant_id,
                channel=channel,
                channel_user_id=channel_user_id,
                user_id=uid,
                conversation_id=None,
                model=None,
                started_at=now,
                last_activity_at=now,
            )
        if not isinstance(conversation_id, Unset):
            cid = as_id(conversation_id, "conversation_id") if conversation_id is not None else None
            if cid is not None and cid != session.conversation_id and await self.get_conversation(cid) is None:
                raise ConversationNotFound(cid)
            session.conversation_id = cid
        if not isinstance(model, Unset):
            session.model = v.check_name(model, "model", max_len=200)
        if not isinstance(data, Unset):
            session.data = self._json(data, "data")
        session.last_activity_at = now
        await self._cache.sessions.put(session)
        await self._cache.presence.touch(self.tenant_id, channel, str(session.user_id))
        return session

    async def touch_session(self, channel: str, channel_user_id: str) -> ChannelSession | None:
        """Record activity: renew the session's TTL and last activity, and mark the user active on the channel."""
        session = await self.get_session(channel, channel_user_id)
        if session is None:
            return None
        session.last_activity_at = _now()
        await self._cache.sessions.put(session)
        await self._cache.presence.touch(self.tenant_id, channel, str(session.user_id))
        return session

    async def end_session(self, channel: str, channel_user_id: str) -> None:
        """Forget the session (the next ``get_session`` rebuilds one from the database)."""
        v.check_name(channel, "channel", max_len=50, required=True)
        v.check_name(channel_user_id, "channel_user_id", max_len=200, required=True)
        await self._cache.sessions.delete(self.tenant_id, channel, channel_user_id)

    async def mark_user_active(self, channel: str, user_id: uuid.UUID | str) -> None:
        """Count the user as active on the channel for the next ``presence_ttl_seconds``."""
        v.check_name(channel, "channel", max_len=50, required=True)
        await self._cache.presence.touch(self.tenant_id, channel, str(as_id(user_id, "user_id")))

    async def mark_user_inactive(self, channel: str, user_id: uuid.UUID | str) -> None:
        v.check_name(channel, "channel", max_len=50, required=True)
        await self._cache.presence.leave(self.tenant_id, channel, str(as_id(user_id, "user_id")))

    async def active_users(self, channel: str) -> list[uuid.UUID]:
        """Users active on the channel within ``presence_ttl_seconds``, least recently active first."""
        v.check_name(channel, "channel", max_len=50, required=True)
        return [uuid.UUID(m) for m in await self._cache.presence.members(self.tenant_id, channel)]

    async def count_active_users(self, channel: str) -> int:
        v.check_name(channel, "channel", max_len=50, required=True)
        return await self._cache.presence.count(self.tenant_id, channel)

    async def _flag_value(self, flag: str, channel: str | None) -> Any:
        v.check_name(flag, "flag", max_len=200, required=True)
        if channel is not None:
            config = await self.get_channel_config(channel)
            flags = config.settings.get(_flags.FLAGS_FIELD) if config is not None else None
            if isinstance(flags, Mapping) and flag in flags:
                return flags[flag]
        tenant = await self._tenant_or_raise()
        flags = tenant.config.get(_flags.FLAGS_FIELD)
        if isinstance(flags, Mapping) and flag in flags:
            return flags[flag]
        return (await self._cache.flags.global_flags()).get(flag)

    async def feature_enabled(
        self, flag: str, *, user_id: uuid.UUID | str | None = None, channel: str | None = None
    ) -> bool:
        """Is ``flag`` on (for this user, when it is a percentage or variants flag)? Unknown flags are off.

        The channel's flags win over the tenant's, which win over the global ones (see mnemostore.cache._flags).
        """
        subject = str(as_id(user_id, "user_id")) if user_id is not None else None
        value = await self._flag_value(flag, channel)
        return _flags.is_enabled(value, tenant_id=self.tenant_id, flag=flag, subject=subject)

    async def feature_variant(self, flag: str, *, user_id: uuid.UUID | str, channel: str | None = None) -> str | None:
        """The user's A/B variant of ``flag``: deterministic and sticky (a hash of tenant, flag and user)."""
        subject = str(as_id(user_id, "user_id"))
        value = await self._flag_value(flag, channel)
        return _flags.variant(value, tenant_id=self.tenant_id, flag=flag, subject=subject)

    async def set_feature_flag(self, flag: str, value: Any, *, channel: str | None = None) -> None:
        """Set (None: remove) a flag of the tenant, or of one of its channels; effective at once everywhere.

        Stored in the tenant's ``config["feature_flags"]`` or the channel's ``settings["feature_flags"]``.
        """
        v.check_name(flag, "flag", max_len=200, required=True)
        if value is not None:
            value = _flags.check_flag(flag, value)
        if channel is None:
            async with self._tx() as uow:
                tenant = await uow.tenants.get(self.tenant_id)
            if tenant is None:
                raise TenantNotFound(self.tenant_id)
            config = dict(tenant.config)
            config[_flags.FLAGS_FIELD] = _set_flag(config.get(_flags.FLAGS_FIELD), flag, value)
            await self.store.update_tenant_config(self.tenant_id, config=config)
            return
        v.check_text(channel, "channel")
        async with self._tx() as uow:
            current = await uow.tenants.get_channel_config(channel)
        settings = dict(current.settings) if current is not None else {}
        settings[_flags.FLAGS_FIELD] = _set_flag(settings.get(_flags.FLAGS_FIELD), flag, value)
        await self.set_channel_config(
            channel,
            default_model=current.default_model if current is not None else None,
            settings=settings,
            rate_limits=current.rate_limits if current is not None else None,
        )

    async def subscribe_events(self) -> AsyncEventSubscription:
        """The tenant's events from now on: ``message.added``, ``memory.stored``, ``conversation.archived``.

        Use as ``async with await t.subscribe_events() as events: async for event in events: ...``. Delivery is
        at most once (pub/sub): after a gap, resynchronise from the database (history ``after=``).
        """
        return await self._cache.events.subscribe(self.tenant_id)


def _covered_messages(segments: Iterable[Memory], conversation_id: uuid.UUID) -> set[str]:
    """Ids of the messages of ``conversation_id`` that the given segments already summarise."""
    key = str(conversation_id)
    return {mid for s in segments if s.metadata.get("conversation_id") == key for mid in s.source_message_ids}


def _set_flag(flags: Any, flag: str, value: Any) -> dict[str, Any]:
    out = dict(flags) if isinstance(flags, Mapping) else {}
    if value is None:
        out.pop(flag, None)
    else:
        out[flag] = value
    return out


def _chunk_fields(values: Mapping[str, Any]) -> dict[str, Any]:
    keys = ("id", "source", "external_id", "title", "content", "content_hash", "metadata", "created_at", "updated_at")
    return {k: values[k] for k in keys}
