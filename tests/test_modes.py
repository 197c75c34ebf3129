"""Answer modes and the hybrid flow on a real store with fake models (fast).

The adapter side of finetuned/hybrid with a real LoRA on a tiny model is in
tests/finetune/test_modes_adapter.py.
"""

from __future__ import annotations

import pytest

from ragtune.answer import AnswerPipeline
from ragtune.answer.hybrid import answer_hybrid
from ragtune.errors import ConfigError
from ragtune.finetune.freshness import ChangedDocument, Freshness
from ragtune.generate.fake import FakeGenerator
from ragtune.generate.prompts import OUT_OF_SCOPE_TEXT
from ragtune.store.base import SearchFilter
from ragtune.types import Route
from tests.conftest import write

RETURNS = "# Returns\n\nCustomers may return items within 30 days of delivery for a refund.\n"
VPN = "# VPN\n\nTo connect to the VPN, open the client and sign in with your badge number.\n"
LEAVE = "# Leave\n\nEmployees get 25 days of paid leave each year, booked in the HR portal.\n"


@pytest.fixture
def ws(fake_ws, tmp_path):
    fake_ws.ingest([write(tmp_path / "kb" / "returns.md", RETURNS)], collection="policy")
    fake_ws.ingest([write(tmp_path / "kb" / "vpn.md", VPN)], collection="it")
    fake_ws.ingest([write(tmp_path / "kb" / "leave.md", LEAVE)], collection="hr", groups=["hr"])
    return fake_ws


def pipelines(ws):
    base = AnswerPipeline(ws.retriever, FakeGenerator(name="base"))
    tuned = AnswerPipeline(ws.retriever, FakeGenerator(name="tuned"))
    return base, tuned


def test_base_mode_never_retrieves(ws):
    answer = ws.ask("Can customers return items for a refund?", mode="base")
    assert answer.trace.mode == "base"
    assert answer.trace.retrieved == [] and answer.citations == []
    assert "<source " not in answer.trace.prompt


def test_rag_mode_retrieves_and_cites(ws):
    answer = ws.ask("Can customers return items for a refund?", mode="rag")
    assert answer.trace.mode == "rag"
    assert answer.trace.retrieved[0]["document"].endswith("returns.md")
    assert answer.citations and answer.citations[0].supported


def test_default_mode_comes_from_the_config(ws):
    ws.settings = ws.settings.replace("answer", mode="base")
    assert ws.ask("Can customers return items for a refund?").trace.mode == "base"


def test_mode_errors_name_the_fix(ws):
    with pytest.raises(ConfigError, match="needs an adapter.*answer.adapter"):
        ws.ask("hi", mode="finetuned")
    with pytest.raises(ConfigError, match="needs an adapter"):
        ws.ask("hi", mode="hybrid")
    with pytest.raises(ConfigError, match="unknown answer mode 'magic'"):
        ws.ask("hi", mode="magic")
    with pytest.raises(ConfigError, match="mode 'base' answers with the base model alone"):
        ws.ask("hi", mode="base", adapter="style")


def test_hybrid_out_of_scope_refuses_without_any_model(ws):
    base, tuned = pipelines(ws)
    route = Route("out_of_scope", "out_of_scope", 0.93, None, "classifier: out_of_scope")
    answer = answer_hybrid("What is the capital of Peru?", ws.principal(None), route=route,
                           base=base, tuned=tuned, adapter="style")
    assert answer.text == OUT_OF_SCOPE_TEXT and answer.refused
    assert base.generator.calls == [] and tuned.generator.calls == []
    assert answer.trace.route["kind"] == "out_of_scope" and answer.trace.retrieved == []


def test_hybrid_direct_route_answers_with_the_adapter_without_retrieval(ws):
    base, tuned = pipelines(ws)
    route = Route("direct", "direct", 0.88, None, "classifier: direct")
    answer = answer_hybrid("Rewrite this more politely: send it now", ws.principal(None),
                           route=route, base=base, tuned=tuned, adapter="style")
    assert len(tuned.generator.calls) == 1 and base.generator.calls == []
    assert answer.trace.retrieved == [] and answer.trace.adapter == "style"


