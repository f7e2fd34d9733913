"""``/metrics`` in the Prometheus text format (prometheus-client, one registry per app).

Request counts and latency by method, route *template* and status (never by id: the label sets stay small);
database statement latency by kind (from ``AsyncMnemoStore.observe_queries``); rate-limit rejections by scope;
and, read from ``cache_health()`` at scrape time, cache hits, misses and hit ratio per cache, Redis degraded
state, the invalidations waiting for Redis to come back, and published/dropped events.

The search outbox (``index_jobs``) is counted at scrape time: jobs by state and the age of the oldest pending one.
With ``server_workers`` > 1 each scrape reaches one worker; scrape each worker, or run one
worker per container.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any, Final

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from mnemostore.search import IndexingStatus

__all__ = ["CONTENT_TYPE", "ApiMetrics"]

CONTENT_TYPE: Final = CONTENT_TYPE_LATEST

_HTTP_BUCKETS: Final = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_DB_BUCKETS: Final = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)

CacheProbe = Callable[[], dict[str, Any] | None]


class _CacheCollector(Collector):
    """Cache figures, read from the store's ``cache_health()`` when Prometheus scrapes."""

    def __init__(self, probe: CacheProbe) -> None:
        self.probe = probe

    def collect(self) -> Iterator[Any]:
        health = self.probe()
        if health is None:
            return
        hits = CounterMetricFamily("mnemostore_cache_hits", "Cache lookups answered from the cache", labels=["cache"])
        misses = CounterMetricFamily(
            "mnemostore_cache_misses", "Cache lookups that went to the database", labels=["cache"]
        )
        ratio = GaugeMetricFamily(
            "mnemostore_cache_hit_ratio", "Hits / (hits + misses) since start, per cache", labels=["cache"]
        )
        for name, figures in sorted(health.get("caches", {}).items()):
            hits.add_metric([name], figures.get("hits", 0))
            misses.add_metric([name], figures.get("misses", 0))
            if figures.get("hit_ratio") is not None:
                ratio.add_metric([name], figures["hit_ratio"])
        yield hits
        yield misses
        yield ratio
        yield GaugeMetricFamily(
            "mnemostore_cache_degraded",
            "1 while Redis is unavailable and the database serves alone",
            value=1.0 if health.get("degraded") else 0.0,
        )
        yield GaugeMetricFamily(
            "mnemostore_cache_invalidation_backlog",
            "Cache invalidations waiting for Redis to come back (dirty keys)",
            value=float(health.get("dirty_keys", 0)),
        )
        events = health.get("events", {})
        yield CounterMetricFamily(
            "mnemostore_events_published", "Events published (message.added…)", value=events.get("published", 0)
        )
        yield CounterMetricFamily(
            "mnemostore_events_dropped", "Events not published: Redis unavailable", value=events.get("dropped", 0)
        )


class ApiMetrics:
    """The app's registry and instruments; the middleware and the error handlers feed it."""

    def __init__(self, cache_probe: CacheProbe | None = None) -> None:
        self.registry = CollectorRegistry()
        labels = ["method", "route", "status"]
        self.requests = Counter(
            "mnemostore_http_requests", "HTTP requests by method, route and status", labels, registry=self.registry
        )
        self.latency = Histogram(
            "mnemostore_http_request_duration_seconds",
            "HTTP request latency by method, route and status",
            labels,
            buckets=_HTTP_BUCKETS,
            registry=self.registry,
        )
        self.in_flight = Gauge("mnemostore_http_requests_in_flight", "Requests being served", registry=self.registry)
        self.db_latency = Histogram(
            "mnemostore_db_query_duration_seconds",
            "Database statement latency by kind (select, insert, update, delete, other)",
            ["kind"],
            buckets=_DB_BUCKETS,
            registry=self.registry,
        )
        self.outbox = Gauge(
            "mnemostore_outbox_jobs",
            "Search index jobs (the outbox) by state: pending, running, failed",
            ["state"],
            registry=self.registry,
        )
        self.outbox_age = Gauge(
            "mnemostore_outbox_oldest_pending_seconds",
            "Age of the oldest pending index job (0: none pending)",
            registry=self.registry,
        )
        self.rate_limited = Counter(
            "mnemostore_rate_limited", "Requests refused with 429, by limit scope", ["scope"], registry=self.registry
        )
        if cache_probe is not None:
            self.registry.register(_CacheCollector(cache_probe))

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        code = str(status)
        self.requests.labels(method, route, code).inc()
        self.latency.labels(method, route, code).observe(seconds)

    def observe_query(self, kind: str, seconds: float) -> None:
        self.db_latency.labels(kind).observe(seconds)

    def observe_backlog(self, status: IndexingStatus | None) -> None:
        if status is None:
            return
        for state in ("pending", "running", "failed"):
            self.outbox.labels(state).set(getattr(status, state))
        oldest = status.oldest_pending_at
        self.outbox_age.set(max(0.0, (datetime.now(UTC) - oldest).total_seconds()) if oldest is not None else 0.0)

    def render(self) -> bytes:
        return generate_latest(self.registry)
