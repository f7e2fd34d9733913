"""Lifecycle policies that ``run_maintenance`` applies, read from a tenant's config (pure, no twin).

A tenant's config JSON may hold either section; a section left out takes every default, a key left out its own::

    {"memory_lifecycle": {"enabled": true, "short_term_recalls": 3, "long_term_recalls": 10, "important": 0.8,
                          "idle_days": 30, "retire_after_days": null},
     "checkpoint_retention": {"enabled": true, "keep_last": 20, "keep_days": 7}}

**Memory tiers** (``MemoryLifecyclePolicy``) move by recall (how often retrieval and search returned a memory,
``recall_count``, and when last, ``last_recalled_at``), importance and age:

- *promote*: a memory recalled within the last ``idle_days`` and ``long_term_recalls`` times in all goes to
  ``long_term``, one recalled ``short_term_recalls`` times from ``working`` to ``short_term``; a memory whose
  importance is at least ``important`` goes to ``long_term`` whatever its recalls.
- *demote*: a memory below ``important`` that nothing recalled or changed for ``idle_days`` goes down one tier
  (``long_term`` -> ``short_term`` -> ``working``); the change itself counts as a change, so each further step
  takes another ``idle_days`` of idleness.
- *retire*: a ``working`` memory below ``important``, idle for ``retire_after_days``, expires now
  (``expires_at``): retrieval and search leave it out at once, the next maintenance run purges it, and
  ``update_memory(expires_at=None)`` keeps it meanwhile. Off (null) by default: it deletes data.

Each change is kept as a version of the memory (``get_memory_history``: its tier before, and the reason).

**Checkpoint retention** (``CheckpointRetentionPolicy``): per conversation, the newest ``keep_last`` checkpoints
and every checkpoint younger than ``keep_days`` are kept, and so is the parent of each kept checkpoint (a kept
checkpoint never loses the state it continues from); the others are deleted. ``"enabled": false`` turns it off.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

from mnemostore.errors import ConfigurationError

__all__ = [
    "CHECKPOINT_RETENTION_KEYS",
    "MEMORY_LIFECYCLE_KEYS",
    "CheckpointRetentionPolicy",
    "MemoryLifecyclePolicy",
]

MEMORY_LIFECYCLE_KEYS: Final = (
    "enabled",
    "short_term_recalls",
    "long_term_recalls",
    "important",
    "idle_days",
    "retire_after_days",
)
CHECKPOINT_RETENTION_KEYS: Final = ("enabled", "keep_last", "keep_days")


def _section(config: Mapping[str, Any] | None, name: str, keys: tuple[str, ...]) -> Mapping[str, Any]:
    section = (config or {}).get(name)
    if section is None:
        return {}
    if not isinstance(section, Mapping):
        raise ConfigurationError(f'tenant config "{name}" must be an object with keys {list(keys)}')
    unknown = sorted(set(section) - set(keys))
    if unknown:
        raise ConfigurationError(f'tenant config "{name}" has unknown keys {unknown}: the known ones are {list(keys)}')
    return section


def _flag(section: Mapping[str, Any], name: str, key: str, default: bool) -> bool:
    value = section.get(key, default)
    if not isinstance(value, bool):
        raise ConfigurationError(f'tenant config "{name}.{key}" must be true or false, got {value!r}')
    return value


def _count(section: Mapping[str, Any], name: str, key: str, default: int) -> int:
    value = section.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 2**31 - 1:
        raise ConfigurationError(f'tenant config "{name}.{key}" must be a whole number from 1, got {value!r}')
    return value


def _days(section: Mapping[str, Any], name: str, key: str, default: float | None, *, nullable: bool) -> float | None:
    value = section.get(key, default)
    if value is None and nullable:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1_000_000:
        never = " or null (never)" if nullable else ""
        raise ConfigurationError(
            f'tenant config "{name}.{key}" must be a number of days, 0 or more{never}, got {value!r}'
        )
    return float(value)


@dataclass(frozen=True, slots=True)
class MemoryLifecyclePolicy:
    """A tenant's memory lifecycle (see the module's documentation); the defaults apply to every tenant."""

    enabled: bool = True
    short_term_recalls: int = 3
    long_term_recalls: int = 10
    important: float = 0.8
    idle_days: float = 30.0
    retire_after_days: float | None = None

    @classmethod
    def from_config(cls, config: Mapping[str, Any] | None) -> MemoryLifecyclePolicy:
        """Parse ``config["memory_lifecycle"]``; ConfigurationError names the bad key and what it must be."""
        name, default = "memory_lifecycle", cls()
        section = _section(config, name, MEMORY_LIFECYCLE_KEYS)
        important = section.get("important", default.important)
        if isinstance(important, bool) or not isinstance(important, int | float) or not 0 <= important <= 1:
            raise ConfigurationError(
                f'tenant config "{name}.important" must be an importance from 0 to 1, got {important!r}'
            )
        short_term = _count(section, name, "short_term_recalls", default.short_term_recalls)
        long_term = _count(section, name, "long_term_recalls", default.long_term_recalls)
        if long_term < short_term:
            raise ConfigurationError(
                f'tenant config "{name}": long_term_recalls ({long_term}) must be at least short_term_recalls '
                f"({short_term})"
            )
        idle = _days(section, name, "idle_days", default.idle_days, nullable=False)
        assert idle is not None
        return cls(
            enabled=_flag(section, name, "enabled", default.enabled),
            short_term_recalls=short_term,
            long_term_recalls=long_term,
            important=float(important),
            idle_days=idle,
            retire_after_days=_days(section, name, "retire_after_days", default.retire_after_days, nullable=True),
        )

    def idle_before(self, now: datetime) -> datetime:
        """Recalled at or after this moment: recently; changed and recalled only before it: idle."""
        return now - timedelta(days=self.idle_days)

    def retire_before(self, now: datetime) -> datetime | None:
        """Working memories idle since before this moment are retired (None: never)."""
        return None if self.retire_after_days is None else now - timedelta(days=self.retire_after_days)


@dataclass(frozen=True, slots=True)
class CheckpointRetentionPolicy:
    """A tenant's checkpoint retention (see the module's documentation); the defaults apply to every tenant."""

    enabled: bool = True
    keep_last: int = 20
    keep_days: float = 7.0

    @classmethod
    def from_config(cls, config: Mapping[str, Any] | None) -> CheckpointRetentionPolicy:
        """Parse ``config["checkpoint_retention"]``; ConfigurationError names the bad key and what it must be."""
        name, default = "checkpoint_retention", cls()
        section = _section(config, name, CHECKPOINT_RETENTION_KEYS)
        keep_days = _days(section, name, "keep_days", default.keep_days, nullable=False)
        assert keep_days is not None
        return cls(
            enabled=_flag(section, name, "enabled", default.enabled),
            keep_last=_count(section, name, "keep_last", default.keep_last),
            keep_days=keep_days,
        )

    def keep_after(self, now: datetime) -> datetime:
        """Checkpoints created at or after this moment are kept whatever their rank."""
        return now - timedelta(days=self.keep_days)
