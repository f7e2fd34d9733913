"""Many appenders and readers on one conversation, with the cache in the real Redis (SQLite and PostgreSQL; one
server and a Redis Cluster: the module is marked ``redis_cluster``).

Readers check read-your-writes while the race runs: a page never ends before a message whose ``add_message``
had returned when the read started, and its sequence numbers are the conversation's, in order, without holes.
A "flusher" keeps dropping the tenant's cached data so that misses and refills race the appends too. At the
end the cached window must equal the database's newest messages.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from mnemostore import AsyncMnemoStore, AsyncTenantStore, MnemoStore, TenantStore

from .fix_db import RACE_POOL

WRITERS, WRITES, READERS = 8, 12, 6

pytestmark = pytest.mark.redis_cluster


# This module's stores (overriding tests/fix_redis.py's) have a pool of their own, larger than the suite's budget,
# so that appenders, readers and refills race in the database as well as in Redis; closed when the module is done.


@pytest.fixture(scope="module")
async def rstore(database_url: str, redis_url: str, key_prefix: str) -> AsyncIterator[AsyncMnemoStore]:
    options = {"redis_url": redis_url, "cache_key_prefix": key_prefix, "redis_timeout_ms": 2000, **RACE_POOL}
    async with AsyncMnemoStore(database_url, **options) as racing:
        yield racing


@pytest.fixture(scope="module")
def rstore_sync(database_url: str, redis_url: str, key_prefix: str) -> Iterator[MnemoStore]:
    options = {"redis_url": redis_url, "cache_key_prefix": key_prefix, "redis_timeout_ms": 2000, **RACE_POOL}
    with MnemoStore(database_url, **options) as racing:
        yield racing


def check_page(seqs: list[int], acked: int) -> None:
    assert seqs == sorted(seqs) and (not seqs or seqs == list(range(seqs[0], seqs[-1] + 1))), seqs
    assert (seqs[-1] if seqs else 0) >= acked, f"read {seqs[-1:]} after seq {acked} had been acknowledged"


async def database_tail(store: AsyncMnemoStore, tenant: AsyncTenantStore, cid: object, n: int) -> list[int]:
    uncached = AsyncMnemoStore(store.settings.database_url, cache_enabled=False)
    try:
        page = await uncached.tenant(tenant.tenant_id).get_conversation_history(cid, limit=n)  # type: ignore[arg-type]
        return [m.seq for m in page.messages]
    finally:
        await uncached.close()


async def test_concurrent_appenders_and_readers_keep_the_cache_equal_to_the_database(
    rstore: AsyncMnemoStore, rtenant: AsyncTenantStore
) -> None:
    user = await rtenant.create_user()
    conv = await rtenant.create_conversation(user.id)
    acked = 0
    done = asyncio.Event()
    reads = 0

    async def writer(w: int) -> None:
        nonlocal acked
        for i in range(WRITES):
            message = await rtenant.add_message(conv.id, role="user", content=f"{w}-{i}")
            acked = max(acked, message.seq)

    async def reader() -> None:
        nonlocal reads
        while not done.is_set():
            floor = acked
            page = await rtenant.get_conversation_history(conv.id, limit=10)
            check_page([m.seq for m in page.messages], floor)
            reads += 1
            await asyncio.sleep(0)

    async def flusher() -> None:
        while not done.is_set():
            await rstore.flush_cache(rtenant.tenant_id)
            await asyncio.sleep(0.01)

    readers = [asyncio.create_task(reader()) for _ in range(READERS)] + [asyncio.create_task(flusher())]
    await asyncio.gather(*(writer(w) for w in range(WRITERS)))
    done.set()
    await asyncio.gather(*readers)
    assert reads > 0
    total = WRITERS * WRITES
    window = await rstore.cache.context.read(rtenant.tenant_id, conv.id)
    expected = await database_tail(rstore, rtenant, conv.id, rstore.settings.recent_context_size)
    assert expected == list(range(total - 19, total + 1))
    if window.messages is None:  # the flusher won the last round: the next read refills
        await rtenant.get_conversation_history(conv.id, limit=5)
        window = await rstore.cache.context.read(rtenant.tenant_id, conv.id)
    assert [m.seq for m in window.messages or []] == expected
    page = await rtenant.get_conversation_history(conv.id, limit=20)
    assert [m.seq for m in page.messages] == expected


def test_threads_with_the_sync_store_keep_the_cache_equal_to_the_database(
    rstore_sync: MnemoStore, rtenant_sync: TenantStore
) -> None:
    user = rtenant_sync.create_user()
    conv = rtenant_sync.create_conversation(user.id)
    lock = threading.Lock()
    acked = [0]
    stop = threading.Event()

    def writer(w: int) -> None:
        for i in range(WRITES):
            seq = rtenant_sync.add_message(conv.id, role="assistant", content=f"{w}-{i}").seq
            with lock:
                acked[0] = max(acked[0], seq)

    def reader() -> int:
        count = 0
        while not stop.is_set():
            floor = acked[0]
            page = rtenant_sync.get_conversation_history(conv.id, limit=15)
            check_page([m.seq for m in page.messages], floor)
            count += 1
        return count

    with ThreadPoolExecutor(max_workers=WRITERS + READERS) as pool:
        readers = [pool.submit(reader) for _ in range(READERS)]
        for future in [pool.submit(writer, w) for w in range(WRITERS)]:
            future.result(timeout=120)
        stop.set()
        assert sum(r.result(timeout=30) for r in readers) > 0
    total = WRITERS * WRITES
    page = rtenant_sync.get_conversation_history(conv.id, limit=20)
    assert [m.seq for m in page.messages] == list(range(total - 19, total + 1))
    window = rstore_sync.cache.context.read(rtenant_sync.tenant_id, conv.id)
    assert [m.seq for m in window.messages or []] == list(range(total - 19, total + 1))
