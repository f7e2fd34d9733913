"""With encryption on, nothing sealed in the database sits unsealed outside it: Redis keys, pub/sub events,
exports, logs. On SQLite and PostgreSQL, against the real Redis.

Every key the store wrote for the tenant is read raw (by type, never ``DUMP``: its RDB encoding may compress a
value and hide a plaintext) and searched for the plaintexts of the sealed values; a raw ``redis`` subscriber
captures the ``message.added`` payload as published. Reads through the cache (hits, checked by the cache's
counters) and the service's own event subscription must still give the plaintext back.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import redis
import redis.asyncio as aredis

from mnemostore import AsyncMnemoStore, AsyncTenantStore, MnemoStore
from mnemostore.store._crypto import envelope_key_id
from tests.test_encryption import INDEX, K1, K2, SECRET_KEYS

API_KEY = "sk-live-PLAINTEXT-4711"
SSN = "ssn-PLAINTEXT-0815"
EMAIL = "ada.plaintext@example.com"
PLAINTEXTS = (API_KEY.encode(), SSN.encode(), EMAIL.encode(), b"PLAINTEXT")
METADATA = {"api_key": API_KEY, "ssn": [SSN, 2], "topic": "greeting"}
EXPECTED = [METADATA, {"api_key": API_KEY}, {"topic": "none"}]


@pytest.fixture
async def sealed_redis(database_url: str, redis_url: str, key_prefix: str) -> AsyncIterator[AsyncMnemoStore]:
    """A store that encrypts, with its cache in the real Redis (a key prefix of its own: only its keys)."""
    store = AsyncMnemoStore(
        database_url,
        redis_url=redis_url,
        cache_key_prefix=f"{key_prefix}-sealed",
        redis_timeout_ms=2000,
        encryption_keys=[K1],
        blind_index_key=INDEX,
        secret_metadata_keys=SECRET_KEYS,
    )
    yield store
    await store.close()


@pytest.fixture
def raw_redis(redis_url: str) -> redis.Redis:
    return redis.Redis.from_url(redis_url)


def tenant_bytes(client: redis.Redis, store: AsyncMnemoStore | MnemoStore, tenant_id: uuid.UUID) -> dict[bytes, bytes]:
    """Every key of the tenant and its whole value, read by type."""
    pattern = store.cache.keys.tenant_pattern(tenant_id)
    found: dict[bytes, bytes] = {}
    for key in client.scan_iter(match=pattern, count=1000):
        kind = client.type(key)
        if kind == b"string":
            value = client.get(key) or b""
        elif kind == b"list":
            value = b"\n".join(client.lrange(key, 0, -1))
        elif kind == b"hash":
            value = b"\n".join(k + b"=" + v for k, v in client.hgetall(key).items())
        elif kind == b"zset":
            value = b"\n".join(client.zrange(key, 0, -1))
        else:
            value = b"?" + kind
        found[key] = value
    return found


def window_hits(store: AsyncMnemoStore) -> int:
    return int(store.cache.client.stats.snapshot()["caches"].get("recent_context", {}).get("hits", 0))


def assert_no_plaintext(where: str, data: bytes) -> None:
    for plaintext in PLAINTEXTS:
        assert plaintext not in data, f"{where} holds {plaintext!r} in clear: {data[:300]!r}"


async def fill(t: AsyncTenantStore) -> tuple[Any, Any]:
    """A user with an email (cached by id and by identity) and a conversation with sealed metadata (its window
    written through, read, flushed, refilled from the database and read again)."""
    user = await t.get_or_create_user_by_identity("discord", "ada", email=EMAIL)
    conv = await t.create_conversation(user.id)
    await t.add_message(conv.id, role="user", content="hello", metadata=METADATA)
    await t.add_messages(
        conv.id,
        [
            {"role": "assistant", "content": "hi", "metadata": {"api_key": API_KEY}},
            {"role": "user", "content": "plain", "metadata": {"topic": "none"}},
        ],
    )
    return user, conv


async def test_redis_holds_no_plaintext_and_reads_open_it(
    sealed_redis: AsyncMnemoStore, raw_redis: redis.Redis
) -> None:
    tenant = await sealed_redis.create_tenant(f"sealed-{uuid.uuid4().hex[:10]}")
    t = sealed_redis.tenant(tenant.id)
    user, conv = await fill(t)

    # Read through the cache: the user (by id and identity) and the window written through by the appends.
    for _ in range(2):
        got = await t.get_user(user.id)
        assert got is not None and got.email == EMAIL
        by_identity = await t.get_user_by_identity("discord", "ada")
        assert by_identity is not None and by_identity.email == EMAIL
    await t.get_conversation_history(conv.id, limit=10)  # starts the window (a refill from the database)
    await t.add_message(conv.id, role="assistant", content="ok", metadata={"ssn": SSN})  # written through
    page = await t.get_conversation_history(conv.id, limit=10)
    assert [m.metadata for m in page.messages] == [*EXPECTED, {"ssn": SSN}]
    assert window_hits(sealed_redis) == 1  # answered by the window
    keys = tenant_bytes(raw_redis, sealed_redis, tenant.id)
    assert any(b"c:ctx:" in k for k in keys) and any(b"c:o:user:" in k for k in keys), sorted(keys)
    assert any(b"c:o:ident:" in k for k in keys), sorted(keys)
    for key, value in keys.items():
        assert_no_plaintext(key.decode(), value)
    [window] = [v for k, v in keys.items() if b"c:ctx:" in k]
    assert window.count(b"enc:v1:k1:") == 4  # sealed with the database's key, not dropped

    # A window refilled from the database after a flush holds the sealed form too, and opens on the next read.
    await sealed_redis.cache.flush(tenant.id)
    page = await t.get_conversation_history(conv.id, limit=10)  # miss: database, then refill
    page = await t.get_conversation_history(conv.id, limit=10)  # hit
    assert window_hits(sealed_redis) == 2
    assert [m.metadata for m in page.messages] == [*EXPECTED, {"ssn": SSN}]
    assert (await t.get_user(user.id)).email == EMAIL  # type: ignore[union-attr]
    refilled = tenant_bytes(raw_redis, sealed_redis, tenant.id)
    assert any(b"c:ctx:" in k for k in refilled)
    for key, value in refilled.items():
        assert_no_plaintext(key.decode(), value)
    # Pages of the window (after a cursor) open too.
    older = await t.get_conversation_history(conv.id, limit=1)
    assert older.before is not None
    rest = await t.get_conversation_history(conv.id, before=older.before, limit=5)
    assert [m.metadata for m in rest.messages] == EXPECTED
    assert window_hits(sealed_redis) == 4


async def test_events_in_redis_are_sealed_and_subscribers_get_plaintext(
    sealed_redis: AsyncMnemoStore, redis_url: str
) -> None:
    tenant = await sealed_redis.create_tenant(f"sealed-{uuid.uuid4().hex[:10]}")
    t = sealed_redis.tenant(tenant.id)
    user = await t.create_user(email=EMAIL)
    conv = await t.create_conversation(user.id)
    raw = aredis.Redis.from_url(redis_url)
    pubsub = raw.pubsub()
    await pubsub.subscribe(sealed_redis.cache.keys.events(tenant.id))
    try:
        async with await t.subscribe_events() as events:
            added = await t.add_message(conv.id, role="user", content="hello", metadata=METADATA)
            await t.store_memory("likes tea", user_id=user.id)
            received = await events.get(timeout=5)
            payloads: list[bytes] = []
            deadline = asyncio.get_running_loop().time() + 5
            while len(payloads) < 2 and asyncio.get_running_loop().time() < deadline:
                item = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1)
                if item is not None:
                    payloads.append(item["data"])
    finally:
        await pubsub.aclose()
        await raw.aclose()
    assert len(payloads) == 2
    for payload in payloads:
        assert_no_plaintext("an event on the tenant's channel", payload)
    published = json.loads(payloads[0])
    assert published["type"] == "message.added"
    sealed_metadata = published["data"]["messages"][0]["metadata"]
    assert envelope_key_id(sealed_metadata["api_key"]) == "k1" and sealed_metadata["topic"] == "greeting"
    # The service's own subscription (what SSE streams to the tenant's callers) opens them.
    assert received is not None and received.type == "message.added"
    assert received.data["messages"][0]["id"] == str(added.id)
    assert received.data["messages"][0]["metadata"] == METADATA


async def test_user_export_and_logs_hold_no_plaintext(
    sealed_redis: AsyncMnemoStore, raw_redis: redis.Redis, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A user's export is rows as stored (sealed stays sealed); nothing logged quotes a sealed value.

    The store's own loggers at every level, the rest at INFO: drivers' DEBUG tracing (aiosqlite's) prints every
    statement's parameters, plaintext included, and is for debugging only.
    """
    caplog.set_level(logging.INFO)
    caplog.set_level(logging.DEBUG, logger="mnemostore")
    tenant = await sealed_redis.create_tenant(f"sealed-{uuid.uuid4().hex[:10]}")
    t = sealed_redis.tenant(tenant.id)
    user, conv = await fill(t)
    await t.get_conversation_history(conv.id, limit=10)
    await t.record_tool_execution("search", conversation_id=conv.id, parameters={"password": "PLAINTEXT-pw"})
    await t.export(tmp_path / "user", user_id=user.id)
    await sealed_redis.backup(tmp_path / "all.tar.gz", tenant_id=tenant.id, compress=True)
    files = [p for p in (tmp_path / "user").rglob("*") if p.is_file()]
    assert any(p.name.startswith("messages") for p in files), files
    for path in files:
        assert_no_plaintext(str(path), path.read_bytes())
    assert b"enc:v1:k1:" in b"".join(p.read_bytes() for p in files)
    for record in caplog.records:
        assert_no_plaintext(f"log record {record.name}", record.getMessage().encode())


