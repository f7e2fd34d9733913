"""Milvus as the vector backend (``vector_backend=milvus``), on Milvus Lite, with SQLite and PostgreSQL + pgvector.

The embeddings table stays the durable copy; Milvus answers the vector queries. What must hold:

* the same answers as the default backend (the embedded index on SQLite, pgvector on PostgreSQL) over the same
  vectors, with every filter: the two stores of a test share one database;
* one tenant never sees another's items, whatever the filters;
* Milvus holds exactly the table's vectors after every kind of delete, and after ``reindex`` (a model change);
* an indexer killed between its Milvus write and its commit leaves, once restarted, one entity per item.
"""

from __future__ import annotations

import importlib.util
import os
import random
import subprocess
import sys
import textwrap
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from mnemostore import AsyncMnemoStore, MnemoStore, NewMessage, Settings, TenantStore
from mnemostore.cli.main import app
from mnemostore.search import Embedder, HashingEmbedder, ItemKind, MilvusIndex, VectorEntity
from mnemostore.store.tables import embeddings, index_jobs
from tests.fix_milvus import entities_per_item, settings_of

_WORDS = (
    "otter river stone maple lantern harbor violin pepper glacier orchard copper meadow falcon basil thunder "
    "velvet canyon ember willow cobalt saffron quartz lagoon tundra juniper marble cedar comet prairie walnut "
    "sparrow coral summit meadowlark birch ferry garnet nectar plume raven sable tidal umber vesper zephyr"
)
WORDS = _WORDS.split()


def _text(rng: random.Random, n: int = 6) -> str:
    return " ".join(rng.sample(WORDS, n))


def _table_items(url: str, tenant_id: uuid.UUID) -> set[uuid.UUID]:
    engine = sa.create_engine(Settings(database_url=url).database_url, poolclass=sa.NullPool)
    with engine.connect() as conn:
        query = sa.select(embeddings.c.item_id).where(embeddings.c.tenant_id == tenant_id)
        found = set(conn.execute(query).scalars())
    engine.dispose()
    return found


def _in_step(milvus: MilvusIndex, url: str, tenant_id: uuid.UUID) -> set[uuid.UUID]:
    """Assert that Milvus holds one entity per vector of the tenant in the table, and nothing else; the items."""
    counts = entities_per_item(milvus, tenant_id)
    assert set(counts.values()) <= {1}, counts
    table = _table_items(url, tenant_id)
    assert set(counts) == table
    return table


def _corpus(t: TenantStore, seed: int) -> dict[str, Any]:
    """Two users' conversations (messages spread over 60 days), memories of two agents in three tiers with
    metadata, knowledge chunks of two sources; every text distinct."""
    rng = random.Random(seed)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    users = [t.create_user(display_name=name) for name in ("Ada", "Bob")]
    conversations = [t.create_conversation(users[i % 2].id, title=f"c{i}") for i in range(4)]
    for i in range(80):
        t.add_message(
            conversations[i % 4].id,
            role=("user", "assistant")[i % 2],
            content=_text(rng),
            created_at=start + timedelta(hours=18 * i),
        )
    for i in range(60):
        t.store_memory(
            _text(rng),
            user_id=users[i % 2].id,
            agent_id=("planner", "writer")[i % 3 == 0],
            tier=("working", "short_term", "long_term")[i % 3],
            conversation_id=conversations[i % 4].id if i % 5 == 0 else None,
            metadata={"topic": ("food", "travel")[i % 2]},
            dedup=False,
        )
    for i in range(30):
        t.upsert_knowledge(("handbook", "wiki")[i % 2], f"doc#{i}", _text(rng))
    return {"users": users, "conversations": conversations, "middle": start + timedelta(days=30), "rng": rng}


