"""Retention policy: what ``run_maintenance`` purges or archives, read from a tenant's config (pure, no twin).

A tenant's config JSON may hold::

    {"retention": {"archive_after_days": 30, "delete_archived_after_days": 365}}

- ``archive_after_days``: an *active* conversation whose last activity is older than this many days is archived.
- ``delete_archived_after_days``: an *archived* conversation whose last activity is older than this many days
  is deleted with its messages, agent records, vectors and full-text rows (the schema keeps no archive date,
  so both ages count from the last activity; make the second larger than the first).

Each is a positive number of days (fractions allowed) or absent/null, meaning never. Expired memories
(``expires_at`` in the past) are always purged; that needs no setting. The search outbox's jobs that are done are
deleted after ``Settings.index_jobs_retention_hours`` (a database-wide setting, not a tenant's).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final

from mnemostore.errors import ConfigurationError

__all__ = ["RETENTION_KEYS", "MaintenanceReport", "RetentionPolicy", "TenantMaintenance"]

RETENTION_KEYS: Final = ("archive_after_days", "delete_archived_after_days")


@dataclass(frozen=True, slots=True)
class RetentionPolicy:
    """A tenant's retention settings; None means never."""

    archive_after_days: float | None = None
    delete_archived_after_days: float | None = None

    @classmethod
    def from_config(cls, config: Mapping[str, Any] | None) -> RetentionPolicy:
        """Parse ``config["retention"]``; ConfigurationError names the bad key and what it must be."""
        section = (config or {}).get("retention")
        if section is None:
            return cls()
        if not isinstance(section, Mapping):
            raise ConfigurationError(f'tenant config "retention" must be an object with {RETENTION_KEYS}')
        unknown = sorted(set(section) - set(RETENTION_KEYS))
        if unknown:
            raise ConfigurationError(
                f'tenant config "retention" has unknown keys {unknown}: the known ones are {list(RETENTION_KEYS)}'
            )
        values: dict[str, float | None] = {}
        for key in RETENTION_KEYS:
            value = section.get(key)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int | float) or value <= 0):
                raise ConfigurationError(
                    f'tenant config "retention.{key}" must be a positive number of days or null, got {value!r}'
                )
            values[key] = None if value is None else float(value)
        return cls(**values)

    def archive_before(self, now: datetime) -> datetime | None:
        """Active conversations idle since before this moment are archived (None: never)."""
        return None if self.archive_after_days is None else now - timedelta(days=self.archive_after_days)

    def delete_before(self, now: datetime) -> datetime | None:
        """Archived conversations idle since before this moment are deleted (None: never)."""
        if self.delete_archived_after_days is None:
            return None
        return now - timedelta(days=self.delete_archived_after_days)


@dataclass(slots=True, kw_only=True)
class TenantMaintenance:
    """What maintenance did (or, with ``dry_run``, would do) in one tenant.

    ``expired_memories``: purged because their ``expires_at`` passed; ``promoted_memories``, ``demoted_memories``,
    ``retired_memories``: tier changes and retirements of the memory lifecycle; ``pruned_checkpoints``: agent
    checkpoints deleted by the checkpoint retention (``mnemostore.memory.MemoryLifecyclePolicy``,
    ``CheckpointRetentionPolicy``).
    """

    tenant_id: uuid.UUID
    expired_memories: int = 0
    archived_conversations: int = 0
    deleted_conversations: int = 0
    promoted_memories: int = 0
    demoted_memories: int = 0
    retired_memories: int = 0
    pruned_checkpoints: int = 0
    error: str | None = None


@dataclass(slots=True, kw_only=True)
class MaintenanceReport:
    """The result of ``run_maintenance``: one entry per tenant visited, and the totals.

    ``pruned_index_jobs`` counts the search outbox's finished jobs deleted (or, dry, that would be) because
    they were done before ``index_jobs_done_before`` (``Settings.index_jobs_retention_hours`` ago); failed jobs
    are kept.
    """

    dry_run: bool
    started_at: datetime
    tenants: list[TenantMaintenance] = field(default_factory=list)
    pruned_index_jobs: int = 0
    index_jobs_done_before: datetime | None = None

    @property
    def expired_memories(self) -> int:
        return sum(t.expired_memories for t in self.tenants)

    @property
    def archived_conversations(self) -> int:
        return sum(t.archived_conversations for t in self.tenants)

    @property
    def deleted_conversations(self) -> int:
        return sum(t.deleted_conversations for t in self.tenants)

    @property
    def promoted_memories(self) -> int:
        return sum(t.promoted_memories for t in self.tenants)

    @property
    def demoted_memories(self) -> int:
        return sum(t.demoted_memories for t in self.tenants)

    @property
    def retired_memories(self) -> int:
        return sum(t.retired_memories for t in self.tenants)

    @property
    def pruned_checkpoints(self) -> int:
        return sum(t.pruned_checkpoints for t in self.tenants)

    @property
    def failed(self) -> list[TenantMaintenance]:
        return [t for t in self.tenants if t.error is not None]
