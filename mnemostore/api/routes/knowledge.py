"""``/v1/knowledge``: upsert by (source, external id), bulk upsert, list by source, look up and delete by external
ids, get, delete, search."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Response, status

from mnemostore.domain import KnowledgeChunk
from mnemostore.errors import KnowledgeChunkNotFound

from .._json_body import JsonRoute
from ..deps import ReadTenantDep, TenantDep
from ..schemas import (
    DeletedOut,
    Items,
    KnowledgeBulkUpsert,
    KnowledgeChunkOut,
    KnowledgeSearchRequest,
    KnowledgeUpsert,
    Page,
    SearchResultsOut,
)
from ._common import Cursor, Limit, no_content, page_from_store
from .search import SEARCH_RESPONSES, run_search

__all__ = ["router"]

router = APIRouter(route_class=JsonRoute, prefix="/v1/knowledge", tags=["knowledge"])


@router.post("", response_model=KnowledgeChunkOut)
async def upsert_knowledge(body: KnowledgeUpsert, t: TenantDep) -> KnowledgeChunk:
    """Insert or update the chunk keyed by (source, external_id); sending the same chunk again changes nothing.
    ``vector`` and ``model``: the chunk's embedding computed by the caller (never re-embedded)."""
    return await t.upsert_knowledge(
        body.source,
        body.external_id,
        body.content,
        title=body.title,
        metadata=body.metadata,
        vector=body.vector,
        model=body.model,
    )


@router.post("/bulk", response_model=Items[KnowledgeChunkOut])
async def upsert_knowledge_bulk(body: KnowledgeBulkUpsert, t: TenantDep) -> dict[str, object]:
    """Upsert up to 1,000 chunks of one source in one transaction (a later duplicate external_id wins)."""
    chunks = [chunk.model_dump() for chunk in body.chunks]
    return {"items": await t.upsert_knowledge_chunks(body.source, chunks, model=body.model)}


@router.get("", response_model=Page[KnowledgeChunkOut])
async def list_knowledge(
    t: TenantDep,
    source: Annotated[str, Query(min_length=1, max_length=500, description="the source to list")],
    limit: Limit = 100,
    cursor: Cursor = None,
) -> dict[str, object]:
    """Chunks of one source, by external id."""
    return page_from_store(await t.list_knowledge(source, limit=limit, cursor=cursor))


Source = Annotated[str, Query(min_length=1, max_length=500, description="the chunks' source")]
ExternalIds = Annotated[
    list[str], Query(alias="external_id", min_length=1, max_length=1000, description="repeat for each chunk")
]


@router.get("/lookup", response_model=Items[KnowledgeChunkOut])
async def get_knowledge_chunks(t: TenantDep, source: Source, external_ids: ExternalIds) -> dict[str, object]:
    """The chunks of ``source`` with these external ids, by external id (the ones that do not exist left out)."""
    return {"items": await t.get_knowledge_chunks(source, external_ids)}


@router.delete("", response_model=DeletedOut)
async def delete_knowledge_chunks(t: TenantDep, source: Source, external_ids: ExternalIds) -> dict[str, int]:
    """Delete the chunks of ``source`` with these external ids, in one transaction; ``deleted`` counts them."""
    return {"deleted": await t.delete_knowledge_chunks(source, external_ids)}


@router.post("/search", response_model=SearchResultsOut, responses=SEARCH_RESPONSES)
async def search_knowledge(body: KnowledgeSearchRequest, t: ReadTenantDep) -> dict[str, object]:
    """Search the knowledge chunks only (``POST /v1/search`` with ``scope`` knowledge)."""
    return await run_search(t, body, ("knowledge",))


@router.get("/{chunk_id}", response_model=KnowledgeChunkOut)
async def get_knowledge_chunk(chunk_id: uuid.UUID, t: TenantDep) -> KnowledgeChunk:
    chunk = await t.get_knowledge_chunk(chunk_id)
    if chunk is None:
        raise KnowledgeChunkNotFound(chunk_id)
    return chunk


@router.delete("/{chunk_id}", status_code=status.HTTP_204_NO_CONTENT, response_class=Response)
async def delete_knowledge_chunk(chunk_id: uuid.UUID, t: TenantDep) -> Response:
    await t.delete_knowledge_chunk(chunk_id)
    return no_content()
