"""Near-duplicate detection with the real all-MiniLM-L6-v2 model (loaded once per session), on SQLite and pgvector.

Cosine similarities measured with this model: "User's dog is named Rex" / "The user has a dog called Rex" 0.91
(a paraphrase: merged at the default threshold 0.9); "... allergic to peanuts" / "... allergic to shellfish"
0.54 (a different fact: kept apart).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from mnemostore import AsyncMnemoStore, AsyncTenantStore, ConversationNotFound, Settings
from mnemostore.search import Embedder
from mnemostore.store.tables import embeddings


@pytest.fixture(scope="module")
async def semantic_store(vector_url: str, minilm: Embedder) -> AsyncIterator[AsyncMnemoStore]:
    """On SQLite and on the PostgreSQL with pgvector (tests/fix_search.py), so indexed vectors exist on both."""
    store = AsyncMnemoStore(settings=Settings(database_url=vector_url), embedder=minilm)
    yield store
    await store.close()


@pytest.fixture
async def semantic(semantic_store: AsyncMnemoStore) -> AsyncTenantStore:
    tenant = await semantic_store.create_tenant(f"tenant-{uuid.uuid4().hex[:12]}")
    return semantic_store.tenant(tenant.id)


async def test_paraphrase_is_merged_and_different_fact_is_not(semantic: AsyncTenantStore) -> None:
    uid = (await semantic.create_user(display_name="Ada")).id
    dog = await semantic.store_memory("User's dog is named Rex", user_id=uid)
    allergy = await semantic.store_memory("The user is allergic to peanuts", user_id=uid)
    paraphrase = await semantic.store_memory("The user has a dog called Rex", user_id=uid)
    assert paraphrase.id == dog.id
    assert paraphrase.content == "The user has a dog called Rex"
    assert [v.content for v in await semantic.get_memory_history(dog.id)] == ["User's dog is named Rex"]
    other = await semantic.store_memory("The user is allergic to shellfish", user_id=uid)
    assert other.id not in {dog.id, allergy.id}
    assert len((await semantic.retrieve_memories(user_id=uid)).items) == 3


async def test_indexed_vectors_are_used(semantic_store: AsyncMnemoStore, semantic: AsyncTenantStore) -> None:
    uid = (await semantic.create_user(display_name="Bo")).id
    first = await semantic.store_memory("User's dog is named Rex", user_id=uid)
    await semantic_store.wait_for_indexing(timeout_seconds=120)
    async with semantic._tx() as uow:
        stored = await uow.memories.stored_vectors([first.id], model="all-MiniLM-L6-v2")
    assert len(stored[first.id]) == 384
    assert (await semantic.store_memory("The user has a dog called Rex", user_id=uid)).id == first.id


async def test_without_embedder_the_paraphrase_is_kept_apart(database_url: str) -> None:
    async with AsyncMnemoStore(settings=Settings(database_url=database_url, embedder="none")) as store:
        t = store.tenant((await store.create_tenant(f"tenant-{uuid.uuid4().hex[:12]}")).id)
        a = await t.store_memory("User's dog is named Rex")
        b = await t.store_memory("The user has a dog called Rex")  # token Jaccard 0.5 < 0.8
        assert a.id != b.id


async def test_maintenance_cascades_to_vectors_and_full_text(vector_url: str) -> None:
    """Purged memories and deleted conversations leave no vector, no full-text row and no cached history."""
    async with AsyncMnemoStore(settings=Settings(database_url=vector_url, embedder="hashing")) as store:
        tenant = await store.create_tenant(
            f"tenant-{uuid.uuid4().hex[:12]}", config={"retention": {"delete_archived_after_days": 1}}
        )
        t = store.tenant(tenant.id)
        uid = (await t.create_user(display_name="Cy")).id
        conv = await t.create_conversation(uid)
        message = await t.add_message(conv.id, role="user", content="zanzibarquux harbour schedule")
        await t.get_conversation_history(conv.id)  # cached now
        memory = await t.store_memory("zanzibarquux ferry times", user_id=uid, expires_at=_soon())
        await store.wait_for_indexing(timeout_seconds=120)
        async with t._tx() as uow:
            assert await uow.memories.stored_vectors([memory.id], model="hashing-test-384")
        hits = await t.search("zanzibarquux", mode="fulltext")
        assert {h.id for h in hits} == {message.id, memory.id}
        async with t._tx(write=True) as uow:
            await uow.conversations.update(
                conv.id, {"status": "archived", "last_activity_at": _soon() - timedelta(days=3)}
            )
        report = await t.run_maintenance(now=_soon() + timedelta(seconds=1))
        assert (report.expired_memories, report.deleted_conversations) == (1, 1)
        assert await t.search("zanzibarquux", mode="fulltext") == []
        assert await t.search("zanzibarquux ferry", mode="semantic") == []
        async with t._tx() as uow:
            assert await uow.memories.stored_vectors([memory.id], model="hashing-test-384") == {}
            remaining = await uow.connection.execute(
                sa.select(sa.func.count()).select_from(embeddings).where(embeddings.c.tenant_id == tenant.id)
            )
            assert remaining.scalar_one() == 0
        with pytest.raises(ConversationNotFound):
            await t.get_conversation_history(conv.id)


def _soon() -> datetime:
    return datetime.now(UTC) + timedelta(seconds=2)