@pytest.mark.parametrize("seed", [7])
def test_same_answers_as_the_default_backend(vector_url: str, milvus: MilvusIndex, seed: int) -> None:
    """One database, two stores over its vectors: Milvus ranks like the embedded index (SQLite) or pgvector."""
    embedder = HashingEmbedder(384)
    with (
        MnemoStore(vector_url, embedder=embedder, **settings_of(milvus)) as by_milvus,
        MnemoStore(vector_url, embedder=embedder) as by_default,
    ):
        t = by_milvus.tenant(by_milvus.create_tenant(f"same-{uuid.uuid4().hex[:8]}").id)
        corpus = _corpus(t, seed)
        assert by_milvus.wait_for_indexing(timeout_seconds=120).failed == 0
        assert len(_in_step(milvus, vector_url, t.tenant_id)) == 170
        d = by_default.tenant(t.tenant_id)
        ada, bob = corpus["users"]
        chat = corpus["conversations"][0]
        scopes: list[dict[str, Any]] = [
            {},
            {"kinds": ["messages"]},
            {"user_id": ada.id},
            {"user_id": bob.id, "kinds": ["memories"]},
            {"conversation_id": chat.id},
            {"role": "assistant", "since": corpus["middle"]},
            {"until": corpus["middle"], "kinds": ["messages"]},
            {"agent_id": "writer"},
            {"tier": "working"},  # a memory's tier changes: checked by the database, not pushed down
            {"metadata": {"topic": "food"}, "user_id": ada.id},
            {"source": "wiki"},
            {
                "kinds": ["memories"],
                "tier": "long_term",
                "agent_id": "planner",
                "since": corpus["middle"] - timedelta(days=365),
            },
        ]
        compared = 0
        for scope in scopes:
            for _ in range(4):
                query = _text(corpus["rng"], 3)
                want = d.search(query, mode="semantic", limit=10, **scope)
                got = t.search(query, mode="semantic", limit=10, **scope)
                _same_ranking(got, want, (scope, query))
                assert got.retrievers == ("semantic",) and got.mode.value == "semantic"
                compared += len(want)
        assert compared > 300  # the scopes are not empty


def _same_ranking(got: Any, want: Any, where: Any) -> None:
    """The same scores in the same order, and the same items for each score (the hashing embedder gives equal
    scores to texts sharing as many of the query's words, which the two backends may list in either order),
    except among the lowest score, which the limit may cut anywhere."""
    scores = [round(h.score, 4) for h in want]
    assert [round(h.score, 4) for h in got] == scores, where
    for score in set(scores) - {min(scores, default=0)}:
        assert {h.id for h in got if round(h.score, 4) == score} == {
            h.id for h in want if round(h.score, 4) == score
        }, where


def _benchmark() -> Any:
    path = Path(__file__).resolve().parent.parent / "benchmarks" / "bench_retrieval.py"
    spec = importlib.util.spec_from_file_location("bench_retrieval", path)
    assert spec is not None and spec.loader is not None
    module = sys.modules.setdefault("bench_retrieval", importlib.util.module_from_spec(spec))
    spec.loader.exec_module(module)  # its dataclasses look their module up in sys.modules
    return module


def test_retrieval_benchmark_recall_is_the_same(vector_url: str, milvus: MilvusIndex, minilm: Embedder) -> None:
    """benchmarks/bench_retrieval.py's data (2 users, MiniLM): each question's semantic and hybrid ranks of its
    answer, user-scoped as the benchmark asks, are those of the default backend, so is recall@10."""
    bench = _benchmark()
    data, questions = bench.build_dataset(2, 6, 18)
    with (
        MnemoStore(vector_url, embedder=minilm, **settings_of(milvus)) as by_milvus,
        MnemoStore(vector_url, embedder=minilm) as by_default,
    ):
        t = by_milvus.tenant(by_milvus.create_tenant(f"bench-{uuid.uuid4().hex[:8]}").id)
        users, answers = [], {}
        for u, user in enumerate(data):
            users.append(t.create_user(display_name=f"user{u}").id)
            for s, turns in enumerate(user.sessions):
                chat = t.create_conversation(users[-1])
                stored = t.add_messages(chat.id, [NewMessage(role=r, content=c) for r, c in turns])
                answers.update({(u, topic): stored[i].id for topic, (at, i) in user.answers.items() if at == s})
        assert by_milvus.wait_for_indexing(timeout_seconds=300).failed == 0
        d = by_default.tenant(t.tenant_id)
        ranks: dict[str, list[tuple[int, int]]] = {"semantic": [], "hybrid": []}
        vectors = minilm.embed([q.text for q in questions])  # once, not per search
        for q, vector in zip(questions, vectors, strict=True):
            target = answers[(q.user, q.topic)]
            for mode, found in ranks.items():
                pair = []
                for store in (d, t):
                    hits = store.search(
                        q.text,
                        vector=vector,
                        model=minilm.name,
                        mode=mode,
                        kinds=("messages",),
                        user_id=users[q.user],
                        limit=10,
                    )
                    pair.append(next((i + 1 for i, hit in enumerate(hits) if hit.id == target), 0))
                found.append((pair[0], pair[1]))
    for mode, found in ranks.items():
        assert len(found) == 36
        assert [got for _, got in found] == [want for want, _ in found], mode
        assert sum(1 for _, got in found if got) / len(found) >= 0.9  # recall@10, as the default's


