"""Filtered vector search returns the exact top-k whichever path answers it.

The embedded index answers a user scope from the owners it keeps, other filters from the vector seqs the
database allows; PostgreSQL ranks a small filtered set exactly and walks the HNSW graph (iterative scan) for a
large one. ``vector_exact_max_rows`` = 0 forces the graph, a large value the exact ranking: both must give the
scores numpy computes from the same embedder, and only rows that pass the filters.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa

from mnemostore import MnemoStore
from mnemostore.search import HashingEmbedder

WORDS = ["apple", "river", "stone", "cloud", "piano", "garden", "lamp", "violet", "copper", "harbor", "maple"]


def _texts(n: int) -> list[str]:
    return [f"{WORDS[i % 11]} {WORDS[(i * 3) % 11]} {WORDS[(i * 7 + 1) % 11]} note {i}" for i in range(n)]


def _expected(embedder: HashingEmbedder, query: str, texts: list[str], k: int) -> list[float]:
    vectors = np.asarray(embedder.embed(texts), dtype=np.float64)
    scores = vectors @ np.asarray(embedder.embed([query])[0], dtype=np.float64)
    return sorted(scores.tolist(), reverse=True)[:k]


@pytest.mark.parametrize("exact_max_rows", [0, 100_000], ids=["graph", "exact"])
def test_filtered_vector_search_is_exact_on_either_path(vector_url: str, exact_max_rows: int) -> None:
    embedder = HashingEmbedder(384)
    with MnemoStore(vector_url, embedder=embedder, vector_exact_max_rows=exact_max_rows) as store:
        t = store.tenant(store.create_tenant(f"paths-{uuid.uuid4().hex[:10]}").id)
        users = [t.create_user(display_name=f"u{i}").id for i in range(3)]
        texts = _texts(90)
        tiers = ["short_term", "long_term"]
        for i, text in enumerate(texts):
            t.store_memory(text, user_id=users[i % 3], tier=tiers[i % 2], dedup=False)
        store.wait_for_indexing(timeout_seconds=120)
        query = "river piano copper"

        mine = [text for i, text in enumerate(texts) if i % 3 == 1]
        hits = t.search(query, mode="semantic", kinds=["memories"], user_id=users[1], limit=5)
        assert len(hits) == 5
        assert {hit.user_id for hit in hits} == {users[1]}
        assert [hit.score for hit in hits] == pytest.approx(_expected(embedder, query, mine, 5), abs=1e-4)

        # A filter beyond the user: the embedded index asks the database which vectors it allows.
        mine_long = [text for i, text in enumerate(texts) if i % 3 == 1 and i % 2 == 1]
        hits = t.search(query, mode="semantic", kinds=["memories"], user_id=users[1], tier="long_term", limit=5)
        assert len(hits) == 5
        assert {(hit.user_id, hit.tier) for hit in hits} == {(users[1], "long_term")}
        assert [hit.score for hit in hits] == pytest.approx(_expected(embedder, query, mine_long, 5), abs=1e-4)

        # No filter: the whole tenant.
        hits = t.search(query, mode="semantic", kinds=["memories"], limit=5)
        assert [hit.score for hit in hits] == pytest.approx(_expected(embedder, query, texts, 5), abs=1e-4)


def test_embedded_index_is_saved_on_close_and_reused_only_while_it_matches(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'saved.db'}"
    embedder = HashingEmbedder(384)
    texts = _texts(40)
    options = {"embedder": embedder, "vector_index_persist_min_rows": 10}
    with MnemoStore(url, **options) as store:
        store.migrate()
        t = store.tenant(store.create_tenant("saved").id)
        user = t.create_user(display_name="u").id
        ids = [t.store_memory(text, user_id=user, dedup=False).id for text in texts]
        store.wait_for_indexing(timeout_seconds=60)
        first = [(hit.id, hit.score) for hit in t.search("river piano", mode="semantic", kinds=["memories"])]
    saved = list((tmp_path / "saved.db.vectors").glob("*.npz"))
    assert len(saved) == 1

    # Deleted while no process held the index: the reloaded index drops it, and the rest is unchanged.
    with MnemoStore(url, embedder=embedder, vector_index_persist_min_rows=0) as store:
        store.tenant(t.tenant_id).delete_memory(first[0][0])
    with MnemoStore(url, **options) as store:
        t = store.tenant(t.tenant_id)
        again = [(hit.id, hit.score) for hit in t.search("river piano", mode="semantic", kinds=["memories"])]
        (index,) = store.search_engine._indexes.values()
        assert len(index) == 39 and not index.changed  # loaded and reconciled, not rebuilt
        assert [score for _, score in again][:9] == pytest.approx([score for _, score in first[1:]])
        assert first[0][0] not in {i for i, _ in again}

    # The table no longer matches the file (a vector the file does not know, below its last seq): rebuilt.
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE embeddings SET seq = seq - 1 WHERE seq = (SELECT max(seq) FROM embeddings)"))
    engine.dispose()
    with MnemoStore(url, **options) as store:
        t = store.tenant(t.tenant_id)
        rebuilt = [(hit.id, hit.score) for hit in t.search("river piano", mode="semantic", kinds=["memories"])]
        (index,) = store.search_engine._indexes.values()
        assert len(index) == 39 and index.changed
        assert [score for _, score in rebuilt] == pytest.approx([score for _, score in again])
    assert len(ids) == 40

    # Deleting the tenant drops its index and saved files.
    with MnemoStore(url, **options) as store:
        store.tenant(t.tenant_id).search("river piano", mode="semantic", kinds=["memories"])
        store.delete_tenant(t.tenant_id)
        assert not store.search_engine._indexes
    assert not list((tmp_path / "saved.db.vectors").glob(f"{t.tenant_id.hex}-*"))
