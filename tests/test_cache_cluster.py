"""The cache on a Redis Cluster when a primary dies: its replica takes over, no request fails, nothing stale is read.

Each failover test starts its own six-node cluster (tests/fix_redis_cluster.py) with a short node timeout, so that
a replica takes over within seconds, and kills a primary with SIGKILL. The stores' caches run on a ``ManualClock``:
the breaker's cool-down passes when the test moves the clock; what the test waits for in real time, with a bound,
is the cluster's own failover (and redis-py's refresh of its map, at most once a second).

The rest needs no server: the URL of a cluster, and the hash tags that keep a tenant's keys on one slot.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from redis.crc import key_slot

from mnemostore import AsyncMnemoStore, AsyncTenantStore, NewMessage, Settings
from mnemostore.cache import Keys, build_cache, build_sync_cache
from mnemostore.cache._redis_url import split_cluster_url
from mnemostore.errors import ConfigurationError

from .fix_redis import ManualClock, free_port
from .fix_redis_cluster import RedisClusterProcess, start_cluster

# The failover tests run on SQLite only: what they test is the cache's, the database only answers meanwhile (the
# degraded-mode tests of tests/test_cache_degraded.py run on both), and each costs a cluster and a failover.
sqlite_only = pytest.mark.parametrize("backend", ["sqlite"], indirect=True, scope="session")

FAILOVER_NODE_TIMEOUT_MS = 1000  # a dead primary's replica takes over after about this, plus an election
RECOVERY_BOUND = 60.0  # seconds a failover and the stores' recovery may take: a bound on a failing test
FILLER_BYTES = 32 * 1024 * 1024  # more than the kernel buffers between two nodes hold (a few MB each way)


@pytest.fixture
def failover_cluster(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[RedisClusterProcess]:
    cluster = start_cluster(request, tmp_path, node_timeout_ms=FAILOVER_NODE_TIMEOUT_MS)
    try:
        yield cluster
    finally:
        cluster.stop()


def clocked_store(database_url: str, redis_url: str, key_prefix: str, clock: ManualClock) -> AsyncMnemoStore:
    settings = Settings(
        database_url=database_url,
        redis_url=redis_url,
        cache_key_prefix=key_prefix,
        redis_timeout_ms=1000,
        redis_connect_timeout_ms=1000,
    )
    return AsyncMnemoStore(settings=settings, cache=build_cache(settings, clock=clock))


@pytest.fixture
async def stores(
    database_url: str, failover_cluster: RedisClusterProcess, key_prefix: str, clock: ManualClock
) -> AsyncIterator[list[AsyncMnemoStore]]:
    """Three stores on the cluster (three processes, as far as the cache can tell): use them in order."""
    made = [clocked_store(database_url, failover_cluster.url, key_prefix, clock) for _ in range(3)]
    try:
        yield made
    finally:
        for store in made:
            await store.close()


async def seqs(t: AsyncTenantStore, cid: uuid.UUID, limit: int = 20) -> list[int]:
    return [m.seq for m in (await t.get_conversation_history(cid, limit=limit)).messages]


async def database_tail(database_url: str, tenant_id: uuid.UUID, cid: uuid.UUID, n: int = 20) -> list[int]:
    async with AsyncMnemoStore(database_url, cache_enabled=False) as uncached:
        return await seqs(uncached.tenant(tenant_id), cid, n)


async def recover(store: AsyncMnemoStore, clock: ManualClock) -> None:
    """Move the clock past each cool-down until a probe finds the cluster whole again (see the module notes)."""
    deadline = time.monotonic() + RECOVERY_BOUND
    while time.monotonic() < deadline:
        clock.advance(store.settings.breaker_cooldown_seconds)
        if await store.cache.client.admit():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"no recovery: {store.cache_health()['breaker']}")


@sqlite_only
async def test_writes_a_failover_lost_are_never_read_after_it(
    stores: list[AsyncMnemoStore],
    failover_cluster: RedisClusterProcess,
    database_url: str,
    clock: ManualClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Replication is asynchronous: a primary acknowledges a write-through or an invalidation before its replica
    has it, and a failover loses it. The store that meets the failover flushes what the promoted replica holds
    before it uses the cache again, so no process, not even one that never saw the old primary, reads it."""
    cluster = failover_cluster
    a, _, fresh = stores
    tenant = await a.create_tenant(f"t-{uuid.uuid4().hex[:8]}")
    t = a.tenant(tenant.id)
    user = await t.get_or_create_user_by_identity("web", "1", display_name="before")
    conv = await t.create_conversation(user.id)
    await t.add_messages(conv.id, [NewMessage(role="user", content=str(i)) for i in range(3)])
    assert await seqs(t, conv.id) == [1, 2, 3]  # the window is filled
    assert (await t.get_user(user.id)).display_name == "before"  # type: ignore[union-attr]  # and the user cached
    meta, _lst = a.cache.keys.context(tenant.id, conv.id)
    primary = cluster.primary_of(meta)
    replica = cluster.replica_of(primary)
    cluster.wait_replicated(primary)

    # Cut the replica off: it stops reading, and a large write fills every buffer between the two nodes, so what
    # the primary acknowledges next stays in the primary's memory, where the kill loses it.
    cluster.pause_node(replica)
    cluster.node(primary).set(f"{a.settings.cache_key_prefix}:{{{tenant.id}}}:filler", b"x" * FILLER_BYTES)
    await t.add_message(conv.id, role="assistant", content="four")  # written through: the window is 1..4
    await t.update_user(user.id, display_name="after")  # the cached user is tombstoned
    assert a.cache_health()["errors"] == 0  # both acknowledged: nothing looked wrong
    cluster.kill_node(primary)
    cluster.resume_node(replica)
    cluster.wait_promoted(replica, RECOVERY_BOUND)
    lost = cluster.node(replica).hgetall(meta)
    assert lost.get("ok") == "1" and lost.get("last") == "3", f"the failover lost nothing, nothing to test: {lost}"

    caplog.set_level(logging.INFO, logger="mnemostore.cache")
    assert await seqs(t, conv.id) == [1, 2, 3, 4]  # meets the dead primary: the breaker opens, the database answers
    assert a.cache_health()["breaker"]["state"] == "open"
    await recover(a, clock)
    assert a.cache_health()["dirty_keys"] == 0

    # A process that never knew the old primary reads through the promoted replica: the lost writes are not there
    # to be missed, because what the replica held was flushed.
    other = fresh.tenant(tenant.id)
    assert await seqs(other, conv.id) == [1, 2, 3, 4]
    assert (await other.get_user(user.id)).display_name == "after"  # type: ignore[union-attr]
    assert await seqs(other, conv.id) == [1, 2, 3, 4]  # refilled from the database, then a hit
    assert fresh.cache_health()["caches"]["recent_context"]["hits"] >= 1
    assert fresh.cache_health()["errors"] == 0
    assert any(f"failed over to 127.0.0.1:{replica}" in r.getMessage() for r in caplog.records)


