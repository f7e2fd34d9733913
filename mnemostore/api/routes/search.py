"""``POST /v1/search``: one endpoint for semantic, full-text and hybrid search over the tenant's items.

The search itself is the store's (``AsyncTenantStore.search``); this module maps the request onto it. The default
mode, ``auto``, answers everywhere: hybrid where semantic search can run, full text elsewhere, and the answer says
which ran. Semantic and hybrid asked for explicitly need an embedder (the ``embeddings`` extra, or
``MNEMOSTORE_EMBEDDER``) and, on PostgreSQL, pgvector: without them they answer 400 (no embedder, naming what to
install) or 501 (no vector support).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from mnemostore.service.store_async import AsyncTenantStore

from .._json_body import JsonRoute
from ..deps import ReadTenantDep
from ..schemas import ErrorBody, KnowledgeSearchRequest, SearchRequest, SearchResultsOut

__all__ = ["SEARCH_RESPONSES", "router", "run_search"]

router = APIRouter(route_class=JsonRoute, prefix="/v1/search", tags=["search"])

SCOPES = {
    "messages": ("messages",),
    "memories": ("memories",),
    "knowledge": ("knowledge",),
    "all": ("messages", "memories", "knowledge"),
}

SEARCH_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorBody, "description": "semantic or hybrid mode asked for where no embedder is configured"},
    501: {"model": ErrorBody, "description": "semantic or hybrid mode asked for on a PostgreSQL without pgvector"},
}


async def run_search(t: AsyncTenantStore, body: KnowledgeSearchRequest, kinds: tuple[str, ...]) -> dict[str, Any]:
    filters = body.filters.model_dump(exclude_none=True) if body.filters is not None else {}
    hits = await t.search(
        body.query,
        vector=body.vector,
        model=body.model,
        mode=body.mode,
        kinds=kinds,
        limit=body.limit,
        min_score=body.min_score,
        weights=None if body.weights is None else {str(name): w for name, w in body.weights.items()},
        **filters,
    )
    return {"items": hits, "mode": hits.mode.value, "retrievers": list(hits.retrievers), "pending": hits.pending}


@router.post("", response_model=SearchResultsOut, responses=SEARCH_RESPONSES)
async def search(body: SearchRequest, t: ReadTenantDep) -> dict[str, Any]:
    """Search messages, memories and knowledge (``scope``), best first: ``query`` and/or ``vector`` (with its
    ``model``), ``mode`` (auto, semantic, fulltext, hybrid), ``filters``, ``limit``, ``weights`` (hybrid fusion).
    Each hit carries every retriever's score and rank; the answer names the mode and retrievers that ran.
    Read-only keys may search."""
    return await run_search(t, body, SCOPES[body.scope])
