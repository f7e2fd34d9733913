"""Redis fixtures: the real server at 127.0.0.1:6379 (``--redis-url`` / ``MNEMOSTORE_TEST_REDIS_URL``), never a fake.

Every test session uses its own key prefix (``mnstest-<random>``), so runs never see each other's keys and the
session's keys are deleted at the end. When the server is unreachable the Redis cases are skipped, unless
``--require-redis`` (CI sets it) makes that a failure. Degraded-mode tests start their own throw-away
``redis-server`` (``RedisProcess``) so that they can kill, pause and restart it.

A Redis Cluster (tests/fix_redis_cluster.py) is one more kind of each: ``cache_kind`` (bare caches) is
``redis-cluster`` too, and the tests of a module marked ``redis_cluster`` run once per ``redis_kind`` (``redis_url``
is then the single server's or the cluster's URL, and ``rstore`` a store on it).

Bare caches (``acache``, ``cache``) run on a ``ManualClock``: a test that needs time to pass moves the clock
(``clock.advance``) instead of sleeping, so no assertion depends on how fast the machine is.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from mnemostore import AsyncMnemoStore, AsyncTenantStore, MnemoStore, Settings, TenantStore
from mnemostore.cache import AsyncCache, Cache, Clock, build_cache, build_sync_cache

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
CACHE_KINDS = ["local", "redis", "redis-cluster"]
REDIS_KINDS = ["redis", "redis-cluster"]  # of the modules marked redis_cluster


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--redis-url", default=os.environ.get("MNEMOSTORE_TEST_REDIS_URL", DEFAULT_REDIS_URL))
    parser.addoption("--require-redis", action="store_true", help="fail, don't skip, without Redis")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "redis_kind" in metafunc.fixturenames and metafunc.definition.get_closest_marker("redis_cluster"):
        metafunc.parametrize("redis_kind", REDIS_KINDS, indirect=True, scope="session")


@pytest.fixture(scope="session")
def redis_kind(request: pytest.FixtureRequest) -> str:
    """``redis`` (the single server), or ``redis-cluster`` in the second run of a module marked redis_cluster."""
    return str(getattr(request, "param", "redis"))


@pytest.fixture(scope="session")
def redis_url(request: pytest.FixtureRequest, redis_kind: str) -> str:
    if redis_kind == "redis-cluster":
        return str(request.getfixturevalue("redis_cluster_url"))
    url = str(request.config.getoption("--redis-url"))
    try:
        redis.Redis.from_url(url, socket_connect_timeout=2).ping()
    except redis.RedisError as error:
        if request.config.getoption("--require-redis") or os.environ.get("CI"):
            pytest.fail(f"Redis at {url} is required but unreachable: {error}")
        pytest.skip(f"Redis at {url} unreachable: {error}")
    return url


@pytest.fixture(scope="session")
def key_prefix(request: pytest.FixtureRequest) -> Iterator[str]:
    """This session's key namespace; its keys are deleted when the session ends."""
    prefix = f"mnstest-{uuid.uuid4().hex[:10]}"
    yield prefix
    url = str(request.config.getoption("--redis-url"))
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=2)
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        for start in range(0, len(keys), 500):
            client.unlink(*keys[start : start + 500])
    except redis.RedisError:
        pass


class ManualClock(Clock):
    """A cache clock that stands still until the test moves it (both readings move together)."""

    def __init__(self) -> None:
        self._monotonic = 1_000.0
        self._epoch = time.time()  # presence timestamps stay plausible, in Redis too

    def monotonic(self) -> float:
        return self._monotonic

    def time(self) -> float:
        return self._epoch

    def advance(self, seconds: float) -> None:
        assert seconds >= 0, "clocks only move forward"
        self._monotonic += seconds
        self._epoch += seconds


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


def cache_settings(kind: str, redis_url: str | None, prefix: str, **overrides: Any) -> Settings:
    """Settings for a bare cache; the local one gets a database name of its own, so its state is fresh.

    The Redis timeout is generous, as for ``rstore``: on a loaded machine a slow reply must not open the breaker
    in tests of the healthy path (the cache would then answer from its in-process fallback).
    """
    values: dict[str, Any] = {
        "database_url": f"sqlite:///unused-{uuid.uuid4().hex}.db",
        "redis_url": redis_url if kind != "local" else None,
        "cache_key_prefix": prefix,
        "redis_timeout_ms": 2000,
        **overrides,
    }
    return Settings(**values)


@pytest.fixture(params=CACHE_KINDS)
def cache_kind(request: pytest.FixtureRequest) -> str:
    cache_url(request, str(request.param))
    return str(request.param)


