"""Adapters: what each was trained on, whether that is still current, how to answer with it."""

from __future__ import annotations

from fastapi import APIRouter, Request

from ragtune.finetune.adapters import AdapterInfo
from ragtune.finetune.freshness import lineage_documents
from ragtune.server.answers import usable_adapter, usable_adapters
from ragtune.server.auth import Caller
from ragtune.server.schemas import AdapterOut, error_responses
from ragtune.workspace import Workspace

router = APIRouter(prefix="/api/adapters", tags=["adapters"])


def adapter_out(ws: Workspace, info: AdapterInfo) -> AdapterOut:
    lineage = info.lineage if isinstance(info.lineage, dict) else {}
    built_as = lineage.get("principal")
    if isinstance(built_as, dict):
        built_as = built_as.get("user")
    return AdapterOut(name=info.name, base_model=info.base_model, created_at=info.created_at,
                      metrics=info.metrics, dataset=info.dataset,
                      lineage_documents=len(lineage_documents(lineage)),
                      built_as=built_as if isinstance(built_as, str) else None,
                      freshness=ws.freshness(info.name).to_dict(),
                      models=[f"ragtune-hybrid:{info.name}", f"ragtune-finetuned:{info.name}"])


@router.get("", response_model=list[AdapterOut], responses=error_responses(401))
def list_adapters(request: Request, who: Caller) -> list[AdapterOut]:
    """The adapters this caller may answer with: lineage and staleness."""
    ws = request.app.state.ragtune.ws
    return [adapter_out(ws, i) for i in usable_adapters(ws, who.principal)]


@router.get("/{name}", response_model=AdapterOut, responses=error_responses(401, 404))
def get_adapter(name: str, request: Request,
                who: Caller) -> AdapterOut:
    ws = request.app.state.ragtune.ws
    return adapter_out(ws, usable_adapter(ws, who.principal, name))
