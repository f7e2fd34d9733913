"""Operations endpoints, without authentication (for probes and scrapers): ``/healthz``, ``/readyz``, ``/metrics``.

``/healthz`` answers while the process serves (liveness: no database call). ``/readyz`` is 200 only when the
database answers and its schema is at head; Redis is reported (down means degraded, not unready: the database
serves alone) and so are indexing and its backlog (pending jobs of the search outbox: new items wait for it only
to be found by semantic search). ``/metrics`` is
the Prometheus text format (see ``mnemostore.api.metrics``). None of them shows tenant data.
"""

from __future__ import annotations

from typing import Any, Final

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from mnemostore.errors import BackendUnavailable, MnemostoreError
from mnemostore.ops import HealthStatus
from mnemostore.search import IndexingStatus
from mnemostore.service.store_async import AsyncMnemoStore

from .._json_body import JsonRoute
from ..deps import StoreDep
from ..metrics import CONTENT_TYPE
from ..schemas import HealthOut, ReadyOut

__all__ = ["router"]

router = APIRouter(route_class=JsonRoute, tags=["operations"])

READINESS_CHECKS: Final = ("database", "schema", "redis", "indexing")
REQUIRED: Final = frozenset({"database", "schema"})
READY_TIMEOUT_SECONDS: Final = 2.0


@router.get("/healthz", response_model=HealthOut)
async def healthz() -> dict[str, str]:
    """Liveness: the process answers."""
    return {"status": "ok"}


@router.get("/readyz", response_model=ReadyOut, responses={503: {"model": ReadyOut, "description": "not ready"}})
async def readyz(store: StoreDep) -> JSONResponse:
    """Readiness: database reachable and schema at head (else 503); Redis state, the embedding model (loaded or
    loading) and the indexing backlog reported."""
    report = await store.health(timeout_seconds=READY_TIMEOUT_SECONDS)
    checks: dict[str, dict[str, Any]] = {}
    ready = True
    for name in READINESS_CHECKS:
        try:
            check = report.check(name)
        except KeyError:
            continue
        checks[name] = {"status": check.status.value, "summary": check.summary, "latency_ms": check.latency_ms}
        if check.action:
            checks[name]["action"] = check.action
        if name in REQUIRED and check.status not in (HealthStatus.OK, HealthStatus.WARN):
            ready = False
    checks["embedder"] = _embedder_check(store)
    backlog = await _backlog(store) if ready else None
    body = ReadyOut(ready=ready, checks=checks, indexing_backlog=None if backlog is None else backlog.pending)
    return JSONResponse(body.model_dump(mode="json"), status_code=200 if ready else 503)


def _embedder_check(store: AsyncMnemoStore) -> dict[str, Any]:
    """Whether semantic search is ready: the model loads in the background at start-up (it does not gate
    readiness: full text answers meanwhile, and a semantic query waits for the model)."""
    embedder = store.embedder
    if embedder is None:
        return {"status": "skip", "summary": "no embedder: search runs on full text", "latency_ms": None}
    if embedder.loaded:
        return {"status": "ok", "summary": f"{embedder.name} loaded", "latency_ms": None}
    return {
        "status": "warn",
        "summary": f"{embedder.name} is loading: semantic queries wait for it, full text answers now",
        "latency_ms": None,
    }


async def _backlog(store: AsyncMnemoStore) -> IndexingStatus | None:
    try:
        return await store.indexing_status()
    except MnemostoreError:
        return None


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request, store: StoreDep) -> Response:
    """Prometheus text format."""
    metrics = request.app.state.metrics
    # The outbox lives in the database: counted at scrape time (one grouped count), skipped while it is away.
    try:
        metrics.observe_backlog(await store.indexing_status())
    except BackendUnavailable:
        metrics.observe_backlog(None, reachable=False)
    except MnemostoreError:  # reachable, but not usable as it is (a schema behind): the outbox is not counted
        metrics.observe_backlog(None)
    return Response(metrics.render(), media_type=CONTENT_TYPE)
