"""Search: embedders, the embedded vector index, statement builders and rankers (no I/O of its own).

The store's search API (``AsyncTenantStore.search``) and indexer live in ``mnemostore.service``; this package
holds what they are built from.
"""

from mnemostore.search._embedders import (
    Embedder,
    HashingEmbedder,
    OpenAICompatibleEmbedder,
    SentenceTransformerEmbedder,
    build_embedder,
)
from mnemostore.search._types import IndexingStatus, ItemKind, SearchHit, SearchMode

__all__ = [
    "Embedder",
    "HashingEmbedder",
    "IndexingStatus",
    "ItemKind",
    "OpenAICompatibleEmbedder",
    "SearchHit",
    "SearchMode",
    "SentenceTransformerEmbedder",
    "build_embedder",
]
