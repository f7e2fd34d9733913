"""Long-term memory: store with dedup and versions, retrieve, update, consolidate, retention."""

from __future__ import annotations

import asyncio
import inspect
import logging
import uuid
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from mnemostore.cache import EventType
from mnemostore.domain import (
    MemoryKind,
    MemoryRecord,
    MemoryTier,
    MemoryVersion,
    Page,
    new_id,
)
from mnemostore.errors import (
    ConversationNotFound,
    InvalidInput,
    MemoryNotFound,
    MessageNotFound,
    SummarizationError,
    UserNotFound,
)
from mnemostore.memory import (
    DuplicateMatch,
    ExtractiveSummarizer,
    Summarizer,
    find_duplicate,
)
from mnemostore.search import Embedder, ItemKind, SearchFilters, SearchMode
from mnemostore.service import _validation as v
from mnemostore.service._conversations_async import AsyncConversations
from mnemostore.service._inputs import UNSET, Unset, as_id, utc_now
from mnemostore.service._paging import decode_list_cursor, page_after
from mnemostore.store import AsyncUnitOfWork

log = logging.getLogger("mnemostore.memory")


class AsyncMemories(AsyncConversations):
    """The tenant's long-term memories."""

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
        dedup: bool | None = None,
        conversation_id: uuid.UUID | str | None = None,
        vector: Sequence[float] | None = None,
        model: str | None = None,
    ) -> MemoryRecord:
        """Store a memory, or merge it into the existing memory of the same user that says the same thing.

        Near-duplicates (rule in ``mnemostore.memory._dedup``): among the newest unexpired memories of the same
        user, agent and kind, one whose normalised text is equal, or, with an embedder configured, whose
        embedding has cosine similarity >= ``Settings.memory_dedup_threshold``, or, without one, whose word-token
        Jaccard index is >= ``Settings.memory_dedup_jaccard``. The existing memory then takes the new text, the
        higher importance and tier, the later expiry, the union of source messages and the merged metadata; its
        old text and importance are kept as a version (``get_memory_history``). Summaries are never merged.
        Under concurrent stores of the same text, detection is best effort (both may be inserted).

        With an embedder this embeds the new text before writing (one model call: the candidates bring their
        stored vectors, and at most ``Settings.memory_dedup_embed_limit`` not yet indexed are embedded with it).
        When the embedder fails, the textual rules decide and a warning is logged (``mnemostore.memory``): the
        write is never refused for it. ``dedup=False`` (or ``MNEMOSTORE_MEMORY_DEDUP=false``) skips all this.

        Args:
            dedup: merge near-duplicates (default: ``Settings.memory_dedup``, true).
            conversation_id: the conversation the memory comes from (``retrieve_memories`` and ``search`` filter
                by it). Its user is the memory's user when ``user_id`` is not given. Deleting the conversation
                keeps the memory, with ``conversation_id`` None.
            vector, model: the memory's embedding, computed by the caller with the model named ``model``
                (default: the store's embedder, whose dimension it must have). It is stored as given, never
                re-embedded (nor by ``reindex``), and found by ``search(vector=..., model=...)``; the dimension
                must be the one of the tenant's other vectors of that model. Near-duplicates are then judged
                with it against the candidates' vectors of the same model.

        Returns:
            The new memory, or the existing one it was merged into (same id, ``metadata["merged"]`` counted).

        Args:
            source_message_ids: the messages of this tenant the memory comes from (a segment of compression level
                2 or more may name the segments it summarises, memories of this tenant, too).

        Raises:
            UserNotFound: ``user_id`` is not a user of this tenant.
            ConversationNotFound: ``conversation_id`` is not a conversation of this tenant.
            MessageNotFound: a source id is not a message (or, for such a segment, a memory) of this tenant.
            InvalidVector: ``vector`` is not a list of finite numbers (VectorDimensionMismatch: not of the
                dimension of the model's other vectors).
            VectorSearchUnavailable: ``vector`` given on a PostgreSQL without pgvector.
        """
        v.check_content(content, max_bytes=self._settings.max_content_bytes)
        if not 0.0 <= v.check_number(importance, "importance") <= 1.0:
            raise InvalidInput(f"importance must be between 0 and 1, got {importance!r}")
        uid = as_id(user_id, "user_id") if user_id is not None else None
        cid = as_id(conversation_id, "conversation_id") if conversation_id is not None else None
        caller = self._memory_vector(vector, model)
        now = utc_now()
        if cid is not None and uid is None:
            async with self._tx() as uow:
                conversation = await uow.conversations.get(cid)
            if conversation is None:
                raise ConversationNotFound(cid)
            uid = conversation.user_id
        values = {
            "id": new_id(),
            "user_id": uid,
            "conversation_id": cid,
            "agent_id": v.check_name(agent_id, "agent_id", max_len=200),
            "content": content,
            "kind": v.check_enum(MemoryKind, kind).value,
            "tier": v.check_enum(MemoryTier, tier).value,
            "importance": float(importance),
            "source_message_ids": [str(as_id(m, "source_message_ids")) for m in source_message_ids],
            "compression_level": v.check_tokens(compression_level, "compression_level"),
            "expires_at": v.check_time(expires_at, "expires_at"),
            "metadata": self._json(metadata, "metadata"),
            "created_at": now,
            "updated_at": now,
        }
        memory: MemoryRecord | None = None
        if (self._settings.memory_dedup if dedup is None else dedup) and values["kind"] != MemoryKind.SUMMARY.value:
            memory = await self._merge_duplicate(values, caller)
        if memory is None:
            async with self._tx(write=True) as uow:
                if uid is not None and await uow.users.get(uid) is None:
                    raise UserNotFound(uid)
                await self._check_memory_conversation(uow, values)
                await self._check_sources(uow, values)
                memory = await uow.memories.insert(values)
                if caller is not None:
                    await self._put_vectors(uow, ItemKind.MEMORY, [(memory.id, caller[0])], caller[1], now)
                else:
                    await self._enqueue(uow, ItemKind.MEMORY, [memory.id], now)
        data = {
            "memory_id": str(memory.id),
            "user_id": None if uid is None else str(uid),
            "agent_id": memory.agent_id,
            "kind": memory.kind.value,
            "tier": memory.tier.value,
            "importance": memory.importance,
            "content": memory.content,
        }
        await self._cache.events.publish(self.tenant_id, EventType.MEMORY_STORED, data)
        return memory

    def _memory_vector(self, vector: Sequence[float] | None, model: str | None) -> tuple[list[float], str] | None:
        if vector is None:
            if model is not None:
                raise InvalidInput("model= names the model of vector=: pass the memory's vector too (or drop model=)")
            return None
        return self._caller_vector(vector, model)

    async def _check_memory_conversation(self, uow: AsyncUnitOfWork, values: dict[str, Any]) -> None:
        """The memory's conversation exists (locked against deletion until commit) and belongs to its user."""
        cid = values.get("conversation_id")
        if cid is None:
            return
        exists, owner = await uow.conversations.owner_for_reference(cid)
        if not exists:
            raise ConversationNotFound(cid)
        if values["user_id"] is not None and owner != values["user_id"]:
            raise InvalidInput(
                f"conversation {cid} belongs to user {owner}, not to user {values['user_id']}: store the memory "
                "for the conversation's user (or leave user_id out: it is then taken from the conversation)"
            )

    def _memory_embedder(self) -> Embedder | None:
        embedder = getattr(self.store, "embedder", None)
        return embedder if isinstance(embedder, Embedder) else None

    async def _embed(self, embedder: Embedder, texts: list[str]) -> list[list[float]]:
        if True:  # ASYNC
            return await asyncio.to_thread(embedder.embed, texts)
        else:
            return embedder.embed(texts)

    async def _merge_duplicate(
        self, values: dict[str, Any], caller: tuple[list[float], str] | None = None
    ) -> MemoryRecord | None:
        """Merge ``values`` into the near-duplicate it has, if any (see ``store_memory``); None: no duplicate.
        ``caller``: the caller's vector and model, compared with the candidates' vectors of that model."""
        now = values["created_at"]
        async with self._tx() as uow:
            candidates = await uow.memories.dedup_candidates(
                user_id=values["user_id"],
                agent_id=values["agent_id"],
                kind=values["kind"],
                now=now,
                limit=self._settings.memory_dedup_candidates,
            )
        if not candidates:
            return None
        texts = [c.content for c in candidates]
        match = find_duplicate(values["content"], texts, jaccard=self._settings.memory_dedup_jaccard)
        embedder = self._memory_embedder()
        model = caller[1] if caller is not None else embedder.name if embedder is not None else None
        if model is not None and (match is None or match.method != "exact"):
            # Indexed memories bring their vectors.
            async with self._tx() as uow:
                stored = await uow.memories.stored_vectors([c.id for c in candidates], model=model)
            if caller is not None:
                # The caller's vector meets the candidates' of its model; the others are judged by text.
                new_vector = caller[0]
                vectors = {key: value for key, value in stored.items() if len(value) == len(new_vector)}
            else:
                assert embedder is not None
                # Memories not indexed yet (no worker running, or written just now) are embedded here, the newest
                # ``memory_dedup_embed_limit`` of them: without a worker the cost of a call stays bounded. Older
                # unindexed ones are judged by text (the Jaccard rule) instead.
                missing = [c for c in candidates if c.id not in stored][: self._settings.memory_dedup_embed_limit]
                try:
                    fresh = await self._embed(embedder, [values["content"], *(c.content for c in missing)])
                except Exception as error:  # an embedding service down must not refuse the write
                    log.warning(
                        "store_memory: embedder %s failed (%s: %s); near-duplicates judged by text only",
                        embedder.name,
                        type(error).__name__,
                        error,
                    )
                    return await self._merge_into(candidates, match, values, caller) if match is not None else None
                new_vector = fresh[0]
                vectors = {**stored, **{c.id: vector for c, vector in zip(missing, fresh[1:], strict=True)}}
            with_vector = [i for i, c in enumerate(candidates) if c.id in vectors]
            semantic = find_duplicate(
                values["content"],
                [texts[i] for i in with_vector],
                vector=new_vector,
                candidate_vectors=[vectors[candidates[i].id] for i in with_vector],
                threshold=self._settings.memory_dedup_threshold,
            )
            if semantic is not None:
                match = DuplicateMatch(index=with_vector[semantic.index], method=semantic.method, score=semantic.score)
            elif match is not None and candidates[match.index].id in vectors:
                match = None  # the textual rule matched a memory the model says is different
        if match is None:
            return None
        return await self._merge_into(candidates, match, values, caller)

    async def _merge_into(
        self,
        candidates: list[MemoryRecord],
        match: DuplicateMatch,
        values: dict[str, Any],
        caller: tuple[list[float], str] | None = None,
    ) -> MemoryRecord | None:
        """Merge ``values`` into the matched candidate, keeping its previous state as a version."""
        now = values["created_at"]
        old = candidates[match.index]
        tiers = list(MemoryTier)
        merged_meta = {**old.metadata, **values["metadata"]}
        merged_meta["merged"] = int(old.metadata.get("merged", 0) or 0) + 1
        sources = list(dict.fromkeys([*old.source_message_ids, *values["source_message_ids"]]))
        expiry = values["expires_at"]
        if expiry is not None and old.expires_at is not None:
            expiry = max(expiry, old.expires_at)
        elif old.expires_at is None and values["expires_at"] is not None:
            expiry = None  # the old memory never expired: merging does not make it expire
        update = {
            "content": values["content"],
            "importance": max(old.importance, values["importance"]),
            "tier": max(old.tier, MemoryTier(values["tier"]), key=tiers.index).value,
            "source_message_ids": sources,
            "expires_at": expiry,
            "metadata": self._json(merged_meta, "metadata"),
            "updated_at": now,
        }
        if values["conversation_id"] is not None:
            update["conversation_id"] = values["conversation_id"]  # restated in this conversation
        async with self._tx(write=True) as uow:
            current = await uow.memories.get(old.id)
            if current is None:
                return None  # deleted meanwhile: store a new one
            await self._check_memory_conversation(uow, values)
            await self._check_sources(uow, values)
            if (current.content, current.importance, current.tier.value) != (
                values["content"],
                update["importance"],
                update["tier"],
            ):
                await self._keep_version(uow, current, now, "merge")
            merged = await uow.memories.update(old.id, update)
            await self._revector(uow, old.id, current.content != values["content"], caller, now)
            return merged

    async def _revector(
        self,
        uow: AsyncUnitOfWork,
        memory_id: uuid.UUID,
        content_changed: bool,
        caller: tuple[list[float], str] | None,
        now: datetime,
    ) -> None:
        """After a memory's update: store the caller's new vector, or, when its text changed, drop a caller's
        vector of the old text and queue the memory for the store's embedder."""
        if caller is not None:
            await self._put_vectors(uow, ItemKind.MEMORY, [(memory_id, caller[0])], caller[1], now)
        elif content_changed:
            await uow.index_jobs.drop_supplied(ItemKind.MEMORY, [memory_id])
            await self._enqueue(uow, ItemKind.MEMORY, [memory_id], now)

    async def _check_sources(self, uow: AsyncUnitOfWork, values: dict[str, Any]) -> None:
        """The new memory's sources exist in this tenant: one SELECT, in the writing transaction (so none can be
        deleted between the check and the write). A merge checks only the new sources: the old memory's may have
        been deleted since, which is no reason to refuse the write."""
        wanted = [uuid.UUID(mid) for mid in values["source_message_ids"]]
        if not wanted:
            return
        found = await uow.memories.existing_sources(wanted, segments=values["compression_level"] >= 2)
        missing = [str(mid) for mid in dict.fromkeys(wanted) if mid not in found]
        if missing:
            also = " or memories" if values["compression_level"] >= 2 else ""
            raise MessageNotFound(
                ", ".join(missing), f" in this tenant: source_message_ids must name its messages{also}"
            )

    async def _keep_version(self, uow: AsyncUnitOfWork, memory: MemoryRecord, now: datetime, reason: str) -> None:
        await uow.memories.add_version(version_row(memory, now, reason))

    async def get_memory(self, memory_id: uuid.UUID | str) -> MemoryRecord | None:
        """The memory, or None when the tenant has no memory with this id."""
        async with self._tx() as uow:
            return await uow.memories.get(as_id(memory_id, "memory_id"))

    async def get_memory_or_raise(self, memory_id: uuid.UUID | str) -> MemoryRecord:
        """The memory.

        Raises:
            MemoryNotFound: the tenant has no memory with this id.
        """
        memory = await self.get_memory(memory_id)
        if memory is None:
            raise MemoryNotFound(memory_id)
        return memory

    async def retrieve_memories(
        self,
        *,
        user_id: uuid.UUID | str | None = None,
        agent_id: str | None = None,
        tier: MemoryTier | str | None = None,
        kind: MemoryKind | str | None = None,
        include_expired: bool = False,
        limit: int = 20,
        cursor: str | None = None,
        conversation_id: uuid.UUID | str | None = None,
        query: str | None = None,
    ) -> Page[MemoryRecord]:
        """Memories by importance (most important first), optionally for one user, agent, tier, kind or
        conversation; with ``query``, the ones relevant to it, most relevant first.

        Each memory returned counts as recalled (``recall_count``, ``last_recalled_at``: see ``_recalled``).

        Args:
            include_expired: also return memories whose ``expires_at`` has passed (not purged yet).
            cursor: the ``next_cursor`` of the previous page, to get the next one (not with ``query``).
            conversation_id: only the memories stored from this conversation (``store_memory(conversation_id=)``).
            query: rank by relevance to this text instead: the ``limit`` most relevant memories that pass every
                filter (``search`` over memories, mode ``auto``: hybrid with an embedder, full text without, where
                memories without any of its words are left out), as one page (``next_cursor`` None).
        """
        v.check_limit(limit)
        uid = as_id(user_id, "user_id") if user_id is not None else None
        tier_value = v.check_enum(MemoryTier, tier).value if tier is not None else None
        kind_value = v.check_enum(MemoryKind, kind).value if kind is not None else None
        agent = v.check_name(agent_id, "agent_id", max_len=200)
        cid = as_id(conversation_id, "conversation_id") if conversation_id is not None else None
        now = utc_now()
        if query is not None:
            if cursor is not None:
                raise InvalidInput("retrieve_memories with a query answers one page: drop cursor= (or query=)")
            return await self._relevant_memories(
                query,
                SearchFilters(
                    user_id=uid,
                    agent_id=agent,
                    tier=tier_value,
                    conversation_id=cid,
                    memory_kind=kind_value,
                    alive_at=None if include_expired else now,
                ),
                limit,
            )
        after = decode_list_cursor(MemoryRecord, cursor) if cursor is not None else None
        async with self._tx() as uow:
            found = await uow.memories.query(
                user_id=uid,
                agent_id=agent,
                tier=tier_value,
                kind=kind_value,
                not_expired_at=None if include_expired else now,
                limit=limit + 1,
                after=after,
                conversation_id=cid,
            )
        page = page_after(found, limit)
        await self._recalled(m.id for m in page.items)
        return page

    async def _relevant_memories(self, query: str, filters: SearchFilters, limit: int) -> Page[MemoryRecord]:
        v.check_text(query, "query")
        if not query.strip():
            raise InvalidInput("query is empty: pass the words or the question to rank the memories by")
        await self._runtime.ensure_schema()
        engine = self._runtime.search_engine
        for attempt in (1, 2):  # read-your-writes, as ``search`` does
            results = await engine.search(
                self.tenant_id,
                query,
                mode=SearchMode.AUTO,
                kinds=[ItemKind.MEMORY],
                filters=filters,
                min_score=None,
                limit=limit,
                recency_boost=0.0,
                importance_boost=0.0,
                count_waiting=engine.embedder() is not None,
            )
            if attempt == 2 or not await self._runtime.embed_few_waiting(self.tenant_id, results.pending):
                break
        async with self._tx() as uow:
            found = await uow.memories.get_many([hit.id for hit in results])
        page = Page(items=[found[hit.id] for hit in results if hit.id in found], next_cursor=None)
        await self._recalled(m.id for m in page.items)
        return page

    async def update_memory(
        self,
        memory_id: uuid.UUID | str,
        *,
        content: str | Unset = UNSET,
        kind: MemoryKind | str | Unset = UNSET,
        tier: MemoryTier | str | Unset = UNSET,
        importance: float | Unset = UNSET,
        expires_at: datetime | Unset | None = UNSET,
        metadata: Mapping[str, Any] | Unset = UNSET,
        vector: Sequence[float] | None = None,
        model: str | None = None,
    ) -> MemoryRecord:
        """Change the given fields of a memory (pass ``expires_at=None`` to make it permanent).

        When the content, importance, metadata or tier change, the previous state is kept as a version
        (``get_memory_history``, reason ``update``). ``vector``, ``model``: the caller's new embedding of the memory
        (as in ``store_memory``); when the content changes without one, a vector the caller gave before is dropped
        (it described the old text) and the memory is queued for the store's embedder.

        Raises:
            MemoryNotFound: no such memory in this tenant.
            InvalidVector: ``vector`` is not usable (see ``store_memory``).
        """
        mid = as_id(memory_id, "memory_id")
        values: dict[str, Any] = {}
        if not isinstance(content, Unset):
            v.check_content(content, max_bytes=self._settings.max_content_bytes)
            values["content"] = content
        if not isinstance(kind, Unset):
            values["kind"] = v.check_enum(MemoryKind, kind).value
        if not isinstance(tier, Unset):
            values["tier"] = v.check_enum(MemoryTier, tier).value
        if not isinstance(importance, Unset):
            if not 0.0 <= v.check_number(importance, "importance") <= 1.0:
                raise InvalidInput(f"importance must be between 0 and 1, got {importance!r}")
            values["importance"] = float(importance)
        if not isinstance(expires_at, Unset):
            values["expires_at"] = v.check_time(expires_at, "expires_at")
        if not isinstance(metadata, Unset):
            values["metadata"] = self._json(metadata, "metadata")
        caller = self._memory_vector(vector, model)
        now = utc_now()
        async with self._tx(write=True) as uow:
            current = await uow.memories.get(mid)
            if current is None:
                raise MemoryNotFound(mid)
            if not values and caller is None:
                return current
            if any(
                k in values and values[k] != getattr(current, k) for k in ("content", "importance", "metadata", "tier")
            ):
                await self._keep_version(uow, current, now, "update")
            updated = await uow.memories.update(mid, {**values, "updated_at": now})
            changed = "content" in values and values["content"] != current.content
            await self._revector(uow, mid, changed, caller, now)
        assert updated is not None
        return updated

    async def get_memory_history(self, memory_id: uuid.UUID | str) -> list[MemoryVersion]:
        """The earlier states of a memory (replaced by ``update_memory`` or a near-duplicate), oldest first.

        The current state is the memory itself (``get_memory``); a memory never changed has an empty history.

        Raises:
            MemoryNotFound: no such memory in this tenant.
        """
        mid = as_id(memory_id, "memory_id")
        async with self._tx() as uow:
            if await uow.memories.get(mid) is None:
                raise MemoryNotFound(mid)
            return await uow.memories.versions(mid)

    async def delete_memory(self, memory_id: uuid.UUID | str) -> None:
        """Delete one memory with its versions.

        Raises:
            MemoryNotFound: the tenant has no memory with this id.
        """
        mid = as_id(memory_id, "memory_id")
        async with self._tx(write=True) as uow:
            if not await uow.memories.delete(mid):
                raise MemoryNotFound(mid)
        await self._runtime.vectors_removed(self.tenant_id, kind=ItemKind.MEMORY, ids=[mid])

    async def delete_memories(self, *, user_id: uuid.UUID | str | None = None, agent_id: str | None = None) -> int:
        """Delete every memory of a user, of an agent, or of that user with that agent, with their versions and
        vectors, in one transaction; returns how many memories were deleted.

        Raises:
            InvalidInput: neither ``user_id`` nor ``agent_id`` is given (this never deletes a whole tenant's
                memories by accident: delete the tenant, or its memories one by one, for that).
        """
        uid = as_id(user_id, "user_id") if user_id is not None else None
        agent = v.check_name(agent_id, "agent_id", max_len=200)
        if uid is None and agent is None:
            raise InvalidInput("delete_memories needs user_id or agent_id (or both): whose memories to delete")
        async with self._tx(write=True) as uow:
            deleted = await uow.memories.delete_owned(user_id=uid, agent_id=agent)
        if deleted:  # the user or agent may store new memories: only the stale vectors go
            await self._runtime.vectors_removed(
                self.tenant_id, kind=ItemKind.MEMORY, owner_id=uid, agent_id=agent, sweep=True
            )
        return deleted

    async def add_memory_segment(
        self,
        content: str,
        *,
        source_message_ids: Sequence[uuid.UUID | str],
        user_id: uuid.UUID | str | None = None,
        agent_id: str | None = None,
        tier: MemoryTier | str = MemoryTier.LONG_TERM,
        compression_level: int = 1,
        importance: float = 0.5,
        expires_at: datetime | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> MemoryRecord:
        """Store a compressed memory segment: a summary (kind ``summary``) of the messages it names.

        Args:
            compression_level: 1 for a summary of raw messages, 2 for a summary of level-1 segments, and so on.

        Returns:
            The segment (segments are never merged as near-duplicates).
        """
        v.check_int(compression_level, "compression_level of a segment", minimum=1, maximum=2**31 - 1)
        return await self.store_memory(
            content,
            user_id=user_id,
            agent_id=agent_id,
            kind=MemoryKind.SUMMARY,
            tier=tier,
            importance=importance,
            source_message_ids=source_message_ids,
            compression_level=compression_level,
            expires_at=expires_at,
            metadata=metadata,
            dedup=False,
        )

    async def consolidate_conversation(
        self,
        conversation_id: uuid.UUID | str,
        *,
        keep_recent: int = 20,
        summarizer: Summarizer | None = None,
        min_messages: int = 2,
        tier: MemoryTier | str = MemoryTier.LONG_TERM,
        importance: float = 0.5,
        agent_id: str | None = None,
    ) -> MemoryRecord | None:
        """Summarise the older messages of a conversation into a memory segment of its user.

        The newest ``keep_recent`` messages are left alone; of the older ones, those no earlier segment of this
        conversation covers are summarised (``ExtractiveSummarizer()`` unless ``summarizer`` is given) into
        one segment (kind summary, compression level 1, the messages as ``source_message_ids``,
        ``metadata["conversation_id"]`` and the seq range). So consolidating again only adds a segment for
        messages that have aged out since: the same messages are never summarised twice, also when two
        consolidations race (the second finds the conversation locked, then covered). Messages are kept.

        Args:
            summarizer: any ``Summarizer``; the async store also awaits one that returns an awaitable.
            min_messages: do nothing while fewer uncovered old messages than this exist.

        Returns:
            The new segment, or None when there was nothing (new) to consolidate.

        Raises:
            ConversationNotFound: no such conversation in this tenant.
            SummarizationError: the summariser failed.
        """
        cid = as_id(conversation_id, "conversation_id")
        for name, number in (("keep_recent", keep_recent), ("min_messages", min_messages)):
            v.check_int(number, name)
        async with self._tx() as uow:
            conversation = await uow.conversations.get(cid)
            if conversation is None:
                raise ConversationNotFound(cid)
            messages = await uow.messages.all(cid)
            covered = _covered_messages(await uow.memories.segments_for_user(conversation.user_id), cid)
        old = messages[: max(0, len(messages) - keep_recent)]
        pending = [m for m in old if str(m.id) not in covered]
        if not pending or len(pending) < min_messages:
            return None
        chosen = summarizer if summarizer is not None else ExtractiveSummarizer()
        summary = chosen.summarize(pending)
        if True:  # ASYNC
            if inspect.isawaitable(summary):
                summary = await summary
        else:
            if inspect.isawaitable(summary):
                close = getattr(summary, "close", None)
                if close is not None:
                    close()  # a coroutine never awaited would warn
                raise InvalidInput("the summariser returned an awaitable: use AsyncMnemoStore for an async summariser")
        if not isinstance(summary, str):
            raise SummarizationError(f"the summariser returned {type(summary).__name__}: it must return text")
        if not summary.strip():
            return None
        async with self._tx(write=True) as uow:
            if not await uow.conversations.lock(cid):
                raise ConversationNotFound(cid)
            covered = _covered_messages(await uow.memories.segments_for_user(conversation.user_id), cid)
            if any(str(m.id) in covered for m in pending):
                return None  # a concurrent consolidation took these messages
            now = utc_now()
            values = {
                "id": new_id(),
                "user_id": conversation.user_id,
                "agent_id": v.check_name(agent_id, "agent_id", max_len=200),
                "content": summary.strip(),
                "kind": MemoryKind.SUMMARY.value,
                "tier": v.check_enum(MemoryTier, tier).value,
                "importance": float(v.check_number(importance, "importance")),
                "source_message_ids": [str(m.id) for m in pending],
                "compression_level": 1,
                "expires_at": None,
                "metadata": {
                    "conversation_id": str(cid),
                    "first_seq": pending[0].seq,
                    "last_seq": pending[-1].seq,
                    "message_count": len(pending),
                    "summarizer": type(chosen).__name__,
                },
                "created_at": now,
                "updated_at": now,
                "conversation_id": cid,
            }
            segment = await uow.memories.insert(values)
            await self._enqueue(uow, ItemKind.MEMORY, [segment.id], now)
            return segment


def version_row(memory: MemoryRecord, now: datetime, reason: str) -> dict[str, Any]:
    """The ``memory_versions`` row that keeps ``memory``'s current state, replaced at ``now`` for ``reason``."""
    return {
        "id": new_id(),
        "memory_id": memory.id,
        "content": memory.content,
        "importance": memory.importance,
        "metadata": memory.metadata,
        "tier": memory.tier.value,
        "reason": reason,
        "created_at": now,
    }


def _covered_messages(segments: Iterable[MemoryRecord], conversation_id: uuid.UUID) -> set[str]:
    """Ids of the messages of ``conversation_id`` that the given segments already summarise."""
    key = str(conversation_id)
    return {mid for s in segments if s.metadata.get("conversation_id") == key for mid in s.source_message_ids}