async def test_the_in_process_cache_serves_plaintext(database_url: str) -> None:
    """The embedded cache never leaves the process (whose memory holds the keys too): it is not sealed."""
    store = AsyncMnemoStore(database_url, encryption_keys=[K1], blind_index_key=INDEX, secret_metadata_keys=SECRET_KEYS)
    try:
        t = store.tenant((await store.create_tenant(f"sealed-{uuid.uuid4().hex[:10]}")).id)
        user, conv = await fill(t)
        async with await t.subscribe_events() as events:
            await t.add_message(conv.id, role="user", content="again", metadata={"api_key": API_KEY})
            received = await events.get(timeout=5)
        assert received is not None and received.data["messages"][0]["metadata"] == {"api_key": API_KEY}
        for _ in range(2):
            page = await t.get_conversation_history(conv.id, limit=10)
            assert page.messages[0].metadata == METADATA
            assert (await t.get_user(user.id)).email == EMAIL  # type: ignore[union-attr]
    finally:
        await store.close()


async def test_a_cached_value_sealed_with_a_key_no_longer_held_is_a_miss(
    database_url: str, redis_url: str, key_prefix: str
) -> None:
    """After a rotation, a window or user cached under a key that was since removed is read from the database."""
    settings: dict[str, Any] = {
        "redis_url": redis_url,
        "cache_key_prefix": f"{key_prefix}-rotated",
        "redis_timeout_ms": 2000,
        "blind_index_key": INDEX,
        "secret_metadata_keys": SECRET_KEYS,
    }
    old = AsyncMnemoStore(database_url, encryption_keys=[K1], **settings)  # the rows: sealed with k1
    new = AsyncMnemoStore(database_url, encryption_keys=[K2, K1], **settings)  # caches with k2
    try:
        t_old = old.tenant((await old.create_tenant(f"sealed-{uuid.uuid4().hex[:10]}")).id)
        user, conv = await fill(t_old)
        t_new = new.tenant(t_old.tenant_id)
        assert (await t_new.get_conversation_history(conv.id, limit=10)).messages[0].metadata == METADATA
        assert (await t_new.get_user(user.id)).email == EMAIL  # type: ignore[union-attr]
        for _ in range(2):  # k2 is unknown to `old`: a miss (refilled with k1), then a hit
            page = await t_old.get_conversation_history(conv.id, limit=10)
            assert [m.metadata for m in page.messages] == EXPECTED
            assert (await t_old.get_user(user.id)).email == EMAIL  # type: ignore[union-attr]
        assert window_hits(old) == 1
        assert old.cache.client.stats.hits.get("user") == 1
    finally:
        await old.close()
        await new.close()


