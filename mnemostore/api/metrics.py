"""``/metrics`` in the Prometheus text format (prometheus-client, one registry per app), with one or many workers.

Request counts and latency by method, route *template* and status (never by id: the label sets stay small);
database statement latency by kind (from ``AsyncMnemoStore.observe_queries``); rate-limit rejections by scope;
the cache, read from ``cache_health()``: hits and misses per cache (and their ratio since start), Redis degraded
state, the breaker's state and how often it opened, the invalidations waiting for Redis to come back, and
published/dropped events. The search outbox (``index_jobs``) is counted at scrape time: jobs by state and the age
of the oldest pending one; ``mnemostore_database_up`` says whether that query could reach the database.

**Several workers** (``mnemostore serve --workers N``): each scrape reaches one worker, so the figures must be the
sum of all. ``serve`` then sets ``PROMETHEUS_MULTIPROC_DIR``, where prometheus-client keeps every process's values
in memory-mapped files, and the scrape reads them all (``MultiProcessCollector``): counters and histograms add up,
gauges combine by their ``multiprocess_mode`` (requests in flight: the live workers' sum; the outbox and the
database, the same for every worker: the value set most recently; Redis degraded and the breaker: the worst live
worker's). The cache figures live in each process's cache, so each worker copies them into its instruments every
few seconds (``refresh_every``) and the scraped worker right before the scrape; a worker that stops removes its
live gauges (``process_stopped``). The hit ratio is derived from the summed hits and misses at scrape time.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any, Final

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from prometheus_client.registry import Collector

from mnemostore.search import IndexingStatus

__all__ = ["CONTENT_TYPE", "MULTIPROC_ENV", "ApiMetrics"]

log = logging.getLogger("mnemostore.api")

CONTENT_TYPE: Final = CONTENT_TYPE_LATEST
MULTIPROC_ENV: Final = "PROMETHEUS_MULTIPROC_DIR"  # prometheus-client's own name: it reads it at import time

_HTTP_BUCKETS: Final = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_DB_BUCKETS: Final = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)
_BREAKER_STATES: Final = ("closed", "open", "half_open")

CacheProbe = Callable[[], dict[str, Any] | None]


class _WithHitRatio:
    """The families of ``source``, plus ``mnemostore_cache_hit_ratio`` computed from its hit and miss counters
    (a ratio per process could not be added up across workers; the counters can)."""

    def __init__(self, source: Collector) -> None:
        self.source = source

    def collect(self) -> Iterable[Metric]:
        hits: dict[str, float] = {}
        misses: dict[str, float] = {}
        for family in self.source.collect():
            if family.name in ("mnemostore_cache_hits", "mnemostore_cache_misses"):
                into = hits if family.name == "mnemostore_cache_hits" else misses
                for sample in family.samples:
                    if sample.name.endswith("_total"):
                        into[sample.labels["cache"]] = into.get(sample.labels["cache"], 0.0) + sample.value
            yield family
        ratio = GaugeMetricFamily(
            "mnemostore_cache_hit_ratio", "Hits / (hits + misses) since start, per cache", labels=["cache"]
        )
        for cache in sorted(set(hits) | set(misses)):
            looked_up = hits.get(cache, 0.0) + misses.get(cache, 0.0)
            if looked_up:
                ratio.add_metric([cache], hits.get(cache, 0.0) / looked_up)
        yield ratio


class ApiMetrics:
    """The app's registry and instruments; the middleware, the error handlers and the scrape feed it.

    ``multiprocess_dir`` (default: ``PROMETHEUS_MULTIPROC_DIR`` when set) switches the scrape to the files of every
    worker. It must be the folder prometheus-client was imported with, so ``serve`` sets it before the workers start.
    """

    def __init__(self, cache_probe: CacheProbe | None = None, *, multiprocess_dir: str | None = None) -> None:
        self.cache_probe = cache_probe
        self.multiprocess_dir = multiprocess_dir if multiprocess_dir is not None else os.environ.get(MULTIPROC_ENV)
        self.registry = registry = CollectorRegistry()
        labels = ["method", "route", "status"]
        self.requests = Counter(
            "mnemostore_http_requests", "HTTP requests by method, route and status", labels, registry=registry
        )
        self.latency = Histogram(
            "mnemostore_http_request_duration_seconds",
            "HTTP request latency by method, route and status",
            labels,
            buckets=_HTTP_BUCKETS,
            registry=registry,
        )
        self.in_flight = Gauge(
            "mnemostore_http_requests_in_flight",
            "Requests being served",
            registry=registry,
            multiprocess_mode="livesum",
        )
        self.db_latency = Histogram(
            "mnemostore_db_query_duration_seconds",
            "Database statement latency by kind (select, insert, update, delete, other)",
            ["kind"],
            buckets=_DB_BUCKETS,
            registry=registry,
        )
        self.database_up = Gauge(
            "mnemostore_database_up",
            "1 when the last scrape's database query (the outbox count) succeeded, 0 when the database was unreachable",
            registry=registry,
            multiprocess_mode="mostrecent",
        )
        self.outbox = Gauge(
            "mnemostore_outbox_jobs",
            "Search index jobs (the outbox) by state: pending, running, failed",
            ["state"],
            registry=registry,
            multiprocess_mode="mostrecent",
        )
        self.outbox_age = Gauge(
            "mnemostore_outbox_oldest_pending_seconds",
            "Age of the oldest pending index job (0: none pending)",
            registry=registry,
            multiprocess_mode="mostrecent",
        )
        self.rate_limited = Counter(
            "mnemostore_rate_limited", "Requests refused with 429, by limit scope", ["scope"], registry=registry
        )
        # The cache's figures, copied from cache_health() by refresh().
        self.cache_hits = Counter(
            "mnemostore_cache_hits", "Cache lookups answered from the cache", ["cache"], registry=registry
        )
        self.cache_misses = Counter(
            "mnemostore_cache_misses", "Cache lookups that went to the database", ["cache"], registry=registry
        )
        self.cache_degraded = Gauge(
            "mnemostore_cache_degraded",
            "1 while Redis is unavailable and the database serves alone (any worker)",
            registry=registry,
            multiprocess_mode="livemax",
        )
        self.breaker_state = Gauge(
            "mnemostore_cache_breaker_state",
            "The Redis circuit breaker: 1 for its state (closed, open, half_open), 0 for the others (any worker)",
            ["state"],
            registry=registry,
            multiprocess_mode="livemax",
        )
        self.breaker_opened = Counter(
            "mnemostore_cache_breaker_opened", "Times the Redis circuit breaker opened", registry=registry
        )
        self.invalidation_backlog = Gauge(
            "mnemostore_cache_invalidation_backlog",
            "Cache invalidations waiting for Redis to come back (dirty keys)",
            registry=registry,
            multiprocess_mode="livesum",
        )
        self.events_published = Counter(
            "mnemostore_events_published", "Events published (message.added…)", registry=registry
        )
        self.events_dropped = Counter(
            "mnemostore_events_dropped", "Events not published: Redis unavailable", registry=registry
        )
        self._copied: dict[tuple[str, str], float] = {}  # cumulative cache figures already added to the counters

    @property
    def multiprocess(self) -> bool:
        return self.multiprocess_dir is not None

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        code = str(status)
        self.requests.labels(method, route, code).inc()
        self.latency.labels(method, route, code).observe(seconds)

    def observe_query(self, kind: str, seconds: float) -> None:
        self.db_latency.labels(kind).observe(seconds)

    def observe_backlog(self, status: IndexingStatus | None, *, reachable: bool = True) -> None:
        """The outbox as counted at scrape time; ``reachable`` False: the database did not answer (None: the
        count failed otherwise, the outbox figures stay as they were)."""
        self.database_up.set(1.0 if reachable else 0.0)
        if status is None:
            return
        for state in ("pending", "running", "failed"):
            self.outbox.labels(state).set(getattr(status, state))
        oldest = status.oldest_pending_at
        self.outbox_age.set(max(0.0, (datetime.now(UTC) - oldest).total_seconds()) if oldest is not None else 0.0)

    def refresh(self) -> None:
        """Copy this process's cache figures into the instruments (counters grow by what the cache counted since)."""
        health = self.cache_probe() if self.cache_probe is not None else None
        if health is None:
            return
        for name, figures in sorted(health.get("caches", {}).items()):
            self._add(self.cache_hits.labels(name), ("hits", name), figures.get("hits", 0))
            self._add(self.cache_misses.labels(name), ("misses", name), figures.get("misses", 0))
        breaker = health.get("breaker", {})
        for state in _BREAKER_STATES:
            self.breaker_state.labels(state).set(1.0 if breaker.get("state", "closed") == state else 0.0)
        self._add(self.breaker_opened, ("breaker_opened", ""), breaker.get("opened", 0))
        self.cache_degraded.set(1.0 if health.get("degraded") else 0.0)
        self.invalidation_backlog.set(float(health.get("dirty_keys", 0)))
        events = health.get("events", {})
        self._add(self.events_published, ("published", ""), events.get("published", 0))
        self._add(self.events_dropped, ("dropped", ""), events.get("dropped", 0))

    def _add(self, counter: Counter, key: tuple[str, str], total: float) -> None:
        """Raise ``counter`` to the cache's cumulative ``total`` (a total that went down, a new cache, starts over)."""
        grown = total - self._copied.get(key, 0.0)
        if grown < 0:
            grown = total
        if grown:
            counter.inc(grown)
        self._copied[key] = total

    async def refresh_every(self, seconds: float) -> None:
        """``refresh`` every ``seconds`` until cancelled: how a worker that is not scraped keeps its figures current."""
        while True:
            try:
                self.refresh()
            except Exception:  # a figure missing now is no reason to stop copying the others later
                log.warning("could not copy the cache figures into the metrics", exc_info=True)
            await asyncio.sleep(seconds)

    def process_stopped(self) -> None:
        """Remove this worker's live gauges (in flight, degraded, breaker) from the shared folder as it exits."""
        if self.multiprocess_dir is not None:
            mark_process_dead(os.getpid(), self.multiprocess_dir)  # type: ignore[no-untyped-call]

    def render(self) -> bytes:
        """The scrape: this process's figures refreshed, then every worker's (several) or this registry's (one)."""
        self.refresh()
        source: Collector = self.registry
        if self.multiprocess_dir is not None:
            source = CollectorRegistry()
            MultiProcessCollector(source, path=self.multiprocess_dir)  # type: ignore[no-untyped-call]
        return generate_latest(_WithHitRatio(source))
