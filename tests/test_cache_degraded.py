"""Degraded mode against a private Redis that the tests kill, pause and restart under running stores: one
redis-server, and a six-node Redis Cluster whose nodes all go down, pause and come back together (``server``).

No operation may fail while Redis is away, no request may keep paying the Redis timeout once the breaker is
open, the transition is logged once, and after recovery no stale entry may be served, to this process or to
another one (``b``, a second store on the same Redis).

The stores' caches run on a ``ManualClock``: the breaker's cool-down passes only when a test moves the clock, so
"no request keeps paying the Redis timeout" is checked by counting the calls that reached Redis after the breaker
opened (none may), not by timing requests.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from mnemostore import AsyncMnemoStore, AsyncTenantStore, NewMessage, Settings
from mnemostore.cache import build_cache

from .fix_redis import ManualClock, RedisProcess
from .fix_redis_cluster import RedisClusterProcess

RECOVERY_BOUND = 30.0  # seconds a restarted Redis may take to serve again: a bound on a failing test, not a margin

# A paused server costs each store one timeout before its breaker opens; generous, so that a slow reply of a
# healthy server on a loaded machine never opens a breaker by itself (the tests do not time anything).
TIMEOUTS: dict[str, Any] = {"redis_timeout_ms": 1000, "redis_connect_timeout_ms": 1000}


def clocked_store(
    database_url: str, redis_url: str, key_prefix: str, clock: ManualClock, **overrides: Any
) -> AsyncMnemoStore:
    """A store on the private Redis whose cache (breaker, fallback) reads ``clock``."""
    settings = Settings(
        database_url=database_url, redis_url=redis_url, cache_key_prefix=key_prefix, **{**TIMEOUTS, **overrides}
    )
    return AsyncMnemoStore(settings=settings, cache=build_cache(settings, clock=clock))


@pytest.fixture(params=["redis", "redis-cluster"])
def server(request: pytest.FixtureRequest) -> Iterator[RedisProcess | RedisClusterProcess]:
    """A Redis the test may kill, pause and restart: one redis-server, or all the nodes of a cluster."""
    if request.param == "redis":
        yield request.getfixturevalue("redis_process")
    else:
        yield request.getfixturevalue("disposable_redis_cluster")


@pytest.fixture
async def stores(
    database_url: str, server: RedisProcess | RedisClusterProcess, key_prefix: str, clock: ManualClock
) -> AsyncIterator[tuple[AsyncMnemoStore, AsyncMnemoStore]]:
    a = clocked_store(database_url, server.url, key_prefix, clock)
    b = clocked_store(database_url, server.url, key_prefix, clock)
    try:
        yield a, b
    finally:
        await a.close()
        await b.close()


async def seqs(t: AsyncTenantStore, cid: uuid.UUID, limit: int = 20) -> list[int]:
    return [m.seq for m in (await t.get_conversation_history(cid, limit=limit)).messages]


def redis_calls(store: AsyncMnemoStore) -> tuple[int, int]:
    """(failed, answered) calls the store's cache made to Redis so far: every call is one or the other."""
    health = store.cache_health()
    return health["errors"], health["latency"]["calls"]


async def recover(store: AsyncMnemoStore, clock: ManualClock) -> None:
    """Let the cool-down pass on the clock and let one call probe Redis (and invalidate what is dirty).

    A probe may fail while the restarted server's first connection is made, or until a cluster client has
    refreshed its map of the cluster (redis-py does that at most once a second): each retry is one more cool-down,
    and the retries wait for that second in real time, within ``RECOVERY_BOUND``.
    """
    deadline = time.monotonic() + RECOVERY_BOUND
    while time.monotonic() < deadline:
        clock.advance(store.settings.breaker_cooldown_seconds)
        if await store.cache.client.admit():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"no recovery: {store.cache_health()['breaker']}")


