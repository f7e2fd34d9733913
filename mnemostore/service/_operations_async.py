"""Operations: health, maintenance, key rotation, cache administration, backup and restore, export and erasure."""

from __future__ import annotations

import logging
import os
import uuid
from datetime import datetime, timedelta
from typing import Any

import mnemostore.ops.backup_async as backups
from mnemostore.cache import flags as feature_flags
from mnemostore.config import Settings
from mnemostore.errors import (
    ConfigurationError,
    MnemostoreError,
    TenantNotFound,
)
from mnemostore.memory import (
    MaintenanceReport,
    TenantMaintenance,
)
from mnemostore.ops import (
    AsyncHealthChecker,
    BackupResult,
    HealthReport,
    ProgressReporter,
    RestoreResult,
    Scope,
    SigningKey,
)
from mnemostore.service import _validation as v
from mnemostore.service._inputs import as_id, utc_now
from mnemostore.service._scope_async import AsyncTenantScope
from mnemostore.service._tenants_async import AsyncTenantAdmin
from mnemostore.store import SEALED_COLUMNS, KeyRotationReport

_log = logging.getLogger("mnemostore.search")


def _backup_signing_key(settings: Settings, given: str | None) -> SigningKey | None:
    """The backup signing key: ``given`` (base64) when passed, else ``MNEMOSTORE_BACKUP_SIGNING_KEY``, else None."""
    if given is not None:
        return SigningKey.from_base64(given, "signing_key")
    configured = settings.backup_signing_key
    return SigningKey.from_base64(configured.get_secret_value()) if configured is not None else None


