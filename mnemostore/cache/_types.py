"""Plain records the cache features hand back (no I/O): sessions, rate-limit decisions, events; and the
``Sealer`` the cache seals with."""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

__all__ = ["BreakerState", "ChannelSession", "EventType", "RateLimitDecision", "Sealer", "StoreEvent"]


class EventType(enum.StrEnum):
    MESSAGE_ADDED = "message.added"
    MEMORY_STORED = "memory.stored"
    CONVERSATION_ARCHIVED = "conversation.archived"


class BreakerState(enum.StrEnum):
    CLOSED = "closed"  # Redis in use
    OPEN = "open"  # Redis skipped: reads from the database, writes remembered as dirty keys
    HALF_OPEN = "half_open"  # one caller probes Redis and invalidates the dirty keys; the others still skip it


@dataclass(slots=True, kw_only=True)
class ChannelSession:
    """Where a channel user is: their user, current conversation and model, and when they were last active.

    Kept in the cache with a sliding TTL; when it is gone, ``get_session`` rebuilds it from the database.
    """

    tenant_id: uuid.UUID
    channel: str
    channel_user_id: str
    user_id: uuid.UUID
    conversation_id: uuid.UUID | None
    model: str | None
    started_at: datetime
    last_activity_at: datetime
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True, kw_only=True, frozen=True)
class RateLimitDecision:
    """The outcome of one rate-limit check.

    ``scope`` names the limit that decided (the one that refused, or the one with the fewest requests left);
    None when no limit applies. ``retry_after`` is in seconds (0 when allowed). ``degraded`` is True when the
    check ran on this process's own limiter because Redis was unavailable, so the limit held per process only.
    """

    allowed: bool
    scope: str | None
    limit: int | None
    window: float | None
    remaining: int | None
    retry_after: float
    degraded: bool = False


@dataclass(slots=True, kw_only=True, frozen=True)
class StoreEvent:
    """Something that happened in a tenant: ``message.added``, ``memory.stored``, ``conversation.archived``."""

    type: str
    tenant_id: uuid.UUID
    at: datetime
    data: dict[str, Any]


class Sealer(Protocol):
    """Seals and opens the values the database holds encrypted (the store's field codec satisfies it).

    With encryption on, a cache on Redis stores, and publishes, these values in the sealed form the database
    holds, and opens them on read: a Redis dump, or a raw subscriber, shows no more than a database dump.
    """

    @property
    def encrypts(self) -> bool:
        """Whether values are sealed at all (some key is configured)."""
        ...

    @property
    def envelope_prefix(self) -> bytes:
        """What every sealed value starts with: encoded data without it holds nothing to open."""
        ...

    def seal_metadata(self, tenant_id: uuid.UUID, metadata: Any) -> Any:
        """Message metadata with its secret values sealed (the same object when none is)."""
        ...

    def open_metadata(self, tenant_id: uuid.UUID, metadata: Any) -> Any:
        """Message metadata with its sealed values opened (the same object when none is sealed)."""
        ...

    def seal_email(self, tenant_id: uuid.UUID, email: str | None) -> str | None: ...

    def open_email(self, tenant_id: uuid.UUID, email: str | None) -> str | None: ...
