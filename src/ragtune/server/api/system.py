"""Health (is the process up), readiness (can it answer) and who am I."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from ragtune.server.auth import Caller
from ragtune.server.schemas import (
    HealthResponse,
    MeResponse,
    PageOut,
    ReadyResponse,
    error_responses,
)

router = APIRouter(prefix="/api", tags=["system"])


@router.get("/health", response_model=HealthResponse)
async def health() -> HealthResponse:
    """The process answers (no credentials needed: for load balancers)."""
    return HealthResponse(status="ok")


@router.get("/ready", response_model=ReadyResponse,
            responses={503: {"model": ReadyResponse, "description": "not ready"}})
def ready(request: Request) -> JSONResponse:
    """The store opens and the models are loaded (503 while loading or after a failure)."""
    state = request.app.state.ragtune
    checks = dict(state.ready)
    try:
        state.ws.store.count_documents()
        checks["store"] = "ok"
    except Exception as e:  # noqa: BLE001 — a broken store is exactly what this reports
        checks["store"] = f"failed: {type(e).__name__}"
    ok = all(v == "ok" for v in checks.values())
    body = ReadyResponse(status="ready" if ok else "not ready", checks=checks,
                         queue=state.gate.stats())
    return JSONResponse(body.model_dump(), status_code=200 if ok else 503)


@router.get("/me", response_model=MeResponse, responses=error_responses(401))
async def me(request: Request, who: Caller) -> MeResponse:
    """The caller's user, groups and the web-app pages they may open."""
    pages = [PageOut(id=p.id, title=p.title, module=p.module, admin=p.admin)
             for p in request.app.state.ragtune.pages if who.principal.admin or not p.admin]
    return MeResponse(user=who.user, groups=sorted(who.principal.groups),
                      admin=who.principal.admin, auth=who.auth, pages=pages)
