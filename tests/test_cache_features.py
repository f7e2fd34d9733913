"""Every cache feature, on the real Redis (one server, and a Redis Cluster) and on the in-process implementation
(``cache_kind`` is all three).

They must behave the same: the in-process cache is the embedded default and the per-process fallback of the
Redis one. Each test uses fresh tenant and conversation ids inside the session's key prefix.

Nothing here sleeps: the caches run on a ``ManualClock`` (tests/fix_redis.py) that a test moves, and what Redis
expires on its own clock is aged on the server instead (``let_pass``).
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

from mnemostore import ChannelSession, Message, Role, User
from mnemostore.cache import USER, AsyncCache, Cache, EventType
from mnemostore.cache._cache_async import TOMBSTONE
from mnemostore.cache._codec import encode_message

from .fix_redis import ManualClock
from .test_cache_unit import NOW, message

EVENT_WAIT = 30.0  # seconds a published event may take to arrive: a bound on a failing test, not a margin


def ids() -> tuple[uuid.UUID, uuid.UUID]:
    return uuid.uuid4(), uuid.uuid4()


def msgs(tenant: uuid.UUID, conv: uuid.UUID, first: int, last: int) -> list[Message]:
    return [
        Message(
            id=uuid.uuid4(),
            tenant_id=tenant,
            conversation_id=conv,
            seq=s,
            role=Role.ASSISTANT,
            content=f"m{s} ✓",
            model="m",
            prompt_tokens=s,
            completion_tokens=1,
            metadata={"n": s},
            created_at=datetime.now(UTC),
        )
        for s in range(first, last + 1)
    ]


async def seqs(cache: AsyncCache, tenant: uuid.UUID, conv: uuid.UUID) -> list[int] | None:
    window = await cache.context.read(tenant, conv)
    return None if window.messages is None else [m.seq for m in window.messages]


async def start_window(cache: AsyncCache, tenant: uuid.UUID, conv: uuid.UUID) -> None:
    """What a reader's miss on a conversation without messages does: read, find nothing, refill empty."""
    miss = await cache.context.read(tenant, conv)
    assert miss.version is not None
    assert await cache.context.refill(tenant, conv, seen=miss.version, last=0, floor=0, messages=[])


# -- recent context ---------------------------------------------------------------------------------------------


async def test_a_refilled_window_is_extended_and_trimmed_by_appends(acache: AsyncCache) -> None:
    t, c = ids()
    assert (await acache.context.read(t, c)).messages is None
    await start_window(acache, t, c)
    assert await seqs(acache, t, c) == []
    first = msgs(t, c, 1, 3)
    await acache.messages_added(t, c, first)
    window = await acache.context.read(t, c)
    assert window.messages == first and (window.last, window.floor) == (3, 0)
    size = acache.context.size
    await acache.messages_added(t, c, msgs(t, c, 4, size + 5))
    window = await acache.context.read(t, c)
    assert [m.seq for m in window.messages or []] == list(range(6, size + 6))
    assert (window.last, window.floor) == (size + 5, 5)
    tail = await acache.context.read(t, c, count=2)
    assert [m.seq for m in tail.messages or []] == [size + 4, size + 5]


async def test_an_append_that_does_not_continue_the_window_drops_it(acache: AsyncCache) -> None:
    t, c = ids()
    await start_window(acache, t, c)
    await acache.messages_added(t, c, msgs(t, c, 1, 2))
    await acache.messages_added(t, c, msgs(t, c, 4, 4))  # seq 3's write-through was reordered or lost
    assert await seqs(acache, t, c) is None
    await acache.messages_added(t, c, msgs(t, c, 3, 3))  # the late one does not resurrect it
    assert await seqs(acache, t, c) is None


async def test_an_append_never_starts_a_window(acache: AsyncCache) -> None:
    t, c = ids()
    await acache.messages_added(t, c, msgs(t, c, 2, 3))
    assert await seqs(acache, t, c) is None
    t, c = ids()
    await acache.messages_added(t, c, msgs(t, c, 1, 3))  # not even the conversation's first messages
    assert await seqs(acache, t, c) is None


async def test_a_late_first_append_after_a_flush_cannot_start_a_stale_window(acache: AsyncCache) -> None:
    # Seqs 2 and 3 are written through, the tenant's cache is flushed (the high-water mark with it), then seq 1's
    # write-through arrives late: a window [1] would hide two acknowledged messages.
    t, c = ids()
    await acache.messages_added(t, c, msgs(t, c, 2, 3))
    await acache.flush(t)
    await acache.messages_added(t, c, msgs(t, c, 1, 1))
    assert await seqs(acache, t, c) is None