async def test_killed_and_restarted_redis_never_fails_an_operation(
    stores: tuple[AsyncMnemoStore, AsyncMnemoStore],
    server: RedisProcess | RedisClusterProcess,
    clock: ManualClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    a, _ = stores
    tenant = await a.create_tenant(f"t-{uuid.uuid4().hex[:8]}", config={"rate_limits": {"user": "3/minute"}})
    t = a.tenant(tenant.id)
    user = await t.get_or_create_user_by_identity("web", "1")
    conv = await t.create_conversation(user.id, channel="web")
    await t.add_messages(conv.id, [NewMessage(role="user", content=str(i)) for i in range(3)])
    assert await seqs(t, conv.id) == [1, 2, 3]

    server.kill()
    caplog.set_level(logging.INFO, logger="mnemostore.cache")
    await t.add_message(conv.id, role="assistant", content="first down")  # finds Redis gone: the breaker opens
    assert a.cache_health()["breaker"]["state"] == "open"
    reached = redis_calls(a)
    for i in range(1, 10):
        await t.add_message(conv.id, role="assistant", content=f"down {i}")
        assert (await seqs(t, conv.id))[-1] == 4 + i
    assert (await t.get_user(user.id)) == user
    assert (await t.get_user_by_identity("web", "1")) == user
    await t.update_user(user.id, display_name="changed while down")
    decisions = [await t.rate_limit(user_id=user.id, raise_on_limit=False) for _ in range(4)]
    assert [d.allowed for d in decisions] == [True, True, True, False] and all(d.degraded for d in decisions)
    session = await t.update_session("web", "1", conversation_id=conv.id)
    assert (await t.get_session("web", "1")) == session
    await t.mark_user_active("web", user.id)
    assert await t.count_active_users("web") == 1
    await t.store_memory("remember this", user_id=user.id)
    await t.archive_conversation(conv.id)
    assert redis_calls(a) == reached, "requests kept trying Redis while the breaker was open"
    health = a.cache_health()
    assert health["degraded"] and health["rate_limiter"]["mode"] == "local-fallback"
    assert health["dirty_keys"] > 0 and health["breaker"]["state"] == "open" and health["breaker"]["opened"] == 1
    down_logs = [r for r in caplog.records if "unavailable" in r.getMessage()]
    assert len(down_logs) == 1  # once, not per request

    server.start()  # empty: no persistence
    await recover(a, clock)
    health = a.cache_health()
    assert health["breaker"]["state"] == "closed" and health["rate_limiter"]["mode"] == "redis"
    assert health["dirty_keys"] == 0 and health["breaker"]["recoveries"] == 1
    assert [r.getMessage() for r in caplog.records if "is back" in r.getMessage()]
    assert await seqs(t, conv.id, 5) == [9, 10, 11, 12, 13]
    hits = a.cache_health()["caches"]["recent_context"]["hits"]
    assert await seqs(t, conv.id, 5) == [9, 10, 11, 12, 13]
    assert a.cache_health()["caches"]["recent_context"]["hits"] == hits + 1  # refilled
    assert (await t.get_user(user.id)).display_name == "changed while down"  # type: ignore[union-attr]


async def test_no_stale_entry_survives_a_pause(
    stores: tuple[AsyncMnemoStore, AsyncMnemoStore], server: RedisProcess | RedisClusterProcess, clock: ManualClock
) -> None:
    """Redis keeps its data through a pause (like a slow server or a partition): A's skipped writes must not."""
    a, b = stores
    tenant = await a.create_tenant(f"t-{uuid.uuid4().hex[:8]}")
    ta, tb = a.tenant(tenant.id), b.tenant(tenant.id)
    user = await ta.get_or_create_user_by_identity("web", "2", display_name="before")
    convs = [(await ta.create_conversation(user.id)).id for _ in range(3)]
    for cid in convs:
        await ta.add_messages(cid, [NewMessage(role="user", content="x") for _ in range(3)])
        assert await seqs(tb, cid) == [1, 2, 3]  # B reads (and keeps) the windows from Redis
    assert (await tb.get_user(user.id)).display_name == "before"  # type: ignore[union-attr]
    await ta.set_channel_config("web", default_model="before")
    assert (await tb.get_channel_config("web")).default_model == "before"  # type: ignore[union-attr]

    server.pause()
    await ta.add_message(convs[0], role="assistant", content="while paused")  # pays one timeout, opens
    assert a.cache_health()["breaker"]["state"] == "open"
    reached = redis_calls(a)
    for cid in convs[1:]:
        await ta.add_message(cid, role="assistant", content="while paused")
    for _ in range(20):
        assert (await seqs(ta, convs[0]))[-1] == 4  # A reads its own write from the database
    await ta.update_user(user.id, display_name="after")
    await ta.set_channel_config("web", default_model="after")
    assert redis_calls(a) == reached, "requests kept paying the Redis timeout"
    assert a.cache_health()["degraded"]

    server.resume()
    await recover(a, clock)
    for cid in convs:
        assert await seqs(tb, cid) == [1, 2, 3, 4]
    assert (await tb.get_user(user.id)).display_name == "after"  # type: ignore[union-attr]
    assert (await tb.get_user_by_identity("web", "2")).display_name == "after"  # type: ignore[union-attr]
    assert (await tb.get_channel_config("web")).default_model == "after"  # type: ignore[union-attr]


async def test_overflowing_dirty_keys_coarsen_to_a_flush(
    database_url: str, server: RedisProcess | RedisClusterProcess, key_prefix: str, clock: ManualClock
) -> None:
    a = clocked_store(database_url, server.url, key_prefix, clock, cache_dirty_max=2)
    b = clocked_store(database_url, server.url, key_prefix, clock)
    try:
        tenant = await a.create_tenant(f"t-{uuid.uuid4().hex[:8]}")
        ta, tb = a.tenant(tenant.id), b.tenant(tenant.id)
        user = await ta.create_user()
        convs = [(await ta.create_conversation(user.id)).id for _ in range(5)]
        for cid in convs:
            await ta.add_message(cid, role="user", content="x")
            assert await seqs(tb, cid) == [1]
        server.pause()
        for cid in convs:
            await ta.add_message(cid, role="user", content="y")
        assert a.cache_health()["dirty_coarsened"] >= 1
        server.resume()
        await recover(a, clock)
        for cid in convs:
            assert await seqs(tb, cid) == [1, 2]
    finally:
        await a.close()
        await b.close()