class AsyncOperations(AsyncTenantAdmin):
    """Store-wide operations (health, maintenance, keys, cache, backup, restore)."""

    def cache_health(self) -> dict[str, Any]:
        """The cache's state as plain data: backend, breaker state, rate-limiter mode, hit/miss counters per
        cache, Redis latency. ``degraded`` is True while Redis is unavailable and the database serves alone."""
        return self.cache.health()

    async def flush_cache(self, tenant_id: uuid.UUID | str | None = None) -> int:
        """Drop cached data (histories, lookups, sessions) of one tenant, or of all; the database is untouched.

        Call it after restoring a backup or editing the database behind the store's back. Returns the number
        of keys deleted.
        """
        return await self.cache.flush(await self._tenant_key(tenant_id) if tenant_id is not None else None)

    async def set_global_feature_flag(self, flag: str, value: Any) -> None:
        """Override a global feature flag at run time, for every process sharing the cache (None: remove).

        Global overrides live in the cache only (Settings.feature_flags is the durable default); tenant and
        channel flags are stored in their configs, see ``AsyncTenantStore.set_feature_flag``.
        """
        v.check_name(flag, "flag", max_len=200, required=True)
        await self.cache.flags.set_global(flag, None if value is None else feature_flags.check_flag(flag, value))

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
        v.check_int(batch_size, "batch_size", minimum=1, maximum=10_000)
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
        v.check_int(batch_size, "batch_size", minimum=1, maximum=10_000)
        started = v.check_time(now, "now") or utc_now()
        report = MaintenanceReport(dry_run=dry_run, started_at=started)
        tid = await self._tenant_key(tenant_id) if tenant_id is not None else None
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
                return await uow.index_jobs.count_done_before(before)
        pruned = 0
        while True:
            async with self._transaction(tenant_id, write=True) as uow:
                repo = uow.index_jobs
                deleted = await repo.prune_done(before, limit=batch_size)
            pruned += deleted
            if deleted < batch_size:
                return pruned

    async def backup(
        self,
        path: str | os.PathLike[str],
        *,
        tenant_id: uuid.UUID | str | None = None,
        compress: bool = False,
        progress: ProgressReporter | None = None,
        signing_key: str | None = None,
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
            signing_key: sign the manifest with this base64 key (default: ``MNEMOSTORE_BACKUP_SIGNING_KEY``;
                neither: the archive is unsigned). A restore with the key then refuses the archive if anything in
                it was changed, checksums recomputed or not.

        Returns:
            The archive's final path and its manifest (``signed_with``: the id of the key that signed it).

        Raises:
            BackupError: ``path`` exists or cannot be written. TenantNotFound: no such tenant.
        """
        scope = Scope("tenant", await self._tenant_key(tenant_id)) if tenant_id is not None else Scope()
        await self.check_schema()
        key = _backup_signing_key(self.settings, signing_key)
        return await backups.backup(self._db, path, scope=scope, compress=compress, progress=progress, signing_key=key)

    async def restore(
        self,
        path: str | os.PathLike[str],
        *,
        tenant: uuid.UUID | str | None = None,
        verify: bool = False,
        progress: ProgressReporter | None = None,
        signing_key: str | None = None,
        allow_unsigned: bool = False,
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
            signing_key: check the archive's signature with this base64 key (default:
                ``MNEMOSTORE_BACKUP_SIGNING_KEY``). Without any key nothing is checked and ``signature`` of the
                result is ``unchecked``: checksums catch damage, not deliberate tampering.
            allow_unsigned: with a key, restore an archive that carries no signature anyway (``unsigned``).

        Raises:
            ArchiveSignatureInvalid: the signature does not match the key: the archive was altered, or signed
                with another key.
            ArchiveNotSigned: a key is configured, the archive is unsigned and ``allow_unsigned`` is false.
            ArchiveUnsafe: the archive holds a link, a device or a path leading outside it.
            ArchiveRowTooLarge: a row is longer than ``MNEMOSTORE_BACKUP_MAX_ROW_BYTES``.
            ArchiveCorrupted: the archive is truncated, damaged or was altered.
            ArchiveVersionUnsupported: it was written in another format version or at another schema revision.
            SchemaOutOfDate: this database is not at the newest revision: run `mnemostore db upgrade` first.
            RestoreConflict: the database is not empty, or already has that tenant.
            TenantNotFound: ``tenant`` is not in the archive.
        """
        result = await backups.restore(
            self._db,
            path,
            tenant=tenant,
            verify=verify,
            progress=progress,
            signing_key=_backup_signing_key(self.settings, signing_key),
            allow_unsigned=allow_unsigned,
            max_row_bytes=self.settings.backup_max_row_bytes,
        )
        if tenant is None:
            await self.flush_cache()  # the database was empty: nothing cached for it can be right
        else:
            for restored in result.tenant_ids:
                await self.flush_cache(restored)
        if self._runtime.vectors is not None:
            # The restored vectors into Milvus (committed already: a failure is logged, and reindex repairs it).
            try:
                await self._runtime.vectors.rebuild()
            except MnemostoreError as error:
                _log.warning(
                    "restore: Milvus could not take the restored vectors (run `mnemostore reindex`): %s", error
                )
        return result


class AsyncTenantOperations(AsyncTenantScope):
    """Per-tenant archives and erasure."""

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
        removed = await backups.erase_user(self._runtime.db, self.tenant_id, uid)
        await self._runtime.vectors_removed(self.tenant_id, owner_id=uid)
        await self.store.flush_cache(self.tenant_id)  # sessions, lookups and histories; limits and presence expire
        return removed

    async def export(
        self,
        path: str | os.PathLike[str],
        *,
        user_id: uuid.UUID | str | None = None,
        compress: bool = False,
        progress: ProgressReporter | None = None,
        signing_key: str | None = None,
    ) -> BackupResult:
        """Write a backup archive of this tenant, or of one user's rows in it (see ``AsyncMnemoStore.backup``).

        A user's archive holds their row, identities, conversations with everything in them, and memories, plus
        the tenant's row so that it can be restored into an empty database.
        ``signing_key`` signs it as in ``backup``.

        Raises:
            TenantNotFound, UserNotFound, BackupError: as ``backup``.
        """
        if user_id is not None:
            scope = Scope("user", self.tenant_id, as_id(user_id, "user_id"))
        else:
            scope = Scope("tenant", self.tenant_id)
        await self._runtime.check_schema()
        key = _backup_signing_key(self._settings, signing_key)
        return await backups.backup(
            self._runtime.db, path, scope=scope, compress=compress, progress=progress, signing_key=key
        )
