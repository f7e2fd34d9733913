"""The embedded vector index on its own: seq order, replacement, filtered search by allowed seqs (exact and
through the HNSW graph). Store-level behaviour (the database decides what exists) is in test_search_*.py."""

from __future__ import annotations

import uuid
from pathlib import Path

import numpy as np
import pytest

from mnemostore.search import _vector_index
from mnemostore.search._vector_index import VectorIndex, hnsw_available

BACKENDS = [pytest.param(False, id="exact"), pytest.param(True, id="hnsw")]


def unit(rng: np.random.Generator, n: int, dim: int = 16) -> np.ndarray:
    data = rng.standard_normal((n, dim)).astype(np.float32)
    return data / np.linalg.norm(data, axis=1, keepdims=True)


def build(
    use_hnsw: bool, n: int = 500, dim: int = 16, exact_max_rows: int = 8000
) -> tuple[VectorIndex, list[uuid.UUID], np.ndarray]:
    if use_hnsw and not hnsw_available():
        pytest.skip("hnswlib not installed")
    rng = np.random.default_rng(1)
    vectors = unit(rng, n, dim)
    keys = [uuid.uuid4() for _ in range(n)]
    index = VectorIndex(dim, use_hnsw=use_hnsw, ef_search=200, exact_max_rows=exact_max_rows)
    # Two reads, as the store does: seqs grow and are not contiguous.
    half = n // 2
    index.add(keys[:half], vectors[:half], [10 * (i + 1) for i in range(half)])
    index.add(keys[half:], vectors[half:], [10 * (i + 1) for i in range(half, n)])
    return index, keys, vectors


@pytest.mark.parametrize("use_hnsw", BACKENDS)
def test_nearest_first_with_cosine_scores(use_hnsw: bool) -> None:
    index, keys, vectors = build(use_hnsw)
    hits = index.search(vectors[42], 5)
    assert hits[0][0] == keys[42]
    assert hits[0][1] == pytest.approx(1.0, abs=1e-5)
    assert [score for _, score in hits] == sorted((score for _, score in hits), reverse=True)
    assert index.last_seq == 5000 and len(index) == 500


@pytest.mark.parametrize("use_hnsw", BACKENDS)
def test_replaced_vector_is_found_by_its_new_value_only(use_hnsw: bool) -> None:
    index, keys, vectors = build(use_hnsw)
    index.add([keys[7]], vectors[300:301], [6000])
    assert len(index) == 500
    hits = index.search(vectors[300], 2)
    assert {key for key, _ in hits} == {keys[7], keys[300]}
    assert keys[7] not in {key for key, _ in index.search(vectors[7], 3)}


@pytest.mark.parametrize("use_hnsw", BACKENDS)
def test_allowed_seqs_restrict_the_candidates_and_unknown_seqs_are_ignored(use_hnsw: bool) -> None:
    index, keys, vectors = build(use_hnsw)
    allowed_rows = list(range(0, 500, 7))
    seqs = [10 * (row + 1) for row in allowed_rows] + [5, 99_999]  # 5 and 99,999 name no vector here
    hits = index.search(vectors[0], 10, allowed_seqs=seqs)
    allowed = {keys[row] for row in allowed_rows}
    scores = vectors[allowed_rows] @ vectors[0]
    expected = {keys[allowed_rows[i]] for i in np.argsort(-scores)[:10]}
    assert {key for key, _ in hits} == expected
    assert {key for key, _ in hits} <= allowed
    assert index.search(vectors[0], 10, allowed_seqs=[1, 2, 3]) == []


def test_large_allowed_set_goes_through_the_graph_and_still_fills_k(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_vector_index, "EXACT_MAX_SHARE", 0.0)
    index, keys, vectors = build(True, n=2000, exact_max_rows=10)
    allowed_rows = [row for row in range(2000) if row % 3 == 0]
    hits = index.search(vectors[1], 20, allowed_seqs=[10 * (row + 1) for row in allowed_rows])
    # The query's own vector is not allowed: every hit must still come from the allowed third, and all 20 come.
    assert len(hits) == 20
    assert {key for key, _ in hits} <= {keys[row] for row in allowed_rows}


def test_replaced_rows_drop_out_of_allowed_sets() -> None:
    index, keys, vectors = build(False)
    index.add([keys[3]], vectors[3:4], [7000])
    # The old seq of key 3 (40) no longer names a live vector; its new seq does.
    assert index.search(vectors[3], 5, allowed_seqs=[40]) == []
    assert [key for key, _ in index.search(vectors[3], 5, allowed_seqs=[7000])] == [keys[3]]


@pytest.mark.parametrize("use_hnsw", BACKENDS)
def test_owner_filter_keeps_only_that_users_vectors(use_hnsw: bool) -> None:
    if use_hnsw and not hnsw_available():
        pytest.skip("hnswlib not installed")
    rng = np.random.default_rng(3)
    vectors = unit(rng, 300)
    keys = [uuid.uuid4() for _ in range(300)]
    users = [uuid.uuid4() for _ in range(3)]
    index = VectorIndex(16, use_hnsw=use_hnsw)
    index.add(keys, vectors, list(range(1, 301)), [users[i % 3] for i in range(300)])
    hits = index.search(vectors[0], 10, owner=users[1])
    mine = [i for i in range(300) if i % 3 == 1]
    expected = {keys[mine[i]] for i in np.argsort(-(vectors[mine] @ vectors[0]))[:10]}
    assert {key for key, _ in hits} == expected
    assert index.search(vectors[0], 10, owner=uuid.uuid4()) == []
    # Combined with allowed seqs: both must hold.
    both = index.search(vectors[0], 10, owner=users[1], allowed_seqs=[2, 3, 5])
    assert {key for key, _ in both} == {keys[1], keys[4]}


@pytest.mark.parametrize("use_hnsw", BACKENDS)
def test_saved_index_loads_and_answers_the_same(tmp_path: Path, use_hnsw: bool) -> None:
    index, keys, vectors = build(use_hnsw)
    index.add([keys[3]], vectors[9:10], [7000])  # a replaced row must stay replaced
    before = index.search(vectors[42], 10)
    index.save(tmp_path / "i.npz")
    loaded = VectorIndex.load(tmp_path / "i.npz", ef_search=200)
    assert loaded is not None and not loaded.changed
    assert (loaded.uses_hnsw, len(loaded), loaded.last_seq) == (use_hnsw, 500, 7000)
    assert loaded.search(vectors[42], 10) == before
    assert keys[3] not in {key for key, _ in loaded.search(vectors[3], 3)}
    # It keeps working as an index: new rows, replacements.
    loaded.add([uuid.uuid4()], vectors[5:6], [8000])
    assert len(loaded) == 501 and loaded.changed


def test_reconcile_drops_deleted_vectors_and_refuses_a_foreign_database(tmp_path: Path) -> None:
    index, keys, vectors = build(True)
    index.save(tmp_path / "i.npz")
    stored = [10 * (row + 1) for row in range(500) if row != 42]  # the item of row 42 was deleted since
    loaded = VectorIndex.load(tmp_path / "i.npz", ef_search=200)
    assert loaded is not None and loaded.reconcile(stored)
    assert len(loaded) == 499
    assert keys[42] not in {key for key, _ in loaded.search(vectors[42], 5)}
    # A database holding a vector the file does not know: the file is not this database's.
    again = VectorIndex.load(tmp_path / "i.npz", ef_search=200)
    assert again is not None and not again.reconcile([*stored, 15])
    assert VectorIndex.load(tmp_path / "missing.npz", ef_search=200) is None