@sqlite_only
async def test_a_primary_killed_under_load_fails_no_request_and_leaves_nothing_stale(
    stores: list[AsyncMnemoStore], failover_cluster: RedisClusterProcess, database_url: str, clock: ManualClock
) -> None:
    """Appends, history reads, lookups, rate limits, sessions, presence and flags run in two stores while the
    primary of a tenant's slot is killed: every call succeeds (served by the database and the in-process
    fallbacks meanwhile), the replica takes over, and after recovery every window is the database's or gone."""
    cluster = failover_cluster
    a, b, fresh = stores
    tenants: list[tuple[uuid.UUID, uuid.UUID, list[uuid.UUID]]] = []  # (tenant, user, conversations)
    for _ in range(3):
        tenant = await a.create_tenant(f"t-{uuid.uuid4().hex[:8]}", config={"rate_limits": {"user": "1000/minute"}})
        t = a.tenant(tenant.id)
        user = await t.get_or_create_user_by_identity("web", "u", display_name="v0")
        convs = [(await t.create_conversation(user.id, channel="web")).id for _ in range(2)]
        for cid in convs:
            await t.add_messages(cid, [NewMessage(role="user", content="seed") for _ in range(3)])
            assert await seqs(b.tenant(tenant.id), cid) == [1, 2, 3]
        tenants.append((tenant.id, user.id, convs))
    victim = cluster.primary_of(a.cache.keys.events(tenants[0][0]))
    replica = cluster.replica_of(victim)
    cluster.wait_replicated(victim)  # the replica holds the windows: what it serves after the failover matters

    acked: dict[uuid.UUID, int] = {cid: 3 for _, _, convs in tenants for cid in convs}
    done = asyncio.Event()
    calls = 0

    async def writer(tid: uuid.UUID, uid: uuid.UUID, cid: uuid.UUID) -> None:
        nonlocal calls
        t = a.tenant(tid)
        n = 0
        while not done.is_set():
            n += 1
            message = await t.add_message(cid, role="assistant", content=f"w{n}")
            acked[cid] = max(acked[cid], message.seq)
            if n % 5 == 0:
                await t.update_user(uid, display_name=f"v{n}")
            await t.rate_limit(user_id=uid)
            await t.update_session("web", "u", conversation_id=cid)
            await t.mark_user_active("web", uid)
            calls += 4
            await asyncio.sleep(0.01)

    async def reader(store: AsyncMnemoStore, tid: uuid.UUID, uid: uuid.UUID, cid: uuid.UUID) -> None:
        nonlocal calls
        t = store.tenant(tid)
        while not done.is_set():
            floor = acked[cid] if store is a else 0  # read-your-writes within a process
            page = await seqs(t, cid, 10)
            assert page == list(range(page[0], page[-1] + 1)) and page[-1] >= floor, (page, floor)
            assert await t.get_user(uid) is not None
            assert await t.get_session("web", "u") is not None
            await t.count_active_users("web")
            await t.feature_enabled("beta", user_id=uid)
            calls += 5
            await asyncio.sleep(0.01)

    async def until(predicate: Any, what: str) -> None:
        deadline = time.monotonic() + RECOVERY_BOUND
        while not predicate():
            assert time.monotonic() < deadline, f"{what} within {RECOVERY_BOUND:g} s"
            for task in tasks:
                if task.done():
                    task.result()  # raises what the request raised
                    raise AssertionError("a writer or reader stopped")
            await asyncio.sleep(0.05)

    tasks = [asyncio.create_task(writer(tid, uid, cid)) for tid, uid, convs in tenants for cid in convs]
    tasks += [
        asyncio.create_task(reader(store, tid, uid, cid))
        for store in (a, b)
        for tid, uid, convs in tenants
        for cid in convs
    ]
    healthy = calls
    await until(lambda: calls > healthy + 200, "requests ran")  # the cluster is healthy: the caches are in use

    await asyncio.to_thread(cluster.kill_node, victim)
    await until(lambda: a.cache.client.degraded and b.cache.client.degraded, "both stores noticed")
    down = calls
    await until(lambda: calls > down + 200, "requests ran degraded")
    await asyncio.to_thread(cluster.wait_promoted, replica, RECOVERY_BOUND)
    for store in (a, b):
        await recover(store, clock)
    back = calls
    await until(lambda: calls > back + 200 and not a.cache.client.degraded, "requests ran after the recovery")
    done.set()
    await asyncio.gather(*tasks)  # raises what any request raised

    for store in (a, b):
        health = store.cache_health()
        assert health["breaker"]["opened"] >= 1 and health["breaker"]["recoveries"] >= 1
        assert health["breaker"]["state"] == "closed" and health["rate_limiter"]["mode"] == "redis"
    for tid, uid, convs in tenants:
        for cid in convs:
            expected = await database_tail(database_url, tid, cid)
            window = await a.cache.context.read(tid, cid)
            assert window.messages is None or [m.seq for m in window.messages][-20:] == expected  # correct or gone
            for store in (a, b, fresh):
                assert await seqs(store.tenant(tid), cid) == expected
        name = (await fresh.tenant(tid).get_user(uid)).display_name  # type: ignore[union-attr]
        async with AsyncMnemoStore(database_url, cache_enabled=False) as uncached:
            assert name == (await uncached.tenant(tid).get_user(uid)).display_name  # type: ignore[union-attr]


