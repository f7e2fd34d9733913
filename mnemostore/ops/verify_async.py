"""Prove that an archive restores (async; ``verify.py`` is generated from this file): ``backup --verify``.

A checksum proves that an archive is as it was written, not that it can be restored. ``verify_archive`` restores it
into a scratch database made for the purpose (``_scratch``: a temporary SQLite file, or a PostgreSQL database
created and dropped on the store's server), with the restore's own verification on, then counts every table
there, in a new transaction, and compares the counts with the manifest's. The scratch database is removed
whatever happens.
"""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa

import mnemostore.ops.backup_async as backups
from mnemostore.config import Settings
from mnemostore.errors import BackupError, BackupVerificationFailed
from mnemostore.ops import migrate
from mnemostore.ops._archive import BackupManifest
from mnemostore.ops._scratch import Scratch, create_scratch, drop_scratch
from mnemostore.ops._signing import SigningKey
from mnemostore.store import AsyncDatabase
from mnemostore.store.tables import metadata

__all__ = ["VerifiedArchive", "count_mismatches", "verify_archive"]


@dataclass(frozen=True, slots=True)
class VerifiedArchive:
    """An archive that restored into a scratch database with every table's row count as in its manifest."""

    path: Path
    backend: str
    rows: dict[str, int]
    seconds: float

    @property
    def total_rows(self) -> int:
        return sum(self.rows.values())


def count_mismatches(manifest: BackupManifest, counted: dict[str, int]) -> list[str]:
    """``"table: N rows restored, the archive holds M"`` for each table whose counts differ (a table the archive
    lacks should hold no rows); empty when all agree."""
    expected = {table.name: 0 for table in metadata.sorted_tables}
    expected.update({entry.name: entry.rows for entry in manifest.tables})
    return [
        f"{name}: {counted.get(name, 0):,} rows restored, the archive holds {rows:,}"
        for name, rows in expected.items()
        if counted.get(name, 0) != rows
    ]


async def verify_archive(
    path: str | os.PathLike[str],
    settings: Settings,
    *,
    signing_key: str | None = None,
    scratch_near: Path | None = None,
) -> VerifiedArchive:
    """Restore ``path`` into a scratch database on the backend of ``settings`` and check its row counts.

    ``signing_key`` (base64; default: ``MNEMOSTORE_BACKUP_SIGNING_KEY``) checks the signature as a real restore
    would. SQLite's scratch file goes in a hidden folder in ``scratch_near`` (default: the archive's folder).

    Raises:
        BackupVerificationFailed: the scratch database cannot be made, the archive does not restore (the restore's
            own error is chained), or a table restored with another row count than the manifest's.
    """
    started = time.perf_counter()
    archive = Path(path)
    key = _signing_key(settings, signing_key)
    near = scratch_near if scratch_near is not None else archive.parent
    if True:  # ASYNC
        scratch = await asyncio.to_thread(create_scratch, settings, near=near)
    else:
        scratch = create_scratch(settings, near=near)
    try:
        manifest, counted = await _restore_and_count(archive, scratch, key)
    finally:
        if True:  # ASYNC
            await asyncio.to_thread(drop_scratch, scratch, settings)
        else:
            drop_scratch(scratch, settings)
    mismatches = count_mismatches(manifest, counted)
    if mismatches:
        raise BackupVerificationFailed(
            f"{archive} restored into a scratch database with other row counts than its manifest's "
            f"({'; '.join(mismatches)}): it is not a faithful copy, do not rely on it"
        )
    return VerifiedArchive(
        path=archive,
        backend="postgresql" if settings.is_postgres else "sqlite",
        rows=counted,
        seconds=time.perf_counter() - started,
    )


def _signing_key(settings: Settings, given: str | None) -> SigningKey | None:
    if given is not None:
        return SigningKey.from_base64(given, "signing_key")
    configured = settings.backup_signing_key
    return SigningKey.from_base64(configured.get_secret_value()) if configured is not None else None


async def _restore_and_count(
    archive: Path, scratch: Scratch, key: SigningKey | None
) -> tuple[BackupManifest, dict[str, int]]:
    if True:  # ASYNC
        await asyncio.to_thread(migrate.upgrade, scratch.settings)
    else:
        migrate.upgrade(scratch.settings)
    db = AsyncDatabase(scratch.settings)
    try:
        try:
            restored = await backups.restore(db, archive, verify=True, signing_key=key)
        except BackupVerificationFailed:
            raise
        except BackupError as error:
            raise BackupVerificationFailed(f"{archive} does not restore into a scratch database: {error}") from error
        async with db.snapshot(None) as conn:
            counted = {}
            for table in metadata.sorted_tables:
                query = sa.select(sa.func.count()).select_from(table)
                counted[table.name] = int((await conn.execute(query)).scalar_one())
    finally:
        await db.close()
    return restored.manifest, counted
