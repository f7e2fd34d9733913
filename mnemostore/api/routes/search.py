"""``POST /v1/search``: semantic, full-text and hybrid search. Not implemented yet (issue #3): 501."""

from __future__ import annotations

from fastapi import APIRouter

from ..deps import ReadTenantDep
from ..schemas import ErrorBody, SearchRequest
from ._common import not_implemented

__all__ = ["router"]

router = APIRouter(prefix="/v1/search", tags=["search"])


@router.post("", responses={501: {"model": ErrorBody, "description": "search arrives with issue #3"}})
async def search(body: SearchRequest, t: ReadTenantDep) -> None:
    """One endpoint for every search: ``query``, ``mode`` (semantic, fulltext, hybrid), ``scope``, ``filters``,
    ``limit``. **Not implemented yet**: it answers 501 until vector and full-text search land (issue #3, extra
    ``embeddings``). The request is authenticated and validated as it will be."""
    raise not_implemented("search")
