"""Degraded-mode bookkeeping (pure, thread-safe, shared by both twins): circuit breaker, dirty keys, stats.

The breaker keeps each request from paying the Redis timeout once Redis is known to be down or slow:

* **closed**: calls go to Redis. The first failure or timeout opens it.
* **open**: calls skip Redis for ``cooldown`` seconds. Reads are misses (served by the database), features that
  have no database (rate limits, presence, sessions, events) use this process's in-process fallback, and cache
  writes are skipped but remembered in ``DirtyKeys``.
* **half-open**: after the cool-down exactly one caller gets ``PROBE``: it pings Redis, invalidates every dirty
  key and only then closes the breaker (``close_if_clean``), so no entry written before or during the outage
  survives its recovery. Everyone else keeps skipping Redis meanwhile. A failed probe re-opens the breaker.

Transitions are logged once each (warning on open, info on recovery), never per request.
"""

from __future__ import annotations

import enum
import logging
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from mnemostore.cache._types import BreakerState

__all__ = ["Admission", "CacheStats", "CircuitBreaker", "DirtyKeys", "DirtySnapshot"]

log = logging.getLogger("mnemostore.cache")


class Admission(enum.Enum):
    ALLOW = "allow"
    DENY = "deny"
    PROBE = "probe"


class CircuitBreaker:
    def __init__(self, *, cooldown: float, name: str = "redis", clock: Callable[[], float] = time.monotonic) -> None:
        self.cooldown = cooldown
        self.name = name
        self._clock = clock
        self._lock = threading.Lock()
        self._state = BreakerState.CLOSED
        self._opened_at = 0.0
        self._probe_started = 0.0
        self.opened = 0  # how many times it opened
        self.last_error: str | None = None

    @property
    def state(self) -> BreakerState:
        return self._state

    def admit(self) -> Admission:
        if self._state is BreakerState.CLOSED:  # the hot path takes no lock
            return Admission.ALLOW
        with self._lock:
            now = self._clock()
            state = BreakerState(self._state)  # read again under the lock: another thread may have moved it
            if state is BreakerState.CLOSED:
                return Admission.ALLOW
            if state is BreakerState.OPEN and now - self._opened_at >= self.cooldown:
                self._state = BreakerState.HALF_OPEN
                self._probe_started = now
                return Admission.PROBE
            if state is BreakerState.HALF_OPEN and now - self._probe_started >= max(self.cooldown, 30.0):
                # The prober vanished (a cancelled task, a killed thread): let another caller try.
                self._probe_started = now
                return Admission.PROBE
            return Admission.DENY

    def failure(self, error: BaseException | str) -> None:
        with self._lock:
            self.last_error = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
            was = self._state
            self._state = BreakerState.OPEN
            self._opened_at = self._clock()
            if was is BreakerState.CLOSED:
                self.opened += 1
                log.warning(
                    "%s unavailable (%s): degraded mode, serving from the database; next probe in %.1f s",
                    self.name,
                    self.last_error,
                    self.cooldown,
                )

    def close(self, detail: str = "") -> None:
        with self._lock:
            if self._state is not BreakerState.CLOSED:
                self._state = BreakerState.CLOSED
                log.info("%s is back: cache in use again%s", self.name, f" ({detail})" if detail else "")


@dataclass(slots=True)
class DirtySnapshot:
    """What must be invalidated before the breaker may close."""

    contexts: set[tuple[uuid.UUID, uuid.UUID]] = field(default_factory=set)  # (tenant, conversation)
    keys: set[str] = field(default_factory=set)  # cached objects and sessions
    tenants: set[uuid.UUID] = field(default_factory=set)  # flush the tenant's cached data
    servers: set[str] = field(default_factory=set)  # flush every cached key these servers hold (a failover)
    everything: bool = False  # flush every cached key of this prefix

    def __bool__(self) -> bool:
        return bool(self.contexts or self.keys or self.tenants or self.servers or self.everything)

    def __len__(self) -> int:
        return len(self.contexts) + len(self.keys) + len(self.tenants) + len(self.servers) + int(self.everything)


