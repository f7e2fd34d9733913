"""Health checks of a store (async; ``_health.py`` is generated from this file).

Each check answers one question about one dependency and, when the answer is bad, says what to do. They run
concurrently, each bounded by ``health_timeout_seconds`` (the async twin gathers coroutines under
``asyncio.wait_for``; the sync twin runs them on a thread each and stops waiting at the deadline), so one hung
server costs one timeout, not the sum of them.

A check ends in one of four states: ``ok``; ``warn``, the store works but something needs attention (Redis is
down and the database serves alone, the disk is filling up, sensitive fields are stored in clear); ``fail``,
the store cannot work as it is (the database is unreachable, the schema is behind); and ``skip``, the check
does not apply here (pgvector before vector search exists, disk space on PostgreSQL). The report is healthy
when no check failed.
"""

from __future__ import annotations

import asyncio
import shutil
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

from sqlalchemy.engine import make_url

from mnemostore.config import Settings
from mnemostore.errors import AdminAccessUnavailable, BackendUnavailable, MnemostoreError
from mnemostore.ops import migrate
from mnemostore.ops._health_base import (
    NEED_DATABASE,
    NOTES,
    HealthCheck,
    HealthReport,
    HealthStatus,
    timed_out,
    unreachable,
)
from mnemostore.search import EXTRA_HINT
from mnemostore.store import AsyncDatabase

__all__ = ["AsyncHealthChecker", "HealthCheck", "HealthReport", "HealthStatus"]

# A bound check method: a coroutine function here, a plain function in the sync twin (hence Any).
Check = Callable[[], Any]

CacheProbe = Callable[[], Mapping[str, Any]]


