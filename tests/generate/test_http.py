"""HttpGenerator against a real OpenAI-compatible server (FastAPI + uvicorn on 127.0.0.1).

The server answers from a FakeGenerator; special model names make it misbehave the way
real servers do (500s, malformed bodies, slow replies, errors inside a stream).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, StreamingResponse

from ragtune.config import GenerationSettings
from ragtune.errors import ModelError
from ragtune.generate.base import Generator
from ragtune.generate.factory import make_generator
from ragtune.generate.fake import FakeGenerator
from ragtune.generate.http import HttpGenerator
from tests.conftest import free_port, serve_in_thread, server_process

API_KEY = "sk-test"
REPLY = "Returns are accepted within 30 days [1]."


def _app() -> FastAPI:
    app = FastAPI()
    fake = FakeGenerator(reply=REPLY)
    app.state.requests = []

    @app.post("/v1/chat/completions")
    async def chat(request: Request):
        body = await request.json()
        app.state.requests.append(body)
        if request.headers.get("authorization") != f"Bearer {API_KEY}":
            return JSONResponse({"error": {"message": "Incorrect API key provided"}}, status_code=401)
        model = body.get("model")
        if model == "boom":
            return JSONResponse({"error": {"message": "CUDA out of memory"}}, status_code=500)
        if model == "garbage":
            return PlainTextResponse("not json at all")
        if model == "nochoices":
            return JSONResponse({"id": "x", "choices": []})
        if model == "baddata":
            return StreamingResponse(iter(["data: {oops\n\n"]), media_type="text/event-stream")
        if model == "slow":
            await asyncio.sleep(1.5)
        completion = fake.complete(body["messages"], max_tokens=body.get("max_tokens"))
        usage = {"prompt_tokens": 11, "completion_tokens": completion.completion_tokens,
                 "total_tokens": 11 + completion.completion_tokens}
        if not body.get("stream"):
            return {"id": "c1", "object": "chat.completion", "model": model,
                    "choices": [{"index": 0, "finish_reason": "stop",
                                 "message": {"role": "assistant", "content": completion.text}}],
                    "usage": usage}

        def events() -> Iterator[str]:
            yield ": keep-alive comment\n\n"
            yield "data: " + json.dumps({"choices": [{"index": 0, "delta": {"role": "assistant"}}]}) + "\n\n"
            for i, piece in enumerate(fake.stream(body["messages"], max_tokens=body.get("max_tokens"))):
                if model == "midstream-error" and i == 2:
                    yield "data: " + json.dumps({"error": {"message": "model crashed"}}) + "\n\n"
                    return
                yield "data: " + json.dumps({"choices": [{"index": 0, "delta": {"content": piece}}]}) + "\n\n"
            yield "data: " + json.dumps({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}) + "\n\n"
            if (body.get("stream_options") or {}).get("include_usage") and model != "nousage":
                yield "data: " + json.dumps({"choices": [], "usage": usage}) + "\n\n"
            yield "data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")

    return app


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[str, FastAPI]]:
    app = _app()
    with serve_in_thread(app) as url:
        yield url, app


MSGS = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "How long?"}]


def _gen(server: tuple[str, FastAPI], model: str = "qwen", **kw: object) -> HttpGenerator:
    return HttpGenerator(server[0], model, api_key=API_KEY, **kw)  # type: ignore[arg-type]


def test_is_a_generator(server: tuple[str, FastAPI]) -> None:
    assert isinstance(_gen(server), Generator)


def test_complete(server: tuple[str, FastAPI]) -> None:
    g = _gen(server, max_tokens=50, temperature=0.2)
    c = g.complete(MSGS)
    assert c.text == REPLY
    assert (c.prompt_tokens, c.completion_tokens) == (11, 7)
    assert c.timings["total_s"] > 0
    sent = server[1].state.requests[-1]
    assert sent["model"] == "qwen" and sent["messages"] == MSGS and sent["stream"] is False
    assert (sent["max_tokens"], sent["temperature"]) == (50, 0.2)
    g.complete(MSGS, max_tokens=3, temperature=0.0)
    assert (server[1].state.requests[-1]["max_tokens"], server[1].state.requests[-1]["temperature"]) == (3, 0.0)


def test_stream_uses_usage(server: tuple[str, FastAPI]) -> None:
    g = _gen(server)
    pieces = list(g.stream(MSGS))
    assert len(pieces) == 7 and "".join(pieces) == REPLY
    assert server[1].state.requests[-1]["stream_options"] == {"include_usage": True}
    c = g.last_completion
    assert c is not None and c.text == REPLY and (c.prompt_tokens, c.completion_tokens) == (11, 7)
    assert 0 < c.timings["first_token_s"] <= c.timings["total_s"]


def test_stream_without_usage_falls_back_to_counting(server: tuple[str, FastAPI]) -> None:
    g = _gen(server, model="nousage")
    assert "".join(g.stream(MSGS)) == REPLY
    assert g.last_completion is not None
    assert g.last_completion.completion_tokens == 7  # one per streamed piece
    assert g.last_completion.prompt_tokens == len("Be brief.How long?") // 4


def test_factory_builds_http(server: tuple[str, FastAPI]) -> None:
    g = make_generator(GenerationSettings(backend="http", base_url=server[0], model="m",
                                          api_key=API_KEY, max_tokens=2))
    assert isinstance(g, HttpGenerator) and g.complete(MSGS).text == "Returns are"


def test_wrong_api_key(server: tuple[str, FastAPI]) -> None:
    g = HttpGenerator(server[0], "qwen", api_key="wrong")
    with pytest.raises(ModelError, match=r"/v1/chat/completions: HTTP 401: Incorrect API key provided.*api_key"):
        g.complete(MSGS)
    with pytest.raises(ModelError, match="HTTP 401"):
        list(g.stream(MSGS))


def test_not_found(server: tuple[str, FastAPI]) -> None:
    g = HttpGenerator(server[0].removesuffix("/v1"), "qwen", api_key=API_KEY)
    with pytest.raises(ModelError, match=r":\d+/chat/completions: HTTP 404: Not Found.*base_url"):
        g.complete(MSGS)


def test_server_error(server: tuple[str, FastAPI]) -> None:
    with pytest.raises(ModelError, match="HTTP 500: CUDA out of memory"):
        _gen(server, model="boom").complete(MSGS)
    with pytest.raises(ModelError, match="HTTP 500: CUDA out of memory"):
        list(_gen(server, model="boom").stream(MSGS))


@pytest.mark.parametrize("model", ["garbage", "nochoices"])
def test_malformed_response(server: tuple[str, FastAPI], model: str) -> None:
    with pytest.raises(ModelError, match="malformed response"):
        _gen(server, model=model).complete(MSGS)


def test_malformed_stream(server: tuple[str, FastAPI]) -> None:
    with pytest.raises(ModelError, match="malformed stream: no 'data:' events, got 'not json at all'"):
        list(_gen(server, model="garbage").stream(MSGS))
    with pytest.raises(ModelError, match=r"malformed stream event: '\{oops'"):
        list(_gen(server, model="baddata").stream(MSGS))


def test_error_inside_stream(server: tuple[str, FastAPI]) -> None:
    g = _gen(server, model="midstream-error")
    it = g.stream(MSGS)
    assert next(it) == "Returns"
    with pytest.raises(ModelError, match="error in stream: model crashed"):
        list(it)


def test_connection_refused() -> None:
    url = f"http://127.0.0.1:{free_port()}/v1"
    with pytest.raises(ModelError, match=rf"{url}/chat/completions: cannot connect.*server running"):
        HttpGenerator(url, "qwen").complete(MSGS)
    with pytest.raises(ModelError, match="cannot connect"):
        list(HttpGenerator(url, "qwen").stream(MSGS))


def test_timeout(server: tuple[str, FastAPI]) -> None:
    with pytest.raises(ModelError, match=r"no answer within 0.3 s"):
        _gen(server, model="slow", timeout=0.3).complete(MSGS)


def test_bad_arguments() -> None:
    with pytest.raises(ModelError, match="base_url"):
        HttpGenerator("localhost:8000", "m")
    with pytest.raises(ModelError, match="max_tokens"):
        HttpGenerator("http://x/v1", "m", max_tokens=0)


# ---------------------------------------------------------------- real llama.cpp server

@pytest.fixture(scope="module")
def llama_server() -> Iterator[str]:
    """``python -m llama_cpp.server`` on the packaged model (needs llama-cpp-python[server])."""
    for module in ("llama_cpp", "sse_starlette", "starlette_context", "pydantic_settings"):
        pytest.importorskip(module)
    from ragtune.generate.llama_cpp import runnable_here

    if problem := runnable_here():
        pytest.skip(problem)
    import sys

    from ragtune.generate.models import resolve_model

    port = free_port()
    base = f"http://127.0.0.1:{port}/v1"
    command = [sys.executable, "-m", "llama_cpp.server", "--model", str(resolve_model("qwen2.5-0.5b")),
               "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "2048", "--model_alias", "qwen"]
    with server_process(command, f"{base}/models", timeout_s=180):  # a loaded 2-core CI machine is slow
        yield base


@pytest.mark.integration
@pytest.mark.slow
def test_real_llama_cpp_server(llama_server: str) -> None:
    g = HttpGenerator(llama_server, "qwen", max_tokens=12)
    msgs = [{"role": "user", "content": "Reply with the single word: hello"}]
    whole = g.complete(msgs)
    assert "hello" in whole.text.lower()
    assert whole.prompt_tokens > 5 and 0 < whole.completion_tokens <= 12
    pieces = list(g.stream(msgs))
    assert len(pieces) >= 1 and "".join(pieces) == whole.text  # greedy: same text streamed
    assert g.last_completion is not None and g.last_completion.completion_tokens > 0