def cache_url(request: pytest.FixtureRequest, kind: str) -> str | None:
    """The URL of a bare cache of ``kind`` (None: in-process); skips when that server is missing."""
    if kind == "redis":
        return str(request.getfixturevalue("redis_url"))
    if kind == "redis-cluster":
        return str(request.getfixturevalue("redis_cluster_url"))
    return None


def check_no_backend_error(health: dict[str, Any]) -> None:
    """A Redis call that failed (a cross-slot script on the cluster, a timeout) is swallowed by the breaker and the
    feature answers from its in-process fallback: the test would pass without testing Redis. Not here."""
    assert health["errors"] == 0, f"a call to {health['backend']} failed: {health['breaker']['last_error']}"


@pytest.fixture
async def acache(
    request: pytest.FixtureRequest, cache_kind: str, key_prefix: str, clock: ManualClock
) -> AsyncIterator[AsyncCache]:
    cache = build_cache(cache_settings(cache_kind, cache_url(request, cache_kind), key_prefix), clock=clock)
    yield cache
    health = cache.health()
    await cache.close()
    check_no_backend_error(health)


@pytest.fixture
def cache(request: pytest.FixtureRequest, cache_kind: str, key_prefix: str, clock: ManualClock) -> Iterator[Cache]:
    sync_cache = build_sync_cache(cache_settings(cache_kind, cache_url(request, cache_kind), key_prefix), clock=clock)
    yield sync_cache
    health = sync_cache.health()
    sync_cache.close()
    check_no_backend_error(health)


@pytest.fixture(scope="session")
async def rstore(database_url: str, redis_url: str, key_prefix: str) -> AsyncIterator[AsyncMnemoStore]:
    """An async store on the session's database with its cache in the real Redis."""
    # A generous timeout: on a loaded CI machine a slow reply must not trip the breaker in tests of the
    # healthy path (the degraded-mode tests set their own short timeouts).
    store = AsyncMnemoStore(database_url, redis_url=redis_url, cache_key_prefix=key_prefix, redis_timeout_ms=2000)
    yield store
    await store.close()


@pytest.fixture
async def rtenant(rstore: AsyncMnemoStore) -> AsyncIterator[AsyncTenantStore]:
    """A new tenant of ``rstore``; no call of the store to Redis may fail during the test (see
    ``check_no_backend_error``)."""
    tenant = await rstore.create_tenant(f"tenant-{uuid.uuid4().hex[:12]}")
    errors = rstore.cache_health()["errors"]
    yield rstore.tenant(tenant.id)
    health = rstore.cache_health()
    check_no_backend_error({**health, "errors": health["errors"] - errors})


@pytest.fixture(scope="session")
def rstore_sync(database_url: str, redis_url: str, key_prefix: str) -> Iterator[MnemoStore]:
    store = MnemoStore(database_url, redis_url=redis_url, cache_key_prefix=key_prefix, redis_timeout_ms=2000)
    yield store
    store.close()


@pytest.fixture
def rtenant_sync(rstore_sync: MnemoStore) -> Iterator[TenantStore]:
    tenant = rstore_sync.create_tenant(f"tenant-{uuid.uuid4().hex[:12]}")
    errors = rstore_sync.cache_health()["errors"]
    yield rstore_sync.tenant(tenant.id)
    health = rstore_sync.cache_health()
    check_no_backend_error({**health, "errors": health["errors"] - errors})


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RedisProcess:
    """A private redis-server without persistence, to kill, pause and restart under a running store."""

    def __init__(self, workdir: Path) -> None:
        exe = shutil.which("redis-server")
        if exe is None:
            pytest.skip("redis-server is not installed")
        self.exe = exe
        self.workdir = workdir
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.started = False

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """Start the server; the first start moves to another port if this one was taken meanwhile (by another
        test run on this machine), a restart keeps the port the stores know."""
        for _ in range(1 if self.started else 5):
            self.proc = subprocess.Popen(
                [self.exe, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
                cwd=self.workdir,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            if self._answers():
                self.started = True
                return
            self.kill()
            self.port = free_port()
        raise RuntimeError(f"redis-server on port {self.port} did not start")

    def _answers(self) -> bool:
        """Whether the server on the port is this process (not another run's server that holds the port)."""
        assert self.proc is not None
        client = redis.Redis(port=self.port, socket_connect_timeout=0.2)
        deadline = time.monotonic() + 30  # a bound on a failing start only
        while time.monotonic() < deadline and self.proc.poll() is None:
            try:
                return int(client.info("server")["process_id"]) == self.proc.pid
            except redis.RedisError:
                time.sleep(0.05)
        return False

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(timeout=10)
            self.proc = None

    def pause(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, socket_timeout=2)


@pytest.fixture
def redis_process(tmp_path: Path) -> Iterator[RedisProcess]:
    server = RedisProcess(tmp_path)
    server.start()
    try:
        yield server
    finally:
        if server.proc is not None:
            server.resume()
        server.kill()
