"""The embedded vector index: vectors of one (tenant, kind, model) in process memory, fed from the database.

SQLite has no vector index this process can load (the stdlib ``sqlite3`` here cannot load extensions, and
sqlite-vec's exact scan managed about 12 queries/s at 100k vectors), so the ``embeddings`` table is the durable
copy and this module answers the queries: an HNSW graph (hnswlib) when installed, else an exact numpy scan.
It never decides what exists. The store reads every row committed since the index last looked (``seq`` grows with
every vector written, in commit order) before each query, and joins the ids it returns back to the item tables
with the caller's filters, so a deleted item or another tenant's row cannot come out of it; the store over-fetches
and asks again when rows drop out.

Rows are kept in ``seq`` order, so the database can name the vectors a filter allows by their ``seq`` (plain
integers, one indexed join, no UUIDs to build) and the index finds their rows by binary search. Allowed sets up
to a few thousand rows are scanned exactly (a gather and one matrix product, well under a millisecond); larger
ones go through the HNSW graph with a filter predicate, which keeps exploring until it has ``k`` allowed
neighbours: filtering after an unfiltered top-k would silently return fewer hits than asked for.
"""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["VectorIndex", "hnsw_available"]

# Allowed sets up to this size (or this share of the index) are scanned exactly: cheaper than a filtered walk.
EXACT_MAX_ROWS = 8000
EXACT_MAX_SHARE = 0.05
# Batches at least this large are inserted into the graph on every core (the first read of a big tenant).
PARALLEL_ADD_ROWS = 2000


def hnsw_available() -> bool:
    try:
        import hnswlib  # noqa: F401
    except ImportError:
        return False
    return True


