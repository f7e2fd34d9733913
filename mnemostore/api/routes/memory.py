"""``/v1/memory``: the three-line memory API (``mnemostore.Memory``) over HTTP, keyed by the caller's own user ids.

Each route is one call of ``AsyncMemory`` on the tenant the key belongs to; ``/v1/memories`` is the full resource
API with mnemostore's ids.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response, status

from mnemostore.domain import Context, MemoryRecord, NewMessage
from mnemostore.errors import MemoryNotFound
from mnemostore.facade import AsyncMemory

from .._json_body import JsonRoute
from ..deps import ReadTenantDep, TenantDep
from ..schemas import (
    ContextOut,
    MemoryAdd,
    MemoryContext,
    MemoryDeleted,
    MemoryEdit,
    MemoryOut,
    MemorySearch,
    MemoryVersionOut,
    Page,
    SearchResultsOut,
)
from ..schemas import Items as ItemsOut
from ._common import Cursor, Limit, no_content, page_from_store
from .search import SEARCH_RESPONSES

__all__ = ["router"]

router = APIRouter(route_class=JsonRoute, prefix="/v1/memory", tags=["memory"])

UserQuery = Annotated[str, Query(min_length=1, max_length=200, description="your own id of the user")]


@router.post("/add", status_code=status.HTTP_201_CREATED, response_model=ItemsOut[MemoryOut])
async def add(body: MemoryAdd, t: TenantDep) -> dict[str, Any]:
    """Remember a fact, or a chat (``messages``: stored as a conversation, and what the user said as memories).
    Answers the memories written or merged into (a near-duplicate updates the memory it repeats)."""
    memory = AsyncMemory.for_tenant(t)
    content: str | list[NewMessage]
    if body.messages is not None:
        content = [NewMessage(**m.model_dump(exclude_none=True)) for m in body.messages]
    else:
        assert body.content is not None
        content = body.content
    stored = await memory.add(
        content,
        user_id=body.user_id,
        agent_id=body.agent_id,
        metadata=body.metadata,
        importance=body.importance,
        conversation_id=body.conversation_id,
        roles=body.roles,
        vector=body.vector,
        model=body.model,
    )
    return {"items": stored}


@router.post("/context", response_model=ContextOut, responses=SEARCH_RESPONSES)
async def context(body: MemoryContext, t: ReadTenantDep) -> Context:
    """The context block for the next answer in a conversation of the user: its summaries, the user's memories
    and the knowledge most relevant to ``query`` (default: the newest user message), its newest messages, within
    ``max_tokens`` (404 when the conversation is not the user's; see ``POST /v1/conversations/{id}/context``)."""
    return await AsyncMemory.for_tenant(t).context(
        body.conversation_id, user_id=body.user_id, query=body.query, max_tokens=body.max_tokens
    )


@router.post("/search", response_model=SearchResultsOut, responses=SEARCH_RESPONSES)
async def search(body: MemorySearch, t: ReadTenantDep) -> dict[str, Any]:
    """The user's memories that best answer ``query``, best first; the answer names the mode and retrievers."""
    hits = await AsyncMemory.for_tenant(t).search(
        body.query,
        user_id=body.user_id,
        agent_id=body.agent_id,
        limit=body.limit,
        min_score=body.min_score,
        mode=body.mode,
        vector=body.vector,
        model=body.model,
    )
    return {"items": hits, "mode": hits.mode.value, "retrievers": list(hits.retrievers), "pending": hits.pending}


@router.get("", response_model=Page[MemoryOut])
async def get_all(
    t: ReadTenantDep,
    user_id: UserQuery,
    agent_id: Annotated[str | None, Query(max_length=200)] = None,
    limit: Limit = 100,
    cursor: Cursor = None,
    conversation_id: Annotated[uuid.UUID | None, Query(description="only the memories of this conversation")] = None,
    query: Annotated[
        str | None, Query(min_length=1, max_length=10_000, description="the most relevant to it first (one page)")
    ] = None,
) -> dict[str, object]:
    """The user's memories, most important first (with ``query``: most relevant first, one page)."""
    page = await AsyncMemory.for_tenant(t).get_all(
        user_id=user_id, agent_id=agent_id, limit=limit, cursor=cursor, conversation_id=conversation_id, query=query
    )
    return page_from_store(page)


@router.delete("", response_model=MemoryDeleted)
async def delete_all(
    t: TenantDep, user_id: UserQuery, agent_id: Annotated[str | None, Query(max_length=200)] = None
) -> dict[str, int]:
    """Forget every memory of the user (of one agent, with ``agent_id``); the user and their chats stay."""
    return {"deleted": await AsyncMemory.for_tenant(t).delete_all(user_id=user_id, agent_id=agent_id)}


@router.get("/{memory_id}", response_model=MemoryOut)
async def get(memory_id: uuid.UUID, t: ReadTenantDep) -> MemoryRecord:
    memory = await AsyncMemory.for_tenant(t).get(memory_id)
    if memory is None:
        raise MemoryNotFound(memory_id)
    return memory


@router.patch("/{memory_id}", response_model=MemoryOut)
async def update(memory_id: uuid.UUID, body: MemoryEdit, t: TenantDep) -> MemoryRecord:
    """Replace the memory's text (and metadata); the previous state is kept (``/history``)."""
    return await AsyncMemory.for_tenant(t).update(memory_id, body.content, metadata=body.metadata)


@router.delete("/{memory_id}", status_code=status.HTTP_204_NO_CONTENT, response_class=Response)
async def delete(memory_id: uuid.UUID, t: TenantDep) -> Response:
    await AsyncMemory.for_tenant(t).delete(memory_id)
    return no_content()


@router.get("/{memory_id}/history", response_model=ItemsOut[MemoryVersionOut])
async def history(memory_id: uuid.UUID, t: ReadTenantDep) -> dict[str, object]:
    """The memory's earlier states, oldest first."""
    return {"items": await AsyncMemory.for_tenant(t).history(memory_id)}
