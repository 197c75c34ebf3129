"""The server with the real packaged models (MiniLM on ONNX, Qwen2.5-0.5B on llama.cpp):
the official client streaming and not, a follow-up retrieved with its conversation, and a
client that leaves mid-answer stopping llama.cpp so the next question gets the model."""

from __future__ import annotations

import shutil
import threading
import time

import pytest
from openai import OpenAI

from tests.conftest import EXAMPLES, serve_in_thread
from tests.server.conftest import issue_keys

pytestmark = [pytest.mark.integration, pytest.mark.slow]
FILES = ["policies/returns-policy.md", "policies/warranty-policy.md", "it/vpn-setup.md",
         "shipping/domestic-shipping.md"]


@pytest.fixture(scope="module")
def live(tmp_path_factory, local_embedder, local_generator):
    from ragtune.server.app import create_app
    from ragtune.workspace import Workspace

    base = tmp_path_factory.mktemp("live")
    for rel in FILES:
        (base / "kb" / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(EXAMPLES / "kb" / rel, base / "kb" / rel)
    ws = Workspace.init(base / "ws", overrides={"access": {"users": {"ana": []}},
                                                "generation": {"max_tokens": 60}})
    ws.embedder, ws.generator = local_embedder, local_generator
    assert ws.ingest([base / "kb"]).ok
    tokens = issue_keys(ws)
    with serve_in_thread(create_app(ws), path="") as url:
        yield ws, url, OpenAI(base_url=url + "/v1", api_key=tokens["ana"], max_retries=0)


def test_streamed_and_whole_answers_with_checked_citations(live) -> None:
    _, _, ai = live
    q = [{"role": "user", "content": "How many days do customers have to return an item?"}]
    whole = ai.chat.completions.create(model="ragtune-rag", messages=q)
    assert "30" in whole.choices[0].message.content
    assert any(c["document"].endswith("returns-policy.md") for c in whole.citations)
    assert whole.usage.prompt_tokens > 100 and whole.usage.completion_tokens > 0
    chunks = list(ai.chat.completions.create(model="ragtune-rag", messages=q, stream=True))
    streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    final = chunks[-1]
    assert final.citations and "30" in final.ragtune["answer"]
    assert streamed.strip() and final.ragtune["answer"].startswith(streamed.strip()[:20])


def test_a_follow_up_is_retrieved_with_its_conversation(live) -> None:
    ws, _, ai = live
    ai.chat.completions.create(model="ragtune-rag", messages=[
        {"role": "user", "content": "How long is the return window for online orders?"},
        {"role": "assistant", "content": "30 days from delivery [1]."},
        {"role": "user", "content": "and for in-store purchases?"}])
    trace = ws.store.traces()[-1].answer["trace"]
    top = [h["document"].rsplit("/", 1)[-1] for h in trace["retrieved"][:2]]
    assert top[0] == "returns-policy.md", top
    assert any("In-store" in h["section"] or "in-store" in h["text"] for h in trace["retrieved"][:3])


def test_leaving_mid_answer_frees_the_model(live) -> None:
    ws, _, ai = live
    before = len(ws.store.traces())
    stream = ai.chat.completions.create(model="ragtune-base", stream=True, max_tokens=200,
                                        messages=[{"role": "user", "content":
                                                   "Write a long story about a lighthouse."}])
    pieces = 0
    for c in stream:
        pieces += bool(c.choices and c.choices[0].delta.content)
        if pieces >= 3:
            break
    stream.close()  # the client goes away after three tokens
    started = time.monotonic()
    done = threading.Event()
    reply = []

    def ask() -> None:
        reply.append(ai.chat.completions.create(model="ragtune-base", max_tokens=8, messages=[
            {"role": "user", "content": "Say hello."}]).choices[0].message.content)
        done.set()

    threading.Thread(target=ask).start()
    assert done.wait(120) and reply[0]
    # the abandoned answer was stopped, not finished and recorded
    assert len(ws.store.traces()) == before + 1
    assert ws.store.traces()[-1].answer["trace"]["question"] == "Say hello."
    assert time.monotonic() - started < 120