def test_tenants_never_see_each_others_vectors(tmp_path: Path, milvus: MilvusIndex) -> None:
    """Two tenants with the same texts (the same vectors): each finds its own items only, whatever the filters,
    even naming the other's user or conversation; Milvus itself answers a tenant's query with its items only."""
    url = f"sqlite:///{tmp_path / 'isolation.db'}"
    with MnemoStore(url, embedder=HashingEmbedder(64), **settings_of(milvus)) as store:
        store.migrate()
        a = store.tenant(store.create_tenant("a").id)
        b = store.tenant(store.create_tenant("b").id)
        made: dict[uuid.UUID, dict[str, Any]] = {}
        for t in (a, b):
            user = t.create_user(display_name="same")
            chat = t.create_conversation(user.id)
            ids = {m.id for m in t.add_messages(chat.id, [{"role": "user", "content": "otters hold hands"}] * 3)}
            ids.add(t.store_memory("otters hold hands", user_id=user.id, agent_id="x", dedup=False).id)
            ids.add(t.upsert_knowledge("wiki", "otter", "otters hold hands").id)
            made[t.tenant_id] = {"user": user, "chat": chat, "ids": ids}
        store.wait_for_indexing()
        for t, other in ((a, b), (b, a)):
            mine, theirs = made[t.tenant_id], made[other.tenant_id]
            assert set(entities_per_item(milvus, t.tenant_id)) == mine["ids"]
            everything = t.search("otters hold hands", mode="semantic", limit=50)
            assert {h.id for h in everything} == mine["ids"]
            for scope in (
                {"user_id": theirs["user"].id},
                {"conversation_id": theirs["chat"].id},
                {"agent_id": "x", "user_id": theirs["user"].id},
                {"metadata": {}, "source": "wiki"},
                {"since": datetime(2000, 1, 1, tzinfo=UTC)},
            ):
                found = {h.id for h in t.search("otters hold hands", mode="semantic", limit=50, **scope)}
                assert found <= mine["ids"], scope
            vector = HashingEmbedder(64).embed_query("otters hold hands")
            for kind in ItemKind:
                raw = milvus.search(
                    "hashing-test-64", 64, vector, 50, tenant_id=t.tenant_id, kind=kind, item_ids=list(theirs["ids"])
                )
                assert raw == []
                assert {
                    item
                    for item, _ in milvus.search("hashing-test-64", 64, vector, 50, tenant_id=t.tenant_id, kind=kind)
                } <= mine["ids"]


