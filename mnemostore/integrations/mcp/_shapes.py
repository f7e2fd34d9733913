"""What the tools answer (their output schemas), and the argument types several tools share.

Results speak the caller's language: users by the caller's own ids, no tenant or internal user ids; every id a
later call needs (a memory, a conversation) is in the answer, as are the cursors for the next page.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from mnemostore.domain import Conversation, MemoryRecord, MemoryVersion, Message
from mnemostore.search import SearchHit

__all__ = [
    "AgentId",
    "ConversationOut",
    "ConversationsOut",
    "Deleted",
    "KnowledgeHit",
    "KnowledgeHits",
    "MemoriesOut",
    "MemoryHistory",
    "MemoryHit",
    "MemoryHits",
    "MemoryOut",
    "MemoryVersionOut",
    "MessageOut",
    "MessagesOut",
    "Metadata",
    "Params",
    "UserId",
]

UserId = Annotated[
    str,
    Field(
        min_length=1,
        max_length=200,
        pattern=r"\S",
        description="Your own id of the user (a name, an email, your app's key): the same string every time. "
        "A user is created on first use.",
    ),
]
AgentId = Annotated[
    str | None,
    Field(max_length=200, description="Optional: the agent the memory belongs to, to keep agents' memories apart."),
]
Metadata = Annotated[
    dict[str, Any] | None, Field(description="Optional: a JSON object of your own, stored with the item.")
]


class Params(BaseModel):
    """A tool's arguments: unknown names are refused (a misspelt argument is an error, not silently ignored)."""

    model_config = ConfigDict(extra="forbid")


class MemoryOut(BaseModel):
    id: uuid.UUID = Field(description="the memory's id, for get_memory, update_memory, delete_memory, memory_history")
    content: str
    agent_id: str | None
    kind: str = Field(description="fact, preference, episode or summary")
    importance: float
    metadata: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    conversation_id: uuid.UUID | None = Field(default=None, description="the conversation it comes from, if any")

    @classmethod
    def of(cls, memory: MemoryRecord) -> MemoryOut:
        return cls(
            id=memory.id,
            content=memory.content,
            agent_id=memory.agent_id,
            kind=memory.kind.value,
            importance=memory.importance,
            metadata=dict(memory.metadata),
            created_at=memory.created_at,
            updated_at=memory.updated_at,
            conversation_id=memory.conversation_id,
        )


class MemoriesOut(BaseModel):
    memories: list[MemoryOut]
    next_cursor: str | None = Field(description="pass back as cursor for the next page; null when there is no more")


class MemoryHit(BaseModel):
    id: uuid.UUID
    content: str
    score: float = Field(description="how well it answers the query; hits come best first")
    agent_id: str | None
    importance: float | None
    metadata: dict[str, Any]
    created_at: datetime

    @classmethod
    def of(cls, hit: SearchHit) -> MemoryHit:
        return cls(
            id=hit.id,
            content=hit.content,
            score=hit.score,
            agent_id=hit.agent_id,
            importance=hit.importance,
            metadata=dict(hit.metadata),
            created_at=hit.created_at,
        )


class MemoryHits(BaseModel):
    hits: list[MemoryHit]
    mode: str = Field(description="how the search ranked: hybrid (meaning and words) or fulltext (words)")


class MemoryVersionOut(BaseModel):
    content: str
    importance: float
    metadata: dict[str, Any]
    replaced_at: datetime = Field(description="when this state was replaced by a newer one")

    @classmethod
    def of(cls, version: MemoryVersion) -> MemoryVersionOut:
        return cls(
            content=version.content,
            importance=version.importance,
            metadata=dict(version.metadata),
            replaced_at=version.created_at,
        )


class MemoryHistory(BaseModel):
    memory_id: uuid.UUID
    versions: list[MemoryVersionOut] = Field(description="earlier states, oldest first (get_memory has the current)")


class Deleted(BaseModel):
    id: uuid.UUID
    deleted: bool


class ConversationOut(BaseModel):
    id: uuid.UUID = Field(description="the conversation's id, for add_message and get_recent_messages")
    user_id: str = Field(description="your own id of the conversation's user")
    title: str | None
    external_id: str | None = Field(description="your own key of the conversation, when you gave one")
    message_count: int
    started_at: datetime
    last_activity_at: datetime

    @classmethod
    def of(cls, conversation: Conversation, user_id: str) -> ConversationOut:
        return cls(
            id=conversation.id,
            user_id=user_id,
            title=conversation.title,
            external_id=conversation.external_id,
            message_count=conversation.message_count,
            started_at=conversation.started_at,
            last_activity_at=conversation.last_activity_at,
        )


class ConversationsOut(BaseModel):
    conversations: list[ConversationOut]
    next_cursor: str | None = Field(description="pass back as cursor for the next page; null when there is no more")


class MessageOut(BaseModel):
    id: uuid.UUID
    seq: int = Field(description="the message's position in its conversation, from 1")
    role: str
    content: str
    metadata: dict[str, Any]
    created_at: datetime

    @classmethod
    def of(cls, message: Message) -> MessageOut:
        return cls(
            id=message.id,
            seq=message.seq,
            role=message.role.value,
            content=message.content,
            metadata=dict(message.metadata),
            created_at=message.created_at,
        )


class MessagesOut(BaseModel):
    conversation_id: uuid.UUID
    messages: list[MessageOut] = Field(description="oldest first")
    before: str | None = Field(description="pass back as before for the messages just older; null: none older")


class KnowledgeHit(BaseModel):
    id: uuid.UUID
    source: str | None
    title: str | None
    content: str
    score: float = Field(description="how well it answers the query; hits come best first")
    metadata: dict[str, Any]

    @classmethod
    def of(cls, hit: SearchHit) -> KnowledgeHit:
        return cls(
            id=hit.id,
            source=hit.source,
            title=hit.title,
            content=hit.content,
            score=hit.score,
            metadata=dict(hit.metadata),
        )


class KnowledgeHits(BaseModel):
    hits: list[KnowledgeHit]
    mode: str = Field(description="how the search ranked: hybrid (meaning and words) or fulltext (words)")
