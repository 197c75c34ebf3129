"""A monitored workspace: two weeks of traffic through the real answer pipeline on the
sample knowledge base (examples/kb), with the fake embedder and generator.

The scenario, by window (the report's window is the 7 days before ``UNTIL``):

previous window (9 days before now)
    30 answerable questions (rag, as ana), 10 IT questions in hybrid mode routed to ``it``
    and answered by adapter ``style`` (fresh then).
between the windows
    the returns policy is updated to v2 and re-ingested: ``style`` learnt from v1, so it is
    stale; a KB file is edited on disk without re-ingest (changed), another deleted (vanished).
current window
    the same 30 answerable questions (3 thumbs down, 5 up), 6 nonsense questions below the
    relevance floor, 5 warranty questions the "model" answers with an invented claim, 10 IT
    questions routed to ``it`` (the stale adapter answers: its stale document is in
    ``policies``), 10 returns questions routed to ``policy`` (stale there: the base model
    answers), 3 finetuned answers with no retrieval ("I don't know."), 2 questions by bob,
    and 4 evaluation answers that must not count.

Every record's time comes from a test clock (``ragtune.answer.traces.time``), so the
windows are exact. The fixture keeps each group's :class:`Answer` objects: tests compute
the expected figures from them, not from the monitor's own code.
"""

from __future__ import annotations

import json
import shutil
import time
import types
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from ragtune.generate.fake import FakeGenerator, default_reply
from ragtune.types import Answer, Route
from tests.conftest import EXAMPLES, FAKE
from tests.evaluate.conftest import add_adapter

DAY = 86400.0
COLLECTIONS = ["policies", "shipping", "manuals", "it", "hr", "expenses"]
NONSENSE = ["zorblax flurb quux", "quux zorblax flurb", "quux flurb zorblax",
            "flurb zorblax quux", "flurb quux zorblax", "zorblax quux flurb"]
WARRANTY = ["What is the warranty on the Trailmark X2 watch?",
            "How long is the warranty on the Trailmark X2 watch?",
            "Does the Trailmark X2 watch warranty cover water damage?",
            "Is the Trailmark X2 watch warranty transferable?",
            "Who pays for a Trailmark X2 watch warranty repair?"]
INVENTED = "The Trailmark X2 warranty lasts ninety-nine years on the moon [1]."
IT_QUESTIONS = ["How do I reset my VPN password?", "How do I set up the VPN on a new laptop?",
                "How do I enrol a new phone for MFA?", "How do I request new software?",
                "Who do I contact at the helpdesk?", "What is the password policy?",
                "Can I use my personal laptop for work?", "How do I reset my password?",
                "What does the acceptable use policy forbid?", "How long until my password expires?"]
RETURNS = ["How many days do I have to return an item?", "Can I return a gift card?",
           "Is there a restocking fee on returns?", "Can I return a Final Sale item?",
           "How do I get a refund for a return?", "Can I return an opened item?",
           "Do I pay return shipping?", "Can I return an item bought in store online?",
           "How long does a refund take?", "Can I exchange an item instead of a return?"]
FINETUNED = ["Write a friendly greeting", "Write a friendly farewell", "Write a friendly thanks"]
BOB = ["How do I reset my VPN password?", "What is the password policy?"]


class Clock:
    """``time.time()`` for the trace sink: answers are recorded at ``now``."""

    def __init__(self, now: float) -> None:
        self.now = now

    def time(self) -> float:
        return self.now


def reply(messages: list[dict[str, str]]) -> str:
    """The fake base model: invents a warranty claim, otherwise quotes source [1]."""
    return INVENTED if "warranty" in messages[-1]["content"].split("Question:")[-1].lower() \
        else default_reply(messages)


def route(question: str, principal) -> Route:
    if question in IT_QUESTIONS:
        return Route("it", "knowledge", 0.9, ("it",), "test router: IT")
    return Route("policy", "knowledge", 0.9, ("policies",), "test router: policies")


@dataclass
class Scenario:
    ws: object
    kb: Path
    until: float
    previous: dict[str, list[Answer]] = field(default_factory=dict)
    current: dict[str, list[Answer]] = field(default_factory=dict)
    changed: str = ""
    vanished: str = ""
    stale_source: str = ""

    def live(self, window: str) -> list[Answer]:
        groups = self.previous if window == "previous" else self.current
        return [a for name, answers in groups.items() if name != "eval" for a in answers]


