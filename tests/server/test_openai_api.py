"""/v1 with the official ``openai`` client, unchanged: models, answers with citations
(streamed and not), multi-turn retrieval, unknown models, request limits."""

from __future__ import annotations

import json

import httpx
import pytest
from openai import NotFoundError, OpenAI

from ragtune.generate.fake import FakeGenerator, default_reply
from tests.evaluate.conftest import add_adapter
from tests.server.conftest import serving

RETURNS_Q = "How many days can items be returned after delivery for online orders?"


def client(served, user: str) -> OpenAI:
    return OpenAI(base_url=served.url + "/v1", api_key=served.tokens[user], max_retries=0)


def test_models_list_only_what_the_caller_may_use(served) -> None:
    add_adapter(served.ws, "style", trained_on=())  # hand-written data: anyone
    add_adapter(served.ws, "hr-tuned", trained_on=(str(served.kb.parent / "restricted/hr/salaries.md"),))
    ana = [m.id for m in client(served, "ana").models.list()]
    bob = [m.id for m in client(served, "bob").models.list()]
    assert ana == ["ragtune-rag", "ragtune-base", "ragtune-hybrid:hr-tuned",
                   "ragtune-finetuned:hr-tuned", "ragtune-hybrid:style", "ragtune-finetuned:style"]
    # bob may not read the salaries document the adapter learned from
    assert bob == ["ragtune-rag", "ragtune-base", "ragtune-hybrid:style", "ragtune-finetuned:style"]
    with pytest.raises(NotFoundError) as e:
        client(served, "bob").chat.completions.create(
            model="ragtune-finetuned:hr-tuned", messages=[{"role": "user", "content": "hi"}])
    assert e.value.body["available"] == bob  # the refused adapter is simply unknown


def test_answer_with_citations_not_streamed(served) -> None:
    reply = client(served, "ana").chat.completions.create(
        model="ragtune-rag", messages=[{"role": "user", "content": RETURNS_Q}])
    text = reply.choices[0].message.content
    assert "30 days" in text and "[1]" in text and reply.choices[0].finish_reason == "stop"
    (cite,) = reply.citations
    assert cite["n"] == 1 and cite["document"].endswith("policies/returns.md")
    assert cite["section"] == "Returns > Window" and cite["supported"] is True
    assert "30 days" in cite["quote"] and cite["chunk_id"].startswith("ch_")
    assert reply.ragtune["refused"] is False and reply.usage.completion_tokens > 0
    # the answer's record carries the same id (feedback and audit name it)
    assert served.ws.store.traces()[-1].id == reply.ragtune["id"]


def test_answer_with_citations_streamed(served) -> None:
    stream = client(served, "ana").chat.completions.create(
        model="ragtune-rag", stream=True, messages=[{"role": "user", "content": RETURNS_Q}])
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    final = chunks[-1]
    assert final.choices == [] and final.citations and final.ragtune["answer"] == text
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert final.citations[0]["document"].endswith("returns.md") and "[1]" in text
    assert len({c.id for c in chunks}) == 1  # one id for the whole stream


