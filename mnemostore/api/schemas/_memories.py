"""Bodies of memories, knowledge chunks and search."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from mnemostore.api.schemas._common import (
    MAX_BATCH,
    JsonObject,
    ModelName,
    Name200,
    Name1000,
    Required500,
    Text,
    Timestamp,
    TokenCount,
    Vector,
    _Clean,
    _In,
    _Out,
)
from mnemostore.domain import MemoryKind, MemoryTier, Role


class MemoryCreate(_In):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "content": "Ada prefers hotels within walking distance of the old town",
                    "user_id": "0193a1c4-5d2e-7c3b-9f10-2b4c6d8e0f13",
                    "kind": "preference",
                    "tier": "long_term",
                    "importance": 0.8,
                }
            ]
        }
    )

    content: Text
    user_id: uuid.UUID | None = None
    agent_id: Name200 | None = None
    kind: MemoryKind = MemoryKind.FACT
    tier: MemoryTier = MemoryTier.SHORT_TERM
    importance: Annotated[float, Field(ge=0.0, le=1.0)] = 0.5
    source_message_ids: Annotated[list[uuid.UUID], Field(max_length=MAX_BATCH)] = []
    compression_level: TokenCount = 0
    expires_at: Timestamp | None = None
    metadata: JsonObject | None = None
    conversation_id: uuid.UUID | None = Field(
        default=None, description="the conversation it comes from (its user is the memory's when user_id is absent)"
    )
    vector: Vector | None = None
    model: ModelName | None = None


class MemoryOut(_Out):
    id: uuid.UUID
    tenant_id: uuid.UUID
    user_id: uuid.UUID | None
    agent_id: str | None
    content: str
    kind: MemoryKind
    tier: MemoryTier
    importance: float
    source_message_ids: list[str]
    compression_level: int
    expires_at: datetime | None
    metadata: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    recall_count: int = Field(0, description="how many times retrieval or search returned the memory")
    last_recalled_at: datetime | None = Field(None, description="when retrieval or search last returned it")
    conversation_id: uuid.UUID | None = None


class KnowledgeChunkIn(_In):
    external_id: Required500
    content: Text
    title: Name1000 | None = None
    metadata: JsonObject | None = None
    vector: Vector | None = None


class KnowledgeUpsert(KnowledgeChunkIn):
    """Insert or update the chunk keyed by (source, external_id); unchanged content writes nothing."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "source": "handbook",
                    "external_id": "travel-policy#3",
                    "content": "Hotels up to 180 EUR a night are approved.",
                    "title": "Travel policy: hotels",
                }
            ]
        }
    )

    source: Required500
    model: ModelName | None = None


class KnowledgeBulkUpsert(_In):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "source": "handbook",
                    "chunks": [
                        {"external_id": "travel-policy#1", "content": "Book trains for trips under 4 hours."},
                        {"external_id": "travel-policy#2", "content": "Economy class for flights under 6 hours."},
                    ],
                }
            ]
        }
    )

    source: Required500
    chunks: Annotated[list[KnowledgeChunkIn], Field(min_length=1, max_length=MAX_BATCH)]
    model: ModelName | None = None


class KnowledgeChunkOut(_Out):
    id: uuid.UUID
    tenant_id: uuid.UUID
    source: str
    external_id: str
    title: str | None
    content: str
    content_hash: str
    metadata: dict[str, Any]
    created_at: datetime
    updated_at: datetime


class SearchFilters(_In):
    """Filters of a search. One a kind cannot satisfy leaves that kind out: ``role`` applies to messages,
    ``conversation_id`` to messages and the conversation's memories, ``tier`` and ``agent_id`` to memories,
    ``user_id`` to the user's messages and memories."""

    user_id: uuid.UUID | None = None
    agent_id: Name200 | None = None
    conversation_id: uuid.UUID | None = None
    tier: MemoryTier | None = None
    role: Role | None = None
    since: Timestamp | None = None
    until: Timestamp | None = None
    metadata: dict[Annotated[str, _Clean], Annotated[str, _Clean] | int | float | bool | None] | None = Field(
        default=None, description="top-level metadata keys that must equal these values"
    )