async def test_refill_is_refused_after_an_invalidation_or_a_newer_append(acache: AsyncCache) -> None:
    t, c = ids()
    miss = await acache.context.read(t, c)
    assert miss.version is not None and miss.messages is None
    rows = msgs(t, c, 1, 5)
    # An invalidation (say a delete) between the miss and the refill: the refill may hold the deleted message.
    await acache.context.invalidate(t, [c])
    assert not await acache.context.refill(t, c, seen=miss.version, last=5, floor=0, messages=rows)
    # A fresh miss sees the new version and may refill.
    miss = await acache.context.read(t, c)
    assert await acache.context.refill(t, c, seen=miss.version or "", last=5, floor=0, messages=rows)
    assert await seqs(acache, t, c) == [1, 2, 3, 4, 5]
    # An append committed after the reader's snapshot wins over the reader's older refill.
    await acache.context.invalidate(t, [c])
    miss = await acache.context.read(t, c)
    await acache.messages_added(t, c, msgs(t, c, 6, 6))  # window absent: only the high-water mark moves
    assert not await acache.context.refill(t, c, seen=miss.version or "", last=5, floor=0, messages=rows)
    assert await seqs(acache, t, c) is None
    assert await acache.context.refill(
        t, c, seen=miss.version or "", last=6, floor=0, messages=[*rows, *msgs(t, c, 6, 6)]
    )
    assert await seqs(acache, t, c) == [1, 2, 3, 4, 5, 6]


async def test_reset_forgets_the_high_water_mark_of_a_replaced_conversation(acache: AsyncCache) -> None:
    t, c = ids()
    await acache.messages_added(t, c, msgs(t, c, 1, 9))
    await acache.context.invalidate(t, [c], reset=True)  # deleted, then imported back with fewer messages
    miss = await acache.context.read(t, c)
    assert await acache.context.refill(t, c, seen=miss.version or "", last=4, floor=0, messages=msgs(t, c, 1, 4))
    assert await seqs(acache, t, c) == [1, 2, 3, 4]


async def test_a_list_lost_apart_from_its_meta_reads_as_a_miss(acache: AsyncCache, cache_kind: str) -> None:
    t, c = ids()
    await start_window(acache, t, c)
    await acache.messages_added(t, c, msgs(t, c, 1, 3))
    _meta, lst = acache.keys.context(t, c)
    if cache_kind == "local":
        acache.client.backend.state.delete([lst])  # type: ignore[attr-defined]
    else:
        await acache.client.backend.client.delete(lst)  # type: ignore[attr-defined]  # what maxmemory eviction may do
    assert await seqs(acache, t, c) is None
    await acache.messages_added(t, c, msgs(t, c, 4, 4))
    assert await seqs(acache, t, c) is None


async def test_windows_are_per_tenant(acache: AsyncCache) -> None:
    t1, c = ids()
    t2 = uuid.uuid4()
    await start_window(acache, t1, c)
    await acache.messages_added(t1, c, msgs(t1, c, 1, 2))
    assert await seqs(acache, t1, c) == [1, 2]
    assert await seqs(acache, t2, c) is None


# -- cache-aside ------------------------------------------------------------------------------------------------


async def test_cached_reads_through_and_invalidate_tombstones(acache: AsyncCache) -> None:
    t = uuid.uuid4()
    key = acache.keys.obj(t, "user", "u1")
    loads: list[int] = []
    value = User(
        id=uuid.uuid4(),
        tenant_id=t,
        display_name="Ada",
        email=None,
        external_id=None,
        preferred_model=None,
        preferences={},
        metadata={},
        created_at=NOW,
        updated_at=NOW,
    )

    async def load() -> User | None:
        loads.append(1)
        return value

    assert await acache.objects.cached(key, load, codec=USER, name="user") == value
    assert await acache.objects.cached(key, load, codec=USER, name="user") == value
    assert len(loads) == 1
    await acache.objects.invalidate(t, [key])
    assert await acache.objects.cached(key, load, codec=USER, name="user") == value
    assert await acache.objects.cached(key, load, codec=USER, name="user") == value
    assert len(loads) == 2  # the miss that saw the tombstone replaced it
    stats = acache.health()["caches"]["user"]
    assert (stats["hits"], stats["misses"]) == (2, 2)
    # A reader that missed before an invalidation cannot store what it read over it.
    await acache.objects.invalidate(t, [key])
    stale_seen = await acache.client.backend.get(key)
    assert stale_seen is not None and stale_seen.startswith(TOMBSTONE)
    await acache.objects.invalidate(t, [key])
    assert not await acache.client.backend.fill(key, b"stale", 10_000, expect=stale_seen)
    assert not await acache.client.backend.fill(key, b"stale", 10_000, expect=None)

    async def nothing() -> User | None:
        return None

    other = acache.keys.obj(t, "user", "u2")
    assert await acache.objects.cached(other, nothing, codec=USER, name="user") is None
    assert await acache.client.backend.get(other) is None  # None is not cached


