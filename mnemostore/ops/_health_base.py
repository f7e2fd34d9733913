"""The health report's data, written once for both twins of the health checker (``_health_async``/``_health``)."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

__all__ = ["NEED_DATABASE", "NOTES", "HealthCheck", "HealthReport", "HealthStatus", "timed_out", "unreachable"]

# Not checked yet, and why: the report says so rather than pretending.
NOTES: tuple[str, ...] = ()

NEED_DATABASE = frozenset({"schema", "pgvector", "indexing"})


class HealthStatus(enum.StrEnum):
    OK = "ok"
    WARN = "warn"
    FAIL = "fail"
    SKIP = "skip"


@dataclass(frozen=True, slots=True, kw_only=True)
class HealthCheck:
    """The answer of one check.

    Attributes:
        summary: what was found, in a few words.
        action: what to do about it; set whenever the status is ``warn`` or ``fail``.
        latency_ms: how long the check took (for reachability checks, one round trip).
        details: machine-readable facts behind the summary.
    """

    name: str
    status: HealthStatus
    summary: str
    action: str | None = None
    latency_ms: float | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "status": self.status.value,
            "summary": self.summary,
            "action": self.action,
            "latency_ms": None if self.latency_ms is None else round(self.latency_ms, 3),
            "details": self.details,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class HealthReport:
    database: str
    checked_at: datetime
    duration_ms: float
    checks: list[HealthCheck]
    notes: list[str]

    @property
    def healthy(self) -> bool:
        """No check failed (warnings leave the store usable)."""
        return not self.failing

    @property
    def status(self) -> HealthStatus:
        statuses = {c.status for c in self.checks}
        for worst in (HealthStatus.FAIL, HealthStatus.WARN):
            if worst in statuses:
                return worst
        return HealthStatus.OK

    @property
    def failing(self) -> list[HealthCheck]:
        return [c for c in self.checks if c.status is HealthStatus.FAIL]

    @property
    def warnings(self) -> list[HealthCheck]:
        return [c for c in self.checks if c.status is HealthStatus.WARN]

    def check(self, name: str) -> HealthCheck:
        for c in self.checks:
            if c.name == name:
                return c
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON-ready data (what ``mnemostore health --json`` prints)."""
        return {
            "healthy": self.healthy,
            "status": self.status.value,
            "database": self.database,
            "checked_at": self.checked_at.isoformat(),
            "duration_ms": round(self.duration_ms, 3),
            "checks": [c.to_dict() for c in self.checks],
            "notes": list(self.notes),
        }


def timed_out(name: str, timeout: float) -> HealthCheck:
    return HealthCheck(
        name=name,
        status=HealthStatus.FAIL,
        summary=f"no answer within {timeout:g} s",
        action="check that the server answers; raise MNEMOSTORE_HEALTH_TIMEOUT_SECONDS if it is only slow",
    )


def unreachable(name: str) -> HealthCheck:
    return HealthCheck(name=name, status=HealthStatus.SKIP, summary="not checked: the database is unreachable")
