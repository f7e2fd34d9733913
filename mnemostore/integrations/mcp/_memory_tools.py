"""The memory tools: one ``AsyncMemory`` call each, on the caller's tenant, with the caller's own user ids."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from pydantic import Field

from mnemostore.errors import MemoryNotFound
from mnemostore.facade import AsyncMemory

from ._access import Access
from ._shapes import (
    AgentId,
    Deleted,
    MemoriesOut,
    MemoryHistory,
    MemoryHit,
    MemoryHits,
    MemoryOut,
    MemoryVersionOut,
    Metadata,
    Params,
    UserId,
)
from ._tool import ToolSpec, tool

__all__ = ["MEMORY_TOOLS"]

MemoryId = Annotated[uuid.UUID, Field(description="the memory's id, as add_memory, search or list returned it")]
ConversationRef = Annotated[
    uuid.UUID | None,
    Field(description="Optional: the conversation (its id, as start_conversation returned it) the fact comes from"),
]
Content = Annotated[str, Field(min_length=1, pattern=r"\S", description="the fact, in plain words")]


class AddMemory(Params):
    user_id: UserId
    content: Content
    agent_id: AgentId = None
    metadata: Metadata = None
    importance: Annotated[float, Field(ge=0.0, le=1.0, description="0 (trivia) to 1 (essential)")] = 0.5
    conversation_id: ConversationRef = None


class SearchMemories(Params):
    user_id: UserId
    query: Annotated[str, Field(min_length=1, pattern=r"\S", description="a question or keywords")]
    agent_id: AgentId = None
    limit: Annotated[int, Field(ge=1, le=100, description="how many hits at most")] = 10
    threshold: Annotated[
        float | None, Field(description="Optional: leave out hits scoring lower (cosine similarity when semantic)")
    ] = None


class ListMemories(Params):
    user_id: UserId
    agent_id: AgentId = None
    limit: Annotated[int, Field(ge=1, le=1000, description="how many memories per page")] = 50
    cursor: Annotated[str | None, Field(description="next_cursor of the previous page")] = None
    conversation_id: Annotated[
        uuid.UUID | None, Field(description="Optional: only the memories stored from this conversation")
    ] = None
    query: Annotated[
        str | None,
        Field(min_length=1, description="Optional: the most relevant to this text first (one page, no cursor)"),
    ] = None


class OneMemory(Params):
    memory_id: MemoryId


class UpdateMemory(Params):
    memory_id: MemoryId
    content: Content
    metadata: Annotated[
        dict[str, Any] | None, Field(description="Optional: replaces the memory's metadata; omitted: kept.")
    ] = None


def _memory(access: Access) -> AsyncMemory:
    return AsyncMemory.for_tenant(access.tenant)


@tool("add_memory", AddMemory, MemoryOut, title="Remember a fact about a user", writes=True)
async def add_memory(access: Access, p: AddMemory) -> MemoryOut:
    """Remember something about a user for later conversations: a preference, a fact they told you, a decision.
    Write one fact per call, in plain words ("Alice is vegetarian"). A fact that says the same as one the user
    already has is merged into it (the old text stays in memory_history). Returns the memory written or merged
    into, with its id."""
    stored = await _memory(access).add(
        p.content,
        user_id=p.user_id,
        agent_id=p.agent_id,
        metadata=p.metadata,
        importance=p.importance,
        conversation_id=p.conversation_id,
    )
    return MemoryOut.of(stored[0])  # a text is one memory


@tool("search_memories", SearchMemories, MemoryHits, title="Search a user's memories", writes=False)
async def search_memories(access: Access, p: SearchMemories) -> MemoryHits:
    """Find what you know about a user that is relevant now: the user's memories that best answer a question
    or match keywords, best first. Use it before answering a user, to take what they told you earlier into
    account. A user with no memories yet gives no hits (not an error)."""
    found = await _memory(access).search(
        p.query, user_id=p.user_id, agent_id=p.agent_id, limit=p.limit, min_score=p.threshold
    )
    return MemoryHits(hits=[MemoryHit.of(hit) for hit in found], mode=found.mode.value)


@tool("list_memories", ListMemories, MemoriesOut, title="List a user's memories", writes=False)
async def list_memories(access: Access, p: ListMemories) -> MemoriesOut:
    """List everything remembered about a user, most important first, a page at a time: pass next_cursor back
    as cursor for the next page; only those of one conversation with conversation_id; with query, the most
    relevant to it first. Prefer search_memories to find something specific."""
    page = await _memory(access).get_all(
        user_id=p.user_id,
        agent_id=p.agent_id,
        limit=p.limit,
        cursor=p.cursor,
        conversation_id=p.conversation_id,
        query=p.query,
    )
    return MemoriesOut(memories=[MemoryOut.of(m) for m in page.items], next_cursor=page.next_cursor)


@tool("get_memory", OneMemory, MemoryOut, title="Read one memory", writes=False)
async def get_memory(access: Access, p: OneMemory) -> MemoryOut:
    """Read one memory by its id (as add_memory, search_memories or list_memories returned it): its current
    text, importance and metadata."""
    memory = await _memory(access).get(p.memory_id)
    if memory is None:
        raise MemoryNotFound(p.memory_id)
    return MemoryOut.of(memory)


@tool("update_memory", UpdateMemory, MemoryOut, title="Correct a memory", writes=True, idempotent=True)
async def update_memory(access: Access, p: UpdateMemory) -> MemoryOut:
    """Replace what a memory says, when the user corrects it or it changed ("Alice is vegan now"). The previous
    text is kept in memory_history."""
    return MemoryOut.of(await _memory(access).update(p.memory_id, p.content, metadata=p.metadata))


@tool("delete_memory", OneMemory, Deleted, title="Forget a memory", writes=True, destructive=True, idempotent=False)
async def delete_memory(access: Access, p: OneMemory) -> Deleted:
    """Forget one memory for good, with its earlier versions: when the user asks you to forget it, or it was
    wrong. Cannot be undone."""
    await _memory(access).delete(p.memory_id)
    return Deleted(id=p.memory_id, deleted=True)


@tool("memory_history", OneMemory, MemoryHistory, title="Earlier versions of a memory", writes=False)
async def memory_history(access: Access, p: OneMemory) -> MemoryHistory:
    """The earlier states of a memory, oldest first, each with when it was replaced (by update_memory, or by a
    newer fact that said the same). The current state is get_memory."""
    versions = await _memory(access).history(p.memory_id)
    return MemoryHistory(memory_id=p.memory_id, versions=[MemoryVersionOut.of(v) for v in versions])


MEMORY_TOOLS: tuple[ToolSpec[Any, Any], ...] = (
    add_memory,
    search_memories,
    list_memories,
    get_memory,
    update_memory,
    delete_memory,
    memory_history,
)
