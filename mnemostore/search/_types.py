"""What a search returns: plain dataclasses, no I/O."""

from __future__ import annotations

import enum
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from mnemostore.errors import InvalidInput

__all__ = ["IndexingStatus", "ItemKind", "SearchHit", "SearchMode", "SearchResults", "parse_kind", "parse_mode"]


class SearchMode(enum.StrEnum):
    """How a search ranks: ``auto`` (the default) runs ``hybrid`` where semantic search can run (an embedder, and
    pgvector on PostgreSQL) and ``fulltext`` elsewhere, so that a search answers on every install."""

    AUTO = "auto"
    SEMANTIC = "semantic"
    FULLTEXT = "fulltext"
    HYBRID = "hybrid"


class ItemKind(enum.StrEnum):
    """What a hit (and an indexing job) is about: the value is the name used in ``kinds=``."""

    MESSAGE = "messages"
    MEMORY = "memories"
    KNOWLEDGE = "knowledge"
    # Long-term items of agent frameworks (LangGraph's store): searched by their own API (search_graph_items).
    GRAPH_ITEM = "graph_items"


@dataclass(frozen=True, slots=True, kw_only=True)
class SearchHit:
    """One item found by ``search``, with the evidence of why it ranked where it did.

    Attributes:
        score: the value hits are ordered by: the cosine similarity (semantic), the text-match score
            (fulltext) or the reciprocal-rank-fusion score (hybrid), times the recency and importance boosts.
        scores: each retriever's own score, e.g. ``{"semantic": 0.71, "fulltext": 3.2}``; a retriever that did
            not find the item is absent.
        ranks: the 1-based rank each retriever gave the item.
        conversation_id, role: messages only. user_id: messages (the conversation's owner) and memories.
        agent_id, tier, importance: memories only. title, source, external_id: knowledge only (``external_id``:
            the chunk's key in its source, as given to ``upsert_knowledge``).
    """

    kind: ItemKind
    id: uuid.UUID
    content: str
    score: float
    scores: dict[str, float] = field(default_factory=dict)
    ranks: dict[str, int] = field(default_factory=dict)
    created_at: datetime
    metadata: dict[str, Any] = field(default_factory=dict)
    user_id: uuid.UUID | None = None
    conversation_id: uuid.UUID | None = None
    role: str | None = None
    agent_id: str | None = None
    tier: str | None = None
    importance: float | None = None
    title: str | None = None
    source: str | None = None
    external_id: str | None = None


class SearchResults(list[SearchHit]):
    """The hits of one search, best first (a list), and how they were found.

    Attributes:
        mode: the mode that ran (``auto`` resolved to ``hybrid`` or ``fulltext``).
        retrievers: the retrievers that ran, e.g. ``("fulltext", "semantic")``; a hybrid search whose query could
            not be embedded says ``("fulltext",)``.
        pending: the tenant's items that semantic search could not see yet (still waiting for the indexer: more
            than the search embeds itself, ``search_embeds_pending``); full text finds them. 0 in full-text mode.
    """

    mode: SearchMode
    retrievers: tuple[str, ...]
    pending: int

    def __init__(
        self, hits: Iterable[SearchHit] = (), *, mode: SearchMode, retrievers: Iterable[str], pending: int = 0
    ) -> None:
        super().__init__(hits)
        self.mode = mode
        self.retrievers = tuple(retrievers)
        self.pending = pending

    def __repr__(self) -> str:
        return (
            f"SearchResults({list.__repr__(self)}, mode={self.mode.value!r}, retrievers={self.retrievers!r}, "
            f"pending={self.pending})"
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class IndexingStatus:
    """The indexing backlog of a database (or a tenant): jobs by state, and the newest failures."""

    pending: int
    running: int
    done: int
    failed: int
    oldest_pending_at: datetime | None = None
    failures: list[dict[str, Any]] = field(default_factory=list)


def parse_mode(value: Any) -> SearchMode:
    try:
        return SearchMode(value)
    except ValueError:
        raise InvalidInput(f"search mode {value!r} is not one of: auto, semantic, fulltext, hybrid") from None


def parse_kind(value: Any) -> ItemKind:
    try:
        return ItemKind(value)
    except ValueError:
        raise InvalidInput(f"search kind {value!r} is not one of: messages, memories, knowledge") from None
