"""Bodies of ``/v1/memory``: the three-line memory API over HTTP, keyed by the caller's own user ids."""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from mnemostore.api.schemas._common import MAX_BATCH, JsonObject, ModelName, Name200, Text, Vector, _Clean, _In
from mnemostore.api.schemas._conversations import MessageCreate

# The caller's own id of a user: any non-empty text (mapped to a mnemostore user by external id).
UserRef = Annotated[str, Field(min_length=1, max_length=200, description="your own id of the user"), _Clean]


class MemoryAdd(_In):
    """Remember a fact (``content``) or a chat (``messages``, stored as a conversation; what the user said also
    becomes memories). The user is created on first use."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"content": "I'm vegetarian", "user_id": "alice"},
                {
                    "messages": [
                        {"role": "user", "content": "I just moved to Berlin"},
                        {"role": "assistant", "content": "Welcome!"},
                    ],
                    "user_id": "alice",
                },
            ]
        }
    )

    user_id: UserRef
    content: Text | None = None
    messages: Annotated[list[MessageCreate], Field(min_length=1, max_length=MAX_BATCH)] | None = None
    agent_id: Name200 | None = None
    metadata: JsonObject | None = None
    importance: Annotated[float, Field(ge=0.0, le=1.0)] = 0.5
    conversation_id: uuid.UUID | None = Field(default=None, description="messages: append to this conversation")
    roles: Annotated[list[Literal["user", "assistant", "system", "tool"]], Field(max_length=4)] = Field(
        default=["user"], description="messages: which roles become memories"
    )
    vector: Vector | None = Field(default=None, description="content: your embedding of the fact, with `model`")
    model: ModelName | None = None

    @model_validator(mode="after")
    def _one_of(self) -> MemoryAdd:
        if (self.content is None) == (self.messages is None):
            raise ValueError("give either content (a fact) or messages (a chat), not both and not neither")
        if self.vector is not None and self.messages is not None:
            raise ValueError("vector goes with content (one fact): a chat's memories are embedded by the store")
        return self


class MemorySearch(_In):
    """The user's memories that best answer ``query``, best first."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"query": "what can alice eat?", "user_id": "alice", "limit": 5}]}
    )

    query: Annotated[str, Field(min_length=1, max_length=10_000), _Clean] | None = None
    user_id: UserRef
    agent_id: Name200 | None = None
    limit: Annotated[int, Field(ge=1, le=100)] = 10
    min_score: float | None = None
    mode: Literal["auto", "semantic", "fulltext", "hybrid"] = "auto"
    vector: Vector | None = Field(default=None, description="a query vector of `model`: give it, query, or both")
    model: ModelName | None = None

    @model_validator(mode="after")
    def _something_to_search(self) -> MemorySearch:
        if self.query is None and self.vector is None:
            raise ValueError("give query (the text to search for), vector (an embedding of it), or both")
        return self


class MemoryEdit(_In):
    """A memory's new text (and metadata, when given); the previous state is kept as a version."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"content": "I'm vegan since 2026"}]})

    content: Text
    metadata: JsonObject | None = None


class MemoryDeleted(BaseModel):
    deleted: int = Field(description="how many memories were deleted")


__all__ = ["MemoryAdd", "MemoryDeleted", "MemoryEdit", "MemorySearch"]


class MemoryContext(_In):
    """The context block for the next answer in a conversation of the user (``Memory.context``)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"conversation_id": "01a2462e-5599-703a-ac62-b4d64590c286", "user_id": "alice"}]
        }
    )

    conversation_id: uuid.UUID
    user_id: UserRef
    query: Annotated[str, Field(min_length=1, max_length=10_000), _Clean] | None = Field(
        default=None, description="what to rank memories and knowledge by; left out: the newest user message"
    )
    max_tokens: Annotated[int, Field(ge=1, le=10_000_000)] = 2000
