"""``/v1/memories``: store, list (most important first), get, history (earlier versions), delete."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Response, status

from mnemostore.domain import MemoryRecord, MemoryTier
from mnemostore.errors import MemoryNotFound

from .._json_body import JsonRoute
from ..deps import TenantDep
from ..schemas import MemoryCreate, MemoryOut, MemoryVersionOut, Page
from ._common import Cursor, Limit, no_content, page_from_store

__all__ = ["router"]

router = APIRouter(route_class=JsonRoute, prefix="/v1/memories", tags=["memories"])


@router.post("", status_code=status.HTTP_201_CREATED, response_model=MemoryOut)
async def store_memory(body: MemoryCreate, t: TenantDep) -> MemoryRecord:
    """Store a memory (and publish ``memory.stored``); ``vector`` and ``model``: its embedding computed by the
    caller (never re-embedded; searched with ``POST /v1/search`` and the same model)."""
    return await t.store_memory(**body.model_dump())


@router.get("", response_model=Page[MemoryOut])
async def list_memories(
    t: TenantDep,
    user_id: Annotated[uuid.UUID | None, Query(description="only this user's")] = None,
    tier: Annotated[MemoryTier | None, Query(description="only this tier")] = None,
    limit: Limit = 20,
    cursor: Cursor = None,
    conversation_id: Annotated[uuid.UUID | None, Query(description="only those stored from it")] = None,
    query: Annotated[
        str | None,
        Query(min_length=1, max_length=10_000, description="rank by relevance to this text (one page, no cursor)"),
    ] = None,
) -> dict[str, object]:
    """Memories, most important first; with ``query``, the most relevant to it first."""
    return page_from_store(
        await t.retrieve_memories(
            user_id=user_id, tier=tier, limit=limit, cursor=cursor, conversation_id=conversation_id, query=query
        )
    )


@router.get("/{memory_id}", response_model=MemoryOut)
async def get_memory(memory_id: uuid.UUID, t: TenantDep) -> MemoryRecord:
    memory = await t.get_memory(memory_id)
    if memory is None:
        raise MemoryNotFound(memory_id)
    return memory


@router.get("/{memory_id}/history", response_model=Page[MemoryVersionOut])
async def get_memory_history(memory_id: uuid.UUID, t: TenantDep) -> dict[str, object]:
    """The memory's earlier states, oldest first, replaced by an update or a near-duplicate (all on one page);
    the current state is the memory itself."""
    return {"items": await t.get_memory_history(memory_id), "next_cursor": None}


@router.delete("/{memory_id}", status_code=status.HTTP_204_NO_CONTENT, response_class=Response)
async def delete_memory(memory_id: uuid.UUID, t: TenantDep) -> Response:
    await t.delete_memory(memory_id)
    return no_content()
