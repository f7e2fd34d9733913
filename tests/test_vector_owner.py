"""Vectors carry their owner (``embeddings.owner_id``, migration 0009), and a user-filtered vector search ranks only
that user's items, exactly as numpy does, on either path.

The indexer writes the owner beside each vector (a memory's user, a message's conversation's user, none for
knowledge). On PostgreSQL a user's items are ranked exactly through ``ix_embeddings_owner`` when they are few and
through the HNSW graph (iterative scan, filtered to the owner) otherwise; ``vector_exact_max_rows`` = 0 forces the
graph, a large value lets the count choose the exact ranking. The embedded index answers from the owners it reads
from the same column.
"""

from __future__ import annotations

import uuid

import numpy as np
import pytest
import sqlalchemy as sa

from mnemostore import MnemoStore, Settings
from mnemostore.search import HashingEmbedder, ItemKind
from mnemostore.store._search_statements import owned_exact_statement
from mnemostore.store.tables import embeddings

WORDS = ["apple", "river", "stone", "cloud", "piano", "garden", "lamp", "violet", "copper", "harbor", "maple"]
QUERY = "river piano copper"


def _text(i: int) -> str:
    return f"{WORDS[i % 11]} {WORDS[(i * 3) % 11]} {WORDS[(i * 7 + 1) % 11]} note {i}"


def _ranked(embedder: HashingEmbedder, query: str, texts: list[str], k: int) -> list[float]:
    vectors = np.asarray(embedder.embed(texts), dtype=np.float64)
    scores = vectors @ np.asarray(embedder.embed([query])[0], dtype=np.float64)
    return sorted(scores.tolist(), reverse=True)[:k]


def _owners(url: str, tenant_id: uuid.UUID) -> dict[tuple[str, uuid.UUID], uuid.UUID | None]:
    """(kind, item) -> owner of the tenant's vectors, read as the server's admin (no tenant scope)."""
    engine = sa.create_engine(Settings(database_url=url).database_url, poolclass=sa.NullPool)
    try:
        with engine.connect() as conn:
            e = embeddings.c
            rows = conn.execute(sa.select(e.item_kind, e.item_id, e.owner_id).where(e.tenant_id == tenant_id)).all()
    finally:
        engine.dispose()
    return {(row.item_kind, row.item_id): row.owner_id for row in rows}


def test_the_indexer_writes_each_vectors_owner(vector_url: str) -> None:
    with MnemoStore(vector_url, embedder=HashingEmbedder(384)) as store:
        t = store.tenant(store.create_tenant(f"owner-{uuid.uuid4().hex[:10]}").id)
        alice, bob = (t.create_user(display_name=name).id for name in ("alice", "bob"))
        mine = t.store_memory("alice likes the river", user_id=alice, dedup=False)
        nobody = t.store_memory("a memory of no user", dedup=False)
        conversation = t.create_conversation(bob)
        said = t.add_message(conversation.id, role="user", content="bob plays the piano")
        (chunk,) = t.upsert_knowledge_chunks("manual", [{"external_id": "c1", "content": "copper wiring"}])
        store.wait_for_indexing(timeout_seconds=120)
        assert _owners(vector_url, t.tenant_id) == {
            ("memory", mine.id): alice,
            ("memory", nobody.id): None,
            ("message", said.id): bob,
            ("knowledge", chunk.id): None,
        }


@pytest.mark.parametrize("exact_max_rows", [0, 100_000], ids=["graph", "exact"])
def test_user_filter_ranks_only_the_users_items(vector_url: str, exact_max_rows: int) -> None:
    embedder = HashingEmbedder(384)
    with MnemoStore(vector_url, embedder=embedder, vector_exact_max_rows=exact_max_rows) as store:
        t = store.tenant(store.create_tenant(f"owner-{uuid.uuid4().hex[:10]}").id)
        users = [t.create_user(display_name=f"u{i}").id for i in range(3)]
        memories: dict[uuid.UUID, list[str]] = {user: [] for user in users}
        messages: dict[uuid.UUID, list[str]] = {user: [] for user in users}
        conversations = {user: t.create_conversation(user).id for user in users}
        for i in range(90):
            user = users[i % 3]
            t.store_memory(_text(i), user_id=user, dedup=False)
            memories[user].append(_text(i))
            t.add_message(conversations[user], role="user", content=_text(i + 200))
            messages[user].append(_text(i + 200))
        t.store_memory(_text(1), dedup=False)  # no user: never in a user's results
        store.wait_for_indexing(timeout_seconds=120)

        for user in users:
            hits = t.search(QUERY, mode="semantic", kinds=["memories"], user_id=user, limit=7)
            assert [hit.user_id for hit in hits] == [user] * 7
            assert [hit.score for hit in hits] == pytest.approx(_ranked(embedder, QUERY, memories[user], 7), abs=1e-4)

            hits = t.search(QUERY, mode="semantic", kinds=["messages"], user_id=user, limit=7)
            assert {hit.conversation_id for hit in hits} == {conversations[user]}
            assert [hit.score for hit in hits] == pytest.approx(_ranked(embedder, QUERY, messages[user], 7), abs=1e-4)

            # Both kinds at once, best first across them.
            hits = t.search(QUERY, mode="semantic", kinds=["memories", "messages"], user_id=user, limit=10)
            both = memories[user] + messages[user]
            assert [hit.score for hit in hits] == pytest.approx(_ranked(embedder, QUERY, both, 10), abs=1e-4)
            assert {hit.user_id for hit in hits} == {user}

        # The user and a filter beyond it: the owner narrows the vectors, the item's filters still apply.
        hits = t.search(QUERY, mode="semantic", kinds=["memories"], user_id=users[0], tier="short_term", limit=5)
        assert all(hit.user_id == users[0] and hit.tier == "short_term" for hit in hits)

        # A deleted item drops out of its owner's results at once.
        first = t.search(QUERY, mode="semantic", kinds=["memories"], user_id=users[1], limit=3)
        t.delete_memory(first[0].id)
        again = t.search(QUERY, mode="semantic", kinds=["memories"], user_id=users[1], limit=3)
        assert first[0].id not in {hit.id for hit in again}
        assert [hit.score for hit in again[:2]] == pytest.approx([hit.score for hit in first[1:]], abs=1e-4)


def test_a_users_vectors_are_ranked_exactly_while_few(pgvector_url: str) -> None:
    """The exact-or-graph decision: at most min(max_rows, max(500, sqrt(90 * table rows))) vectors of the user."""
    with MnemoStore(pgvector_url, embedder=HashingEmbedder(384)) as store:
        t = store.tenant(store.create_tenant(f"owner-{uuid.uuid4().hex[:10]}").id)
        user = t.create_user(display_name="u").id
        for i in range(30):
            t.store_memory(_text(i), user_id=user, dedup=False)
        store.wait_for_indexing(timeout_seconds=120)
    engine = sa.create_engine(Settings(database_url=pgvector_url).database_url, poolclass=sa.NullPool)
    try:
        with engine.connect() as conn:

            def exact(owner: uuid.UUID, max_rows: int) -> bool:
                statement = owned_exact_statement(ItemKind.MEMORY, t.tenant_id, owner, max_rows=max_rows)
                return bool(conn.execute(statement).scalar_one())

            assert exact(user, 8000) is True
            assert exact(user, 30) is True
            assert exact(user, 29) is False
            assert exact(uuid.uuid4(), 1) is True  # no vectors at all
    finally:
        engine.dispose()