class AsyncHealthChecker:
    """Runs every check against one database and its settings.

    Args:
        cache_health: the store's ``cache_health`` (breaker state, hit ratios), when it has a cache layer.
    """

    def __init__(
        self,
        db: AsyncDatabase,
        settings: Settings,
        *,
        cache_health: CacheProbe | None = None,
        timeout_seconds: float | None = None,
        embedder: Callable[[], Any] | None = None,
    ) -> None:
        self.db = db
        self.settings = settings
        self.cache_health = cache_health
        # The store's embedder getter (an Embedder or None); called in the check, so a broken one is reported.
        self.embedder = embedder
        self.timeout = timeout_seconds if timeout_seconds is not None else settings.health_timeout_seconds

    def _checks(self) -> list[tuple[str, Check]]:
        return [
            ("database", self._database),
            ("schema", self._schema),
            ("pgvector", self._pgvector),
            ("redis", self._redis),
            ("embedder", self._embedder),
            ("indexing", self._indexing),
            ("disk", self._disk),
            ("encryption", self._encryption),
        ]

    async def run(self) -> HealthReport:
        """Run every check concurrently; never raises for a failing dependency (that is a ``fail`` check)."""
        checked_at = datetime.now(UTC)
        started = time.perf_counter()
        if True:  # ASYNC
            results = list(await asyncio.gather(*(self._guarded(name, check) for name, check in self._checks())))
        else:
            results = _in_threads(self._guarded, self._checks(), self.timeout)
        if any(r.name == "database" and r.status is HealthStatus.FAIL for r in results):
            # One cause, one failure: what needs the database was not checked, rather than failed again.
            results = [unreachable(r.name) if r.name in NEED_DATABASE else r for r in results]
        return HealthReport(
            database=self.settings.redacted_url(),
            checked_at=checked_at,
            duration_ms=(time.perf_counter() - started) * 1000,
            checks=results,
            notes=list(NOTES),
        )

    async def _guarded(self, name: str, check: Check) -> HealthCheck:
        try:
            if True:  # ASYNC
                return cast(HealthCheck, await asyncio.wait_for(check(), self.timeout))
            else:
                return cast(HealthCheck, check())
        except TimeoutError:
            return timed_out(name, self.timeout)
        except MnemostoreError as error:
            return HealthCheck(name=name, status=HealthStatus.FAIL, summary="check failed", action=str(error))

    # -- the checks --------------------------------------------------------------------------------------------

    async def _database(self) -> HealthCheck:
        started = time.perf_counter()
        try:
            await self.db.ping()
        except BackendUnavailable as error:
            return HealthCheck(name="database", status=HealthStatus.FAIL, summary="unreachable", action=str(error))
        latency = (time.perf_counter() - started) * 1000
        return HealthCheck(
            name="database",
            status=HealthStatus.OK,
            summary=f"{self.db.dialect} reachable, {latency:.1f} ms",
            latency_ms=latency,
            details={"dialect": self.db.dialect, "url": self.settings.redacted_url()},
        )

    async def _schema(self) -> HealthCheck:
        head = migrate.head_revision()
        try:
            current = await self.db.schema_revision()
        except MnemostoreError:
            return unreachable("schema")
        details = {"current": current, "head": head}
        if current == head:
            return HealthCheck(name="schema", status=HealthStatus.OK, summary=f"at {head} (head)", details=details)
        known = {r.revision for r in migrate.history()}
        if current is None:
            summary, action = "not initialised", "run `mnemostore init` (or `mnemostore db upgrade`)"
        elif current in known:
            summary, action = f"at {current}, this code needs {head}", "run `mnemostore db upgrade`"
        else:
            summary = f"at {current}, which this version of mnemostore does not know"
            action = "upgrade mnemostore to the version that wrote this database"
        return HealthCheck(name="schema", status=HealthStatus.FAIL, summary=summary, action=action, details=details)

    async def _pgvector(self) -> HealthCheck:
        # Semantic search on PostgreSQL needs pgvector; without it the store still works on full text (warn).
        if self.db.dialect != "postgresql":
            return HealthCheck(
                name="pgvector", status=HealthStatus.SKIP, summary="not needed (SQLite: in-process index)"
            )
        try:
            installed, available = await self.db.pg_extension("vector")
            ready = await self.db.vector_column_is_vector()
        except MnemostoreError:
            return unreachable("pgvector")
        details = {"installed": installed, "available": available, "vector_column": ready}
        if ready:
            return HealthCheck(
                name="pgvector", status=HealthStatus.OK, summary="installed; vectors enabled", details=details
            )
        if self.settings.embedder == "none":
            return HealthCheck(
                name="pgvector", status=HealthStatus.SKIP, summary="not needed (embedder none)", details=details
            )
        action = (
            "run `mnemostore reindex`: it enables the vector column and index"
            if available
            else "install pgvector on the PostgreSQL server (e.g. apt install postgresql-<version>-pgvector), then "
            "run `mnemostore reindex`"
        )
        return HealthCheck(
            name="pgvector",
            status=HealthStatus.WARN,
            summary="semantic search off (extension "
            + ("available, not enabled" if available else "not available")
            + "); full text works",
            action=action,
            details=details,
        )

    async def _redis(self) -> HealthCheck:
        url = self.settings.redacted_redis_url()
        details: dict[str, Any] = {"url": url}
        if self.cache_health is not None:
            details["cache"] = dict(self.cache_health())
        if self.settings.redis_url is None:
            return HealthCheck(
                name="redis",
                status=HealthStatus.SKIP,
                summary="not configured (MNEMOSTORE_REDIS_URL unset): in-process cache",
                details=details,
            )
        started = time.perf_counter()
        try:
            await _ping_redis(self.settings)
        except ImportError:
            return HealthCheck(
                name="redis",
                status=HealthStatus.WARN,
                summary=f"configured at {url}, but the redis package is not installed",
                action="pip install 'mnemostore[redis]'",
                details=details,
            )
        except Exception as error:  # any driver error is the answer here, not a crash
            return HealthCheck(
                name="redis",
                status=HealthStatus.WARN,
                summary=f"unreachable at {url}: the database serves alone (slower, per-process rate limits)",
                action=f"check that Redis at {url} (MNEMOSTORE_REDIS_URL) is running ({type(error).__name__}: "
                f"{str(error).rstrip('. ')}); the store reconnects by itself",
                details=details,
            )
        latency = (time.perf_counter() - started) * 1000
        degraded = bool(details.get("cache", {}).get("degraded"))
        return HealthCheck(
            name="redis",
            status=HealthStatus.WARN if degraded else HealthStatus.OK,
            summary=f"reachable at {url}, {latency:.1f} ms" + (", but the breaker is open" if degraded else ""),
            action="the store probes Redis again after its cool-down; nothing to do unless this persists"
            if degraded
            else None,
            latency_ms=latency,
            details=details,
        )

    async def _embedder(self) -> HealthCheck:
        if self.settings.embedder == "none":
            return HealthCheck(
                name="embedder", status=HealthStatus.SKIP, summary="none configured: full-text search only"
            )
        try:
            embedder = self.embedder() if self.embedder is not None else None
        except MnemostoreError as error:
            return HealthCheck(name="embedder", status=HealthStatus.WARN, summary="cannot be built", action=str(error))
        if embedder is None:
            return HealthCheck(
                name="embedder",
                status=HealthStatus.WARN,
                summary=f"{self.settings.embedder} configured but not installed: full-text search only",
                action=f"{EXTRA_HINT}, or set MNEMOSTORE_EMBEDDER=none",
            )
        details = {"name": embedder.name, "dimension": embedder.dimension, "kind": self.settings.embedder}
        status = HealthStatus.WARN if self.settings.embedder == "hashing" else HealthStatus.OK
        return HealthCheck(
            name="embedder",
            status=status,
            summary=f"{embedder.name}, {embedder.dimension} dimensions"
            + (" (test embedder: not semantic)" if status is HealthStatus.WARN else ""),
            action="set MNEMOSTORE_EMBEDDER=sentence-transformers for real semantic search"
            if status is HealthStatus.WARN
            else None,
            details=details,
        )

    async def _indexing(self) -> HealthCheck:
        try:
            async with self.db.transaction(None) as uow:
                status = await uow.index_jobs.status()
        except AdminAccessUnavailable as error:
            # The application's login, rightly, sees no tenant but the one it is bound to: not a fault.
            return HealthCheck(
                name="indexing",
                status=HealthStatus.SKIP,
                summary="not checked: the jobs of every tenant need the admin role",
                action=str(error),
            )
        except MnemostoreError:
            return unreachable("indexing")
        details = {
            "pending": status.pending,
            "running": status.running,
            "done": status.done,
            "failed": status.failed,
            "oldest_pending_at": status.oldest_pending_at.isoformat() if status.oldest_pending_at else None,
            "failures": status.failures,
        }
        summary = f"{status.pending} pending, {status.running} running, {status.failed} failed"
        if status.pending and self._no_embedder():
            return HealthCheck(
                name="indexing",
                status=HealthStatus.WARN,
                summary=summary + ": waiting for an embedder, and this store has none",
                action=f"{status.pending} items wait to be embedded and nothing can embed them: {EXTRA_HINT}, then "
                "run `mnemostore reindex` (or let a worker run); until then they are found by full-text search only",
                details=details,
            )
        if status.failed:
            first = status.failures[0] if status.failures else {}
            return HealthCheck(
                name="indexing",
                status=HealthStatus.WARN,
                summary=summary,
                action=f"failed jobs keep their error (newest: {first.get('error')}); fix the cause, then run "
                "`mnemostore reindex`, which retries them",
                details=details,
            )
        lag = (datetime.now(UTC) - status.oldest_pending_at).total_seconds() if status.oldest_pending_at else 0.0
        if lag > 300:
            return HealthCheck(
                name="indexing",
                status=HealthStatus.WARN,
                summary=summary + f", oldest waiting {lag:.0f} s",
                action="start a worker (`mnemostore worker`, or store.start_indexer() in the server); until then "
                "new items are found by full-text search only",
                details=details,
            )
        return HealthCheck(name="indexing", status=HealthStatus.OK, summary=summary, details=details)

    def _no_embedder(self) -> bool:
        """Whether this store has no embedder at all (not installed, or none configured)."""
        if self.embedder is None:
            return False  # not told: assume a worker elsewhere embeds
        try:
            return self.embedder() is None
        except MnemostoreError:
            return False  # a broken embedder is the embedder check's to report

    async def _disk(self) -> HealthCheck:
        if self.db.dialect != "sqlite":
            return HealthCheck(
                name="disk", status=HealthStatus.SKIP, summary="not measured: the PostgreSQL server owns its disk"
            )
        database = make_url(self.settings.database_url).database
        if not database or database == ":memory:" or database.startswith("file:"):
            return HealthCheck(name="disk", status=HealthStatus.SKIP, summary="not measured: in-memory database")
        if True:  # ASYNC
            return await asyncio.to_thread(_disk_space, database, self.settings.disk_free_warn_bytes)
        else:
            return _disk_space(database, self.settings.disk_free_warn_bytes)

    async def _encryption(self) -> HealthCheck:
        codec = self.db.codec
        details: dict[str, Any] = {
            "current_key": codec.current_key_id,
            "keys": codec.key_ids,
            "blind_index": self.settings.blind_index_key is not None,
            "secret_metadata_keys": sorted(codec.secret_metadata_keys),
        }
        if not codec.encrypts:
            return HealthCheck(
                name="encryption",
                status=HealthStatus.WARN,
                summary="off: emails, secret metadata and tool parameters are stored in clear",
                action="set MNEMOSTORE_ENCRYPTION_KEYS and MNEMOSTORE_BLIND_INDEX_KEY, then run "
                "`mnemostore rotate-keys` to encrypt what is already stored",
                details=details,
            )
        return HealthCheck(
            name="encryption",
            status=HealthStatus.OK,
            summary=f"AES-GCM, new values under key {codec.current_key_id!r} ({len(codec.key_ids)} key(s) configured)",
            details=details,
        )