def answerable_questions() -> list[str]:
    rows = [json.loads(x) for x in (EXAMPLES / "eval" / "kb_eval.jsonl").read_text().splitlines()]
    return [r["question"] for r in rows if r["answerable"] and "warranty" not in r["question"].lower()
            and "return" not in r["question"].lower()][:30]


def build_scenario(tmp: Path, monkeypatch: pytest.MonkeyPatch) -> Scenario:
    from ragtune.workspace import Workspace

    kb = tmp / "kb"
    shutil.copytree(EXAMPLES / "kb", kb, ignore=shutil.ignore_patterns("restricted"))
    now = time.time()
    ws = Workspace.init(tmp / "ws", overrides=FAKE | {"monitor": {
        "min_answers": 5, "max_age": {"expenses": "1d"}, "gap_distance": 0.6,
        "alerts": {"refusal_rate_max": 0.1, "stale_documents_max": 0,
                   "thumbs_down_rate_max": 0.5}}})
    for name in COLLECTIONS:
        ws.ingest([kb / name], collection=name)
    ws.generator = FakeGenerator(reply=reply)
    returns = str((kb / "policies" / "returns-policy.md").resolve())
    add_adapter(ws, "style", trained_on=(returns,))
    adapter_gen = FakeGenerator(name="fake-style")
    monkeypatch.setattr(ws.adapters, "generator", lambda adapter: adapter_gen)
    ws.routing = route
    clock = Clock(now)
    monkeypatch.setattr("ragtune.answer.traces.time", types.SimpleNamespace(time=clock.time))
    sc = Scenario(ws, kb, until=now + 2 * DAY, stale_source=returns)
    questions = answerable_questions()

    def ask(group: dict[str, list[Answer]], name: str, at: float, items: list[str],
            user: str | None = "ana", **kw) -> None:
        for i, q in enumerate(items):
            clock.now = at + 60 * i
            group.setdefault(name, []).append(ws.ask(q, user, **kw))

    ask(sc.previous, "rag", now - 9 * DAY, questions)
    ask(sc.previous, "hybrid_it", now - 8 * DAY, IT_QUESTIONS, mode="hybrid", adapter="style")

    shutil.copy(EXAMPLES / "updates" / "returns-policy.md", kb / "policies" / "returns-policy.md")
    ws.ingest([kb / "policies"], collection="policies")
    holidays = kb / "hr" / "holidays-2025.md"
    holidays.write_text(holidays.read_text() + "\n\n## New\n\nThe office closes on 2 January.\n")
    sc.changed = str(holidays.resolve())
    pickup = kb / "shipping" / "store-pickup.txt"
    sc.vanished = str(pickup.resolve())
    pickup.unlink()

    ask(sc.current, "rag", now - 2 * DAY, questions)
    ask(sc.current, "not_found", now - 1 * DAY, NONSENSE)
    ask(sc.current, "unsupported", now - 1 * DAY + 3600, WARRANTY)
    ask(sc.current, "hybrid_it", now + 1 * DAY, IT_QUESTIONS, mode="hybrid", adapter="style")
    ask(sc.current, "hybrid_policy", now + 1 * DAY + 3600, RETURNS, mode="hybrid",
        adapter="style")
    ask(sc.current, "finetuned", now + 1 * DAY + 7200, FINETUNED, mode="finetuned",
        adapter="style")
    ask(sc.current, "bob", now + 1 * DAY + 9000, BOB, user="bob")
    ask(sc.current, "eval", now, questions[:4], origin="eval")
    rag = sc.current["rag"]
    for a in rag[:3]:
        ws.store.add_feedback(a.trace.id, ws.principal("ana"), -1, "wrong answer")
    for a in rag[3:8]:
        ws.store.add_feedback(a.trace.id, ws.principal("ana"), 1)
    return sc


@pytest.fixture(scope="module")
def scenario(tmp_path_factory) -> Scenario:
    with pytest.MonkeyPatch.context() as mp:
        yield build_scenario(tmp_path_factory.mktemp("monitored"), mp)