class KnowledgeSearchRequest(_In):
    """Search knowledge chunks: semantic (by meaning), fulltext (by words) or hybrid (both, fused)."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"query": "hotel budget", "mode": "hybrid", "limit": 5}]})

    query: Annotated[str, Field(min_length=1, max_length=10_000), _Clean] | None = Field(
        default=None, description="the text to search for; give it, a vector, or both"
    )
    vector: Vector | None = Field(
        default=None,
        description="a query vector computed by the caller with `model`: semantic search over the items stored "
        "with vectors of that model (with `query` too, hybrid fuses it with full text)",
    )
    model: ModelName | None = None
    mode: Literal["auto", "semantic", "fulltext", "hybrid"] = Field(
        default="auto",
        description="auto (default): hybrid where semantic search can run (an embedder, and pgvector on "
        "PostgreSQL), fulltext elsewhere; semantic or hybrid asked for explicitly fail when they cannot run",
    )
    filters: SearchFilters | None = None
    limit: Annotated[int, Field(ge=1, le=100)] = 10
    min_score: float | None = Field(
        default=None, description="drop hits scoring lower before boosts (cosine, text score or fused score)"
    )
    weights: dict[Literal["semantic", "fulltext"], Annotated[float, Field(ge=0, allow_inf_nan=False)]] | None = Field(
        default=None,
        description='hybrid mode: how much each retriever counts in the fusion, default {"semantic": 1, "fulltext": 1}',
    )


class SearchRequest(KnowledgeSearchRequest):
    """Search messages, memories and knowledge: semantic (by meaning), fulltext (by words) or hybrid (both, fused
    by reciprocal rank). Full text finds an item once it is committed; semantic search once it is indexed."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "query": "what can't Ada eat?",
                    "mode": "hybrid",
                    "scope": "memories",
                    "filters": {"user_id": "0193a1c4-5d2e-7c3b-9f10-2b4c6d8e0f13"},
                    "limit": 5,
                }
            ]
        }
    )

    scope: Literal["messages", "memories", "knowledge", "all"] = "all"


class SearchHitOut(_Out):
    """One item found, with each retriever's score and rank (``scores``/``ranks``: ``semantic``, ``fulltext``)."""

    kind: Literal["messages", "memories", "knowledge"]
    id: uuid.UUID
    content: str
    score: float
    scores: dict[str, float]
    ranks: dict[str, int]
    created_at: datetime
    metadata: dict[str, Any]
    user_id: uuid.UUID | None = None
    conversation_id: uuid.UUID | None = None
    role: str | None = None
    agent_id: str | None = None
    tier: str | None = None
    importance: float | None = None
    title: str | None = None
    source: str | None = None


class SearchResultsOut(BaseModel):
    """The hits, best first, and how they were found: the ``mode`` that ran (``auto`` resolved) and the
    ``retrievers`` that ran (``fulltext``, ``semantic``)."""

    items: list[SearchHitOut]
    mode: Literal["semantic", "fulltext", "hybrid"]
    retrievers: list[Literal["semantic", "fulltext"]]
    pending: int = Field(
        description="items semantic search could not see yet (waiting for the indexer; full text finds them)"
    )


class MemoryVersionOut(_Out):
    """An earlier state of a memory, replaced at ``created_at`` by an update, a near-duplicate or the lifecycle."""

    id: uuid.UUID
    tenant_id: uuid.UUID
    memory_id: uuid.UUID
    content: str
    importance: float
    metadata: dict[str, Any]
    created_at: datetime
    tier: MemoryTier | None = Field(None, description="the memory's tier in that state (null: kept before 0010)")
    reason: str | None = Field(
        None, description="what replaced the state: update, merge, promote, demote or retire (null: before 0010)"
    )
