"""LLM-as-judge through a real OpenAI-compatible endpoint (FastAPI + uvicorn on 127.0.0.1).

The judge server grades by a rule a test can predict: CORRECT when the first reference
answer holds a number and the graded answer states it too. ``eval qa --judge-url`` must send every answerable,
non-refused answer to it and report ``judge_correct``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import pytest
from fastapi import FastAPI, Request
from typer.testing import CliRunner

from tests.conftest import serve_in_thread

API_KEY = "sk-judge"


def _judge_app() -> FastAPI:
    app = FastAPI()
    app.state.requests = []

    @app.post("/v1/chat/completions")
    async def chat(request: Request):
        body = await request.json()
        app.state.requests.append(body)
        if request.headers.get("authorization") != f"Bearer {API_KEY}":
            return {"error": {"message": "bad key"}}
        user = body["messages"][-1]["content"]
        first_ref = user.split("Reference answers:\n- ", 1)[1].split("\n", 1)[0]
        graded = user.split("Answer to grade: ", 1)[1].rsplit("\nVerdict:", 1)[0]
        numbers = re.findall(r"\d+", first_ref)
        verdict = "CORRECT" if numbers and all(n in graded for n in numbers) else "INCORRECT"
        return {"id": "j", "object": "chat.completion", "model": body["model"],
                "choices": [{"index": 0, "finish_reason": "stop",
                             "message": {"role": "assistant", "content": verdict}}],
                "usage": {"prompt_tokens": 50, "completion_tokens": 1, "total_tokens": 51}}

    return app


@pytest.fixture(scope="module")
def judge() -> Iterator[tuple[str, FastAPI]]:
    app = _judge_app()
    with serve_in_thread(app) as url:
        yield url, app


def test_eval_qa_with_an_http_judge(kb_ws, eval_file, judge, tmp_path) -> None:
    from ragtune.cli import app

    url, server = judge
    env = {"RAGTUNE_HOME": str(kb_ws.root), "RAGTUNE_EMBEDDING_BACKEND": "fake",
           "RAGTUNE_GENERATION_BACKEND": "fake", "RAGTUNE_RETRIEVAL_MIN_SIMILARITY": "0.15",
           "RAGTUNE_JUDGE_API_KEY": API_KEY}
    r = CliRunner().invoke(app, ["eval", "qa", str(eval_file), "--mode", "rag", "--judge-url", url,
                                 "--judge-model", "grader-1", "--out", str(tmp_path / "a.jsonl"),
                                 "--json"], env=env)
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    records = {x["id"]: x for x in map(json.loads, (tmp_path / "a.jsonl").read_text().splitlines())}
    # the fake RAG answers q1 "...within 30 days...", q3 "...is 45 euros [1]", q4 "...get 25
    # days..."; q2's reference has no number, so this judge says INCORRECT
    assert {k: records[k]["scores"]["judge_correct"] for k in ("q1", "q2", "q3", "q4")} == {
        "q1": 1.0, "q2": 0.0, "q3": 1.0, "q4": 1.0}
    assert out["metrics"]["judge_correct"] == pytest.approx(0.75)
    asked = server.state.requests
    assert len(asked) == 4 and {b["model"] for b in asked} == {"grader-1"}
    assert all(b["max_tokens"] == 5 and b["messages"][0]["role"] == "system" for b in asked)
