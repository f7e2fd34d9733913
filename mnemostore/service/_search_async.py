"""Search over messages, memories and knowledge (async; ``_search.py`` is generated from this file).

``AsyncSearchEngine`` belongs to one store: it owns the embedder (built on first use) and, on SQLite, the
in-process vector indexes (one per tenant, kind and model; see ``mnemostore.search._vector_index``); with
``vector_backend=milvus`` Milvus ranks instead, on either database (``_milvus``; ``_vectors_async``).
A search asks each retriever of its mode for a ranked list per kind, merges the kinds, fuses the retrievers with
reciprocal rank fusion in hybrid mode, applies the boosts, and reads the hits' rows once, with the filters
applied again: what is returned was committed, passes the filters and belongs to the tenant.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import sqlalchemy as sa

from mnemostore.config import Settings
from mnemostore.errors import (
    EmbedderNotConfigured,
    EmbedderUnavailable,
    VectorDimensionMismatch,
    VectorSearchUnavailable,
)
from mnemostore.search import (
    EXTRA_HINT,
    FUSION_DEPTH,
    NAMED_AUTHOR_BOOST,
    NEIGHBOUR_CANDIDATES,
    RELATIVE_FUSION_DEPTH,
    Embedder,
    ItemKind,
    SearchFilters,
    SearchHit,
    SearchMode,
    SearchResults,
    VectorIndex,
    boost,
    build_embedder,
    embeddings_installed,
    fulltext_quorum,
    fusion_weights_or_raise,
    hnsw_available,
    named_author,
    pushed_filters,
    query_terms,
    reciprocal_rank_fusion,
    relative_score_fusion,
    semantic_is_flat,
    spread_to_neighbours,
    with_neighbour_similarity,
)
from mnemostore.service._vectors_async import AsyncVectorMirror
from mnemostore.store import AsyncDatabase, AsyncSearchRepository, AsyncUnitOfWork, pg_search_settings

__all__ = ["AsyncSearchEngine"]

_log = logging.getLogger("mnemostore.search")

Key = tuple[str, uuid.UUID]
MAX_CANDIDATES = 1000
# How long a user's exact-or-graph choice is reused (it saves a count per search), and how many are kept.
EXACT_CHOICE_SECONDS = 60.0
MAX_EXACT_CHOICES = 10_000
# Milvus: filters it cannot evaluate that keep at most this many items send their ids along with the query.
MILVUS_MAX_IDS = 2000
MILVUS_MAX_K = 16_384


class AsyncSearchEngine:
    def __init__(
        self,
        db: AsyncDatabase,
        settings: Settings,
        embedder: Embedder | None = None,
        *,
        vectors: AsyncVectorMirror | None = None,
    ) -> None:
        self._db = db
        self._settings = settings
        self._vectors = vectors
        self._embedder = embedder
        self._embedder_built = embedder is not None
        self._lock = threading.Lock()
        self._indexes: dict[tuple[uuid.UUID, ItemKind, str], VectorIndex] = {}
        self._pg_vectors: bool | None = None
        # PostgreSQL: whether a user's vectors of a kind were few enough to rank exactly, and until when to trust
        # it (tenant, kind, model, user) -> (exact, monotonic deadline). Either choice returns right rows; a stale
        # one only costs speed (or, for at most EXACT_CHOICE_SECONDS, ranks by the graph a user who shrank).
        self._exact_choice: dict[tuple[uuid.UUID, ItemKind, str, uuid.UUID], tuple[bool, float]] = {}

    # -- the embedder ------------------------------------------------------------------------------------------

    def embedder(self) -> Embedder | None:
        """The configured embedder, or None when ``embedder=none`` (built once; the model loads on first use)."""
        with self._lock:
            if not self._embedder_built:
                default_missing = self._settings.embedder == "sentence-transformers" and not embeddings_installed()
                # Without the embeddings extra the store works on full text; semantic calls say what to install.
                self._embedder = None if default_missing else build_embedder(self._settings)
                self._embedder_built = True
            return self._embedder

    def require_embedder(self) -> Embedder:
        embedder = self.embedder()
        if embedder is None:
            if self._settings.embedder == "sentence-transformers":
                raise EmbedderNotConfigured(
                    f"semantic search needs the embeddings extra, which is not installed: {EXTRA_HINT}. "
                    "Full-text search (mode='fulltext') works without it"
                )
            raise EmbedderNotConfigured(
                "semantic search needs an embedder, and MNEMOSTORE_EMBEDDER is none: set it to "
                f"sentence-transformers ({EXTRA_HINT}) or openai; full-text search works without one"
            )
        return embedder

    def set_embedder(self, embedder: Embedder | None) -> None:
        with self._lock:
            self._embedder = embedder
            self._embedder_built = True
            self._indexes.clear()

    def forget_vector_support(self) -> None:
        """Look again whether PostgreSQL has pgvector (after ``reindex`` set it up)."""
        self._pg_vectors = None

    async def vectors_supported(self, uow: AsyncUnitOfWork) -> bool:
        """Whether the database can hold vectors: always on SQLite; on PostgreSQL when it has pgvector."""
        if self._db.dialect != "postgresql":
            return True
        if self._pg_vectors is None:
            self._pg_vectors = await uow.vector_column_is_vector()
        return self._pg_vectors

    async def embed_query(self, text: str) -> list[float]:
        embedder = self.require_embedder()
        if True:  # ASYNC
            return await asyncio.to_thread(embedder.embed_query, text)
        else:
            return embedder.embed_query(text)

    # -- search ------------------------------------------------------------------------------------------------

    async def search(
        self,
        tenant_id: uuid.UUID,
        query: str | None,
        *,
        vector: Sequence[float] | None = None,
        model: str | None = None,
        mode: SearchMode,
        kinds: Sequence[ItemKind],
        filters: SearchFilters,
        min_score: float | None,
        limit: int,
        recency_boost: float,
        importance_boost: float,
        weights: Mapping[str, float] | None = None,
        count_waiting: bool = False,
    ) -> SearchResults:
        """The tenant's items that match, best first, with the mode and retrievers that ran (see
        ``AsyncTenantStore.search``). ``auto`` never raises for a missing embedder or pgvector: it ranks by full
        text, and by full text alone when the query cannot be embedded. ``count_waiting``: ``pending`` is the
        number of the tenant's items still waiting for the indexer, counted in the search's own transaction
        (semantic and hybrid modes; 0 otherwise). ``vector`` and ``model``: a query vector the caller computed
        with ``model``, searched against the vectors of that model (no embedder needed); ``query``, if given too,
        is the text of full-text search."""
        fusion_weights = fusion_weights_or_raise(weights)
        kinds = [kind for kind in kinds if filters.applies_to(kind)]
        auto = mode is SearchMode.AUTO
        if auto:
            mode = await self._auto_mode(tenant_id, by_vector=vector is not None)
            if query is None:
                mode = SearchMode.SEMANTIC
        if not kinds:
            return SearchResults(mode=mode, retrievers=())
        semantic = mode in (SearchMode.SEMANTIC, SearchMode.HYBRID)
        fulltext = mode in (SearchMode.FULLTEXT, SearchMode.HYBRID)
        # Hybrid fuses each retriever's top `limit` (at least 10): deeper lists only add items that one retriever
        # ranks poorly, which outrank the other's answer once summed (see mnemostore.search._rank). The boosts
        # reorder, so they look further.
        if recency_boost or importance_boost:
            want = min(MAX_CANDIDATES, max(limit * 3, 30))
        else:
            want = max(limit, FUSION_DEPTH) if mode is SearchMode.HYBRID else limit
        # Messages in hybrid mode look deeper: when semantic search turns out unsure, the relative fusion takes
        # RELATIVE_FUSION_DEPTH of each list, and a message's neighbours may lift it from further down.
        deep = mode is SearchMode.HYBRID and ItemKind.MESSAGE in kinds
        fulltext_want = max(want, RELATIVE_FUSION_DEPTH) if deep else want
        semantic_want = max(want, NEIGHBOUR_CANDIDATES) if deep else want
        space: tuple[str, int] | None = None  # the model and dimension of the vectors searched
        if semantic and vector is not None:
            assert model is not None
            space = (model, len(vector))
        elif semantic:
            embedder = self.require_embedder()
            assert query is not None
            try:
                vector = await self.embed_query(query)
                space = (embedder.name, embedder.dimension)
            except EmbedderUnavailable as error:
                if not auto:
                    raise
                _log.warning("search: ranking by full text only, the query could not be embedded: %s", error)
                semantic, mode = False, SearchMode.FULLTEXT
        rankings: dict[str, list[Key]] = {}
        scores: dict[str, dict[Key, float]] = {}
        terms: list[str] = []
        pg_vectors = semantic and self._db.dialect == "postgresql"
        settings = pg_search_settings(self._settings.hnsw_ef_search, semantic_want) if pg_vectors else None
        waiting = 0
        stale: list[tuple[ItemKind, list[uuid.UUID]]] = []  # Milvus hits whose rows did not come back
        async with self._db.transaction(tenant_id, local_settings=settings) as uow:
            repo = uow.search
            rows: dict[Key, dict[str, Any]] = {}
            if fulltext and query is not None:
                terms = query_terms(query)
                found: list[tuple[Key, float]] = []
                for kind in kinds:
                    found += [((kind.value, i), s) for i, s in await repo.fulltext(kind, terms, filters, fulltext_want)]
                found.sort(key=lambda pair: -pair[1])
                rankings["fulltext"] = [key for key, _ in found[:fulltext_want]]
                scores["fulltext"] = dict(found[:fulltext_want])
            if semantic:
                assert space is not None and vector is not None
                if model is not None:
                    stored = await uow.index_jobs.model_dimension(space[0])
                    if stored is not None and stored != space[1]:
                        raise VectorDimensionMismatch(space[0], stored, space[1])
                found = []
                for kind in kinds:
                    found += [
                        ((kind.value, i), s)
                        for i, s in await self._semantic(
                            repo, uow, kind, space, vector, filters, semantic_want, rows, stale
                        )
                    ]
                found.sort(key=lambda pair: -pair[1])
                rankings["semantic"] = [key for key, _ in found[:semantic_want]]
                scores["semantic"] = dict(found[:semantic_want])
            if count_waiting and semantic:
                # PostgreSQL's vector query tells it (when it returned a row); else one count.
                known = repo.waiting
                waiting = known if known is not None else await uow.index_jobs.open_jobs()
            if mode is SearchMode.HYBRID and semantic_is_flat(rankings.get("semantic", []), scores.get("semantic", {})):
                base = await _relative_fusion(repo, rankings, scores, fusion_weights, want, deep, space, vector)
            else:
                rankings = {name: ranking[:want] for name, ranking in rankings.items()}
                scores = {name: {key: values[key] for key in rankings[name]} for name, values in scores.items()}
                base = _fuse(mode, rankings, scores, terms=len(terms), weights=fusion_weights)
            for kind in kinds:
                ids = list({i for k, i in base if k == kind.value and (k, i) not in rows})
                for item_id, row in (await repo.hydrate(kind, ids, filters)).items():
                    rows[(kind.value, item_id)] = row
        # Hybrid search of messages favours the one candidate author the query names (mnemostore.search._rank).
        author = None
        if deep and query is not None:
            message = ItemKind.MESSAGE.value
            authors = {_author_of(row) for key, row in rows.items() if key[0] == message}
            author = named_author(query, (name for name in authors if name is not None))
        if self._vectors is not None and space is not None:
            for kind, missed in stale:  # gone items, or filtered out: removed when stale
                await self._vectors.drop_stale(tenant_id, kind, space, missed)
        hits = _hits(
            base,
            rankings,
            scores,
            rows,
            min_score=min_score,
            limit=limit,
            recency=recency_boost,
            importance=importance_boost,
            author=author,
        )
        return SearchResults(hits, mode=mode, retrievers=rankings, pending=waiting)

    async def _auto_mode(self, tenant_id: uuid.UUID, *, by_vector: bool = False) -> SearchMode:
        """``hybrid`` where semantic search can run (an embedder or the caller's vector, and pgvector on
        PostgreSQL), else ``fulltext``."""
        if not by_vector and self.embedder() is None:
            return SearchMode.FULLTEXT
        if self._db.dialect == "postgresql":
            if self._pg_vectors is None:
                async with self._db.transaction(tenant_id) as uow:
                    self._pg_vectors = await uow.vector_column_is_vector()
            if not self._pg_vectors:
                return SearchMode.FULLTEXT
        return SearchMode.HYBRID

    async def _semantic(
        self,
        repo: AsyncSearchRepository,
        uow: AsyncUnitOfWork,
        kind: ItemKind,
        space: tuple[str, int],
        vector: Sequence[float],
        filters: SearchFilters,
        want: int,
        rows: dict[Key, dict[str, Any]],
        stale: list[tuple[ItemKind, list[uuid.UUID]]],
    ) -> list[tuple[uuid.UUID, float]]:
        """The ``want`` nearest items of ``kind`` that pass the filters among the vectors of ``space`` (model,
        dimension), best first; their rows go into ``rows`` (so the search reads them once). Milvus hits whose
        rows did not come back go into ``stale``."""
        model, dimension = space
        if self._vectors is not None:
            await self._require_vector_column(uow)
            return await self._milvus(repo, kind, space, vector, filters, want, rows, stale)
        if self._db.dialect == "postgresql":
            await self._require_vector_column(uow)
            choice_key = None
            exact = None
            if filters.user_id is not None:
                choice_key = (repo.tenant_id, kind, model, filters.user_id)
                with self._lock:
                    known = self._exact_choice.get(choice_key)
                if known is not None and known[1] > time.monotonic():
                    exact = known[0]
            found = await repo.pg_semantic(
                kind,
                vector,
                filters,
                model=model,
                dimension=dimension,
                limit=want,
                exact_max_rows=self._settings.vector_exact_max_rows,
                exact=exact,
            )
            if choice_key is not None and exact is None:
                with self._lock:
                    if len(self._exact_choice) >= MAX_EXACT_CHOICES:
                        self._exact_choice.clear()
                    self._exact_choice[choice_key] = (repo.ranked_exactly, time.monotonic() + EXACT_CHOICE_SECONDS)
            for item, _, row in found:
                rows[(kind.value, item)] = row
            return [(item, score) for item, score, _ in found]
        index = await self._sync_index(repo, kind, model, dimension)
        # The common "this user's items" scope is answered from the owners the index keeps; other filters ask
        # the database which vectors they allow. Either way the rows are read back with every filter applied.
        owner = filters.user_id if filters.only_user else None
        allowed = None
        if filters.narrows and owner is None:
            allowed = await repo.allowed_seqs(kind, filters, model=model)
        k = want
        while True:
            found_ids = index.search(vector, k, allowed_seqs=allowed, owner=owner)
            alive = await repo.hydrate(kind, [item for item, _ in found_ids], filters, model=model)
            hits = [(item, score) for item, score in found_ids if item in alive]
            # Rows deleted since they were indexed (or whose vector is no longer of this model) drop out here: ask
            # for more rather than return fewer.
            if len(hits) >= want or len(found_ids) < k or k >= len(index):
                for item, _ in hits[:want]:
                    rows[(kind.value, item)] = alive[item]
                return hits[:want]
            k = min(len(index), k * 4)

    async def _require_vector_column(self, uow: AsyncUnitOfWork) -> None:
        """On PostgreSQL, the embeddings table holds vectors only with pgvector (the durable copy with Milvus too)."""
        if self._db.dialect != "postgresql":
            return
        if self._pg_vectors is None:
            self._pg_vectors = await uow.vector_column_is_vector()
        if not self._pg_vectors:
            raise VectorSearchUnavailable(
                "semantic search needs the pgvector extension, which this PostgreSQL does not have: install "
                "pgvector on the server, then run `mnemostore reindex`; full-text search works meanwhile"
            )

    async def _milvus(
        self,
        repo: AsyncSearchRepository,
        kind: ItemKind,
        space: tuple[str, int],
        vector: Sequence[float],
        filters: SearchFilters,
        want: int,
        rows: dict[Key, dict[str, Any]],
        stale: list[tuple[ItemKind, list[uuid.UUID]]],
    ) -> list[tuple[uuid.UUID, float]]:
        """``_semantic`` by Milvus: the tenant, the kind and the filters on fields that never change go into the
        query (``pushed_filters``). Filters that only the database can check (a memory's tier, metadata, ...) send
        the ids they keep along when they are few, else the rows read back drop what they refuse, and the query
        asks for more until ``want`` rows came back or Milvus has no more."""
        assert self._vectors is not None
        model, dimension = space
        conditions, rest = pushed_filters(kind, filters)
        item_ids = None
        if rest:
            item_ids = await repo.allowed_items(kind, filters, model=model, cap=MILVUS_MAX_IDS)
        k = want
        while True:
            found = await self._vectors.search(
                model,
                dimension,
                vector,
                k,
                tenant_id=repo.tenant_id,
                kind=kind,
                conditions=conditions,
                item_ids=item_ids,
            )
            alive = await repo.hydrate(kind, [item for item, _ in found], filters, model=model)
            hits = [(item, score) for item, score in found if item in alive]
            if len(hits) >= want or len(found) < k or k >= MILVUS_MAX_K:
                break
            k = min(MILVUS_MAX_K, k * 4)
        # Hits the rows did not confirm, although Milvus applied every filter (or only ranked allowed ids): their
        # item is gone or its vector is of another model now, or it changed meanwhile (``drop_stale`` checks).
        missed = [item for item, _ in found if item not in alive]
        if missed and (not rest or item_ids is not None):
            stale.append((kind, missed))
        for item, _ in hits[:want]:
            rows[(kind.value, item)] = alive[item]
        return hits[:want]

    async def _sync_index(self, repo: AsyncSearchRepository, kind: ItemKind, model: str, dimension: int) -> VectorIndex:
        key = (repo.tenant_id, kind, model)
        with self._lock:
            index = self._indexes.get(key)
        if index is None or index.dimension != dimension:
            index = await self._saved_index(repo, kind, model, dimension)
            with self._lock:
                index = self._indexes[key] = index or self._new_index(dimension)
        new = await repo.vectors_since(kind, model=model, seq=index.last_seq)
        if new:
            items, seqs, vectors, owners = zip(*new, strict=True)
            matrix = np.frombuffer(b"".join(vectors), dtype=np.float32).reshape(len(new), -1)
            index.add(items, matrix, seqs, owners)
        return index

    def _new_index(self, dimension: int) -> VectorIndex:
        backend = self._settings.vector_backend
        return VectorIndex(
            dimension,
            use_hnsw=backend == "hnsw" or (backend == "auto" and hnsw_available()),
            ef_search=self._settings.hnsw_ef_search,
            exact_max_rows=self._settings.vector_exact_max_rows,
        )

    def _index_folder(self) -> Path | None:
        """Where indexes are saved: ``<database file>.vectors/``; None for in-memory databases, PostgreSQL, or when
        saving is off."""
        if self._db.dialect != "sqlite" or self._settings.vector_index_persist_min_rows <= 0:
            return None
        database = sa.engine.make_url(self._settings.database_url).database
        if not database or database == ":memory:" or database.startswith("file:"):
            return None
        return Path(f"{database}.vectors")

    def _index_file(self, tenant_id: uuid.UUID, kind: ItemKind, model: str) -> Path | None:
        folder = self._index_folder()
        if folder is None:
            return None
        return folder / f"{tenant_id.hex}-{kind.value}-{hashlib.sha256(model.encode()).hexdigest()[:12]}.npz"

    async def _saved_index(
        self, repo: AsyncSearchRepository, kind: ItemKind, model: str, dimension: int
    ) -> VectorIndex | None:
        """The index saved by an earlier process, if it still matches the table (see ``VectorIndex.reconcile``)."""
        path = self._index_file(repo.tenant_id, kind, model)
        if path is None or not path.exists():
            return None
        index = VectorIndex.load(
            path, ef_search=self._settings.hnsw_ef_search, exact_max_rows=self._settings.vector_exact_max_rows
        )
        if index is None or index.dimension != dimension:
            return None
        stored = await repo.vector_seqs_upto(kind, model=model, seq=index.last_seq)
        return index if index.reconcile(stored) else None

    def forget_tenant(self, tenant_id: uuid.UUID) -> None:
        """Drop a deleted tenant's in-process indexes and their saved files (this process's; another process's
        copy only holds ids that no longer resolve, and is dropped when that process deletes or restarts)."""
        with self._lock:
            for key in [key for key in self._indexes if key[0] == tenant_id]:
                del self._indexes[key]
        folder = self._index_folder()
        if folder is not None and folder.is_dir():
            for saved in folder.glob(f"{tenant_id.hex}-*"):
                saved.unlink(missing_ok=True)

    def save_indexes(self) -> None:
        """Save the large in-process indexes that changed beside the database file (the store does on close)."""
        with self._lock:
            indexes = list(self._indexes.items())
        for (tenant_id, kind, model), index in indexes:
            path = self._index_file(tenant_id, kind, model)
            if path is None or not index.changed or len(index) < self._settings.vector_index_persist_min_rows:
                continue
            try:
                path.parent.mkdir(exist_ok=True)
                index.save(path)
            except OSError as error:  # the next start rebuilds it: slower, never wrong
                _log.warning("could not save the vector index %s: %s", path, error)


async def _relative_fusion(
    repo: AsyncSearchRepository,
    rankings: dict[str, list[Key]],
    scores: dict[str, dict[Key, float]],
    weights: Mapping[str, float],
    want: int,
    deep: bool,
    space: tuple[str, int] | None,
    vector: Sequence[float] | None,
) -> dict[Key, float]:
    """Hybrid search when semantic search is unsure: relative score fusion of each list's best, full text leading
    (``mnemostore.search._rank``). With messages among the candidates (``deep``), each message's neighbours in its
    conversation count: a message's semantic score gains a share of their similarity to the query, and its fused
    score spreads to them, so the reply to a matching turn (or the turn it answers) can enter the result."""
    if not deep:
        cut = {name: ranking[:want] for name, ranking in rankings.items()}
        return relative_score_fusion(cut, scores, weights=weights)
    message = ItemKind.MESSAGE.value
    candidates = list(dict.fromkeys(i for ranking in rankings.values() for k, i in ranking if k == message))
    around = {
        (message, item): tuple(None if n is None else (message, n) for n in pair)
        for item, pair in (await repo.message_neighbours(candidates)).items()
    }
    neighbours: dict[Key, tuple[Key | None, Key | None]] = {key: (pair[0], pair[1]) for key, pair in around.items()}
    depth = max(want, RELATIVE_FUSION_DEPTH)
    lists = {"fulltext": rankings.get("fulltext", [])[:depth]} if "fulltext" in rankings else {}
    fusing = {"fulltext": scores.get("fulltext", {})}
    if "semantic" in rankings and space is not None and vector is not None:
        known = scores["semantic"]
        wanted = {n for pair in neighbours.values() for n in pair if n is not None and n not in known}
        similar = await repo.similarities(
            ItemKind.MESSAGE, [i for _, i in wanted], vector, model=space[0], dimension=space[1]
        )
        similarity = {**{(message, i): s for i, s in similar.items()}, **known}
        lifted = with_neighbour_similarity(known, neighbours, similarity)
        lists["semantic"] = sorted(rankings["semantic"], key=lambda key: -lifted[key])[:depth]
        fusing["semantic"] = lifted
    return spread_to_neighbours(relative_score_fusion(lists, fusing, weights=weights), neighbours)


def _fuse(
    mode: SearchMode,
    rankings: dict[str, list[Key]],
    scores: dict[str, dict[Key, float]],
    *,
    terms: int,
    weights: Mapping[str, float],
) -> dict[Key, float]:
    """The base score of every candidate: one retriever's own, or (hybrid, semantic search sure of something)
    reciprocal rank fusion where full-text hits count only when they contain most of the query."""
    if mode is not SearchMode.HYBRID:
        return dict(scores.get(mode.value, {}))
    fused = dict(rankings)
    if "fulltext" in fused:
        fused["fulltext"] = fulltext_quorum(fused["fulltext"], scores["fulltext"], terms=terms)
    return reciprocal_rank_fusion(fused, weights=weights)


def _hits(
    base: Mapping[Key, float],
    rankings: dict[str, list[Key]],
    scores: dict[str, dict[Key, float]],
    rows: dict[Key, dict[str, Any]],
    *,
    min_score: float | None,
    limit: int,
    recency: float,
    importance: float,
    author: str | None = None,
) -> list[SearchHit]:
    now = datetime.now(UTC)
    ranks = {name: {key: rank for rank, key in enumerate(ranking, start=1)} for name, ranking in rankings.items()}
    hits: list[SearchHit] = []
    for key, score in base.items():
        row = rows.get(key)
        if row is None or (min_score is not None and score < min_score):
            continue
        kind = ItemKind(key[0])
        weight = row.get("importance") if kind is ItemKind.MEMORY else None
        final = boost(
            score,
            created_at=row["created_at"],
            now=now,
            importance=weight,
            recency_boost=recency,
            importance_boost=importance,
        )
        if author is not None and kind is ItemKind.MESSAGE and _author_of(row) == author:
            final *= 1.0 + NAMED_AUTHOR_BOOST
        hits.append(
            SearchHit(
                kind=kind,
                id=key[1],
                content=row["content"],
                score=final,
                scores={name: values[key] for name, values in scores.items() if key in values},
                ranks={name: positions[key] for name, positions in ranks.items() if key in positions},
                created_at=row["created_at"],
                metadata=dict(row.get("metadata") or {}),
                user_id=row.get("user_id"),
                conversation_id=row.get("conversation_id"),
                role=row.get("role"),
                agent_id=row.get("agent_id"),
                tier=row.get("tier"),
                importance=weight,
                title=row.get("title"),
                source=row.get("source"),
                external_id=row.get("external_id") if kind is ItemKind.KNOWLEDGE else None,
            )
        )
    # Equal fused scores are common (the two lists swap two items): meaning breaks the tie, then the id.
    hits.sort(key=lambda hit: (-hit.score, hit.ranks.get("semantic", MAX_CANDIDATES + 1), hit.id))
    return hits[:limit]


def _author_of(row: Mapping[str, Any]) -> str | None:
    metadata = row.get("metadata") or {}
    author = metadata.get("author") if isinstance(metadata, Mapping) else None
    return author if isinstance(author, str) else None
