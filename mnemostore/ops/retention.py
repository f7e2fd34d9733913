"""Which scheduled backups to keep: grandfather-father-son retention over archive names (pure, no clock).

``mnemostore backup --into DIR`` names each archive after the moment it was taken, in UTC:
``mnemostore-20260314T021500Z.tar`` (``.tar.gz`` compressed), with the tenant's id before the time for a tenant's
backups (``mnemostore-<tenant id>-20260314T021500Z.tar``). A folder's archives of one scope (the whole database,
or one tenant) form a series; pruning one series never touches another, nor any file whose name is not exactly of
that form (notes, checksums, a ``.failed`` archive, the hidden staging folder of a backup being written).

The rule (``archives_to_keep``) keeps the newest archive of each of the last ``keep_daily`` days that have
archives, and the newest of each of the last ``keep_weekly`` ISO weeks (Monday to Sunday) that have archives;
days and weeks are UTC's. Whatever else happens, the newest archive is kept, so pruning never empties a folder.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

from mnemostore.errors import BackupError

__all__ = [
    "ArchiveName",
    "RetentionPlan",
    "archive_name",
    "archives_to_keep",
    "list_archives",
    "parse_archive_name",
    "plan_retention",
    "prune",
]

PREFIX: Final = "mnemostore-"
_STAMP: Final = "%Y%m%dT%H%M%SZ"
_PATTERN: Final = re.compile(
    r"mnemostore-(?:(?P<tenant>[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})-)?"
    r"(?P<stamp>\d{8}T\d{6}Z)\.(?:tar|tar\.gz)"
)


@dataclass(frozen=True, slots=True)
class ArchiveName:
    """A scheduled archive's file name, read: when it was taken, and of which tenant (None: the whole database)."""

    name: str
    taken_at: datetime
    tenant_id: uuid.UUID | None


@dataclass(frozen=True, slots=True)
class RetentionPlan:
    """What pruning a series does: the names it keeps and the names it deletes, newest first."""

    keep: tuple[str, ...]
    delete: tuple[str, ...]


def archive_name(taken_at: datetime, *, compress: bool = False, tenant_id: uuid.UUID | None = None) -> str:
    """The file name of an archive taken at ``taken_at`` (timezone-aware; written in UTC, to the second)."""
    stamp = _utc(taken_at).strftime(_STAMP)
    scope = f"{tenant_id}-" if tenant_id is not None else ""
    return f"{PREFIX}{scope}{stamp}.{'tar.gz' if compress else 'tar'}"


def parse_archive_name(name: str) -> ArchiveName | None:
    """``name`` read as a scheduled archive's, or None when it is not exactly one (those files are never pruned)."""
    found = _PATTERN.fullmatch(name)
    if found is None:
        return None
    try:
        taken_at = datetime.strptime(found["stamp"], _STAMP).replace(tzinfo=UTC)
    except ValueError:  # 20261341T…: the shape of a stamp, not a time
        return None
    tenant = found["tenant"]
    return ArchiveName(name, taken_at, uuid.UUID(tenant) if tenant else None)


def archives_to_keep(taken: Iterable[datetime], *, keep_daily: int, keep_weekly: int) -> set[datetime]:
    """The times, among ``taken``, that the grandfather-father-son rule keeps.

    The newest time of each of the last ``keep_daily`` days that have any, and the newest of each of the last
    ``keep_weekly`` ISO weeks that have any (UTC), and always the newest of all: at most
    ``max(1, keep_daily + keep_weekly)`` times, none when ``taken`` is empty.
    """
    if keep_daily < 0 or keep_weekly < 0:
        raise ValueError("keep_daily and keep_weekly cannot be negative")
    newest_first = sorted({_utc(t) for t in taken}, reverse=True)
    if not newest_first:
        return set()
    kept = {newest_first[0]}
    kept |= _newest_per_period(newest_first, keep_daily, lambda t: t.date())
    kept |= _newest_per_period(newest_first, keep_weekly, lambda t: t.isocalendar()[:2])
    return kept


def _newest_per_period(
    newest_first: list[datetime], periods: int, period_of: Callable[[datetime], Hashable]
) -> set[datetime]:
    """The first (newest) time of each of the first ``periods`` distinct periods met in ``newest_first``."""
    seen: set[Hashable] = set()
    kept: set[datetime] = set()
    for moment in newest_first:
        if len(seen) == periods:
            break
        period = period_of(moment)
        if period not in seen:
            seen.add(period)
            kept.add(moment)
    return kept


def plan_retention(
    names: Iterable[str],
    *,
    keep_daily: int,
    keep_weekly: int,
    tenant_id: uuid.UUID | None = None,
    protect: str | None = None,
) -> RetentionPlan:
    """Apply ``archives_to_keep`` to the archives of one series (``tenant_id``; None: the whole database).

    Names of other series, and names that are not scheduled archives', are left out of the plan altogether. Every
    archive taken at a kept time is kept (a ``.tar`` and a ``.tar.gz`` of the same second both stay), and so is
    ``protect``, the archive just written, even if a clock set back made older-looking names look newer.
    """
    series = [a for n in names if (a := parse_archive_name(n)) is not None and a.tenant_id == tenant_id]
    kept_times = archives_to_keep((a.taken_at for a in series), keep_daily=keep_daily, keep_weekly=keep_weekly)
    ordered = sorted(series, key=lambda a: (a.taken_at, a.name), reverse=True)
    keep = tuple(a.name for a in ordered if a.taken_at in kept_times or a.name == protect)
    delete = tuple(a.name for a in ordered if a.name not in keep)
    return RetentionPlan(keep=keep, delete=delete)


def list_archives(folder: Path) -> list[str]:
    """Names of the scheduled archives in ``folder``: regular files (never links or folders) named like one."""
    try:
        entries = list(folder.iterdir())
    except FileNotFoundError:
        return []
    except OSError as error:
        raise BackupError(f"cannot list the backup folder {folder}: {error}") from error
    return sorted(
        p.name for p in entries if parse_archive_name(p.name) is not None and p.is_file() and not p.is_symlink()
    )


def prune(folder: Path, plan: RetentionPlan) -> list[Path]:
    """Delete the archives ``plan`` lets go from ``folder``; returns the paths deleted.

    Each is checked again right before it goes (still a regular file named like a scheduled archive), so nothing
    else is ever deleted, whatever the plan holds.
    """
    deleted: list[Path] = []
    for name in plan.delete:
        path = folder / name
        if parse_archive_name(name) is None or path.is_symlink() or not path.is_file():
            continue
        try:
            path.unlink()
        except FileNotFoundError:  # another pruner got there first
            continue
        except OSError as error:
            raise BackupError(f"cannot delete the old archive {path}: {error}") from error
        deleted.append(path)
    return deleted


def _utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise ValueError(f"{moment!r} has no time zone: give an aware datetime (UTC)")
    return moment.astimezone(UTC)
