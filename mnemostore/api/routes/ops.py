"""Operations endpoints, without authentication (for probes and scrapers): ``/healthz``, ``/readyz``, ``/metrics``.

``/healthz`` answers while the process serves (liveness: no database call). ``/readyz`` is 200 only when the
database answers and its schema is at head; Redis is reported (down means degraded, not unready: the database
serves alone) and so is the indexing backlog (null until background indexing exists, issue #3). ``/metrics`` is
the Prometheus text format (see ``mnemostore.api.metrics``). None of them shows tenant data.
"""

from __future__ import annotations

from typing import Any, Final

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from mnemostore.ops._health_base import HealthStatus

from ..deps import StoreDep
from ..metrics import CONTENT_TYPE
from ..schemas import HealthOut, ReadyOut

__all__ = ["router"]

router = APIRouter(tags=["operations"])

READINESS_CHECKS: Final = ("database", "schema", "redis")
REQUIRED: Final = frozenset({"database", "schema"})
READY_TIMEOUT_SECONDS: Final = 2.0


@router.get("/healthz", response_model=HealthOut)
async def healthz() -> dict[str, str]:
    """Liveness: the process answers."""
    return {"status": "ok"}


@router.get("/readyz", response_model=ReadyOut, responses={503: {"model": ReadyOut, "description": "not ready"}})
async def readyz(store: StoreDep) -> JSONResponse:
    """Readiness: database reachable and schema at head (else 503); Redis state and indexing backlog reported."""
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
    body = ReadyOut(ready=ready, checks=checks, indexing_backlog=None)
    return JSONResponse(body.model_dump(mode="json"), status_code=200 if ready else 503)


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request) -> Response:
    """Prometheus text format."""
    return Response(request.app.state.metrics.render(), media_type=CONTENT_TYPE)
