"""Bodies of ``POST /v1/conversations/{id}/context``: what to build a context block with, and the block."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import ConfigDict, Field

from mnemostore.api.schemas._common import _Clean, _In, _Out
from mnemostore.domain import Role


class ContextRequest(_In):
    """Build the conversation's context block for an agent: summaries, the memories and knowledge most relevant to
    ``query`` (default: the newest user message), and the newest messages, within ``max_tokens`` (counted by the
    service's offline estimate of GPT-style BPE tokens)."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"max_tokens": 2000}, {"query": "what does Ada eat?", "max_tokens": 800}]}
    )

    query: Annotated[str, Field(min_length=1, max_length=10_000), _Clean] | None = Field(
        default=None, description="what to rank memories and knowledge by; left out: the newest user message"
    )
    max_tokens: Annotated[int, Field(ge=1, le=10_000_000)] = 2000
    memory_limit: Annotated[int, Field(ge=0, le=1000)] = 5
    knowledge_limit: Annotated[int, Field(ge=0, le=1000)] = 3
    message_limit: Annotated[int, Field(ge=1, le=1000)] = 50
    min_recent: Annotated[int, Field(ge=0, le=1000)] = Field(
        default=2, description="how many of the newest messages go in before anything else"
    )
    mode: Literal["auto", "semantic", "fulltext", "hybrid"] = "auto"


class ContextItemOut(_Out):
    id: uuid.UUID
    text: str = Field(description="the entry as the block's text shows it")
    tokens: int
    created_at: datetime
    role: Role | None = None
    seq: int | None = None
    score: float | None = None


class ContextSectionsOut(_Out):
    summaries: list[ContextItemOut]
    memories: list[ContextItemOut]
    knowledge: list[ContextItemOut]
    messages: list[ContextItemOut]


class ContextOmittedOut(_Out):
    summaries: list[uuid.UUID] = Field(description="summary segments that did not fit")
    memories: list[uuid.UUID] = Field(description="relevant memories that did not fit, best first")
    knowledge: list[uuid.UUID] = Field(description="relevant knowledge chunks that did not fit, best first")
    messages: int = Field(description="how many of the conversation's (oldest) messages are not in the block")


class ContextOut(_Out):
    conversation_id: uuid.UUID
    text: str = Field(description="the block: labelled sections, ready for a prompt")
    tokens: int
    max_tokens: int
    query: str | None = Field(description="what memories and knowledge were ranked by; null: no ranking")
    sections: ContextSectionsOut
    omitted: ContextOmittedOut


__all__ = ["ContextItemOut", "ContextOmittedOut", "ContextOut", "ContextRequest", "ContextSectionsOut"]
