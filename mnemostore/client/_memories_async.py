"""Memories, knowledge and search: the client's part for ``/v1/memories``, ``/v1/knowledge`` and ``/v1/search``.

(async; ``_memories.py`` is generated from this file.)
"""

from __future__ import annotations

import math
import uuid
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, Final

from mnemostore.client import _endpoints as ep
from mnemostore.client._base_async import AsyncConnection, walk
from mnemostore.client._codec import decode, decode_list, decode_page, decode_results, jsonable, present
from mnemostore.client._endpoints import calls
from mnemostore.domain import KnowledgeChunk, MemoryKind, MemoryRecord, MemoryTier, MemoryVersion, Page, Role
from mnemostore.errors import InvalidInput, InvalidVector
from mnemostore.search import ItemKind, SearchMode, SearchResults

__all__ = ["AsyncMemoriesApi"]

# The kinds ``POST /v1/search`` searches (graph items have their own search, not served over HTTP).
ALL_KINDS: Final = frozenset({ItemKind.MESSAGE, ItemKind.MEMORY, ItemKind.KNOWLEDGE})


def search_body(
    query: str | None,
    *,
    mode: SearchMode | str,
    limit: int,
    min_score: float | None,
    weights: Mapping[str, float] | None,
    filters: Mapping[str, Any],
    vector: Sequence[float] | None = None,
    model: str | None = None,
) -> dict[str, Any]:
    """The body of ``POST /v1/search`` (and ``/v1/knowledge/search``), without the filters left None."""
    chosen = {name: jsonable(value) for name, value in filters.items() if value is not None}
    return present(
        query=query,
        vector=floats(vector),
        model=model,
        mode=mode,
        limit=limit,
        min_score=min_score,
        weights=weights,
        filters=chosen or None,
    )


def floats(vector: Sequence[float] | None, field: str = "vector") -> list[float] | None:
    """A caller's vector as JSON numbers; one JSON cannot carry (NaN, infinity) is refused here as the service
    would refuse it."""
    if vector is None:
        return None
    values = [float(x) for x in vector]
    for index, value in enumerate(values):
        if not math.isfinite(value):
            raise InvalidVector(f"{field}[{index}] must be a finite float32 number, got {value!r}")
    return values


def search_scope(kinds: Iterable[ItemKind | str]) -> str:
    """The ``scope`` of the search API for ``kinds``: one kind, or all three."""
    given = list(kinds)
    try:
        chosen = {ItemKind(kind) for kind in given}
    except ValueError:
        raise InvalidInput(f"search kinds {given!r}: each one of messages, memories, knowledge") from None
    if chosen == ALL_KINDS:
        return "all"
    if len(chosen) == 1 and chosen <= ALL_KINDS:
        return next(iter(chosen)).value
    raise InvalidInput(
        "the service searches messages, memories or knowledge, one kind or all three: pass kinds=[one of them], "
        "or all three"
    )