class DirtyKeys:
    """Cache entries that writes skipped while Redis was unreachable, bounded.

    Past ``limit`` entries the set coarsens instead of growing: a tenant's entries become "flush this tenant's
    cached keys", and past ``limit`` tenants, "flush every cached key". Coarser is slower to recover (a SCAN)
    but never less correct, and it costs nothing on the read path, unlike a generation number every read would
    have to fetch.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._lock = threading.Lock()
        self._dirty = DirtySnapshot()
        self.coarsened = 0

    def __len__(self) -> int:
        return len(self._dirty)

    def add_context(self, tenant_id: uuid.UUID, conversation_id: uuid.UUID) -> None:
        with self._lock:
            if self._dirty.everything or tenant_id in self._dirty.tenants:
                return
            self._dirty.contexts.add((tenant_id, conversation_id))
            self._shrink()

    def add_key(self, tenant_id: uuid.UUID | None, key: str) -> None:
        with self._lock:
            if self._dirty.everything or (tenant_id is not None and tenant_id in self._dirty.tenants):
                return
            self._dirty.keys.add(key)
            self._shrink()

    def add_tenant(self, tenant_id: uuid.UUID) -> None:
        with self._lock:
            if not self._dirty.everything:
                self._dirty.tenants.add(tenant_id)
                self._shrink()

    def add_servers(self, servers: Sequence[str]) -> None:
        """Servers that became primaries in a failover: what they hold may miss acknowledged writes."""
        with self._lock:
            if not self._dirty.everything:
                self._dirty.servers.update(servers)

    def add_everything(self) -> None:
        with self._lock:
            self._dirty = DirtySnapshot(everything=True)

    def take(self) -> DirtySnapshot:
        with self._lock:
            taken, self._dirty = self._dirty, DirtySnapshot()
            return taken

    def restore(self, snapshot: DirtySnapshot) -> None:
        """Put back what a failed recovery could not invalidate."""
        with self._lock:
            if snapshot.everything or self._dirty.everything:
                self._dirty = DirtySnapshot(everything=True)
                return
            self._dirty.contexts |= snapshot.contexts
            self._dirty.keys |= snapshot.keys
            self._dirty.tenants |= snapshot.tenants
            self._dirty.servers |= snapshot.servers
            self._shrink()

    def _shrink(self) -> None:
        d = self._dirty
        if len(d.contexts) + len(d.keys) <= self.limit and len(d.tenants) <= self.limit:
            return
        self.coarsened += 1
        d.tenants |= {t for t, _ in d.contexts}
        d.contexts.clear()
        # Object keys carry their tenant in the hash tag: "<prefix>:{<tenant>}:..."
        for k in d.keys:
            start, end = k.find("{"), k.find("}")
            try:
                d.tenants.add(uuid.UUID(k[start + 1 : end]))
            except ValueError:
                d.everything = True
        d.keys.clear()
        if len(d.tenants) > self.limit:
            d.everything = True
        if d.everything:
            self._dirty = DirtySnapshot(everything=True)


_BUCKETS_MS = (0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 1000.0)


class CacheStats:
    """Hit/miss counters per cache and Redis latency, for ``cache_health()`` and a Prometheus exporter.

    Plain integer updates under the GIL: a lost increment under thread races only blurs a counter.
    """

    def __init__(self) -> None:
        self.hits: dict[str, int] = {}
        self.misses: dict[str, int] = {}
        self.skipped_writes = 0  # writes not sent because the breaker was open
        self.errors = 0
        self.calls = 0
        self.latency_sum = 0.0
        self.latency_max = 0.0
        self.latency_buckets = [0] * (len(_BUCKETS_MS) + 1)

    def hit(self, cache: str) -> None:
        self.hits[cache] = self.hits.get(cache, 0) + 1

    def miss(self, cache: str) -> None:
        self.misses[cache] = self.misses.get(cache, 0) + 1

    def observe(self, seconds: float) -> None:
        self.calls += 1
        self.latency_sum += seconds
        if seconds > self.latency_max:
            self.latency_max = seconds
        ms = seconds * 1000
        for i, bound in enumerate(_BUCKETS_MS):
            if ms <= bound:
                self.latency_buckets[i] += 1
                return
        self.latency_buckets[-1] += 1

    def snapshot(self) -> dict[str, Any]:
        names = sorted(set(self.hits) | set(self.misses))
        caches = {}
        for name in names:
            hits, misses = self.hits.get(name, 0), self.misses.get(name, 0)
            ratio = hits / (hits + misses) if hits + misses else None
            caches[name] = {"hits": hits, "misses": misses, "hit_ratio": ratio}
        cumulative, buckets = 0, {}
        for bound, count in zip((*_BUCKETS_MS, float("inf")), self.latency_buckets, strict=True):
            cumulative += count
            buckets["+Inf" if bound == float("inf") else f"{bound:g}"] = cumulative
        return {
            "caches": caches,
            "skipped_writes": self.skipped_writes,
            "errors": self.errors,
            "latency": {
                "calls": self.calls,
                "mean_ms": 1000 * self.latency_sum / self.calls if self.calls else None,
                "max_ms": 1000 * self.latency_max,
                "sum_seconds": self.latency_sum,
                "buckets_ms": buckets,
            },
        }
