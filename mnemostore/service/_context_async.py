"""Context for an agent: a conversation's summaries, relevant memories and knowledge, recent turns, in a budget."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence

from mnemostore.domain import Context, MemoryKind, MemoryRecord, Message, Role
from mnemostore.errors import ConversationNotFound, InvalidInput
from mnemostore.memory import ApproxTokenCounter, Candidate, TokenCounter, check_budget, pack_context, render_entry
from mnemostore.search import ItemKind, SearchFilters, SearchHit, SearchMode, parse_mode
from mnemostore.service import _validation as v
from mnemostore.service._conversations_async import AsyncConversations
from mnemostore.service._inputs import as_id, utc_now

__all__ = ["DEFAULT_CONTEXT_TOKENS", "AsyncContextBuilding"]

DEFAULT_CONTEXT_TOKENS = 2000
_MAX_CONTEXT_TOKENS = 10_000_000


class AsyncContextBuilding(AsyncConversations):
    """``build_context``: a ready block of context for an agent's next answer."""

    async def build_context(
        self,
        conversation_id: uuid.UUID | str,
        query: str | None = None,
        *,
        max_tokens: int = DEFAULT_CONTEXT_TOKENS,
        token_counter: TokenCounter | None = None,
        memory_limit: int = 5,
        knowledge_limit: int = 3,
        message_limit: int = 50,
        min_recent: int = 2,
        mode: SearchMode | str = SearchMode.AUTO,
    ) -> Context:
        """The conversation's context for an agent, in at most ``max_tokens`` tokens: its summary segments, the
        memories and knowledge most relevant to ``query``, and its most recent messages, as one labelled text.

        What goes in (each entry whole, never cut):

        * summaries: the segments of ``consolidate_conversation`` and ``add_memory_segment`` (kind summary) of
          the conversation's user that belong to this conversation (stored with its ``conversation_id``, or
          summarising any of its messages), not expired;
        * memories: the ``memory_limit`` memories of the conversation's user most relevant to ``query``
          (``search`` over memories in ``mode``: hybrid with an embedder, full text without), not expired, summaries
          of this conversation excepted;
        * knowledge: the tenant's ``knowledge_limit`` knowledge chunks most relevant to ``query``;
        * messages: up to ``message_limit`` of the newest messages, always a contiguous newest run.

        Without ``query`` the newest user message is the query (what the agent is about to answer); a
        conversation without a user message has no relevance ranking then: no memories or knowledge, only
        summaries and messages (``Context.query`` says what was used). When the budget is short, entries go in by
        priority: the newest ``min_recent`` messages, then memories, summaries, knowledge, then older messages
        (``mnemostore.memory._context``); ``Context.omitted`` says what did not fit. Memories that go in count as
        recalled.

        Args:
            max_tokens: the budget, counted by ``token_counter`` (default ``ApproxTokenCounter()``, an offline
                estimate of GPT-style BPE counts; pass a counter that wraps your model's tokenizer to be exact).
            memory_limit, knowledge_limit: how many candidates to look for (0: none).
            message_limit: how many of the newest messages may go in (1 to 1000).
            min_recent: how many of the newest messages go in before anything else, when they fit.

        Raises:
            ConversationNotFound: no such conversation in this tenant.
            ContextBudgetTooSmall: ``max_tokens`` cannot hold even a section header.
            InvalidInput: a limit or ``max_tokens`` out of range, an empty ``query``, a counter without ``count``.
        """
        cid = as_id(conversation_id, "conversation_id")
        budget = v.check_int(max_tokens, "max_tokens", minimum=1, maximum=_MAX_CONTEXT_TOKENS)
        counter = token_counter if token_counter is not None else ApproxTokenCounter()
        if not callable(getattr(counter, "count", None)):
            raise InvalidInput(
                f"token_counter must have a count(text) -> int method (a TokenCounter), got {type(counter).__name__}"
            )
        counter = _Checked(counter)
        for name, number, least in (("memory_limit", memory_limit, 0), ("knowledge_limit", knowledge_limit, 0)):
            v.check_int(number, name, minimum=least, maximum=1000)
        v.check_int(message_limit, "message_limit", minimum=1, maximum=1000)
        v.check_int(min_recent, "min_recent", minimum=0, maximum=1000)
        search_mode = parse_mode(mode)
        if query is not None:
            v.check_text(query, "query")
            if not query.strip():
                raise InvalidInput("query is empty: pass the words to rank memories and knowledge by, or leave it out")
        check_budget(budget, counter)

        async with self._tx() as uow:
            conversation = await uow.conversations.get(cid)
            if conversation is None:
                raise ConversationNotFound(cid)
            segments = await uow.memories.segments_for_user(conversation.user_id)
            sources = [uuid.UUID(mid) for s in segments for mid in s.source_message_ids if _is_uuid(mid)]
            ours = await uow.messages.ids_in(cid, sources) if sources else set()
        now = utc_now()
        summaries = [
            s
            for s in segments
            if (s.expires_at is None or s.expires_at > now)
            and (
                s.conversation_id == cid
                or s.metadata.get("conversation_id") == str(cid)
                or any(_is_uuid(mid) and uuid.UUID(mid) in ours for mid in s.source_message_ids)
            )
        ]
        history = await self.get_conversation_history(cid, limit=message_limit)
        messages = history.messages
        if query is None:
            query = next((m.content for m in reversed(messages) if m.role is Role.USER and m.content.strip()), None)

        memory_hits: list[SearchHit] = []
        knowledge_hits: list[SearchHit] = []
        if query is not None:
            summary_ids = {s.id for s in summaries}
            if memory_limit:
                found = await self._ranked(
                    query,
                    search_mode,
                    ItemKind.MEMORY,
                    SearchFilters(user_id=conversation.user_id, alive_at=now),
                    memory_limit + len(summary_ids),
                )
                memory_hits = [hit for hit in found if hit.id not in summary_ids][:memory_limit]
            if knowledge_limit:
                knowledge_hits = await self._ranked(
                    query, search_mode, ItemKind.KNOWLEDGE, SearchFilters(), knowledge_limit
                )
        records: dict[uuid.UUID, MemoryRecord] = {}
        if memory_hits:
            async with self._tx() as uow:
                records = await uow.memories.get_many([hit.id for hit in memory_hits])

        context = pack_context(
            conversation_id=cid,
            query=query,
            max_tokens=budget,
            counter=counter,
            summaries=[_summary(s) for s in summaries],
            memories=[_memory(hit, records[hit.id]) for hit in memory_hits if hit.id in records],
            knowledge=[_knowledge(hit) for hit in knowledge_hits],
            messages=[_message(m) for m in messages],
            message_count=max(conversation.message_count, len(messages)),
            min_recent=min_recent,
        )
        await self._recalled(item.id for item in (*context.sections.memories, *context.sections.summaries))
        return context

    async def _ranked(
        self, query: str, mode: SearchMode, kind: ItemKind, filters: SearchFilters, limit: int
    ) -> list[SearchHit]:
        """The ``limit`` items of ``kind`` most relevant to ``query`` (``search``'s engine, read-your-writes
        included), without counting recalls: only what goes into the block counts."""
        await self._runtime.ensure_schema()
        engine = self._runtime.search_engine
        for attempt in (1, 2):
            results = await engine.search(
                self.tenant_id,
                query,
                mode=mode,
                kinds=[kind],
                filters=filters,
                min_score=None,
                limit=limit,
                recency_boost=0.0,
                importance_boost=0.0,
                count_waiting=mode is not SearchMode.FULLTEXT and engine.embedder() is not None,
            )
            if attempt == 2 or not await self._runtime.embed_few_waiting(self.tenant_id, results.pending):
                break
        return list(results)


