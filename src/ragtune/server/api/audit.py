"""The audit log (admins): who asked what, as whom, what was retrieved and cited."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request

from ragtune.answer.audit import AuditEntry, audit_log
from ragtune.server.auth import Admin
from ragtune.server.schemas import error_responses

router = APIRouter(prefix="/api", tags=["audit"])


@router.get("/audit", response_model=list[AuditEntry], responses=error_responses(401, 403, 422))
def audit(request: Request, who: Admin,
          since: Annotated[float | None, Query(ge=0, description="Unix seconds")] = None,
          user: Annotated[str | None, Query(max_length=128)] = None,
          origin: Annotated[Literal["ask", "eval"] | None, Query()] = None,
          limit: Annotated[int, Query(ge=1, le=10000)] = 100) -> list[AuditEntry]:
    """The newest ``limit`` entries, oldest first."""
    return audit_log(request.app.state.ragtune.ws.store, since=since, user=user,
                     origin=origin, limit=limit)
