"""The key's own tenant: ``/v1/tenant`` (its plan, quotas and config), ``/v1/indexing`` (its semantic-search
backlog) and ``/v1/export`` (an archive of its data, or of one user's, for portability requests)."""

from __future__ import annotations

import shutil
import tempfile
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import FileResponse
from starlette.background import BackgroundTask

from mnemostore.domain import Tenant
from mnemostore.search import IndexingStatus

from .._json_body import JsonRoute
from ..deps import TenantDep
from ..schemas import IndexingStatusOut, TenantOut

__all__ = ["router"]

router = APIRouter(route_class=JsonRoute, tags=["tenant"])

ARCHIVE_TYPE = "application/gzip"


@router.get("/v1/tenant", response_model=TenantOut)
async def get_own_tenant(t: TenantDep) -> Tenant:
    """The tenant of this API key: its name, plan, quotas, status and config."""
    return await t.resolve()


@router.get("/v1/indexing", response_model=IndexingStatusOut)
async def indexing_status(t: TenantDep) -> IndexingStatus:
    """The tenant's indexing jobs by state: semantic search sees an item once its job is done (full text at once)."""
    return await t.indexing_status()


@router.get(
    "/v1/export",
    response_class=FileResponse,
    responses={
        200: {
            "description": "a backup archive (`.tar.gz`: manifest.json, tables/*.jsonl), restorable with "
            "`mnemostore restore`",
            "content": {ARCHIVE_TYPE: {"schema": {"type": "string", "format": "binary"}}},
        }
    },
)
async def export(
    t: TenantDep,
    user_id: Annotated[
        uuid.UUID | None, Query(description="only this user's rows (a data portability request)")
    ] = None,
) -> FileResponse:
    """The tenant's data, or one user's (their row, identities, conversations with everything in them, memories),
    as a backup archive; signed when the service has a backup signing key."""
    folder = Path(tempfile.mkdtemp(prefix="mnemostore-export-"))
    try:
        result = await t.export(folder / "export.tar.gz", user_id=user_id, compress=True)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    name = f"mnemostore-{'user-' + str(user_id) if user_id is not None else 'tenant-' + str(t.tenant_id)}-{stamp}"
    return FileResponse(
        result.path,
        media_type=ARCHIVE_TYPE,
        filename=f"{name}.tar.gz",
        background=BackgroundTask(shutil.rmtree, folder, ignore_errors=True),
    )
