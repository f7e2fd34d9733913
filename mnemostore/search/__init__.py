"""Search: embedders, the embedded vector index, query terms and filters, rankers (no I/O, no SQL of its own).

The store's search API (``AsyncTenantStore.search``) and indexer live in ``mnemostore.service``; the search
statements and repositories (SQL) in ``mnemostore.store``. This package holds what they are built from, and is
below ``store`` in the layering: it imports nothing of it.
"""

from mnemostore.search._embedders import (
    EXTRA_HINT,
    Embedder,
    HashingEmbedder,
    OpenAICompatibleEmbedder,
    SentenceTransformerEmbedder,
    build_embedder,
    embeddings_installed,
)
from mnemostore.search._milvus import (
    MILVUS_HINT,
    MilvusIndex,
    VectorEntity,
    entity_key,
    milvus_installed,
    pushed_filters,
)
from mnemostore.search._query import STOPWORDS, SearchFilters, query_terms
from mnemostore.search._rank import (
    DEFAULT_WEIGHTS,
    FUSION_DEPTH,
    NAMED_AUTHOR_BOOST,
    NEIGHBOUR_CANDIDATES,
    RELATIVE_FUSION_DEPTH,
    RETRIEVERS,
    RRF_K,
    boost,
    fulltext_quorum,
    fusion_weights_or_raise,
    named_author,
    reciprocal_rank_fusion,
    relative_score_fusion,
    semantic_is_flat,
    spread_to_neighbours,
    terms_matched,
    with_neighbour_similarity,
)
from mnemostore.search._types import (
    IndexingStatus,
    ItemKind,
    SearchHit,
    SearchMode,
    SearchResults,
    parse_kind,
    parse_mode,
)
from mnemostore.search._vector_index import VectorIndex, hnsw_available

__all__ = [
    "DEFAULT_WEIGHTS",
    "EXTRA_HINT",
    "FUSION_DEPTH",
    "MILVUS_HINT",
    "NAMED_AUTHOR_BOOST",
    "NEIGHBOUR_CANDIDATES",
    "RELATIVE_FUSION_DEPTH",
    "RETRIEVERS",
    "RRF_K",
    "STOPWORDS",
    "Embedder",
    "HashingEmbedder",
    "IndexingStatus",
    "ItemKind",
    "MilvusIndex",
    "OpenAICompatibleEmbedder",
    "SearchFilters",
    "SearchHit",
    "SearchMode",
    "SearchResults",
    "SentenceTransformerEmbedder",
    "VectorEntity",
    "VectorIndex",
    "boost",
    "build_embedder",
    "embeddings_installed",
    "entity_key",
    "fulltext_quorum",
    "fusion_weights_or_raise",
    "hnsw_available",
    "milvus_installed",
    "named_author",
    "parse_kind",
    "parse_mode",
    "pushed_filters",
    "query_terms",
    "reciprocal_rank_fusion",
    "relative_score_fusion",
    "semantic_is_flat",
    "spread_to_neighbours",
    "terms_matched",
    "with_neighbour_similarity",
]