async def _ping_redis(settings: Settings) -> None:
    from mnemostore.cache import AsyncCache

    assert settings.redis_url is not None
    await AsyncCache.ping_redis(settings.redis_url, timeout=settings.health_timeout_seconds)


def _in_threads(
    run_one: Callable[[str, Any], HealthCheck], checks: Sequence[tuple[str, Any]], timeout: float
) -> list[HealthCheck]:
    """Run the checks on a thread each and collect them by one shared deadline (the sync twin's gather).

    A check still running at the deadline is reported as timed out and left behind: a blocked socket cannot be
    interrupted, so its thread is a daemon, which neither the caller nor the interpreter's exit waits for.
    """
    results: dict[int, HealthCheck] = {}

    def target(index: int, name: str, check: Any) -> None:
        results[index] = run_one(name, check)

    threads = [
        threading.Thread(target=target, args=(i, name, check), name=f"mnemostore-health-{name}", daemon=True)
        for i, (name, check) in enumerate(checks)
    ]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + timeout
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    return [results.get(i) or timed_out(name, timeout) for i, (name, _) in enumerate(checks)]


def _disk_space(database: str, threshold: int) -> HealthCheck:
    """Free space on the filesystem of the SQLite file ``database``: a warning under ``threshold`` bytes."""
    path = Path(database).expanduser().resolve()
    folder = path if path.is_dir() else path.parent
    if not folder.exists():
        return HealthCheck(
            name="disk",
            status=HealthStatus.FAIL,
            summary=f"folder {folder} does not exist",
            action="create it, or run `mnemostore init`",
        )
    usage = shutil.disk_usage(folder)
    details = {
        "path": str(path),
        "free_bytes": usage.free,
        "total_bytes": usage.total,
        "database_bytes": path.stat().st_size if path.is_file() else 0,
        "warn_below_bytes": threshold,
    }
    summary = f"{_human(usage.free)} free of {_human(usage.total)} on the database's filesystem"
    if usage.free < threshold:
        return HealthCheck(
            name="disk",
            status=HealthStatus.WARN,
            summary=summary + f", under {_human(threshold)}",
            action=f"free space on the filesystem of {path}, or move the database; the threshold is "
            "MNEMOSTORE_DISK_FREE_WARN_BYTES",
            details=details,
        )
    return HealthCheck(name="disk", status=HealthStatus.OK, summary=summary, details=details)


def _human(size: int) -> str:
    amount = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if amount < 1024 or unit == "TiB":
            return f"{int(amount)} B" if unit == "B" else f"{amount:.1f} {unit}"
        amount /= 1024
    raise AssertionError("unreachable")