def test_deletes_keep_milvus_in_step(vector_url: str, milvus: MilvusIndex) -> None:
    """After each kind of delete, Milvus holds exactly the vectors of the table: one entity per item."""
    with MnemoStore(vector_url, embedder=HashingEmbedder(64), **settings_of(milvus)) as store:
        t = store.tenant(store.create_tenant(f"deletes-{uuid.uuid4().hex[:8]}").id)
        rng = random.Random(3)
        ada, bob, cy = (t.create_user(display_name=n) for n in ("Ada", "Bob", "Cy"))
        chats = [t.create_conversation(u.id) for u in (ada, ada, bob, cy)]
        messages = [t.add_messages(c.id, [{"role": "user", "content": _text(rng)} for _ in range(4)]) for c in chats]
        memories = [
            t.store_memory(_text(rng), user_id=u.id, agent_id=agent, dedup=False)
            for u in (ada, bob)
            for agent in ("planner", "writer")
        ]
        soon = t.store_memory(_text(rng), user_id=ada.id, expires_at=datetime.now(UTC) + timedelta(hours=1))
        chunks = [t.upsert_knowledge("wiki", f"k{i}", _text(rng)) for i in range(3)]
        t.put_graph_item(("agent", "notes"), "kept", {"v": 1}, content=_text(rng))
        t.put_graph_item(("agent", "notes"), "gone", {"v": 2}, content=_text(rng))
        now = datetime.now(UTC)
        t.put_graph_item(("agent", "tmp"), "brief", {"v": 3}, content=_text(rng), ttl_minutes=1, now=now)
        store.wait_for_indexing()
        total = len(_in_step(milvus, vector_url, t.tenant_id))
        assert total == 16 + 5 + 3 + 3

        t.delete_message(messages[0][0].id)
        t.delete_memory(memories[0].id)
        t.delete_knowledge_chunk(chunks[0].id)
        t.delete_knowledge_chunks("wiki", ["k1"])
        assert t.delete_graph_item(("agent", "notes"), "gone")
        assert len(_in_step(milvus, vector_url, t.tenant_id)) == total - 5

        assert t.delete_messages(chats[1].id) == 4  # the conversation stays, and gets a new message
        fresh = t.add_message(chats[1].id, role="user", content=_text(rng))
        assert t.delete_memories(user_id=bob.id, agent_id="writer") == 1
        t.delete_conversation(chats[0].id)
        assert t.purge_expired_graph_items(now=now + timedelta(minutes=5)) == 1
        store.wait_for_indexing()
        items = _in_step(milvus, vector_url, t.tenant_id)
        assert fresh.id in items and len(items) == total - 5 - 4 + 1 - 1 - 3 - 1

        t.delete_user(bob.id)  # his conversation's messages and his memory
        assert t.erase_user(cy.id)["messages"] == 4
        report = store.run_maintenance(t.tenant_id, now=datetime.now(UTC) + timedelta(days=1))
        assert report.tenants[0].expired_memories == 1
        items = _in_step(milvus, vector_url, t.tenant_id)
        assert soon.id not in items and len(items) == total - 5 - 4 + 1 - 1 - 3 - 1 - 5 - 4 - 1

        store.delete_tenant(t.tenant_id)
        assert entities_per_item(milvus, t.tenant_id) == {}


class DeletingEmbedder(HashingEmbedder):
    """Deletes a memory while the indexer embeds it: between the claim and the commit of its job."""

    def __init__(self) -> None:
        super().__init__(64)
        self.victim: tuple[TenantStore, uuid.UUID] | None = None

    def embed(self, texts: Any) -> list[list[float]]:
        if self.victim is not None:
            t, memory_id = self.victim
            self.victim = None
            t.delete_memory(memory_id)
        return super().embed(texts)


def test_an_item_deleted_while_its_job_runs_has_no_entity(tmp_path: Path, milvus: MilvusIndex) -> None:
    url = f"sqlite:///{tmp_path / 'race.db'}"
    embedder = DeletingEmbedder()
    with MnemoStore(url, embedder=embedder, **settings_of(milvus)) as store:
        store.migrate()
        t = store.tenant(store.create_tenant("race").id)
        kept = t.store_memory("otters keep stones", dedup=False)
        doomed = t.store_memory("otters drop stones", dedup=False)
        embedder.victim = (t, doomed.id)
        status = store.wait_for_indexing()
        assert (status.pending, status.running, status.done) == (0, 0, 2)
        assert _in_step(milvus, url, t.tenant_id) == {kept.id}


