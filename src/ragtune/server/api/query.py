"""Search (no model: answers while generation is busy) and ask (the whole answer and trace)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from ragtune.answer.conversation import Turn
from ragtune.server.answers import Question, usable_adapter
from ragtune.server.auth import Caller
from ragtune.server.schemas import (
    AskRequest,
    AskResponse,
    SearchRequest,
    SearchResponse,
    error_responses,
)

router = APIRouter(prefix="/api", tags=["query"])


@router.post("/search", response_model=SearchResponse,
             responses=error_responses(400, 401, 413, 422))
def search(body: SearchRequest, request: Request, who: Caller) -> Response:
    """Retrieve the passages this caller may read that best match ``query``."""
    ws = request.app.state.ragtune.ws
    result = ws.search(body.query, who.principal, k=body.k, mode=body.mode,
                       filters=body.to_filter())
    out = SearchResponse(query=body.query, mode=result.mode, found=result.found,
                         best_similarity=result.best_similarity,
                         hits=[h.to_dict() for h in result.hits],
                         timings={k: round(v, 6) for k, v in result.timings.items()})
    # Serialised once here: FastAPI would validate the returned model a second time.
    return Response(out.model_dump_json(), media_type="application/json")


@router.post("/ask", response_model=AskResponse,
             responses=error_responses(400, 401, 404, 413, 422, 429, 503))
async def ask(body: AskRequest, request: Request,
              who: Caller) -> AskResponse:
    """Answer ``question`` with checked citations and the full trace."""
    state = request.app.state.ragtune
    settings = state.ws.settings.answer
    mode = body.mode or settings.mode
    adapter = body.adapter or (settings.adapter or None if mode in {"finetuned", "hybrid"}
                               else None)
    if adapter:
        usable_adapter(state.ws, who.principal, adapter)
    q = Question(body.question, tuple(Turn(t.role, t.content) for t in body.history),
                 mode=mode, adapter=adapter, filters=body.to_filter(), k=body.k)
    admission = state.runner.admit(who)
    answer = await state.runner.answer(who, q, admission, request.is_disconnected)
    data = answer.to_dict()
    return AskResponse(id=answer.trace.id, answer=data["answer"], citations=data["citations"],
                       sentences=[{"text": s.text, "cited": list(s.cited),
                                   "supported": s.supported} for s in answer.sentences],
                       refused=answer.refused,
                       unsupported_sentences=data["unsupported_sentences"], trace=data["trace"])
