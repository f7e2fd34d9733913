"""The embedded vector index: vectors of one (tenant, kind, model) in process memory, fed from the database.

SQLite has no vector index this process can load (the stdlib ``sqlite3`` here cannot load extensions, and
sqlite-vec's exact scan managed about 12 queries/s at 100k vectors), so the ``embeddings`` table is the durable
copy and this module answers the queries: an HNSW graph (hnswlib) when installed, else an exact numpy scan.
It never decides what exists. The store reads every row committed since the index last looked (``seq`` grows with
every vector written) before each query, and joins the ids it returns back to the item tables with the caller's
filters, so a deleted item or another tenant's row cannot come out of it; the store over-fetches and asks again
when rows drop out.

Filtered queries (a user, a conversation) go exact over the allowed rows when they are few, and otherwise through
the HNSW graph with a filter predicate, which keeps exploring until it has ``k`` allowed neighbours: filtering
after an unfiltered top-k would silently return fewer hits than asked for.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Collection, Sequence
from typing import Any

import numpy as np

__all__ = ["VectorIndex", "hnsw_available"]

# Allowed sets up to this size (or this share of the index) are scanned exactly: cheaper than a filtered walk.
EXACT_MAX_ROWS = 4000
EXACT_MAX_SHARE = 0.05


def hnsw_available() -> bool:
    try:
        import hnswlib  # noqa: F401
    except ImportError:
        return False
    return True


class VectorIndex:
    """Unit vectors keyed by item id; ``search`` returns (id, cosine similarity), best first."""

    def __init__(self, dimension: int, *, use_hnsw: bool, ef_search: int = 100, m: int = 16) -> None:
        self.dimension = dimension
        self.last_seq = 0
        self._ef = ef_search
        self._lock = threading.Lock()
        self._labels: dict[uuid.UUID, int] = {}
        self._keys: list[uuid.UUID | None] = []
        self._matrix = np.zeros((0, dimension), dtype=np.float32)
        self._hnsw: Any = None
        if use_hnsw:
            import hnswlib

            self._hnsw = hnswlib.Index(space="ip", dim=dimension)
            self._hnsw.init_index(max_elements=1024, ef_construction=100, M=m, allow_replace_deleted=False)
            self._hnsw.set_num_threads(1)

    def __len__(self) -> int:
        return len(self._labels)

    @property
    def uses_hnsw(self) -> bool:
        return self._hnsw is not None

    def add(self, keys: Sequence[uuid.UUID], vectors: Any, seq: int) -> None:
        """Insert or replace the vectors of ``keys`` (rows of ``vectors``); ``seq``: the newest row read."""
        if len(keys) == 0:
            self.last_seq = max(self.last_seq, seq)
            return
        data = np.asarray(vectors, dtype=np.float32).reshape(len(keys), self.dimension)
        with self._lock:
            start = len(self._keys)
            labels = np.arange(start, start + len(keys))
            for key in keys:
                old = self._labels.get(key)
                if old is not None:
                    self._keys[old] = None
                    if self._hnsw is not None:
                        self._hnsw.mark_deleted(old)
            self._keys.extend(keys)
            for key, label in zip(keys, labels, strict=True):
                self._labels[key] = int(label)
            if start + len(keys) > self._matrix.shape[0]:
                grown = np.zeros((max(1024, 2 * (start + len(keys))), self.dimension), dtype=np.float32)
                grown[:start] = self._matrix[:start]
                self._matrix = grown
            self._matrix[start : start + len(keys)] = data
            if self._hnsw is not None:
                if start + len(keys) > self._hnsw.get_max_elements():
                    self._hnsw.resize_index(max(2 * self._hnsw.get_max_elements(), start + len(keys)))
                self._hnsw.add_items(data, labels)
            self.last_seq = max(self.last_seq, seq)

    def search(
        self, query: Sequence[float], k: int, *, allowed: Collection[uuid.UUID] | None = None
    ) -> list[tuple[uuid.UUID, float]]:
        """Up to ``k`` nearest ids (restricted to ``allowed`` when given), with their cosine similarity."""
        q = np.asarray(query, dtype=np.float32)
        with self._lock:
            if not self._labels or k <= 0:
                return []
            if allowed is not None:
                labels = np.fromiter((self._labels[key] for key in allowed if key in self._labels), dtype=np.int64)
                if labels.size == 0:
                    return []
                if self._hnsw is None or labels.size <= max(EXACT_MAX_ROWS, EXACT_MAX_SHARE * len(self._labels)):
                    return self._exact(q, labels, k)
                wanted = set(labels.tolist())
                return self._graph(q, min(k, labels.size), wanted.__contains__)
            if self._hnsw is None:
                alive = np.fromiter(self._labels.values(), dtype=np.int64)
                return self._exact(q, alive, k)
            return self._graph(q, min(k, len(self._labels)), None)

    def _exact(self, q: Any, labels: Any, k: int) -> list[tuple[uuid.UUID, float]]:
        scores = self._matrix[labels] @ q
        k = min(k, labels.size)
        top = np.argpartition(-scores, k - 1)[:k] if k < labels.size else np.arange(labels.size)
        top = top[np.argsort(-scores[top])]
        return [(self._key(int(labels[i])), float(scores[i])) for i in top]

    def _graph(self, q: Any, k: int, predicate: Any) -> list[tuple[uuid.UUID, float]]:
        self._hnsw.set_ef(max(self._ef, k))
        found, distances = self._hnsw.knn_query(q, k=k, filter=predicate)
        # Inner-product space: distance = 1 - dot product, and the vectors are unit length.
        return [(self._key(int(label)), 1.0 - float(d)) for label, d in zip(found[0], distances[0], strict=True)]

    def _key(self, label: int) -> uuid.UUID:
        key = self._keys[label]
        assert key is not None
        return key