def test_stale_entities_never_reach_a_caller_and_sync_repairs_milvus(tmp_path: Path, milvus: MilvusIndex) -> None:
    """An entity without its item (a removal that failed) is skipped by search, which removes it; an entity
    Milvus lost is written back by ``sync_vector_index``, which also removes the stale ones. A caller's vector
    (``vector=``) goes to its model's collection with its item."""
    url = f"sqlite:///{tmp_path / 'stale.db'}"
    with MnemoStore(url, embedder=HashingEmbedder(64), **settings_of(milvus)) as store:
        store.migrate()
        t = store.tenant(store.create_tenant("stale").id)
        real = t.store_memory("otters sleep holding hands", dedup=False)
        supplied = t.store_memory("a caller's vector", vector=[0.5, 0.5, 0.0, 1.0], model="caller-4", dedup=False)
        store.wait_for_indexing()
        vector = HashingEmbedder(64).embed_query("otters sleep holding hands")
        ghost = uuid.uuid4()
        lost = VectorEntity(
            tenant_id=t.tenant_id, kind=ItemKind.MEMORY, item_id=ghost, vector=vector, created_at=datetime.now(UTC)
        )
        milvus.upsert("hashing-test-64", 64, [lost])
        assert entities_per_item(milvus, t.tenant_id)[ghost] == 1
        assert [h.id for h in t.search("otters sleep holding hands", mode="semantic")] == [real.id]
        assert ghost not in entities_per_item(milvus, t.tenant_id)  # the search removed it
        assert [h.id for h in t.search(vector=[0.5, 0.5, 0.0, 1.0], model="caller-4")] == [supplied.id]

        milvus.upsert("hashing-test-64", 64, [lost])
        milvus.delete([(t.tenant_id, ItemKind.MEMORY, real.id)])
        assert store.sync_vector_index() == {"written": 1, "removed": 1}
        assert _in_step(milvus, url, t.tenant_id) == {real.id, supplied.id}
        assert store.sync_vector_index() == {"written": 0, "removed": 0}


def test_reindex_with_another_model_moves_milvus_along(tmp_path: Path, milvus: MilvusIndex) -> None:
    """``mnemostore reindex`` with a new model: the new model's collection holds every item, the old one none."""
    url = f"sqlite:///{tmp_path / 'reindex.db'}"
    with MnemoStore(url, embedder=HashingEmbedder(32), **settings_of(milvus)) as store:
        store.migrate()
        t = store.tenant(store.create_tenant("reindex").id)
        chat = t.create_conversation(t.create_user(display_name="Ada").id)
        t.add_messages(chat.id, [{"role": "user", "content": f"otter number {i}"} for i in range(6)])
        t.store_memory("Ada counts otters", dedup=False)
        store.wait_for_indexing()
        items = _in_step(milvus, url, t.tenant_id)
    env = {
        "MNEMOSTORE_EMBEDDER": "hashing",
        "MNEMOSTORE_EMBEDDING_DIMENSION": "48",
        "MNEMOSTORE_VECTOR_BACKEND": "milvus",
        "MNEMOSTORE_MILVUS_URI": milvus.uri,
        "MNEMOSTORE_MILVUS_COLLECTION_PREFIX": milvus.prefix,
    }
    result = CliRunner().invoke(app, ["--database-url", url, "reindex"], env=env)
    assert result.exit_code == 0, result.output
    assert f"reindex: Milvus at {milvus.uri} holds the embeddings table's vectors" in result.stdout
    assert _in_step(milvus, url, t.tenant_id) == items
    old, new = milvus.collection_name("hashing-test-32", 32), milvus.collection_name("hashing-test-48", 48)
    assert {name: sum(len(b) for b in milvus.scan(name)) for name in milvus.names()} == {old: 0, new: 7}