def test_the_sync_store_seals_what_it_caches(
    database_url: str, redis_url: str, key_prefix: str, raw_redis: redis.Redis
) -> None:
    with MnemoStore(
        database_url,
        redis_url=redis_url,
        cache_key_prefix=f"{key_prefix}-sealed-sync",
        redis_timeout_ms=2000,
        encryption_keys=[K1],
        blind_index_key=INDEX,
        secret_metadata_keys=SECRET_KEYS,
    ) as store:
        t = store.tenant(store.create_tenant(f"sealed-{uuid.uuid4().hex[:10]}").id)
        user = t.create_user(email=EMAIL)
        conv = t.create_conversation(user.id)
        t.add_message(conv.id, role="user", content="x", metadata=METADATA)
        for _ in range(2):
            assert t.get_conversation_history(conv.id, limit=10).messages[0].metadata == METADATA
            assert (t.get_user(user.id)).email == EMAIL  # type: ignore[union-attr]
        assert store.cache.client.stats.hits.get("recent_context") == 1
        keys = tenant_bytes(raw_redis, store, t.tenant_id)
    assert any(b"c:ctx:" in k for k in keys) and any(b"c:o:user:" in k for k in keys), sorted(keys)
    for key, value in keys.items():
        assert_no_plaintext(key.decode(), value)
