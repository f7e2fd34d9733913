"""Packing a context block into a token budget: which entries go in, in which order, and the text (no I/O).

The store (``build_context``) finds the candidates; ``pack_context`` decides. Entries are admitted whole (never
cut), one at a time, in this priority order, each when it still fits with its section's header:

1. the newest ``min_recent`` messages, newest first;
2. the relevant memories, most relevant first (a memory that only restates a message already in the block is
   left out as redundant, not reported as omitted);
3. the conversation's summary segments, newest first;
4. the relevant knowledge chunks, most relevant first;
5. older messages, newest first, down to the oldest candidate.

Memories, summaries and knowledge skip an entry that does not fit and try the next (smaller) one; messages stop
at the first that does not fit, so the block's messages are always a contiguous newest run of the conversation:
a newer message is never dropped while an older one is kept. The counts are added up entry by entry, then the
whole text is counted once more: a counter whose counts do not add up exactly (a real tokenizer's) has the last
admitted entries taken out again until the text fits, so ``tokens <= max_tokens`` always holds.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from mnemostore.domain import Context, ContextItem, ContextOmitted, ContextSection, ContextSections, Role
from mnemostore.errors import ContextBudgetTooSmall
from mnemostore.memory._tokens import TokenCounter

__all__ = ["HEADERS", "Candidate", "check_budget", "pack_context", "render_entry"]

HEADERS: dict[ContextSection, str] = {
    ContextSection.SUMMARIES: "## Conversation summary",
    ContextSection.MEMORIES: "## Relevant memories",
    ContextSection.KNOWLEDGE: "## Relevant knowledge",
    ContextSection.MESSAGES: "## Recent messages",
}
_ORDER = tuple(ContextSection)


@dataclass(slots=True, kw_only=True, frozen=True)
class Candidate:
    """An entry that may go into the block: its rendered text and what the result reports of it.

    ``covers``: the messages a memory restates (its source messages), to leave it out when they are all in.
    """

    id: uuid.UUID
    text: str
    created_at: datetime
    role: Role | None = None
    seq: int | None = None
    score: float | None = None
    covers: frozenset[uuid.UUID] = frozenset()


def render_entry(prefix: str, content: str) -> str:
    """``prefix`` then ``content``, continuation lines indented by two spaces (so entries stay apart)."""
    lines = content.strip().splitlines() or [""]
    return "\n".join([prefix + lines[0], *("  " + line for line in lines[1:])])


def check_budget(max_tokens: int, counter: TokenCounter) -> None:
    """Raise ContextBudgetTooSmall when ``max_tokens`` cannot hold even the smallest section header."""
    need = min(counter.count(header) for header in HEADERS.values())
    if max_tokens < need:
        raise ContextBudgetTooSmall(
            f"max_tokens={max_tokens} cannot hold even a section header of the context block ({need} tokens by "
            f"the token counter): pass max_tokens={need} or more (a useful block needs a few hundred)"
        )


def pack_context(
    *,
    conversation_id: uuid.UUID,
    query: str | None,
    max_tokens: int,
    counter: TokenCounter,
    summaries: Sequence[Candidate],
    memories: Sequence[Candidate],
    knowledge: Sequence[Candidate],
    messages: Sequence[Candidate],
    message_count: int,
    min_recent: int,
) -> Context:
    """The block: as many candidates as fit in ``max_tokens`` by ``counter``, in the module's priority order.

    Args:
        summaries: oldest first. memories, knowledge: best first. messages: the newest of the conversation, oldest
            first. message_count: how many messages the conversation has (to report the older ones left out).
    """
    check_budget(max_tokens, counter)
    header_cost = {section: counter.count(header) + counter.count("\n") for section, header in HEADERS.items()}
    gap = counter.count("\n")  # the blank line between two sections
    chosen: dict[ContextSection, list[tuple[Candidate, int]]] = {section: [] for section in _ORDER}
    admitted: list[tuple[ContextSection, Candidate, int]] = []  # in admission order, to undo from the end
    used = 0

    def admit(section: ContextSection, candidate: Candidate) -> bool:
        nonlocal used
        tokens = counter.count(candidate.text)
        cost = tokens + gap
        if not chosen[section]:
            cost += header_cost[section] + (gap if any(chosen.values()) else 0)
        if used + cost > max_tokens:
            return False
        used += cost
        chosen[section].append((candidate, tokens))
        admitted.append((section, candidate, tokens))
        return True

    newest_first = list(reversed(messages))
    next_message = 0
    blocked = False
    while next_message < min(min_recent, len(newest_first)):
        if not admit(ContextSection.MESSAGES, newest_first[next_message]):
            blocked = True
            break
        next_message += 1
    in_block = {candidate.id for candidate, _ in chosen[ContextSection.MESSAGES]}
    redundant = {m.id for m in memories if m.covers and m.covers <= in_block}
    for candidate in memories:
        if candidate.id not in redundant:
            admit(ContextSection.MEMORIES, candidate)
    for candidate in reversed(summaries):
        admit(ContextSection.SUMMARIES, candidate)
    for candidate in knowledge:
        admit(ContextSection.KNOWLEDGE, candidate)
    while not blocked and next_message < len(newest_first):
        if not admit(ContextSection.MESSAGES, newest_first[next_message]):
            break
        next_message += 1

    text = _render(chosen)
    tokens = counter.count(text)
    while tokens > max_tokens and admitted:  # the counter is not additive: undo the last admissions
        section, candidate, _ = admitted.pop()
        chosen[section] = [(c, n) for c, n in chosen[section] if c.id != candidate.id]
        text = _render(chosen)
        tokens = counter.count(text)

    def items(section: ContextSection) -> tuple[ContextItem, ...]:
        entries = chosen[section]
        ordered = sorted(entries, key=_chronological) if section in _CHRONOLOGICAL else entries
        return tuple(_item(candidate, n) for candidate, n in ordered)

    def left_out(section: ContextSection, candidates: Sequence[Candidate]) -> tuple[uuid.UUID, ...]:
        kept = {candidate.id for candidate, _ in chosen[section]}
        return tuple(c.id for c in candidates if c.id not in kept and c.id not in redundant)

    kept_messages = len(chosen[ContextSection.MESSAGES])
    return Context(
        conversation_id=conversation_id,
        text=text,
        tokens=tokens,
        max_tokens=max_tokens,
        query=query,
        sections=ContextSections(
            summaries=items(ContextSection.SUMMARIES),
            memories=items(ContextSection.MEMORIES),
            knowledge=items(ContextSection.KNOWLEDGE),
            messages=items(ContextSection.MESSAGES),
        ),
        omitted=ContextOmitted(
            summaries=left_out(ContextSection.SUMMARIES, list(reversed(summaries))),
            memories=left_out(ContextSection.MEMORIES, memories),
            knowledge=left_out(ContextSection.KNOWLEDGE, knowledge),
            messages=max(0, message_count - kept_messages),
        ),
    )


_CHRONOLOGICAL = (ContextSection.SUMMARIES, ContextSection.MESSAGES)


def _chronological(entry: tuple[Candidate, int]) -> tuple[int, datetime]:
    candidate = entry[0]
    return (candidate.seq if candidate.seq is not None else 0, candidate.created_at)


def _render(chosen: dict[ContextSection, list[tuple[Candidate, int]]]) -> str:
    blocks = []
    for section in _ORDER:
        entries = chosen[section]
        if not entries:
            continue
        ordered = sorted(entries, key=_chronological) if section in _CHRONOLOGICAL else entries
        blocks.append("\n".join([HEADERS[section], *(candidate.text for candidate, _ in ordered)]))
    return "\n\n".join(blocks)


def _item(candidate: Candidate, tokens: int) -> ContextItem:
    return ContextItem(
        id=candidate.id,
        text=candidate.text,
        tokens=tokens,
        created_at=candidate.created_at,
        role=candidate.role,
        seq=candidate.seq,
        score=candidate.score,
    )
