"""``mnemostore backup --into DIR``: one run of a scheduled backup (cron, a systemd timer; see deploy/).

A run writes ``DIR/mnemostore-<UTC time>.tar`` (``.tar.gz`` with ``--compress``; the tenant's id before the time
with ``--tenant``), optionally restores it into a scratch database to prove it restores (``--verify``), then prunes
the folder's older archives of the same scope by the grandfather-father-son rule of ``mnemostore.ops.retention``
(``--keep-daily``, ``--keep-weekly``). An archive that fails its verification is renamed ``….failed`` (no longer
an archive of the series: never counted, never pruned) and nothing is pruned, so a bad night cannot push the good
archives out. ``scheduled_backup`` is the run, with the time given: the command passes the clock, tests a date.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from mnemostore.errors import BackupError, BackupVerificationFailed

if TYPE_CHECKING:  # the CLI imports these where a command runs: --help and --version stay quick
    from mnemostore.ops import BackupResult, ProgressReporter
    from mnemostore.ops.retention import RetentionPlan
    from mnemostore.ops.verify import VerifiedArchive
    from mnemostore.service.store import MnemoStore

__all__ = ["ScheduledBackup", "scheduled_backup"]


@dataclass(slots=True)
class ScheduledBackup:
    """What one run did (a dry run: would do): the archive, its verification, the pruning plan and its deletions."""

    path: Path
    result: BackupResult | None = None
    verified: VerifiedArchive | None = None
    plan: RetentionPlan | None = None
    deleted: list[Path] = field(default_factory=list)


def scheduled_backup(
    store: MnemoStore,
    into: Path,
    *,
    now: datetime,
    tenant_id: uuid.UUID | None = None,
    compress: bool = False,
    keep_daily: int | None = None,
    keep_weekly: int | None = None,
    verify: bool = False,
    dry_run: bool = False,
    signing_key: str | None = None,
    progress: ProgressReporter | None = None,
) -> ScheduledBackup:
    """Back up into ``into`` under the name of ``now``, verify, then prune (only when a ``keep_*`` is given).

    A dry run writes and deletes nothing: it names the archive it would write and plans the pruning as if it had.

    Raises:
        BackupError: ``into`` is a file, the archive's name is taken (two runs in one second), or it cannot be
            written. BackupVerificationFailed: with ``verify``, the new archive did not restore as it should.
    """
    from mnemostore.ops.retention import archive_name, list_archives, plan_retention, prune
    from mnemostore.ops.verify import verify_archive

    if into.exists() and not into.is_dir():
        raise BackupError(f"--into {into} is a file: give the folder that holds the scheduled archives")
    name = archive_name(now, compress=compress, tenant_id=tenant_id)
    run = ScheduledBackup(path=into / name)
    prunes = keep_daily is not None or keep_weekly is not None
    daily, weekly = keep_daily or 0, keep_weekly or 0
    if dry_run:
        if prunes:
            names = [*list_archives(into), name]
            run.plan = plan_retention(names, keep_daily=daily, keep_weekly=weekly, tenant_id=tenant_id, protect=name)
        return run
    if run.path.exists():
        raise BackupError(f"{run.path} already exists (another run in the same second?): run it again")
    run.result = store.backup(run.path, tenant_id=tenant_id, progress=progress, signing_key=signing_key)
    if verify:
        try:
            run.verified = verify_archive(run.path, store.settings, signing_key=signing_key, scratch_near=into)
        except BackupVerificationFailed as error:
            failed = run.path.with_name(f"{name}.failed")
            run.path.rename(failed)
            raise BackupVerificationFailed(
                f"{error}. The archive was set aside as {failed} and no archive was pruned"
            ) from error
    if prunes:
        names = list_archives(into)
        run.plan = plan_retention(names, keep_daily=daily, keep_weekly=weekly, tenant_id=tenant_id, protect=name)
        run.deleted = prune(into, run.plan)
    return run
