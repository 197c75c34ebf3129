"""Multi-turn questions in the core: earlier turns condition retrieval, routing and the
prompt; the trace keeps the question as asked."""

from __future__ import annotations

from ragtune.answer.conversation import Turn, conversation_search
from ragtune.generate.fake import FakeGenerator
from ragtune.types import Principal, Route
from tests.conftest import write

VPN = "# VPN\n\n## Password reset\n\nReset your VPN password at the IT portal under Account settings.\n"
MEALS = "# Travel\n\n## Meals\n\nThe daily meal allowance for work travel is 45 euros.\n"
HISTORY = (Turn("user", "How do I reset my VPN password?"), Turn("assistant", "At the IT portal [1]."))


def kb(fake_ws, tmp_path):
    fake_ws.ingest([write(tmp_path / "kb" / "vpn.md", VPN), write(tmp_path / "kb" / "meals.md", MEALS)])
    return fake_ws


def test_a_follow_up_retrieves_and_is_prompted_with_the_earlier_question(fake_ws, tmp_path) -> None:
    ws = kb(fake_ws, tmp_path)
    gen = FakeGenerator()
    ws.generator = gen
    alone = ws.ask("Where do I do that?")
    assert alone.refused or not any(c.document.endswith("vpn.md") for c in alone.citations)
    follow = ws.ask("Where do I do that?", history=HISTORY)
    assert follow.citations[0].document.endswith("vpn.md")
    prompt = gen.calls[-1][-1]["content"]
    assert prompt.endswith("Question: Where do I do that? (earlier in this conversation: How do "
                           "I reset my VPN password?)")
    assert follow.trace.question == "Where do I do that?"
    assert any("earlier questions" in n for n in follow.trace.notes)


def test_a_new_topic_in_the_same_chat_is_not_dragged_back(fake_ws, tmp_path) -> None:
    ws = kb(fake_ws, tmp_path)
    answer = ws.ask("What is the daily meal allowance for work travel?", history=HISTORY)
    assert answer.citations[0].document.endswith("meals.md")


def test_search_without_earlier_questions_is_one_plain_search(fake_ws, tmp_path) -> None:
    ws = kb(fake_ws, tmp_path)
    who = Principal.anonymous()
    plain = ws.retriever.search("VPN password", who, k=3)
    same = conversation_search(ws.retriever, "VPN password", [Turn("assistant", "hi")], who, k=3)
    assert [h.chunk.id for h in same.hits] == [h.chunk.id for h in plain.hits]


def test_the_model_alone_gets_the_earlier_turns_as_chat(fake_ws) -> None:
    gen = FakeGenerator(reply="Hello again.")
    fake_ws.generator = gen
    fake_ws.ask("And now?", mode="base", history=HISTORY)
    roles = [(m["role"], m["content"]) for m in gen.calls[-1]]
    assert roles[1:] == [("user", "How do I reset my VPN password?"),
                         ("assistant", "At the IT portal [1]."), ("user", "And now?")]


def test_hybrid_routes_a_follow_up_with_its_conversation(fake_ws, tmp_path, monkeypatch) -> None:
    from tests.evaluate.conftest import add_adapter

    ws = kb(fake_ws, tmp_path)
    add_adapter(ws, "style", trained_on=())
    monkeypatch.setattr(ws.adapters, "generator", lambda adapter: ws.generator)
    routed: list[str] = []
    ws.routing = lambda q, p: routed.append(q) or Route.unrouted()
    ws.ask("Where do I do that?", mode="hybrid", adapter="style", history=HISTORY)
    assert routed == ["How do I reset my VPN password? Where do I do that?"]
