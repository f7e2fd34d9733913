"""Concurrent writers on one conversation, tenant and identity: on SQLite and PostgreSQL, async and threaded.

The store promises gap-free sequence numbers, exact counters, write-once idempotency keys and one user per
channel identity, however many callers race. These tests race them for real (no mocks, real servers).
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import pytest

from mnemostore import AsyncMnemoStore, AsyncTenantStore, Conversation, Message, MnemoStore, TenantStore

from .fix_db import RACE_POOL

T = TypeVar("T")

TASKS = 50
THREADS = 16


# This module's stores (overriding tests/fix_db.py's) have a pool of their own, larger than the suite's budget, so
# that the racers hold connections at once and meet in the database; they are closed when the module is done.


@pytest.fixture(scope="module")
async def astore(database_url: str) -> AsyncIterator[AsyncMnemoStore]:
    async with AsyncMnemoStore(database_url, **RACE_POOL) as racing:
        yield racing


@pytest.fixture(scope="module")
def store(database_url: str) -> Iterator[MnemoStore]:
    with MnemoStore(database_url, **RACE_POOL) as racing:
        yield racing


def run_in_threads(calls: list[Callable[[], T]], *, workers: int = THREADS) -> list[T]:
    """Run ``calls`` on ``workers`` threads, all released at once; re-raise the first error."""
    barrier = threading.Barrier(min(workers, len(calls)))

    def start(call: Callable[[], T], index: int) -> T:
        if index < barrier.parties:
            barrier.wait(timeout=30)
        return call()

    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(start, call, i) for i, call in enumerate(calls)]
        return [f.result(timeout=120) for f in futures]


def content(i: int) -> str:
    return f"message {i} " + "é" * (i % 7)  # multi-byte text, so byte counters differ from lengths


def assert_gap_free(messages: list[Message], n: int) -> None:
    assert sorted(m.seq for m in messages) == list(range(1, n + 1))
    assert len({m.id for m in messages}) == n


def expected_totals(n: int) -> tuple[int, int]:
    tokens = sum(i + 2 * i for i in range(n))
    size = sum(len(content(i).encode()) for i in range(n))
    return tokens, size


# -- async store ----------------------------------------------------------------------------------------------------


async def _conversation(t: AsyncTenantStore) -> Conversation:
    user = await t.create_user(display_name="racer")
    return await t.create_conversation(user.id)


async def test_async_concurrent_appends_are_gap_free(astore: AsyncMnemoStore, atenant: AsyncTenantStore) -> None:
    conv = await _conversation(atenant)
    results = await asyncio.gather(
        *(
            atenant.add_message(conv.id, role="user", content=content(i), prompt_tokens=i, completion_tokens=2 * i)
            for i in range(TASKS)
        )
    )
    assert_gap_free(results, TASKS)
    # Each caller got back the row that was stored.
    by_content = {m.content: m.seq for m in results}
    history = await atenant.get_conversation_history(conv.id, limit=TASKS)
    assert [m.seq for m in history.messages] == list(range(1, TASKS + 1))
    assert {m.content: m.seq for m in history.messages} == by_content

    tokens, size = expected_totals(TASKS)
    stored = await atenant.get_conversation_or_raise(conv.id)
    assert (stored.message_count, stored.last_seq, stored.total_tokens, stored.content_bytes) == (
        TASKS,
        TASKS,
        tokens,
        size,
    )
    assert await atenant.count_messages(conv.id) == TASKS
    usage = await astore.get_tenant_usage(atenant.tenant_id)
    assert (usage.users, usage.conversations, usage.messages, usage.tokens, usage.storage_bytes) == (
        1,
        1,
        TASKS,
        tokens,
        size,
    )
    # The counters kept by every write agree with a recount from the rows.
    assert await astore.recount_tenant_usage(atenant.tenant_id) == usage


async def test_async_concurrent_batches_stay_contiguous(atenant: AsyncTenantStore) -> None:
    """Batches appended concurrently each get a contiguous run of sequence numbers, in the order given."""
    conv = await _conversation(atenant)
    batches = [[{"role": "user", "content": f"{b}-{i}"} for i in range(5)] for b in range(10)]
    results = await asyncio.gather(*(atenant.add_messages(conv.id, batch) for batch in batches))
    assert_gap_free([m for batch in results for m in batch], 50)
    for batch in results:
        seqs = [m.seq for m in batch]
        assert seqs == list(range(seqs[0], seqs[0] + 5))
        assert [m.content.split("-")[1] for m in batch] == ["0", "1", "2", "3", "4"]


async def test_async_concurrent_appends_to_many_conversations(
    astore: AsyncMnemoStore, atenant: AsyncTenantStore
) -> None:
    user = await atenant.create_user()
    convs = [await atenant.create_conversation(user.id) for _ in range(5)]
    results = await asyncio.gather(
        *(
            atenant.add_message(c.id, role="assistant", content="x", completion_tokens=1)
            for c in convs
            for _ in range(10)
        )
    )
    for conv in convs:
        assert_gap_free([m for m in results if m.conversation_id == conv.id], 10)
        assert (await atenant.get_conversation_or_raise(conv.id)).message_count == 10
    usage = await astore.get_tenant_usage(atenant.tenant_id)
    assert (usage.conversations, usage.messages, usage.tokens, usage.storage_bytes) == (5, 50, 50, 50)


async def test_async_concurrent_idempotent_retries_write_once(
    astore: AsyncMnemoStore, atenant: AsyncTenantStore
) -> None:
    conv = await _conversation(atenant)
    await atenant.add_message(conv.id, role="user", content="before")
    results = await asyncio.gather(
        *(
            atenant.add_message(conv.id, role="user", content="hello", prompt_tokens=3, idempotency_key="req-1")
            for _ in range(TASKS)
        )
    )
    assert len({m.id for m in results}) == 1
    assert {m.seq for m in results} == {2}
    assert all(m.idempotency_key == "req-1" and m.content == "hello" for m in results)

    stored = await atenant.get_conversation_or_raise(conv.id)
    assert (stored.message_count, stored.last_seq, stored.total_tokens, stored.content_bytes) == (2, 2, 3, 11)
    history = await atenant.get_conversation_history(conv.id)
    assert [(m.seq, m.content) for m in history.messages] == [(1, "before"), (2, "hello")]
    usage = await astore.get_tenant_usage(atenant.tenant_id)
    assert (usage.messages, usage.tokens, usage.storage_bytes) == (2, 3, 11)

    # The next new message continues right after: the replays took no sequence numbers.
    assert (await atenant.add_message(conv.id, role="assistant", content="after")).seq == 3


async def test_async_concurrent_distinct_keys_each_write_once(atenant: AsyncTenantStore) -> None:
    """Ten keys, each retried five times at once: ten messages, seqs 1..10."""
    conv = await _conversation(atenant)
    results = await asyncio.gather(
        *(
            atenant.add_message(conv.id, role="user", content=f"m{k}", idempotency_key=f"key-{k}")
            for _ in range(5)
            for k in range(10)
        )
    )
    by_key: dict[str, set[uuid.UUID]] = {}
    for m in results:
        by_key.setdefault(m.idempotency_key or "", set()).add(m.id)
    assert all(len(ids) == 1 for ids in by_key.values())
    assert len(by_key) == 10
    assert sorted({m.seq for m in results}) == list(range(1, 11))
    assert await atenant.count_messages(conv.id) == 10


async def test_async_concurrent_get_or_create_by_identity_makes_one_user(
    astore: AsyncMnemoStore, atenant: AsyncTenantStore
) -> None:
    users = await asyncio.gather(
        *(atenant.get_or_create_user_by_identity("discord", "42", username="ada") for _ in range(20))
    )
    assert len({u.id for u in users}) == 1
    page = await atenant.list_users(limit=100)
    assert [u.id for u in page.items] == [users[0].id]
    identities = await atenant.list_identities(users[0].id)
    assert [(i.channel, i.channel_user_id) for i in identities] == [("discord", "42")]
    assert (await astore.get_tenant_usage(atenant.tenant_id)).users == 1


async def test_async_concurrent_identities_of_many_people(astore: AsyncMnemoStore, atenant: AsyncTenantStore) -> None:
    """Five people, each racing four first messages: five users."""
    users = await asyncio.gather(
        *(atenant.get_or_create_user_by_identity("telegram", f"id-{p}") for _ in range(4) for p in range(5))
    )
    assert len({u.id for u in users}) == 5
    for p in range(5):
        found = await atenant.get_user_by_identity("telegram", f"id-{p}")
        assert found is not None
        assert {u.id for u in users[p::5]} == {found.id}
    assert (await astore.get_tenant_usage(atenant.tenant_id)).users == 5


# -- sync store, threads --------------------------------------------------------------------------------------------


def test_threaded_concurrent_appends_are_gap_free(store: MnemoStore, tenant: TenantStore) -> None:
    user = tenant.create_user()
    conv = tenant.create_conversation(user.id)

    def append(i: int) -> Callable[[], Message]:
        return lambda: tenant.add_message(
            conv.id, role="user", content=content(i), prompt_tokens=i, completion_tokens=2 * i
        )

    results = run_in_threads([append(i) for i in range(TASKS)])
    assert_gap_free(results, TASKS)
    tokens, size = expected_totals(TASKS)
    stored = tenant.get_conversation_or_raise(conv.id)
    assert (stored.message_count, stored.last_seq, stored.total_tokens, stored.content_bytes) == (
        TASKS,
        TASKS,
        tokens,
        size,
    )
    history = tenant.get_conversation_history(conv.id, limit=TASKS)
    assert [m.seq for m in history.messages] == list(range(1, TASKS + 1))
    usage = store.get_tenant_usage(tenant.tenant_id)
    assert (usage.messages, usage.tokens, usage.storage_bytes) == (TASKS, tokens, size)
    assert store.recount_tenant_usage(tenant.tenant_id) == usage


def test_threaded_concurrent_idempotent_retries_write_once(store: MnemoStore, tenant: TenantStore) -> None:
    user = tenant.create_user()
    conv = tenant.create_conversation(user.id)
    results = run_in_threads(
        [
            lambda: tenant.add_message(conv.id, role="user", content="hi", completion_tokens=5, idempotency_key="k")
            for _ in range(TASKS)
        ]
    )
    assert len({m.id for m in results}) == 1
    assert results[0].seq == 1
    stored = tenant.get_conversation_or_raise(conv.id)
    assert (stored.message_count, stored.last_seq, stored.total_tokens, stored.content_bytes) == (1, 1, 5, 2)
    usage = store.get_tenant_usage(tenant.tenant_id)
    assert (usage.messages, usage.tokens, usage.storage_bytes) == (1, 5, 2)


def test_threaded_concurrent_get_or_create_by_identity_makes_one_user(store: MnemoStore, tenant: TenantStore) -> None:
    users = run_in_threads([lambda: tenant.get_or_create_user_by_identity("slack", "U123") for _ in range(20)])
    assert len({u.id for u in users}) == 1
    assert [u.id for u in tenant.list_users().items] == [users[0].id]
    assert store.get_tenant_usage(tenant.tenant_id).users == 1


def test_threaded_mixed_writers_keep_counters_exact(store: MnemoStore, tenant: TenantStore) -> None:
    """Appends, replays and new conversations racing in one tenant leave every counter exact."""
    user = tenant.get_or_create_user_by_identity("web", "mixed")
    conv = tenant.create_conversation(user.id)
    calls: list[Callable[[], object]] = []
    for i in range(30):
        calls.append(lambda i=i: tenant.add_message(conv.id, role="user", content=content(i), prompt_tokens=1))
        calls.append(lambda: tenant.add_message(conv.id, role="user", content="once", idempotency_key="once"))
        if i % 10 == 0:
            calls.append(lambda: tenant.create_conversation(user.id))
    run_in_threads(calls)
    stored = tenant.get_conversation_or_raise(conv.id)
    assert stored.message_count == stored.last_seq == 31
    history = tenant.get_conversation_history(conv.id, limit=100)
    assert [m.seq for m in history.messages] == list(range(1, 32))
    usage = store.get_tenant_usage(tenant.tenant_id)
    size = sum(len(content(i).encode()) for i in range(30)) + len(b"once")
    assert (usage.users, usage.conversations, usage.messages, usage.tokens, usage.storage_bytes) == (
        1,
        4,
        31,
        30,
        size,
    )
    assert store.recount_tenant_usage(tenant.tenant_id) == usage