# -- no server --------------------------------------------------------------------------------------------------


def test_a_cluster_url_names_its_nodes_and_keeps_the_rest() -> None:
    nodes, single = split_cluster_url(
        "redis+cluster://user:p%40ss@10.0.0.1:7000,10.0.0.2,[::1]:7002?ssl_cert_reqs=none"
    )
    assert nodes == [("10.0.0.1", 7000), ("10.0.0.2", 6379), ("::1", 7002)]
    assert single == "redis://user:p%40ss@10.0.0.1:7000/0?ssl_cert_reqs=none"
    assert split_cluster_url("rediss+cluster://h:1/0")[1] == "rediss://h:1/0"
    for bad in ("redis+cluster://", "redis+cluster://h:1/3", "redis+cluster://h:port", "redis+cluster://h:70000"):
        with pytest.raises(ConfigurationError):
            split_cluster_url(bad)
    settings = Settings(redis_url="redis+cluster://:secret@h:1,h:2")
    assert settings.redacted_redis_url() == "redis+cluster://***@h:1,h:2"
    assert build_cache(settings).health()["backend"] == "redis-cluster"  # nothing connects before the first call


def test_an_unreachable_cluster_degrades_and_fails_nothing() -> None:
    """redis-py's sync cluster client connects as it is made: the cache makes it in its first guarded call, so a
    store is built, reads, writes, limits and subscribes without a cluster (the database would answer)."""
    url = f"redis+cluster://127.0.0.1:{free_port()},127.0.0.1:{free_port()}"
    settings = Settings(redis_url=url, redis_connect_timeout_ms=200, redis_timeout_ms=200)
    cache = build_sync_cache(settings, clock=ManualClock())
    try:
        t, c = uuid.uuid4(), uuid.uuid4()
        assert cache.context.read(t, c).messages is None
        assert cache.health()["degraded"] and cache.health()["backend"] == "redis-cluster"
        assert cache.rate_limiter.acquire([cache.keys.rate(t, "u")], [(1.0, 0.001)])[3]  # this process's buckets
        with cache.events.subscribe(t) as events:
            assert events.get(timeout=0.1) is None
    finally:
        cache.close()


def test_every_key_of_a_tenant_hashes_to_one_slot() -> None:
    """What lets each Lua script and each pipeline of one tenant run on one cluster node."""
    keys = Keys("mns")
    tenant, conversation = uuid.uuid4(), uuid.uuid4()
    names = [
        *keys.context(tenant, conversation),
        keys.obj(tenant, "user", "x:{y}"),
        keys.session(tenant, "web", "}{"),
        keys.rate(tenant, "*", "user", "u"),
        keys.rate(tenant, "web", "ip", "::1"),
        keys.presence(tenant, "web"),
        keys.events(tenant),
        keys.tenant(tenant),
    ]
    assert {key_slot(name.encode()) for name in names} == {key_slot(str(tenant).encode())}
