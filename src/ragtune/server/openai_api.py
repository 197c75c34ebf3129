"""OpenAI-compatible chat: ``POST /v1/chat/completions`` (streaming or not), ``GET /v1/models``.

The ``model`` picks the answer system: ``ragtune-rag``, ``ragtune-base``,
``ragtune-hybrid:<adapter>``, ``ragtune-finetuned:<adapter>`` (``/v1/models`` lists those
the caller may use: an adapter only for callers who may read every document it learned
from). The last user message is the question; earlier user/assistant turns condition
retrieval (:mod:`ragtune.answer.conversation`); system messages are ignored (ragtune
writes its own grounded prompt).

The reply is a normal chat completion whose text keeps the ``[n]`` markers, plus
``citations`` (n, document, section, chunk id, quote, supported) and ``ragtune`` (answer
id, refusal, per-sentence support, final text) beside ``choices``. Streamed, the text comes
as ``chat.completion.chunk`` deltas and the citations in one last chunk with no choices,
just before ``data: [DONE]``. The official ``openai`` client reads both unchanged::

    client = OpenAI(base_url="http://127.0.0.1:8080/v1", api_key="rtk_...")
    reply = client.chat.completions.create(model="ragtune-rag", messages=[...])
    reply.choices[0].message.content, reply.citations
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any, Literal

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from ragtune.answer.conversation import Turn
from ragtune.errors import InputError, NotFound, RagtuneError
from ragtune.server.answers import Question, usable_adapters
from ragtune.server.auth import Caller, Identity
from ragtune.server.schemas import error_responses, int_range
from ragtune.types import Answer, Principal
from ragtune.workspace import Workspace

log = logging.getLogger("ragtune.server")
router = APIRouter(prefix="/v1", tags=["openai"])
MODEL_PREFIX = "ragtune-"
PING_S = 10.0  # SSE comment while a question waits for the model (keeps proxies open)


Tokens = int_range(1, 8192)


class ContentPart(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)
    type: str
    text: str | None = None


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[ContentPart] | None = None

    def text(self) -> str:
        if isinstance(self.content, list):
            return "".join(p.text or "" for p in self.content if p.type == "text")
        return self.content or ""


class ChatRequest(BaseModel):
    """The parts of OpenAI's request ragtune reads; other parameters are accepted and ignored."""

    model_config = ConfigDict(extra="allow", strict=True)
    model: str = Field(min_length=1, max_length=200)
    messages: list[ChatMessage] = Field(min_length=1, max_length=200)
    stream: bool = False
    max_tokens: Tokens | None = None
    max_completion_tokens: Tokens | None = None
    temperature: float | None = Field(None, ge=0.0, le=2.0)


class ModelOut(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "ragtune"
    mode: str
    adapter: str | None
    stale: bool = False


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelOut]


class UnknownModel(NotFound):
    """404 naming the models the caller may use (in the message and ``error.available``)."""

    def __init__(self, model: str, available: list[str]) -> None:
        super().__init__(f"unknown model {model!r}; available: {', '.join(available)}")
        self.extra = {"available": available}


def available_models(ws: Workspace, principal: Principal, *,
                     freshness: bool = True) -> list[ModelOut]:
    """The answer systems ``principal`` may use, as model ids (``freshness``: also say
    which adapters are stale, a look at every lineage document)."""
    out = [ModelOut(id="ragtune-rag", created=0, mode="rag", adapter=None),
           ModelOut(id="ragtune-base", created=0, mode="base", adapter=None)]
    for info in usable_adapters(ws, principal):
        stale = freshness and ws.freshness(info.name).stale
        for mode in ("hybrid", "finetuned"):
            out.append(ModelOut(id=f"{MODEL_PREFIX}{mode}:{info.name}", created=int(info.created_at),
                                mode=mode, adapter=info.name, stale=stale))
    return out


def resolve_model(ws: Workspace, principal: Principal, model: str) -> ModelOut:
    """The listed model called ``model``; UnknownModel (with the list) otherwise. An adapter the
    caller may not use is exactly as unknown as one that does not exist."""
    models = available_models(ws, principal, freshness=False)
    for m in models:
        if m.id == model:
            return m
    raise UnknownModel(model, [m.id for m in models])


def question_of(request: ChatRequest) -> tuple[str, tuple[Turn, ...]]:
    """The last message (a user's) is the question; earlier user/assistant turns its context."""
    last = request.messages[-1]
    if last.role != "user" or not last.text().strip():
        raise InputError("messages", "the last message must be a non-empty user message "
                                     "(the question)")
    history = tuple(Turn(m.role, m.text()) for m in request.messages[:-1]
                    if m.role in {"user", "assistant"} and m.text().strip())
    return last.text(), history