def test_hybrid_knowledge_route_retrieves_only_in_the_routed_collection(ws):
    base, tuned = pipelines(ws)
    route = Route("it", "knowledge", 0.9, ("it",), "classifier: it")
    # A question that matches both documents, routed to IT: only IT text is seen.
    q = "Can customers return items for a refund, and sign in to the VPN with a badge number?"
    assert {h.document.rsplit("/", 1)[-1] for h in ws.search(q).hits} >= {"returns.md", "vpn.md"}
    answer = answer_hybrid(q, ws.principal(None),
                           route=route, base=base, tuned=tuned, adapter="style")
    assert {h["document"].rsplit("/", 1)[-1] for h in answer.trace.retrieved} <= {"vpn.md"}
    assert len(tuned.generator.calls) == 1 and answer.trace.adapter == "style"
    assert answer.trace.route == {"label": "it", "kind": "knowledge", "confidence": 0.9,
                                  "collections": ["it"], "reason": "classifier: it"}


def test_hybrid_stale_topic_is_answered_by_the_base_model_from_current_documents(ws):
    base, tuned = pipelines(ws)
    route = Route("policy", "knowledge", 0.9, ("policy",), "classifier: policy")
    stale = Freshness("style", True, 1, (ChangedDocument("returns.md", 1, 2, "policy"),))
    answer = answer_hybrid("Can customers return items for a refund?", ws.principal(None),
                           route=route, base=base, tuned=tuned, adapter="style", freshness=stale)
    assert len(base.generator.calls) == 1 and tuned.generator.calls == []
    assert answer.trace.adapter is None
    assert any("stale" in n and "returns.md" in n for n in answer.trace.notes)
    # the same adapter is still trusted on topics it is not stale on
    fresh = answer_hybrid("How do I connect to the VPN?", ws.principal(None),
                          route=Route("it", "knowledge", 0.9, ("it",), "classifier: it"),
                          base=base, tuned=tuned, adapter="style", freshness=stale)
    assert fresh.trace.adapter == "style" and len(tuned.generator.calls) == 1


def test_hybrid_keeps_access_control_inside_the_route(ws):
    base, tuned = pipelines(ws)
    route = Route("hr", "knowledge", 0.95, ("hr",), "classifier: hr")
    bob = answer_hybrid("How many days of paid leave do employees get?", ws.principal("bob"),
                        route=route, base=base, tuned=tuned, adapter="style")
    assert all("leave.md" not in h["document"] for h in bob.trace.retrieved)
    assert "25 days" not in bob.trace.prompt
    ana = answer_hybrid("How many days of paid leave do employees get?", ws.principal("ana"),
                        route=route, base=base, tuned=tuned, adapter="style")
    assert ana.trace.retrieved[0]["document"].endswith("leave.md")


def test_user_filters_are_narrowed_by_the_route_not_widened(ws):
    base, tuned = pipelines(ws)
    route = Route("policy", "knowledge", 0.9, ("policy", "it"), "classifier: policy")
    answer = answer_hybrid("Can customers return items for a refund?", ws.principal(None),
                           route=route, base=base, tuned=tuned, adapter="style",
                           filters=SearchFilter(collections=("it",)))
    assert {h["document"].rsplit("/", 1)[-1] for h in answer.trace.retrieved} <= {"vpn.md"}


def test_a_raft_style_reply_is_shown_and_cited_from_its_conclusion(ws):
    from ragtune.finetune.raft_quotes import final_answer

    reply = ("Reasoning: source [1] (Returns) answers the question; the other sources do not. "
             "It says: ##begin_quote##Customers may return items within 30 days of delivery "
             "for a refund.##end_quote##\nAnswer: Customers may return items within 30 days of "
             "delivery for a refund [1]")
    pipeline = AnswerPipeline(ws.retriever, FakeGenerator(reply=reply), conclusion=final_answer)
    answer = pipeline.ask("Can customers return items for a refund?", ws.principal(None))
    assert answer.text == ("Customers may return items within 30 days of delivery for a "
                           "refund [1]")
    assert answer.citations and all(c.supported for c in answer.citations)
    assert any("##begin_quote##" in n for n in answer.trace.notes)
