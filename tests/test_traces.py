"""Every finished answer is handed to the trace sink and persisted in the store."""

from __future__ import annotations

import json

import pytest

from ragtune.answer.traces import MemoryTraceSink, StoreTraceSink, TraceSink
from ragtune.types import Route
from tests.conftest import write

RETURNS = "# Returns\n\nCustomers may return items within 30 days of delivery for a refund.\n"


@pytest.fixture
def ws(fake_ws, tmp_path):
    fake_ws.ingest([write(tmp_path / "kb" / "returns.md", RETURNS)])
    return fake_ws


def test_sinks_are_trace_sinks(ws) -> None:
    assert isinstance(MemoryTraceSink(), TraceSink) and isinstance(StoreTraceSink(ws.store), TraceSink)
    assert isinstance(ws.traces, StoreTraceSink)


def test_every_mode_persists_its_answer_with_the_whole_trace(ws) -> None:
    rag = ws.ask("Can customers return items for a refund?", "ana", mode="rag")
    base = ws.ask("Can customers return items for a refund?", mode="base")
    floor = ws.ask("zzqx unrelated gibberish", mode="rag")
    records = ws.store.traces()
    assert [r.mode for r in records] == ["rag", "base", "rag"]
    first = records[0]
    assert first.principal == "ana" and first.origin == "ask" and first.adapter is None
    assert first.answer == json.loads(json.dumps(rag.to_dict()))  # stored as given
    assert first.answer["trace"]["retrieved"][0]["document"].endswith("returns.md")
    assert records[1].answer["answer"] == base.text
    assert records[2].answer["refused"] is True and floor.refused


def test_eval_runs_are_marked_as_such(ws) -> None:
    ws.ask("Can customers return items for a refund?", origin="eval")
    assert [r.origin for r in ws.store.traces()] == ["eval"]


def test_a_replaced_sink_receives_the_answers(ws) -> None:
    sink = MemoryTraceSink()
    ws.traces = sink
    ws.ask("Can customers return items for a refund?")
    assert len(sink.records) == 1 and ws.store.traces() == []


def test_hybrid_answers_are_recorded_with_their_route(ws, monkeypatch) -> None:
    from tests.evaluate.conftest import add_adapter

    add_adapter(ws, "style", trained_on=())
    monkeypatch.setattr(ws.adapters, "generator", lambda adapter: ws.generator)
    ws.routing = lambda q, p: Route("off", "out_of_scope", 0.9, None, "test")
    ws.ask("What is the weather?", mode="hybrid", adapter="style")
    (record,) = ws.store.traces()
    assert record.mode == "hybrid" and record.adapter == "style"
    assert record.answer["trace"]["route"]["kind"] == "out_of_scope" and record.answer["refused"]