class VectorIndex:
    """Unit vectors keyed by item id, in ``seq`` order; ``search`` returns (id, cosine similarity), best first."""

    def __init__(
        self,
        dimension: int,
        *,
        use_hnsw: bool,
        ef_search: int = 100,
        m: int = 16,
        ef_construction: int = 200,
        exact_max_rows: int = EXACT_MAX_ROWS,
    ) -> None:
        self.dimension = dimension
        self.changed = False  # since it was built, loaded or saved
        self._m, self._ef_construction = m, ef_construction
        self._exact_max_rows = exact_max_rows
        self.last_seq = 0
        self._ef = ef_search
        self._lock = threading.Lock()
        self._size = 0  # rows used in the arrays below (alive or replaced)
        self._alive_count = 0
        # Item ids as 16 raw bytes: no per-item Python object for the garbage collector to walk (with 100k UUID
        # objects a full collection stalled searches by milliseconds).
        self._row_of: dict[bytes, int] = {}
        self._keys = np.zeros((0, 16), dtype=np.uint8)
        self._matrix = np.zeros((0, dimension), dtype=np.float32)
        self._seqs = np.zeros(0, dtype=np.int64)
        self._alive = np.zeros(0, dtype=bool)
        # The owning user of each row, as a small code: the common "this user's items" filter runs in memory.
        self._owners = np.zeros(0, dtype=np.int32)
        self._owner_codes: dict[uuid.UUID | None, int] = {None: 0}
        self._hnsw: Any = None
        if use_hnsw:
            import hnswlib

            self._hnsw = hnswlib.Index(space="ip", dim=dimension)
            self._hnsw.init_index(max_elements=1024, ef_construction=ef_construction, M=m)
            self._hnsw.set_num_threads(1)

    def __len__(self) -> int:
        return self._alive_count

    @property
    def uses_hnsw(self) -> bool:
        return self._hnsw is not None

    def add(
        self,
        keys: Sequence[uuid.UUID],
        vectors: Any,
        seqs: Sequence[int],
        owners: Sequence[uuid.UUID | None] | None = None,
    ) -> None:
        """Append the vectors of ``keys`` (rows of ``vectors``), read in ``seq`` order after ``last_seq``, owned by
        ``owners`` (user ids; an item's owner never changes); a key seen before is replaced."""
        if len(keys) == 0:
            return
        data = np.asarray(vectors, dtype=np.float32).reshape(len(keys), self.dimension)
        order = np.asarray(seqs, dtype=np.int64)
        with self._lock:
            start = self._size
            end = start + len(keys)
            self._grow(end)
            raw = [key.bytes for key in keys]
            for offset, key in enumerate(raw):
                old = self._row_of.get(key)
                if old is not None:
                    self._alive[old] = False
                    self._alive_count -= 1
                    if self._hnsw is not None:
                        self._hnsw.mark_deleted(old)
                self._row_of[key] = start + offset
            self._keys[start:end] = np.frombuffer(b"".join(raw), dtype=np.uint8).reshape(len(raw), 16)
            self._matrix[start:end] = data
            self._seqs[start:end] = order
            self._alive[start:end] = True
            codes = self._owner_codes
            self._owners[start:end] = [codes.setdefault(o, len(codes)) for o in owners] if owners else 0
            self._alive_count += len(keys)
            self._size = end
            if self._hnsw is not None:
                if end > self._hnsw.get_max_elements():
                    self._hnsw.resize_index(max(2 * self._hnsw.get_max_elements(), end))
                threads = (os.cpu_count() or 1) if len(keys) >= PARALLEL_ADD_ROWS else 1
                self._hnsw.add_items(data, np.arange(start, end), num_threads=threads)
            self.last_seq = max(self.last_seq, int(order[-1]))
            self.changed = True

    def _grow(self, rows: int) -> None:
        if rows <= self._matrix.shape[0]:
            return
        capacity = max(1024, 2 * rows)
        matrix = np.zeros((capacity, self.dimension), dtype=np.float32)
        matrix[: self._size] = self._matrix[: self._size]
        seqs = np.zeros(capacity, dtype=np.int64)
        seqs[: self._size] = self._seqs[: self._size]
        alive = np.zeros(capacity, dtype=bool)
        alive[: self._size] = self._alive[: self._size]
        owners = np.zeros(capacity, dtype=np.int32)
        owners[: self._size] = self._owners[: self._size]
        keys = np.zeros((capacity, 16), dtype=np.uint8)
        keys[: self._size] = self._keys[: self._size]
        self._matrix, self._seqs, self._alive, self._owners, self._keys = matrix, seqs, alive, owners, keys

    def search(
        self, query: Sequence[float], k: int, *, allowed_seqs: Any = None, owner: uuid.UUID | None = None
    ) -> list[tuple[uuid.UUID, float]]:
        """Up to ``k`` nearest ids with their cosine similarity. Only vectors named by ``allowed_seqs`` (the ``seq``
        of each vector a filter keeps) compete when it is given, only ``owner``'s when that is. Vectors the index
        has not read yet are not found."""
        q = np.asarray(query, dtype=np.float32)
        with self._lock:
            if self._alive_count == 0 or k <= 0:
                return []
            if allowed_seqs is None and owner is None:
                if self._hnsw is None:
                    return self._exact(q, np.flatnonzero(self._alive[: self._size]), k)
                return self._graph(q, min(k, self._alive_count), None)
            rows = np.arange(self._size) if allowed_seqs is None else self._rows_of(np.asarray(allowed_seqs, np.int64))
            if owner is not None:
                code = self._owner_codes.get(owner)
                rows = rows[self._owners[rows] == code] if code is not None else rows[:0]
            rows = rows[self._alive[rows]]
            if rows.size == 0:
                return []
            if self._hnsw is None or rows.size <= max(self._exact_max_rows, EXACT_MAX_SHARE * self._alive_count):
                return self._exact(q, rows, k)
            mask = np.zeros(self._size, dtype=bool)
            mask[rows] = True
            return self._graph(q, min(k, rows.size), lambda label: bool(mask[label]))

    def _rows_of(self, seqs: Any) -> Any:
        """Rows holding the vectors of ``seqs``; seqs the index does not hold are ignored."""
        known = self._seqs[: self._size]
        positions = np.searchsorted(known, seqs)
        inside = positions < self._size
        positions, seqs = positions[inside], seqs[inside]
        return positions[known[positions] == seqs]

    def _exact(self, q: Any, rows: Any, k: int) -> list[tuple[uuid.UUID, float]]:
        scores = self._matrix[rows] @ q
        k = min(k, rows.size)
        top = np.argpartition(-scores, k - 1)[:k] if k < rows.size else np.arange(rows.size)
        top = top[np.argsort(-scores[top])]
        return [(self._key(int(rows[i])), float(scores[i])) for i in top]

    def _graph(self, q: Any, k: int, predicate: Any) -> list[tuple[uuid.UUID, float]]:
        self._hnsw.set_ef(max(self._ef, k))
        found, distances = self._hnsw.knn_query(q, k=k, filter=predicate)
        # Inner-product space: distance = 1 - dot product, and the vectors are unit length.
        return [(self._key(int(label)), 1.0 - float(d)) for label, d in zip(found[0], distances[0], strict=True)]

    def _key(self, row: int) -> uuid.UUID:
        return uuid.UUID(bytes=self._keys[row].tobytes())

    # -- persistence: a large index is saved beside the database file, so a restart need not rebuild it ----------

    def save(self, path: Path) -> None:
        """Write the index to ``path`` (``.npz``) and its graph beside it; replaces an older copy atomically."""
        with self._lock:
            size = self._size
            token = uuid.uuid4().hex[:12]
            graph = path.with_name(f"{path.stem}.{token}.hnsw")
            if self._hnsw is not None:
                self._hnsw.save_index(str(graph))
            owners = np.zeros((len(self._owner_codes), 16), dtype=np.uint8)
            for owner, code in self._owner_codes.items():
                if owner is not None:
                    owners[code] = np.frombuffer(owner.bytes, dtype=np.uint8)
            scratch = path.with_name(f"{path.stem}.{token}.tmp.npz")
            np.savez(
                scratch,
                version=np.int64(1),
                dimension=np.int64(self.dimension),
                last_seq=np.int64(self.last_seq),
                graph=np.array(graph.name if self._hnsw is not None else ""),
                shape=np.array([self._m, self._ef_construction], dtype=np.int64),
                matrix=self._matrix[:size],
                seqs=self._seqs[:size],
                alive=self._alive[:size],
                owners=self._owners[:size],
                owner_table=owners,
                keys=self._keys[:size],
            )
            os.replace(scratch, path)
            for old in path.parent.glob(f"{path.stem}.*.hnsw"):
                if old != graph:
                    old.unlink(missing_ok=True)
            self.changed = False

    @classmethod
    def load(cls, path: Path, *, ef_search: int, exact_max_rows: int = EXACT_MAX_ROWS) -> VectorIndex | None:
        """The index saved at ``path``, or None when there is none or it cannot be read (it is then rebuilt)."""
        try:
            with np.load(path) as saved:
                if int(saved["version"]) != 1:
                    return None
                graph_name = str(saved["graph"])
                m, ef_construction = (int(x) for x in saved["shape"])
                index = cls(
                    int(saved["dimension"]),
                    use_hnsw=False,
                    ef_search=ef_search,
                    m=m,
                    ef_construction=ef_construction,
                    exact_max_rows=exact_max_rows,
                )
                size = int(saved["seqs"].shape[0])
                index._grow(size)
                index._matrix[:size] = saved["matrix"]
                index._seqs[:size] = saved["seqs"]
                index._alive[:size] = saved["alive"]
                index._owners[:size] = saved["owners"]
                index._keys[:size] = saved["keys"]
                table = saved["owner_table"]
                index._owner_codes = {None: 0} | {uuid.UUID(bytes=table[c].tobytes()): c for c in range(1, len(table))}
                index.last_seq = int(saved["last_seq"])
            index._size = size
            alive = np.flatnonzero(index._alive[:size])
            index._alive_count = int(alive.size)
            index._row_of = {index._keys[row].tobytes(): int(row) for row in alive}
            if graph_name:
                import hnswlib

                index._hnsw = hnswlib.Index(space="ip", dim=index.dimension)
                index._hnsw.load_index(str(path.with_name(graph_name)), max_elements=max(1024, index._matrix.shape[0]))
                index._hnsw.set_num_threads(1)
        except (OSError, ValueError, KeyError, RuntimeError, ImportError):
            return None
        return index

    def reconcile(self, stored_seqs: Any) -> bool:
        """Check a loaded index against the database: ``stored_seqs`` are the seqs of this (tenant, kind, model)'s
        vectors up to ``last_seq`` there. Vectors deleted since the save are dropped. False when the database holds
        a vector the index does not (the file belongs to another state of the database): rebuild it then."""
        seqs = np.asarray(stored_seqs, dtype=np.int64)
        with self._lock:
            rows = self._rows_of(seqs)
            if rows.size != np.unique(seqs).size or not self._alive[rows].all():
                return False
            keep = np.zeros(self._size, dtype=bool)
            keep[rows] = True
            for row in np.flatnonzero(self._alive[: self._size] & ~keep):
                self._alive[row] = False
                self._alive_count -= 1
                self._row_of.pop(self._keys[row].tobytes(), None)
                if self._hnsw is not None:
                    self._hnsw.mark_deleted(int(row))
            return True