def test_milvus_lite_restarted_on_its_folder_answers(tmp_path: Path, milvus_uri: str) -> None:
    """A collection found on disk by a new process is loaded before use (Milvus Lite keeps it released)."""
    manager = pytest.importorskip("milvus_lite.server_manager").server_manager_instance
    folder = str(tmp_path / "restart.db")
    tenant, item = uuid.uuid4(), uuid.uuid4()
    entity = VectorEntity(
        tenant_id=tenant, kind=ItemKind.MEMORY, item_id=item, vector=[1.0, 0.0], created_at=datetime.now(UTC)
    )
    for round_ in range(2):
        index = MilvusIndex(str(manager.start_and_get_uri(folder)))
        try:
            if round_ == 0:
                index.upsert("m", 2, [entity])
            assert index.search("m", 2, [1.0, 0.1], 5, tenant_id=tenant, kind=ItemKind.MEMORY)[0][0] == item
            assert index.count(tenant_id=tenant) == 1
        finally:
            index.close()
            manager.release_server(folder)


def test_worker_killed_between_milvus_and_commit_indexes_everything_once(tmp_path: Path, milvus: MilvusIndex) -> None:
    """A worker dies right after writing a batch to Milvus, before its transaction commits: its jobs stay
    claimed until their lease ends, then run again and write the same keys. One entity per item."""
    url = f"sqlite:///{tmp_path / 'crash.db'}"
    with MnemoStore(url, embedder=HashingEmbedder(16), **settings_of(milvus)) as store:
        store.migrate()
        t = store.tenant(store.create_tenant("crash").id)
        chat = t.create_conversation(t.create_user(display_name="u").id)
        t.add_messages(chat.id, [{"role": "user", "content": f"message number {i}"} for i in range(60)])
        script = tmp_path / "dies.py"
        script.write_text(
            textwrap.dedent(
                f"""
                import os
                from mnemostore import MnemoStore
                from mnemostore.search import HashingEmbedder, MilvusIndex

                written = MilvusIndex.upsert

                def upsert_then_die(self, *args, **kwargs):
                    written(self, *args, **kwargs)
                    os._exit(9)  # after Milvus took the batch, before the database commits it

                MilvusIndex.upsert = upsert_then_die
                with MnemoStore({url!r}, embedder=HashingEmbedder(16), embedding_batch_size=25,
                                index_lease_seconds=0.5, vector_backend="milvus", milvus_uri={milvus.uri!r},
                                milvus_collection_prefix={milvus.prefix!r}) as store:
                    store.wait_for_indexing()
                """
            )
        )
        env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
        died = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, timeout=120)
        assert died.returncode == 9, died.stderr.decode()[-2000:]
        assert sum(entities_per_item(milvus, t.tenant_id).values()) == 25  # in Milvus, not committed
        assert _table_items(url, t.tenant_id) == set()
        middle = t.indexing_status()
        assert (middle.running, middle.pending, middle.done) == (25, 35, 0)
        status = store.wait_for_indexing(timeout_seconds=60)  # the claims expire after 0.5 s
        assert (status.pending, status.running, status.done, status.failed) == (0, 0, 60, 0)
        assert len(_in_step(milvus, url, t.tenant_id)) == 60
        engine = sa.create_engine(Settings(database_url=url).database_url, poolclass=sa.NullPool)
        with engine.connect() as conn:
            attempts = conn.execute(sa.select(index_jobs.c.attempts, sa.func.count()).group_by(index_jobs.c.attempts))
            assert dict(attempts.all()) == {1: 35, 2: 25}
        engine.dispose()


async def test_the_async_store_indexes_searches_and_deletes_through_milvus(tmp_path: Path, milvus: MilvusIndex) -> None:
    url = f"sqlite:///{tmp_path / 'async.db'}"
    async with AsyncMnemoStore(url, embedder=HashingEmbedder(64), **settings_of(milvus)) as store:
        await store.migrate()
        t = store.tenant((await store.create_tenant("async")).id)
        kept = await t.store_memory("otters float on their backs", dedup=False)
        gone = await t.store_memory("otters crack shells on stones", dedup=False)
        # Read-your-writes: the search embeds the two waiting memories itself, into Milvus.
        found = await t.search("otters float on their backs", mode="semantic", limit=5)
        assert [h.id for h in found][:1] == [kept.id] and found.pending == 0
        await t.delete_memory(gone.id)
        assert set(entities_per_item(milvus, t.tenant_id)) == {kept.id}