# -- sessions ---------------------------------------------------------------------------------------------------


async def let_pass(acache: AsyncCache, clock: ManualClock, seconds: float, *keys: str) -> None:
    """Let ``seconds`` pass for the cache and for ``keys``.

    The in-process cache reads the moved clock. Redis expires keys on the server's own clock, so there the keys'
    remaining lives are shortened by as much (PEXPIRE; a key whose life runs out is deleted, as its expiry
    would): the same effect as waiting, without the wait.
    """
    clock.advance(seconds)
    if acache.client.is_local:
        return
    client = acache.client.backend.client  # type: ignore[attr-defined]
    for key in keys:
        left = await client.pttl(key)
        if left >= 0:  # -1: no expiry, -2: no key
            await client.pexpire(key, max(0, left - int(seconds * 1000)))


async def test_sessions_slide_their_ttl(acache: AsyncCache, clock: ManualClock) -> None:
    t = uuid.uuid4()
    acache.sessions.ttl_ms = 60_000
    key = acache.keys.session(t, "discord", "42")
    now = datetime.now(UTC)
    session = ChannelSession(
        tenant_id=t,
        channel="discord",
        channel_user_id="42",
        user_id=uuid.uuid4(),
        conversation_id=None,
        model="m",
        started_at=now,
        last_activity_at=now,
    )
    await acache.sessions.put(session)
    for _ in range(4):  # 4 x 30 s > 60 s: alive only because each read pushes the expiry
        await let_pass(acache, clock, 30, key)
        assert await acache.sessions.get(t, "discord", "42") == session
    await let_pass(acache, clock, 59, key)
    assert await acache.sessions.get(t, "discord", "42") == session  # the last read pushed it a full 60 s
    await let_pass(acache, clock, 61, key)
    assert await acache.sessions.get(t, "discord", "42") is None
    await acache.sessions.put(session)  # unread, it lives 60 s
    await let_pass(acache, clock, 59, key)
    await acache.sessions.put(session)  # written again: 60 s from now
    await let_pass(acache, clock, 59, key)
    assert await acache.sessions.get(t, "discord", "42") == session
    await acache.sessions.put(session)
    await let_pass(acache, clock, 61, key)
    assert await acache.sessions.get(t, "discord", "42") is None
    await acache.sessions.put(session)
    await acache.sessions.delete(t, "discord", "42")
    assert await acache.sessions.get(t, "discord", "42") is None


# -- rate limiting ----------------------------------------------------------------------------------------------


async def test_rate_limits_are_all_or_nothing_with_a_retry_after(acache: AsyncCache) -> None:
    t = uuid.uuid4()
    user = acache.keys.rate(t, "*", "user", "u")
    tenant = acache.keys.rate(t, "*", "tenant", "all")
    limits = [(3.0, 3 / 60_000), (5.0, 5 / 60_000)]  # 3/min per user, 5/min per tenant
    results = [await acache.rate_limiter.acquire([user, tenant], limits) for _ in range(4)]
    assert [r[0] for r in results] == [0, 0, 0, 1]
    assert [r[2] for r in results[:3]] == [[2, 4], [1, 3], [0, 2]]
    assert 19_000 <= results[3][1] <= 20_000  # one token every 20 s
    other = acache.keys.rate(t, "*", "user", "v")
    # The tenant bucket was not charged by the refused call: 2 left, then refused on the tenant scope.
    assert (await acache.rate_limiter.acquire([other, tenant], limits))[0] == 0
    assert (await acache.rate_limiter.acquire([other, tenant], limits))[0] == 0
    deny, _, left, degraded = await acache.rate_limiter.acquire([other, tenant], limits)
    assert (deny, left, degraded) == (2, [1, 0], False)


async def test_concurrent_rate_limit_checks_never_over_admit(acache: AsyncCache) -> None:
    t = uuid.uuid4()
    key = [acache.keys.rate(t, "*", "ip", "10.0.0.1")]
    results = await asyncio.gather(*(acache.rate_limiter.acquire(key, [(25.0, 25 / 3_600_000)]) for _ in range(60)))
    assert not any(r[3] for r in results), "degraded: the limiter fell back to this process's own buckets"
    assert sum(1 for r in results if r[0] == 0) == 25


