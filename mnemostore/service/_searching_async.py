"""Search over the tenant's messages, memories and knowledge, and its indexing state."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from mnemostore.domain import (
    MemoryTier,
    Role,
)
from mnemostore.errors import (
    InvalidInput,
)
from mnemostore.search import IndexingStatus, ItemKind, SearchFilters, SearchMode, SearchResults, parse_kind, parse_mode
from mnemostore.service import _validation as v
from mnemostore.service._inputs import as_id
from mnemostore.service._scope_async import AsyncTenantScope


class AsyncSearching(AsyncTenantScope):
    """Semantic, full-text and hybrid search within one tenant."""

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
        source: str | None = None,
        min_score: float | None = None,
        limit: int = 10,
        recency_boost: float = 0.0,
        importance_boost: float = 0.0,
        weights: Mapping[str, float] | None = None,
    ) -> SearchResults:
        """Search the tenant's messages, memories and knowledge chunks.

        Args:
            query: the text to search for (full text, and embedded by the store's embedder for semantic search
                unless ``vector`` is given).
            vector, model: a query vector computed by the caller with the model named ``model`` (default: the
                store's embedder): semantic search then ranks the items stored with vectors of that model
                (``store_memory(..., vector=, model=)``, ``upsert_knowledge(..., vector=, model=)``), and needs
                no embedder. Without ``query`` the mode is semantic (``auto`` too); with it, ``hybrid`` fuses the
                vector's ranking with full-text search of the query.
            mode: ``auto`` (the default: ``hybrid`` where semantic search can run, that is with an embedder and,
                on PostgreSQL, pgvector; ``fulltext`` elsewhere, so it answers on every install), ``semantic``
                (embedding similarity), ``fulltext`` (words, stemmed; any may match, items matching more of them
                first) or ``hybrid`` (both, fused by weighted reciprocal rank fusion; full-text hits count only
                when they contain more than half of the query's words; when no semantic hit stands out, by
                their min-max normalised scores instead, full text weighted 0.6: ``mnemostore.search._rank``).
                Full text finds an item as soon as it is committed; semantic search once it is embedded: by the
                indexer, or by this search itself when the tenant has at most ``search_embeds_pending`` items
                waiting (read-your-writes without a worker).
            kinds: any of ``messages``, ``memories``, ``knowledge`` (and ``graph_items``, the items of
                ``put_graph_item``, which ``search_graph_items`` searches by namespace).
            user_id, agent_id, conversation_id, tier, role, since, until, metadata, source: filters. A filter that a
                kind cannot satisfy leaves that kind out (role: messages; conversation_id: messages and memories of
                the conversation; tier and agent_id: memories; source: knowledge chunks of that source; user_id:
                messages of the user's conversations and the user's memories). ``metadata`` matches top-level keys
                to equal scalar values.
            min_score: drop hits whose score before boosts is lower: the cosine similarity in semantic mode, the
                text score in fulltext mode (the share of the query's words matched, plus the text rank over the
                number of words: 0 to 1), the fused score in hybrid mode (at most ``sum(weights) / 61`` by
                rank fusion, 1 by score fusion).
            recency_boost, importance_boost: multiply the score by ``1 + recency_boost * 0.5 ** (age_days / 30)``
                and ``1 + importance_boost * importance`` (memories).
            weights: hybrid mode: how much each retriever's ranking counts in the fusion, ``{"semantic": 1.0,
                "fulltext": 1.0}`` by default; a missing retriever keeps its default. Ignored in other modes.

        Each memory among the hits counts as recalled (``MemoryRecord.recall_count``, ``last_recalled_at``).

        Returns:
            Up to ``limit`` hits, best first (a list); each carries ``scores`` and ``ranks`` per retriever, and
            the results say which ``mode`` and ``retrievers`` ran, and how many items semantic search could not
            see yet (``pending``).

        Raises:
            EmbedderNotConfigured: semantic or hybrid mode asked for without an embedder (names the extra).
            EmbedderUnavailable: semantic or hybrid mode asked for, and the embedder fails.
            VectorSearchUnavailable: semantic or hybrid mode asked for on a PostgreSQL without pgvector.
            InvalidVector: ``vector`` is not a list of finite numbers, or has no ``model`` to go with it;
                VectorDimensionMismatch: its dimension differs from the stored vectors of ``model``.
        """
        search_mode = parse_mode(mode)
        query_vector: list[float] | None = None
        model_name: str | None = None
        if vector is not None:
            query_vector, model_name = self._caller_vector(vector, model)
            if search_mode is SearchMode.FULLTEXT:
                raise InvalidInput("mode='fulltext' searches words, not vectors: drop vector= or use mode='semantic'")
        elif model is not None:
            raise InvalidInput("model= names the model of vector=: pass the query vector too (or drop model=)")
        if query is None:
            if query_vector is None:
                raise InvalidInput("search needs a query (the words or question), a vector (vector=), or both")
            if search_mode is SearchMode.HYBRID:
                raise InvalidInput("hybrid mode fuses semantic and full-text search: pass the query text too")
        else:
            v.check_text(query, "query")
            if not query.strip():
                raise InvalidInput("query is empty: pass the words or the question to search for")
        v.check_limit(limit)
        kind_list = list(dict.fromkeys(parse_kind(kind) for kind in kinds))
        filters = self._filters(user_id, agent_id, conversation_id, tier, role, since, until, metadata, source)
        for value, name in ((recency_boost, "recency_boost"), (importance_boost, "importance_boost")):
            if v.check_number(value, name) < 0:
                raise InvalidInput(f"{name} must be 0 or more, got {value!r}")
        if min_score is not None:
            v.check_number(min_score, "min_score")
        await self._runtime.ensure_schema()
        # Read-your-writes: the search counts the tenant's items waiting for the indexer in its own transaction;
        # when a few wait, they are embedded here and the search runs again (rare: right after a write, with no
        # indexer keeping up). The common case pays one statement, not a transaction of its own.
        # A caller's vectors are written with their items: none of them waits (unless it is the embedder's model).
        embedder = self._runtime.search_engine.embedder()
        count_waiting = (
            search_mode is not SearchMode.FULLTEXT
            and embedder is not None
            and (model_name is None or model_name == embedder.name)
        )
        for attempt in (1, 2):
            results = await self._runtime.search_engine.search(
                self.tenant_id,
                query,
                vector=query_vector,
                model=model_name,
                mode=search_mode,
                kinds=kind_list,
                filters=filters,
                min_score=min_score,
                limit=limit,
                recency_boost=float(recency_boost),
                importance_boost=float(importance_boost),
                weights=weights,
                count_waiting=count_waiting,
            )
            if attempt == 2 or not await self._runtime.embed_few_waiting(self.tenant_id, results.pending):
                break
        await self._recalled(hit.id for hit in results if hit.kind is ItemKind.MEMORY)
        return results

    def _filters(
        self,
        user_id: uuid.UUID | str | None,
        agent_id: str | None,
        conversation_id: uuid.UUID | str | None,
        tier: MemoryTier | str | None,
        role: Role | str | None,
        since: datetime | None,
        until: datetime | None,
        metadata: Mapping[str, Any] | None,
        source: str | None = None,
    ) -> SearchFilters:
        wanted = self._json(metadata, "metadata")
        for key, value in wanted.items():
            if isinstance(value, dict | list):
                raise InvalidInput(f"metadata filter {key!r} must be a string, number, boolean or null")
        return SearchFilters(
            user_id=as_id(user_id, "user_id") if user_id is not None else None,
            agent_id=v.check_name(agent_id, "agent_id", max_len=200),
            conversation_id=as_id(conversation_id, "conversation_id") if conversation_id is not None else None,
            tier=v.check_enum(MemoryTier, tier).value if tier is not None else None,
            role=v.check_enum(Role, role).value if role is not None else None,
            since=v.check_time(since, "since"),
            until=v.check_time(until, "until"),
            metadata=wanted,
            source=v.check_name(source, "source", max_len=500),
        )

    async def semantic_search(
        self,
        query: str | None = None,
        *,
        kinds: Iterable[ItemKind | str] = (ItemKind.MESSAGE, ItemKind.MEMORY, ItemKind.KNOWLEDGE),
        limit: int = 10,
        **filters: Any,
    ) -> SearchResults:
        """``search(query, mode="semantic", ...)``: items by meaning (see ``search`` for the filters)."""
        return await self.search(query, mode=SearchMode.SEMANTIC, kinds=kinds, limit=limit, **filters)

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
        """Memories closest in meaning to ``query`` or to ``embedding_vector`` (a vector of ``model``, as in
        ``search(vector=, model=)``), semantic search over memories only.

        Args:
            threshold: the lowest cosine similarity returned (another name of ``min_score``; give one).
        """
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

    async def wait_for_indexing(self, *, timeout_seconds: float = 60.0, inline: bool | None = None) -> IndexingStatus:
        """Wait until this tenant has no pending or running index job (see ``AsyncMnemoStore.wait_for_indexing``)."""
        return await self._runtime.drain(tenant_id=self.tenant_id, timeout_seconds=timeout_seconds, inline=inline)

    async def indexing_status(self) -> IndexingStatus:
        """This tenant's index jobs by state, with its newest failures."""
        async with self._tx() as uow:
            return await uow.index_jobs.status()
