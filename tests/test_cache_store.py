"""The store with its cache in the real Redis, on SQLite and PostgreSQL (``rstore`` is parametrised over both),
on one server and on a Redis Cluster (``redis_kind``: the module is marked ``redis_cluster``).

``other`` is a second store on the same database and Redis: another process, as far as the cache can tell.
"""

from __future__ import annotations

import inspect
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import pytest

from mnemostore import (
    AsyncMnemoStore,
    AsyncTenantStore,
    ConversationNotFound,
    InvalidInput,
    NewMessage,
    RateLimited,
    Settings,
    UserNotFound,
)

pytestmark = pytest.mark.redis_cluster


@pytest.fixture(scope="session")
async def other(database_url: str, redis_url: str, key_prefix: str) -> AsyncIterator[AsyncMnemoStore]:
    store = AsyncMnemoStore(database_url, redis_url=redis_url, cache_key_prefix=key_prefix)
    yield store
    await store.close()


class DbSpy:
    """Counts the database transactions a store opens (PostgreSQL's one-call history and append included)."""

    def __init__(self, store: AsyncMnemoStore, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        original: Callable[..., AbstractAsyncContextManager[Any]] = store._db.transaction

        def counting(*args: Any, **kwargs: Any) -> AbstractAsyncContextManager[Any]:
            self.count += 1
            return original(*args, **kwargs)

        monkeypatch.setattr(store._db, "transaction", counting)
        hot_path = store._db.hot_path
        if hot_path is not None:
            for name in ("append", "history"):
                monkeypatch.setattr(hot_path, name, self._counted(getattr(hot_path, name)))

    def _counted(self, call: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        async def counting(*args: Any, **kwargs: Any) -> Any:
            self.count += 1
            return await call(*args, **kwargs)

        return counting


async def conversation(t: AsyncTenantStore, n: int) -> uuid.UUID:
    user = await t.create_user()
    conv = await t.create_conversation(user.id)
    if n:
        await t.add_messages(conv.id, [NewMessage(role="user", content=f"m{i}") for i in range(n)])
    return conv.id


async def test_a_history_read_that_fits_never_touches_the_database(
    rstore: AsyncMnemoStore, rtenant: AsyncTenantStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    cid = await conversation(rtenant, 25)  # more than the 20 kept: the window's floor is a real message
    cold = await rtenant.get_conversation_history(cid, limit=10)  # the first read fills the window
    spy = DbSpy(rstore, monkeypatch)
    for limit in (1, 10, 19, 20):
        page = await rtenant.get_conversation_history(cid, limit=limit)
        assert [m.seq for m in page.messages] == list(range(26 - limit, 26))
        assert page.before is not None and page.after is None
    newer = await rtenant.get_conversation_history(cid, after=cold.before, limit=5)
    assert [m.seq for m in newer.messages] == [17, 18, 19, 20, 21]
    assert spy.count == 0
    older = await rtenant.get_conversation_history(cid, before=cold.before, limit=10)  # the window's bottom
    assert [m.seq for m in older.messages] == list(range(6, 16)) and older.before is not None and spy.count == 0
    below = await rtenant.get_conversation_history(cid, before=cold.before, limit=12)  # reaches below it
    assert [m.seq for m in below.messages] == list(range(4, 16)) and spy.count == 1
    stats = rstore.cache_health()["caches"]["recent_context"]
    assert stats["hits"] >= 5


async def test_the_default_history_page_fits_the_default_window(
    database_url: str, redis_url: str, key_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the settings' defaults, the default history read (no limit given) is served from the cache."""
    default_size = Settings.model_fields["recent_context_size"].default
    default_limit = inspect.signature(AsyncTenantStore.get_conversation_history).parameters["limit"].default
    assert default_size >= default_limit == 50
    async with AsyncMnemoStore(
        database_url, redis_url=redis_url, cache_key_prefix=key_prefix, recent_context_size=default_size
    ) as store:
        t = store.tenant((await store.create_tenant(f"tenant-{uuid.uuid4().hex[:12]}")).id)
        cid = await conversation(t, default_limit + 10)
        await t.get_conversation_history(cid)  # the first read fills the window (an append never starts one)
        await t.add_message(cid, role="assistant", content="written through")
        spy = DbSpy(store, monkeypatch)
        page = await t.get_conversation_history(cid)
        assert [m.seq for m in page.messages] == list(range(12, 62)) and page.before is not None
        assert spy.count == 0


async def test_a_miss_refills_and_the_next_read_hits(
    rstore: AsyncMnemoStore, rtenant: AsyncTenantStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    cid = await conversation(rtenant, 30)
    await rstore.flush_cache(rtenant.tenant_id)
    spy = DbSpy(rstore, monkeypatch)
    first = await rtenant.get_conversation_history(cid, limit=5)
    again = await rtenant.get_conversation_history(cid, limit=20)
    assert spy.count == 1
    assert [m.seq for m in first.messages] == [26, 27, 28, 29, 30]
    assert [m.seq for m in again.messages] == list(range(11, 31)) and again.before is not None
    full = await rtenant.get_conversation_history(cid, limit=50)  # more than the window: the database
    assert [m.seq for m in full.messages] == list(range(1, 31)) and full.before is None and spy.count == 2


async def test_a_replay_repairs_the_window_its_first_attempt_never_wrote_through(
    rstore: AsyncMnemoStore, rtenant: AsyncTenantStore
) -> None:
    """The first attempt committed and died before its write-through (here: a writer without the cache); the
    client's retry with the same key finds the stored message, and from then on reads include it."""
    cid = await conversation(rtenant, 3)
    await rtenant.get_conversation_history(cid, limit=20)  # the window holds 1..3
    died = AsyncMnemoStore(rstore.settings.database_url, cache_enabled=False)
    try:
        await died.tenant(rtenant.tenant_id).add_message(cid, role="user", content="four", idempotency_key="k4")
    finally:
        await died.close()
    behind = await rtenant.get_conversation_history(cid, limit=20)
    assert [m.seq for m in behind.messages] == [1, 2, 3]  # what such a crash leaves: the window is behind
    replay = await rtenant.append_messages(cid, [NewMessage(role="user", content="four", idempotency_key="k4")])
    assert replay.all_replayed and replay.messages[0].seq == 4
    page = await rtenant.get_conversation_history(cid, limit=20)
    assert [m.seq for m in page.messages] == [1, 2, 3, 4]
    assert [m.seq for m in (await rtenant.get_conversation_history(cid, limit=20)).messages] == [1, 2, 3, 4]


async def test_cached_pages_equal_database_pages(rstore: AsyncMnemoStore, rtenant: AsyncTenantStore) -> None:
    cid = await conversation(rtenant, 23)
    uncached = AsyncMnemoStore(rstore.settings.database_url, cache_enabled=False).tenant(rtenant.tenant_id)
    try:
        for limit in (1, 3, 20):
            for cursor in (None, "before", "after"):
                base = await uncached.get_conversation_history(cid, limit=7)
                kwargs: dict[str, Any] = {} if cursor is None else {cursor: getattr(base, cursor) or base.before}
                assert await rtenant.get_conversation_history(
                    cid, limit=limit, **kwargs
                ) == await uncached.get_conversation_history(cid, limit=limit, **kwargs)
    finally:
        await uncached.store.close()


async def test_deletes_and_imports_invalidate_for_every_process(
    rstore: AsyncMnemoStore, other: AsyncMnemoStore, rtenant: AsyncTenantStore
) -> None:
    b = other.tenant(rtenant.tenant_id)
    cid = await conversation(rtenant, 5)
    page = await b.get_conversation_history(cid, limit=10)  # warm, as seen by the other process
    await rtenant.delete_message(page.messages[2].id)
    assert [m.seq for m in (await b.get_conversation_history(cid, limit=10)).messages] == [1, 2, 4, 5]
    exported = await rtenant.export_conversation(cid)
    await rtenant.delete_conversation(cid)
    with pytest.raises(ConversationNotFound):
        await b.get_conversation_history(cid)
    exported["messages"] = exported["messages"][:2]
    await rtenant.import_conversation(exported)
    assert [m.seq for m in (await b.get_conversation_history(cid, limit=10)).messages] == [1, 2]
    await b.add_message(cid, role="assistant", content="after import")
    assert [m.seq for m in (await rtenant.get_conversation_history(cid, limit=10)).messages] == [1, 2, 3]


async def test_deleting_a_user_drops_their_cached_state(
    rstore: AsyncMnemoStore, other: AsyncMnemoStore, rtenant: AsyncTenantStore
) -> None:
    b = other.tenant(rtenant.tenant_id)
    user = await rtenant.get_or_create_user_by_identity("discord", "77")
    conv = await rtenant.create_conversation(user.id, channel="discord")
    await rtenant.add_message(conv.id, role="user", content="hi")
    assert await b.get_user(user.id) is not None
    assert await b.get_user_by_identity("discord", "77") is not None
    assert (await b.get_session("discord", "77")) is not None
    await b.get_conversation_history(conv.id)
    await rtenant.delete_user(user.id)
    assert await b.get_user(user.id) is None
    assert await b.get_user_by_identity("discord", "77") is None
    assert await b.get_session("discord", "77") is None
    with pytest.raises(ConversationNotFound):
        await b.get_conversation_history(conv.id)


async def test_lookups_are_cached_and_every_write_invalidates(
    rstore: AsyncMnemoStore, other: AsyncMnemoStore, rtenant: AsyncTenantStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    b = other.tenant(rtenant.tenant_id)
    user = await rtenant.get_or_create_user_by_identity("telegram", "5", display_name="Ada")
    await b.get_user(user.id)
    await b.get_user_by_identity("telegram", "5")
    await b.get_channel_config("telegram")
    await rtenant.set_channel_config("telegram", default_model="m1")
    await other.get_tenant(rtenant.tenant_id)
    await b.get_channel_config("telegram")
    spy = DbSpy(other, monkeypatch)
    assert (await b.get_user(user.id)).display_name == "Ada"  # type: ignore[union-attr]
    assert (await b.get_user_by_identity("telegram", "5")).id == user.id  # type: ignore[union-attr]
    assert (await b.get_channel_config("telegram")).default_model == "m1"  # type: ignore[union-attr]
    assert (await other.get_tenant(rtenant.tenant_id)).plan == "free"  # type: ignore[union-attr]
    assert spy.count == 0
    await rtenant.update_user(user.id, display_name="Grace")
    await rtenant.set_channel_config("telegram", default_model="m2")
    await rstore.update_tenant_config(rtenant.tenant_id, plan="pro")
    assert (await b.get_user(user.id)).display_name == "Grace"  # type: ignore[union-attr]
    assert (await b.get_user_by_identity("telegram", "5")).display_name == "Grace"  # type: ignore[union-attr]
    assert (await b.get_channel_config("telegram")).default_model == "m2"  # type: ignore[union-attr]
    assert (await other.get_tenant(rtenant.tenant_id)).plan == "pro"  # type: ignore[union-attr]
    await rstore.delete_tenant(rtenant.tenant_id)
    assert await other.get_tenant(rtenant.tenant_id) is None


async def test_writes_publish_events(rstore: AsyncMnemoStore, rtenant: AsyncTenantStore) -> None:
    user = await rtenant.create_user()
    conv = await rtenant.create_conversation(user.id)
    async with await rtenant.subscribe_events() as events:
        added = await rtenant.add_message(conv.id, role="user", content="hello")
        await rtenant.store_memory("likes tea", user_id=user.id)
        await rtenant.archive_conversation(conv.id)
        received = [await events.get(timeout=2) for _ in range(3)]
    assert [e.type for e in received if e] == ["message.added", "memory.stored", "conversation.archived"]
    assert received[0] is not None and received[0].data["messages"][0]["id"] == str(added.id)
    assert received[2] is not None and received[2].data["conversation_id"] == str(conv.id)


async def test_rate_limits_come_from_channel_then_tenant_config(
    rstore: AsyncMnemoStore, rtenant: AsyncTenantStore
) -> None:
    user = uuid.uuid4()
    assert (await rtenant.rate_limit(user_id=user)).scope is None  # nothing configured: allowed
    await rstore.update_tenant_config(rtenant.tenant_id, config={"rate_limits": {"user": "2/minute", "ip": "5/s"}})
    first = await rtenant.rate_limit(user_id=user, client_ip="10.1.1.1")
    assert first.allowed and first.scope == "user" and first.remaining == 1 and not first.degraded
    await rtenant.rate_limit(user_id=user)
    with pytest.raises(RateLimited) as raised:
        await rtenant.rate_limit(user_id=user)
    assert raised.value.scope == "user" and 25 < raised.value.retry_after <= 30
    refused = await rtenant.rate_limit(user_id=user, raise_on_limit=False)
    assert not refused.allowed and refused.retry_after > 0
    await rtenant.set_channel_config("web", rate_limits={"user": {"limit": 3, "window": 60}})
    for _ in range(3):
        await rtenant.rate_limit(user_id=user, channel="web")  # the channel's own, larger bucket
    with pytest.raises(RateLimited):
        await rtenant.rate_limit(user_id=user, channel="web")
    with pytest.raises(InvalidInput):
        await rtenant.rate_limit(user_id=user, cost=0)
    assert rstore.cache_health()["rate_limiter"]["mode"] == "redis"


async def test_sessions_are_rebuilt_from_the_database(rstore: AsyncMnemoStore, rtenant: AsyncTenantStore) -> None:
    assert await rtenant.get_session("discord", "1") is None
    with pytest.raises(UserNotFound):
        await rtenant.update_session("discord", "1")
    user = await rtenant.get_or_create_user_by_identity("discord", "1", preferred_model="small")
    await rtenant.set_channel_config("discord", default_model="big")
    conv = await rtenant.create_conversation(user.id, channel="discord", model_override="tuned")
    session = await rtenant.get_session("discord", "1")
    assert session is not None and (session.user_id, session.conversation_id, session.model) == (
        user.id,
        conv.id,
        "tuned",
    )
    changed = await rtenant.update_session("discord", "1", conversation_id=None, model="other", data={"k": 1})
    assert (await rtenant.get_session("discord", "1")) == changed
    with pytest.raises(ConversationNotFound):
        await rtenant.update_session("discord", "1", conversation_id=uuid.uuid4())
    touched = await rtenant.touch_session("discord", "1")
    assert touched is not None and touched.last_activity_at >= changed.last_activity_at
    assert await rtenant.active_users("discord") == [user.id]
    assert await rtenant.count_active_users("discord") == 1
    await rtenant.mark_user_inactive("discord", user.id)
    assert await rtenant.count_active_users("discord") == 0
    await rtenant.end_session("discord", "1")
    rebuilt = await rtenant.get_session("discord", "1")
    assert rebuilt is not None and rebuilt.conversation_id == conv.id  # from the database again


async def test_feature_flags_by_scope_and_sticky_variants(rstore: AsyncMnemoStore, rtenant: AsyncTenantStore) -> None:
    users = [uuid.uuid4() for _ in range(20)]
    name = f"f{uuid.uuid4().hex[:6]}"
    assert not await rtenant.feature_enabled(name)
    await rstore.set_global_feature_flag(name, True)
    assert await rtenant.feature_enabled(name)
    await rtenant.set_feature_flag(name, False)
    assert not await rtenant.feature_enabled(name)
    await rtenant.set_feature_flag(name, True, channel="web")
    assert await rtenant.feature_enabled(name, channel="web") and not await rtenant.feature_enabled(name)
    await rtenant.set_feature_flag("ab", {"variants": {"a": 1, "b": 1}})
    variants = [await rtenant.feature_variant("ab", user_id=u) for u in users]
    assert set(variants) == {"a", "b"}
    assert variants == [await rtenant.feature_variant("ab", user_id=u) for u in users]
    await rtenant.set_feature_flag("ab", None)
    assert await rtenant.feature_variant("ab", user_id=users[0]) is None
    with pytest.raises(InvalidInput):
        await rtenant.set_feature_flag("bad", "maybe")
    await rstore.set_global_feature_flag(name, None)
    assert (await rstore.get_tenant_or_raise(rtenant.tenant_id)).config["feature_flags"] == {name: False}


async def test_health_reports_the_backend_breaker_and_counters(rstore: AsyncMnemoStore, redis_kind: str) -> None:
    health = rstore.cache_health()
    assert health["backend"] == redis_kind and health["breaker"]["state"] == "closed" and not health["degraded"]
    scheme = "redis+cluster://" if redis_kind == "redis-cluster" else "redis://"
    assert health["url"].startswith(scheme) and health["latency"]["calls"] > 0
    assert health["errors"] == 0 and health["breaker"]["opened"] == 0
    assert set(health["latency"]["buckets_ms"]) >= {"1", "+Inf"}


def test_the_sync_store_reads_through_the_same_cache(rtenant_sync: Any) -> None:
    user = rtenant_sync.create_user()
    conv = rtenant_sync.create_conversation(user.id)
    rtenant_sync.add_messages(conv.id, [NewMessage(role="user", content=str(i)) for i in range(3)])
    rtenant_sync.get_conversation_history(conv.id, limit=2)  # fills the window
    hits = rtenant_sync.store.cache_health()["caches"]["recent_context"]["hits"]
    page = rtenant_sync.get_conversation_history(conv.id, limit=2)
    assert [m.content for m in page.messages] == ["1", "2"] and page.before is not None
    assert rtenant_sync.store.cache_health()["caches"]["recent_context"]["hits"] == hits + 1