# -- presence ---------------------------------------------------------------------------------------------------


async def test_presence_counts_members_until_they_expire(acache: AsyncCache, clock: ManualClock) -> None:
    t = uuid.uuid4()
    acache.presence.ttl_ms = 60_000  # members are timestamped by the cache's clock, on Redis too
    await acache.presence.touch(t, "web", "a")
    clock.advance(40)
    await acache.presence.touch(t, "web", "b")
    await acache.presence.touch(t, "telegram", "c")
    assert await acache.presence.members(t, "web") == ["a", "b"]
    assert await acache.presence.count(t, "web") == 2
    clock.advance(20)  # "a" is exactly 60 s old: still active
    assert await acache.presence.members(t, "web") == ["a", "b"]
    clock.advance(1)
    assert await acache.presence.members(t, "web") == ["b"]
    assert await acache.presence.count(t, "web") == 1
    await acache.presence.leave(t, "web", "b")
    assert await acache.presence.count(t, "web") == 0
    assert await acache.presence.count(uuid.uuid4(), "telegram") == 0


# -- flags and events -------------------------------------------------------------------------------------------


async def test_global_flag_overrides_apply_without_restart(acache: AsyncCache) -> None:
    acache.flags.defaults = {"beta": False, "model": {"variants": {"a": 1}}}
    name = f"f-{uuid.uuid4().hex[:6]}"
    await acache.flags.set_global(name, True)
    await acache.flags.set_global("beta", True)
    flags = await acache.flags.global_flags()
    assert flags[name] is True and flags["beta"] is True and "model" in flags
    await acache.flags.set_global("beta", None)
    await acache.flags.set_global(name, None)
    flags = await acache.flags.global_flags()
    assert flags["beta"] is False and name not in flags


async def test_events_reach_subscribers_of_their_tenant_only(acache: AsyncCache) -> None:
    t, c = ids()
    other = uuid.uuid4()
    mine = await acache.events.subscribe(t)
    theirs = await acache.events.subscribe(other)
    async with mine, theirs:
        await acache.messages_added(t, c, msgs(t, c, 1, 2))
        await acache.events.publish(t, EventType.MEMORY_STORED, {"memory_id": "m"})
        first = await mine.get(timeout=EVENT_WAIT)
        second = await mine.get(timeout=EVENT_WAIT)
        assert first is not None and first.type == "message.added" and first.tenant_id == t
        assert [m["seq"] for m in first.data["messages"]] == [1, 2]
        assert second is not None and second.type == "memory.stored"
        # Rather than waiting to see nothing come: their own event, published last, must be the first they get.
        await acache.events.publish(other, EventType.MEMORY_STORED, {"memory_id": "theirs"})
        own = await theirs.get(timeout=EVENT_WAIT)
        assert own is not None and own.tenant_id == other and own.data == {"memory_id": "theirs"}


# -- flush ------------------------------------------------------------------------------------------------------


async def test_flushing_a_tenant_never_touches_another(acache: AsyncCache) -> None:
    t1, c = ids()
    t2 = uuid.uuid4()
    for t in (t1, t2):
        await start_window(acache, t, c)
        await acache.messages_added(t, c, msgs(t, c, 1, 2))
        await acache.presence.touch(t, "web", "u")
    await acache.flush(t1)
    assert await seqs(acache, t1, c) is None
    assert await acache.presence.count(t1, "web") == 1  # cached data only
    assert await seqs(acache, t2, c) == [1, 2]
    await acache.flush(t1, everything=True)
    assert await acache.presence.count(t1, "web") == 0
    assert await acache.presence.count(t2, "web") == 1 and await seqs(acache, t2, c) == [1, 2]


# -- the generated sync twin ------------------------------------------------------------------------------------


def test_sync_cache_window_and_events(cache: Cache) -> None:
    t, c = ids()
    miss = cache.context.read(t, c)
    assert cache.context.refill(t, c, seen=miss.version or "", last=0, floor=0, messages=[])
    with cache.events.subscribe(t) as events:
        cache.messages_added(t, c, msgs(t, c, 1, 3))
        event = events.get(timeout=EVENT_WAIT)
    assert event is not None and event.type == "message.added"
    window = cache.context.read(t, c)
    assert [m.seq for m in window.messages or []] == [1, 2, 3]
    assert cache.health()["breaker"]["state"] == "closed"


def test_local_message_entries_are_the_same_bytes_as_redis_ones() -> None:
    # The Lua scripts parse the seq out of the entry: keep the encoding's first field the seq.
    assert encode_message(message(42)).startswith(b"[42,")