@router.get("/models", response_model=ModelList, responses=error_responses(401))
def list_models(request: Request, who: Caller) -> ModelList:
    """The answer systems this caller may use."""
    return ModelList(data=available_models(request.app.state.ragtune.ws, who.principal))


def _citations(answer: Answer) -> list[dict[str, Any]]:
    return [c.to_dict() for c in answer.citations]


def _extras(answer: Answer) -> dict[str, Any]:
    return {"id": answer.trace.id, "answer": answer.text, "refused": answer.refused,
            "sentences": [{"text": s.text, "cited": list(s.cited), "supported": s.supported}
                          for s in answer.sentences],
            "unsupported_sentences": [s.text for s in answer.unsupported],
            "mode": answer.trace.mode, "adapter": answer.trace.adapter,
            "route": answer.trace.route}


def _usage(answer: Answer) -> dict[str, int]:
    p = int(answer.trace.tokens.get("prompt", 0))
    c = int(answer.trace.tokens.get("completion", 0))
    return {"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c}


def completion_body(answer: Answer, model: str) -> dict[str, Any]:
    """The non-streamed reply: a chat completion plus citations."""
    return {
        "id": f"chatcmpl-{answer.trace.id}", "object": "chat.completion",
        "created": int(time.time()), "model": model,
        "choices": [{"index": 0, "finish_reason": "stop", "logprobs": None,
                     "message": {"role": "assistant", "content": answer.text}}],
        "usage": _usage(answer), "citations": _citations(answer), "ragtune": _extras(answer),
    }


def _sse(data: dict[str, Any] | str) -> str:
    text = data if isinstance(data, str) else json.dumps(data, ensure_ascii=False)
    return f"data: {text}\n\n"


@router.post("/chat/completions",
             responses={200: {"description": "a chat completion, or with stream=true an SSE "
                                             "stream of chat.completion.chunk events",
                              "content": {"text/event-stream": {}}},
                        **error_responses(400, 401, 404, 413, 422, 429, 503)})
async def chat_completions(body: ChatRequest, request: Request,
                           who: Caller) -> Any:
    """Answer the last user message from the documents this caller may read."""
    state = request.app.state.ragtune
    question, history = question_of(body)
    model = resolve_model(state.ws, who.principal, body.model)
    q = Question(question, history, mode=model.mode, adapter=model.adapter,
                 max_tokens=body.max_completion_tokens or body.max_tokens,
                 temperature=body.temperature)
    admission = state.runner.admit(who)  # 429/503 now, before any reply starts
    if not body.stream:
        answer = await state.runner.answer(who, q, admission, request.is_disconnected)
        return JSONResponse(completion_body(answer, body.model))
    return StreamingResponse(_stream(state, who, q, admission, body.model),
                             media_type="text/event-stream",
                             headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})


async def _stream(state: Any, who: Identity, q: Question, admission: Any,
                  model: str) -> AsyncIterator[str]:
    chunk_id = f"chatcmpl-{uuid.uuid4().hex}"
    created = int(time.time())

    def chunk(delta: dict[str, Any], finish: str | None = None) -> str:
        return _sse({"id": chunk_id, "object": "chat.completion.chunk", "created": created,
                     "model": model, "choices": [{"index": 0, "delta": delta,
                                                  "finish_reason": finish, "logprobs": None}]})

    yield chunk({"role": "assistant", "content": ""})
    events = state.runner.stream(who, q, admission).__aiter__()
    pending = asyncio.ensure_future(events.__anext__())
    try:
        while True:
            done, _ = await asyncio.wait({pending}, timeout=PING_S)
            if not done:
                yield ": waiting for the model\n\n"
                continue
            kind, value = pending.result()
            if kind == "token":
                yield chunk({"content": value})
                pending = asyncio.ensure_future(events.__anext__())
                continue
            if kind == "error":
                message = str(value) if isinstance(value, RagtuneError) else \
                    "internal error; the details are in the server log"
                if not isinstance(value, RagtuneError):
                    log.error("generation failed", exc_info=value)
                yield _sse({"error": {"message": message, "type": type(value).__name__}})
            else:
                answer: Answer = value
                yield chunk({}, "stop")
                yield _sse({"id": chunk_id, "object": "chat.completion.chunk",
                            "created": created, "model": model, "choices": [],
                            "usage": _usage(answer), "citations": _citations(answer),
                            "ragtune": _extras(answer)})
            yield _sse("[DONE]")
            return
    finally:
        # Synchronous on purpose: a disconnect cancels this task, and every await in a
        # cancelled scope raises again. Stops the model (or the wait for it) at once.
        admission.cancel()
        if not pending.done():
            pending.cancel()