class AsyncMemoriesApi(AsyncConnection):
    """Long-term memories (mnemostore's ids), knowledge chunks, and search over messages, memories, knowledge."""

    @calls(ep.STORE_MEMORY)
    async def store_memory(
        self,
        content: str,
        *,
        user_id: uuid.UUID | str | None = None,
        agent_id: str | None = None,
        kind: MemoryKind | str = MemoryKind.FACT,
        tier: MemoryTier | str = MemoryTier.SHORT_TERM,
        importance: float = 0.5,
        source_message_ids: Sequence[uuid.UUID | str] = (),
        compression_level: int = 0,
        expires_at: datetime | None = None,
        metadata: Mapping[str, Any] | None = None,
        conversation_id: uuid.UUID | str | None = None,
        vector: Sequence[float] | None = None,
        model: str | None = None,
    ) -> MemoryRecord:
        """Store a memory, or merge it into the existing memory of the same user that says the same thing (which
        keeps the old text as a version). ``conversation_id``: the conversation it comes from; ``vector`` and
        ``model``: its embedding computed by you (never re-embedded by the service)."""
        body = present(
            conversation_id=conversation_id,
            vector=floats(vector),
            model=model,
            content=content,
            user_id=user_id,
            agent_id=agent_id,
            kind=kind,
            tier=tier,
            importance=importance,
            source_message_ids=list(source_message_ids),
            compression_level=compression_level,
            expires_at=expires_at,
            metadata=metadata,
        )
        return decode(MemoryRecord, await self._json(ep.STORE_MEMORY, body=body))

    @calls(ep.LIST_MEMORIES)
    async def retrieve_memories(
        self,
        *,
        user_id: uuid.UUID | str | None = None,
        tier: MemoryTier | str | None = None,
        limit: int = 20,
        cursor: str | None = None,
        conversation_id: uuid.UUID | str | None = None,
        query: str | None = None,
    ) -> Page[MemoryRecord]:
        """One page of memories, most important first, of one user, tier or conversation when given; pass
        ``next_cursor`` back as ``cursor``. With ``query``: the most relevant to it first (one page)."""
        params = {
            "user_id": user_id,
            "tier": tier,
            "limit": limit,
            "cursor": cursor,
            "conversation_id": conversation_id,
            "query": query,
        }
        return decode_page(MemoryRecord, await self._json(ep.LIST_MEMORIES, params=params))

    @calls(ep.LIST_MEMORIES)
    def iter_memories(
        self, *, user_id: uuid.UUID | str | None = None, tier: MemoryTier | str | None = None, page_size: int = 100
    ) -> AsyncIterator[MemoryRecord]:
        """Every memory ``retrieve_memories`` would page through, most important first, each once."""
        return walk(lambda cursor: self.retrieve_memories(user_id=user_id, tier=tier, limit=page_size, cursor=cursor))

    @calls(ep.GET_MEMORY)
    async def get_memory(self, memory_id: uuid.UUID | str) -> MemoryRecord:
        """A memory.

        Raises:
            MemoryNotFound: no such memory in this tenant.
        """
        return decode(MemoryRecord, await self._json(ep.GET_MEMORY, path={"memory_id": memory_id}))

    @calls(ep.GET_MEMORY_HISTORY)
    async def get_memory_history(self, memory_id: uuid.UUID | str) -> list[MemoryVersion]:
        """The memory's earlier states, oldest first (replaced by an update or a near-duplicate).

        Raises:
            MemoryNotFound: no such memory in this tenant.
        """
        return decode_list(MemoryVersion, await self._json(ep.GET_MEMORY_HISTORY, path={"memory_id": memory_id}))

    @calls(ep.DELETE_MEMORY)
    async def delete_memory(self, memory_id: uuid.UUID | str) -> None:
        """Delete a memory with its earlier versions.

        Raises:
            MemoryNotFound: no such memory in this tenant.
        """
        await self._send(ep.DELETE_MEMORY, path={"memory_id": memory_id})

    # -- knowledge ---------------------------------------------------------------------------------------------

    @calls(ep.UPSERT_KNOWLEDGE)
    async def upsert_knowledge(
        self,
        source: str,
        external_id: str,
        content: str,
        *,
        title: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        vector: Sequence[float] | None = None,
        model: str | None = None,
    ) -> KnowledgeChunk:
        """Insert or update the chunk keyed by (source, external_id); sending the same chunk again changes nothing.
        ``vector`` and ``model``: its embedding computed by you."""
        body = present(source=source, external_id=external_id, content=content, title=title, metadata=metadata)
        if vector is not None:
            body["vector"] = floats(vector)
        if model is not None:
            body["model"] = model
        return decode(KnowledgeChunk, await self._json(ep.UPSERT_KNOWLEDGE, body=body))

    @calls(ep.UPSERT_KNOWLEDGE_BULK)
    async def upsert_knowledge_chunks(
        self, source: str, chunks: Iterable[Mapping[str, Any]], *, model: str | None = None
    ) -> list[KnowledgeChunk]:
        """Upsert up to 1,000 chunks ``{"external_id", "content", "title"?, "metadata"?, "vector"?}`` of one source
        in one transaction (a later duplicate external_id wins); ``model`` names the vectors' model."""
        body: dict[str, Any] = {"source": source, "chunks": [jsonable(chunk) for chunk in chunks]}
        if model is not None:
            body["model"] = model
        return decode_list(KnowledgeChunk, await self._json(ep.UPSERT_KNOWLEDGE_BULK, body=body))

    @calls(ep.LIST_KNOWLEDGE)
    async def list_knowledge(self, source: str, *, limit: int = 100, cursor: str | None = None) -> Page[KnowledgeChunk]:
        """One page of the chunks of ``source``, by external id; pass ``next_cursor`` back as ``cursor``."""
        params = {"source": source, "limit": limit, "cursor": cursor}
        return decode_page(KnowledgeChunk, await self._json(ep.LIST_KNOWLEDGE, params=params))

    @calls(ep.LIST_KNOWLEDGE)
    def iter_knowledge(self, source: str, *, page_size: int = 100) -> AsyncIterator[KnowledgeChunk]:
        """Every chunk of ``source``, by external id, each once."""
        return walk(lambda cursor: self.list_knowledge(source, limit=page_size, cursor=cursor))

    @calls(ep.GET_KNOWLEDGE_CHUNK)
    async def get_knowledge_chunk(self, chunk_id: uuid.UUID | str) -> KnowledgeChunk:
        """A knowledge chunk.

        Raises:
            KnowledgeChunkNotFound: no such chunk in this tenant.
        """
        return decode(KnowledgeChunk, await self._json(ep.GET_KNOWLEDGE_CHUNK, path={"chunk_id": chunk_id}))

    @calls(ep.DELETE_KNOWLEDGE_CHUNK)
    async def delete_knowledge_chunk(self, chunk_id: uuid.UUID | str) -> None:
        """Delete a knowledge chunk.

        Raises:
            KnowledgeChunkNotFound: no such chunk in this tenant.
        """
        await self._send(ep.DELETE_KNOWLEDGE_CHUNK, path={"chunk_id": chunk_id})

    @calls(ep.SEARCH_KNOWLEDGE)
    async def search_knowledge(
        self,
        query: str,
        *,
        mode: SearchMode | str = SearchMode.AUTO,
        limit: int = 10,
        min_score: float | None = None,
        weights: Mapping[str, float] | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> SearchResults:
        """The knowledge chunks that best answer ``query``, best first (``search`` over knowledge only)."""
        filters = {"since": since, "until": until, "metadata": metadata}
        body = search_body(query, mode=mode, limit=limit, min_score=min_score, weights=weights, filters=filters)
        return decode_results(await self._json(ep.SEARCH_KNOWLEDGE, body=body))

    # -- search ------------------------------------------------------------------------------------------------

    @calls(ep.SEARCH)
    async def search(
        self,
        query: str | None = None,
        *,
        vector: Sequence[float] | None = None,
        model: str | None = None,
        mode: SearchMode | str = SearchMode.AUTO,
        kinds: Iterable[ItemKind | str] = (ItemKind.MESSAGE, ItemKind.MEMORY, ItemKind.KNOWLEDGE),
        user_id: uuid.UUID | str | None = None,
        agent_id: str | None = None,
        conversation_id: uuid.UUID | str | None = None,
        tier: MemoryTier | str | None = None,
        role: Role | str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        metadata: Mapping[str, Any] | None = None,
        min_score: float | None = None,
        limit: int = 10,
        weights: Mapping[str, float] | None = None,
    ) -> SearchResults:
        """Search the tenant's messages, memories and knowledge chunks, best first, as the store's ``search``.

        ``mode``: ``auto`` (hybrid where the service can run semantic search, else full text; ``results.mode``
        says which ran), ``semantic``, ``fulltext`` or ``hybrid``. ``kinds``: one of messages, memories,
        knowledge, or all three. The filters leave out a kind that cannot satisfy them (``role``: messages only).
        ``vector`` and ``model``: a query vector computed by you, searched against the items stored with vectors
        of that model.

        Raises:
            EmbedderNotConfigured: semantic or hybrid asked for where the service has no embedder.
            VectorSearchUnavailable: semantic or hybrid on a PostgreSQL without pgvector.
        """
        filters = {
            "user_id": user_id,
            "agent_id": agent_id,
            "conversation_id": conversation_id,
            "tier": tier,
            "role": role,
            "since": since,
            "until": until,
            "metadata": metadata,
        }
        body = search_body(
            query,
            mode=mode,
            limit=limit,
            min_score=min_score,
            weights=weights,
            filters=filters,
            vector=vector,
            model=model,
        )
        body["scope"] = search_scope(kinds)
        return decode_results(await self._json(ep.SEARCH, body=body))

    @calls(ep.SEARCH)
    async def search_similar_memories(
        self,
        query: str | None = None,
        *,
        embedding_vector: Sequence[float] | None = None,
        model: str | None = None,
        user_id: uuid.UUID | str | None = None,
        agent_id: str | None = None,
        tier: MemoryTier | str | None = None,
        conversation_id: uuid.UUID | str | None = None,
        min_score: float | None = None,
        threshold: float | None = None,
        limit: int = 10,
    ) -> SearchResults:
        """Memories closest in meaning to ``query`` or to ``embedding_vector`` (of ``model``), as the store's
        ``search_similar_memories``; ``threshold`` is another name of ``min_score``."""
        if threshold is not None and min_score is not None:
            raise InvalidInput("threshold and min_score are the same bound: give one of them")
        return await self.search(
            query,
            vector=embedding_vector,
            model=model,
            mode=SearchMode.SEMANTIC,
            kinds=(ItemKind.MEMORY,),
            user_id=user_id,
            agent_id=agent_id,
            tier=tier,
            conversation_id=conversation_id,
            min_score=threshold if threshold is not None else min_score,
            limit=limit,
        )