def test_sse_wire_format(served) -> None:
    """The raw stream: data lines, the citations event just before [DONE]."""
    with served.client("ana") as http, http.stream(
            "POST", "/v1/chat/completions",
            json={"model": "ragtune-rag", "stream": True,
                  "messages": [{"role": "user", "content": RETURNS_Q}]}) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        events = [line[6:] for line in r.iter_lines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    last = json.loads(events[-2])
    assert last["choices"] == [] and last["citations"][0]["supported"] is True


def test_a_follow_up_retrieves_with_the_conversation(served) -> None:
    ai = client(served, "ana")
    alone = ai.chat.completions.create(
        model="ragtune-rag", messages=[{"role": "user", "content": "Where do I do that?"}])
    assert not any(c["document"].endswith("vpn.md") for c in alone.citations)
    follow = ai.chat.completions.create(model="ragtune-rag", messages=[
        {"role": "system", "content": "ignored: ragtune writes its own grounded prompt"},
        {"role": "user", "content": "How do I reset my VPN password?"},
        {"role": "assistant", "content": "At the IT portal [1]."},
        {"role": "user", "content": "Where do I do that?"}])
    assert follow.citations[0]["document"].endswith("it/vpn.md")
    record = served.ws.store.traces()[-1].answer["trace"]
    assert record["question"] == "Where do I do that?"  # the trace keeps the question as asked
    assert any("earlier questions" in n for n in record["notes"])


def test_request_options_and_bad_requests(served) -> None:
    ai = client(served, "ana")
    short = ai.chat.completions.create(model="ragtune-base", max_tokens=2,
                                       messages=[{"role": "user", "content": "Say hello"}])
    assert len(short.choices[0].message.content.split()) <= 2
    with served.client("ana") as http:
        r = http.post("/v1/chat/completions", json={"model": "gpt-4", "messages": [
            {"role": "user", "content": "hi"}]})
        assert r.status_code == 404
        assert r.json()["error"]["available"] == ["ragtune-rag", "ragtune-base"]
        assert r.json()["error"]["type"] == "unknown_model"
        r = http.post("/v1/chat/completions", json={"model": "ragtune-rag", "messages": [
            {"role": "assistant", "content": "hi"}]})
        assert r.status_code == 400 and "last message" in r.json()["error"]["message"]
        r = http.post("/v1/chat/completions", json={"model": "ragtune-rag", "messages": []})
        assert r.status_code == 422 and r.json()["error"]["fields"][0]["field"] == "messages"
        r = http.post("/v1/chat/completions", content=b'{"model": "ragtune-rag", "messa',
                      headers={"Content-Type": "application/json"})
        assert r.status_code == 422 and "JSON" in r.json()["error"]["message"]


def test_unsupported_sentences_are_removed_or_flagged(served, tmp_path) -> None:
    def loyalty(ws) -> None:
        ws.generator = FakeGenerator(
            reply=lambda m: default_reply(m) + " Returned items earn double loyalty points [1].")

    # answer.unsupported = "remove" (the default): never shown, streamed or not
    loyalty(served.ws)
    ai = client(served, "ana")
    reply = ai.chat.completions.create(
        model="ragtune-rag", messages=[{"role": "user", "content": RETURNS_Q}])
    assert "30 days" in reply.choices[0].message.content
    assert "loyalty" not in reply.choices[0].message.content
    assert all(s["supported"] for s in reply.ragtune["sentences"])
    streamed = "".join(c.choices[0].delta.content or "" for c in ai.chat.completions.create(
        model="ragtune-rag", messages=[{"role": "user", "content": RETURNS_Q}], stream=True)
        if c.choices)
    assert "30 days" in streamed and "loyalty" not in streamed
    # answer.unsupported = "flag": shown, and marked as unsupported
    with serving(tmp_path / "flag", answer={"unsupported": "flag"}) as flagging:
        loyalty(flagging.ws)
        reply = client(flagging, "ana").chat.completions.create(
            model="ragtune-rag", messages=[{"role": "user", "content": RETURNS_Q}])
    flagged = [s for s in reply.ragtune["sentences"] if not s["supported"]]
    assert [s["text"] for s in flagged] == ["Returned items earn double loyalty points [1]."]
    assert reply.citations[0]["supported"] is False


def test_plain_http_without_the_client(served) -> None:
    r = httpx.post(served.url + "/v1/chat/completions",
                   headers={"Authorization": f"Bearer {served.tokens['bob']}"},
                   json={"model": "ragtune-rag", "messages": [{"role": "user", "content": RETURNS_Q}]})
    body = r.json()
    assert r.status_code == 200 and body["object"] == "chat.completion"
    assert body["choices"][0]["message"]["role"] == "assistant"
