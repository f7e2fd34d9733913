"""A context block for an agent: what ``build_context`` returns (the text, its parts, what was left out)."""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass, field
from datetime import datetime

from mnemostore.domain._models import Role

__all__ = ["Context", "ContextItem", "ContextOmitted", "ContextSection", "ContextSections"]


class ContextSection(enum.StrEnum):
    """The sections of a context block, in the order the text shows them."""

    SUMMARIES = "summaries"
    MEMORIES = "memories"
    KNOWLEDGE = "knowledge"
    MESSAGES = "messages"


@dataclass(slots=True, kw_only=True, frozen=True)
class ContextItem:
    """One entry of a context block.

    Attributes:
        id: the summary segment's or memory's id, the knowledge chunk's, or the message's.
        text: the entry exactly as the block's text shows it (one or more lines, without the newline at its end).
        tokens: the entry's tokens by the block's counter.
        role, seq: messages only. score: memories and knowledge, the search score they ranked by.
    """

    id: uuid.UUID
    text: str
    tokens: int
    created_at: datetime
    role: Role | None = None
    seq: int | None = None
    score: float | None = None


@dataclass(slots=True, kw_only=True, frozen=True)
class ContextSections:
    """The entries of a block by section; summaries and messages oldest first, memories and knowledge most
    relevant first (the order of the text)."""

    summaries: tuple[ContextItem, ...] = ()
    memories: tuple[ContextItem, ...] = ()
    knowledge: tuple[ContextItem, ...] = ()
    messages: tuple[ContextItem, ...] = ()


@dataclass(slots=True, kw_only=True, frozen=True)
class ContextOmitted:
    """What a block left out for want of tokens.

    Attributes:
        summaries, memories, knowledge: the ids of the candidates found that did not fit (best first).
        messages: how many of the conversation's messages are not in the block: every message older than its
            oldest message (or all of them when it holds none). Always the oldest ones.
    """

    summaries: tuple[uuid.UUID, ...] = ()
    memories: tuple[uuid.UUID, ...] = ()
    knowledge: tuple[uuid.UUID, ...] = ()
    messages: int = 0

    @property
    def anything(self) -> bool:
        """True when something was left out."""
        return bool(self.summaries or self.memories or self.knowledge or self.messages)


@dataclass(slots=True, kw_only=True, frozen=True)
class Context:
    """A ready context block for an agent's prompt, within ``max_tokens`` by the counter it was built with.

    Attributes:
        text: the block: labelled sections (``## Conversation summary``, ``## Relevant memories``,
            ``## Relevant knowledge``, ``## Recent messages``), empty ones left out, separated by a blank line.
        sections: the same entries, structured.
        tokens: the tokens of ``text`` by the counter (at most ``max_tokens``).
        query: the text memories and knowledge were ranked by (None: no relevance ranking ran).
        omitted: what did not fit.
    """

    conversation_id: uuid.UUID
    text: str
    tokens: int
    max_tokens: int
    query: str | None
    sections: ContextSections = field(default_factory=ContextSections)
    omitted: ContextOmitted = field(default_factory=ContextOmitted)
