"""``/v1/memories``: store, store a segment, list (most important first), get, update, history (earlier versions),
delete one, delete a user's or an agent's."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response, status

from mnemostore.domain import MemoryRecord, MemoryTier
from mnemostore.errors import InvalidInput, MemoryNotFound

from .._json_body import JsonRoute
from ..deps import TenantDep
from ..schemas import (
    DeletedOut,
    MemoryCreate,
    MemoryOut,
    MemorySegmentCreate,
    MemoryUpdate,
    MemoryVersionOut,
    Page,
)
from ._common import Cursor, Limit, no_content, page_from_store

__all__ = ["router"]

router = APIRouter(route_class=JsonRoute, prefix="/v1/memories", tags=["memories"])


@router.post("", status_code=status.HTTP_201_CREATED, response_model=MemoryOut)
async def store_memory(body: MemoryCreate, t: TenantDep) -> MemoryRecord:
    """Store a memory (and publish ``memory.stored``); ``vector`` and ``model``: its embedding computed by the
    caller (never re-embedded; searched with ``POST /v1/search`` and the same model)."""
    return await t.store_memory(**body.model_dump())


@router.post("/segments", status_code=status.HTTP_201_CREATED, response_model=MemoryOut)
async def add_memory_segment(body: MemorySegmentCreate, t: TenantDep) -> MemoryRecord:
    """Store a compressed segment: a summary (kind ``summary``) of the messages it names, at a compression level
    (1: of raw messages, 2: of level-1 segments…). Segments are never merged as near-duplicates."""
    fields = body.model_dump(exclude={"content"})
    return await t.add_memory_segment(body.content, **fields)


@router.delete("", response_model=DeletedOut)
async def delete_memories(
    t: TenantDep,
    user_id: Annotated[uuid.UUID | None, Query(description="this user's memories")] = None,
    agent_id: Annotated[str | None, Query(min_length=1, max_length=200, description="this agent's memories")] = None,
) -> dict[str, int]:
    """Delete every memory of a user, of an agent, or of that user with that agent (one of them is needed), with
    their versions."""
    return {"deleted": await t.delete_memories(user_id=user_id, agent_id=agent_id)}


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


@router.patch("/{memory_id}", response_model=MemoryOut)
async def update_memory(memory_id: uuid.UUID, body: MemoryUpdate, t: TenantDep) -> MemoryRecord:
    """Change the fields sent (``expires_at`` null: never expires); a change of content, importance or metadata
    keeps the previous state as a version (``/history``), a change of content re-indexes it."""
    fields: dict[str, Any] = {name: getattr(body, name) for name in body.model_fields_set}
    cleared = sorted(name for name, value in fields.items() if value is None and name != "expires_at")
    if cleared:
        raise InvalidInput(f"{', '.join(cleared)} cannot be null: send a value, or leave it out to keep it")
    return await t.update_memory(memory_id, **fields)


@router.get("/{memory_id}/history", response_model=Page[MemoryVersionOut])
async def get_memory_history(memory_id: uuid.UUID, t: TenantDep) -> dict[str, object]:
    """The memory's earlier states, oldest first, replaced by an update or a near-duplicate (all on one page);
    the current state is the memory itself."""
    return {"items": await t.get_memory_history(memory_id), "next_cursor": None}


@router.delete("/{memory_id}", status_code=status.HTTP_204_NO_CONTENT, response_class=Response)
async def delete_memory(memory_id: uuid.UUID, t: TenantDep) -> Response:
    await t.delete_memory(memory_id)
    return no_content()