class _Checked:
    """A caller's counter, held to its contract: each count a non-negative int (else InvalidInput)."""

    def __init__(self, counter: TokenCounter) -> None:
        self._counter = counter

    def count(self, text: str) -> int:
        n = self._counter.count(text)
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise InvalidInput(f"token_counter.count must return a non-negative int, returned {n!r}")
        return n

    def __repr__(self) -> str:
        return repr(self._counter)


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def _summary(segment: MemoryRecord) -> Candidate:
    first, last = segment.metadata.get("first_seq"), segment.metadata.get("last_seq")
    span = f"[messages {first}-{last}] " if isinstance(first, int) and isinstance(last, int) else ""
    return Candidate(id=segment.id, text=render_entry("- " + span, segment.content), created_at=segment.created_at)


def _memory(hit: SearchHit, record: MemoryRecord) -> Candidate:
    kind = "" if record.kind is MemoryKind.FACT else f"({record.kind.value}) "
    return Candidate(
        id=hit.id,
        text=render_entry("- " + kind, record.content),
        created_at=record.created_at,
        score=hit.score,
        covers=frozenset(_ids(record.source_message_ids)),
    )


def _knowledge(hit: SearchHit) -> Candidate:
    label = hit.title or hit.source
    prefix = f"- [{label}] " if label else "- "
    return Candidate(id=hit.id, text=render_entry(prefix, hit.content), created_at=hit.created_at, score=hit.score)


def _message(message: Message) -> Candidate:
    return Candidate(
        id=message.id,
        text=render_entry(f"{message.role.value}: ", message.content),
        created_at=message.created_at,
        role=message.role,
        seq=message.seq,
    )


def _ids(values: Iterable[str]) -> Sequence[uuid.UUID]:
    return [uuid.UUID(value) for value in values if _is_uuid(value)]
