"""HttpEmbedder against a real OpenAI-compatible server: FastAPI + uvicorn in a thread.

The server (also used by test_contract.py)

Routes (all under the server's root URL):
  /v1/embeddings          FakeEmbedder vectors, returned in REVERSED order (clients must
                          sort by "index"), scaled by 3 (clients must normalise)
  /auth/v1/embeddings     same, but 401 unless "Authorization: Bearer secret"
  /fail/v1/embeddings     HTTP 500
  /badjson/v1/embeddings  200 with a body that is not JSON
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import pytest
from fastapi import FastAPI, Header, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response

from ragtune.embed.fake import FakeEmbedder
from ragtune.embed.http import HttpEmbedder
from ragtune.errors import ModelError
from tests.conftest import free_port, serve_in_thread

DIMENSION = 32


def make_app() -> FastAPI:
    app = FastAPI()
    fake = FakeEmbedder(dimension=DIMENSION)

    def answer(body: dict) -> dict:
        texts = body["input"] if isinstance(body["input"], list) else [body["input"]]
        vecs = fake.embed_documents(texts) * 3.0
        data = [
            {"object": "embedding", "index": i, "embedding": v.tolist()}
            for i, v in enumerate(vecs)
        ]
        return {"object": "list", "model": body["model"], "data": data[::-1]}

    @app.post("/v1/embeddings")
    async def embeddings(request: Request) -> dict:
        return answer(await request.json())

    @app.post("/auth/v1/embeddings", response_model=None)
    async def auth(request: Request, authorization: str = Header("")) -> dict | Response:
        if authorization != "Bearer secret":
            return JSONResponse({"error": {"message": "invalid api key"}}, status_code=401)
        return answer(await request.json())

    @app.post("/fail/v1/embeddings")
    async def fail() -> Response:
        return JSONResponse({"error": {"message": "model crashed"}}, status_code=500)

    @app.post("/badjson/v1/embeddings")
    async def badjson() -> Response:
        return PlainTextResponse("<html>not json</html>")

    return app


@contextmanager
def serve() -> Iterator[str]:
    """Run the app on a free port; yields the root URL, e.g. ``http://127.0.0.1:54321``."""
    with serve_in_thread(make_app(), path="") as url:
        yield url


@pytest.fixture(scope="module")
def root_url() -> Iterator[str]:
    with serve() as url:
        yield url


def test_vectors_match_the_fake_model_sorted_by_index_and_normalised(root_url: str) -> None:
    texts = ["alpha beta", "gamma delta", "alpha gamma", "epsilon"]
    e = HttpEmbedder(f"{root_url}/v1", "fake", batch_size=3)  # 2 requests: 3 + 1
    got = e.embed_documents(texts)
    want = FakeEmbedder(dimension=DIMENSION).embed_documents(texts)
    np.testing.assert_allclose(got, want, atol=1e-6)
    assert e.dimension == DIMENSION


def test_dimension_is_asked_from_the_server_when_not_given(root_url: str) -> None:
    assert HttpEmbedder(f"{root_url}/v1/", "fake").dimension == DIMENSION


def test_wrong_declared_dimension_is_an_error(root_url: str) -> None:
    e = HttpEmbedder(f"{root_url}/v1", "fake", dimension=DIMENSION + 1)
    with pytest.raises(ModelError, match="size 32, expected 33"):
        e.embed_documents(["x"])


def test_api_key_is_sent_as_bearer_token(root_url: str) -> None:
    ok = HttpEmbedder(f"{root_url}/auth/v1", "fake", api_key="secret")
    assert ok.embed_query("hello").shape == (DIMENSION,)
    bad = HttpEmbedder(f"{root_url}/auth/v1", "fake", api_key="wrong")
    with pytest.raises(ModelError) as err:
        bad.embed_documents(["hello"])
    msg = str(err.value)
    assert f"{root_url}/auth/v1/embeddings" in msg and "HTTP 401" in msg and "api_key" in msg


def test_server_error_names_url_and_status(root_url: str) -> None:
    e = HttpEmbedder(f"{root_url}/fail/v1", "fake", dimension=DIMENSION)
    with pytest.raises(ModelError, match=r"fail/v1/embeddings answered HTTP 500.*model crashed"):
        e.embed_documents(["hello"])


def test_malformed_json_is_reported(root_url: str) -> None:
    e = HttpEmbedder(f"{root_url}/badjson/v1", "fake", dimension=DIMENSION)
    with pytest.raises(ModelError, match=r"badjson/v1/embeddings sent a malformed answer"):
        e.embed_documents(["hello"])


def test_server_down_is_reported() -> None:
    url = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there
    e = HttpEmbedder(url, "fake", dimension=DIMENSION, timeout=5)
    with pytest.raises(ModelError, match=rf"cannot reach embedding server {url}/embeddings"):
        e.embed_documents(["hello"])


def test_count_tokens_approximates_subwords() -> None:
    e = HttpEmbedder("http://127.0.0.1:9/v1", "fake", dimension=DIMENSION)
    assert e.count_tokens("one two three, four five six") == 7 + 7 // 3
    assert e.count_tokens("") == 0


def test_missing_base_url_is_an_error() -> None:
    with pytest.raises(ModelError, match="base_url"):
        HttpEmbedder("", "fake")
