"""Degraded mode against a private redis-server that the tests kill, pause and restart under running stores.

No operation may fail while Redis is away, no request may keep paying the Redis timeout once the breaker is
open, the transition is logged once, and after recovery no stale entry may be served, to this process or to
another one (``b``, a second store on the same Redis).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from mnemostore import AsyncMnemoStore, AsyncTenantStore, NewMessage

from .fix_redis import RedisProcess

FAST: dict[str, Any] = {"redis_timeout_ms": 100, "redis_connect_timeout_ms": 100, "breaker_cooldown_seconds": 0.3}


@pytest.fixture
async def stores(
    database_url: str, redis_process: RedisProcess, key_prefix: str
) -> AsyncIterator[tuple[AsyncMnemoStore, AsyncMnemoStore]]:
    a = AsyncMnemoStore(database_url, redis_url=redis_process.url, cache_key_prefix=key_prefix, **FAST)
    b = AsyncMnemoStore(database_url, redis_url=redis_process.url, cache_key_prefix=key_prefix, **FAST)
    yield a, b
    await a.close()
    await b.close()


async def seqs(t: AsyncTenantStore, cid: uuid.UUID, limit: int = 20) -> list[int]:
    return [m.seq for m in (await t.get_conversation_history(cid, limit=limit)).messages]


async def recover(store: AsyncMnemoStore) -> None:
    """Wait out the cool-down and let one call probe Redis (and invalidate what is dirty)."""
    for _ in range(50):
        await asyncio.sleep(0.1)
        if await store.cache.client.admit():
            return
    raise AssertionError(f"no recovery: {store.cache_health()['breaker']}")


async def test_killed_and_restarted_redis_never_fails_an_operation(
    stores: tuple[AsyncMnemoStore, AsyncMnemoStore], redis_process: RedisProcess, caplog: pytest.LogCaptureFixture
) -> None:
    a, _ = stores
    tenant = await a.create_tenant(f"t-{uuid.uuid4().hex[:8]}", config={"rate_limits": {"user": "3/minute"}})
    t = a.tenant(tenant.id)
    user = await t.get_or_create_user_by_identity("web", "1")
    conv = await t.create_conversation(user.id, channel="web")
    await t.add_messages(conv.id, [NewMessage(role="user", content=str(i)) for i in range(3)])
    assert await seqs(t, conv.id) == [1, 2, 3]

    redis_process.kill()
    caplog.set_level(logging.INFO, logger="mnemostore.cache")
    started = time.perf_counter()
    for i in range(10):
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
    assert time.perf_counter() - started < 3
    health = a.cache_health()
    assert health["degraded"] and health["rate_limiter"]["mode"] == "local-fallback"
    assert health["dirty_keys"] > 0 and health["breaker"]["state"] in {"open", "half_open"}
    down_logs = [r for r in caplog.records if "unavailable" in r.getMessage()]
    assert len(down_logs) == 1  # once, not per request

    redis_process.start()  # empty: no persistence
    await recover(a)
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
    stores: tuple[AsyncMnemoStore, AsyncMnemoStore], redis_process: RedisProcess
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

    redis_process.pause()
    await ta.add_message(convs[0], role="assistant", content="while paused")  # pays one timeout, opens
    started = time.perf_counter()
    for cid in convs[1:]:
        await ta.add_message(cid, role="assistant", content="while paused")
    for _ in range(20):
        assert (await seqs(ta, convs[0]))[-1] == 4  # A reads its own write from the database
    await ta.update_user(user.id, display_name="after")
    await ta.set_channel_config("web", default_model="after")
    assert time.perf_counter() - started < 1.0, "requests kept paying the Redis timeout"
    assert a.cache_health()["degraded"]

    redis_process.resume()
    await recover(a)
    for cid in convs:
        assert await seqs(tb, cid) == [1, 2, 3, 4]
    assert (await tb.get_user(user.id)).display_name == "after"  # type: ignore[union-attr]
    assert (await tb.get_user_by_identity("web", "2")).display_name == "after"  # type: ignore[union-attr]
    assert (await tb.get_channel_config("web")).default_model == "after"  # type: ignore[union-attr]


async def test_overflowing_dirty_keys_coarsen_to_a_flush(
    database_url: str, redis_process: RedisProcess, key_prefix: str
) -> None:
    a = AsyncMnemoStore(
        database_url, redis_url=redis_process.url, cache_key_prefix=key_prefix, cache_dirty_max=2, **FAST
    )
    b = AsyncMnemoStore(database_url, redis_url=redis_process.url, cache_key_prefix=key_prefix, **FAST)
    try:
        tenant = await a.create_tenant(f"t-{uuid.uuid4().hex[:8]}")
        ta, tb = a.tenant(tenant.id), b.tenant(tenant.id)
        user = await ta.create_user()
        convs = [(await ta.create_conversation(user.id)).id for _ in range(5)]
        for cid in convs:
            await ta.add_message(cid, role="user", content="x")
            assert await seqs(tb, cid) == [1]
        redis_process.pause()
        for cid in convs:
            await ta.add_message(cid, role="user", content="y")
        assert a.cache_health()["dirty_coarsened"] >= 1
        redis_process.resume()
        await recover(a)
        for cid in convs:
            assert await seqs(tb, cid) == [1, 2]
    finally:
        await a.close()
        await b.close()
