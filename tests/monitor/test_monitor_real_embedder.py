"""The monitor with the real packaged embedder (MiniLM): gap questions that share no words
cluster by meaning, and a week that brings new topics shows as question drift."""

from __future__ import annotations

import time
import types

import pytest

from ragtune.monitor.health import monitor_report
from ragtune.types import Principal
from tests.conftest import EXAMPLES
from tests.monitor.conftest import DAY, Clock

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PETS = ["Can I bring my dog to the office?", "Are pets allowed at work?",
        "Is it ok to take my puppy into the building?", "May I keep a cat at my desk?",
        "What is the policy on animals in the workplace?",
        "Can my dog come to work with me on Fridays?"]
STOCK = ["What is our stock ticker symbol?", "On which exchange are the company's shares listed?",
         "How do I buy shares of the company?",
         "When does the company pay dividends to shareholders?",
         "What was the share price at the IPO?"]
IT_BEFORE = ["How do I reset my VPN password?", "How do I set up the VPN on a new laptop?",
             "How do I enrol a new phone for MFA?", "How do I request new software?",
             "What is the password policy?", "How do I reset my password?",
             "My VPN password expired, how do I change it?", "How to install the VPN client?",
             "How can I register my phone for two-factor login?",
             "Where do I ask for a software licence?", "How long must passwords be?",
             "I forgot my password, what now?"]
IT_NOW = ["How do I change my VPN password?", "Setting up VPN access on a laptop",
          "Adding a new phone to multi-factor authentication", "Requesting a new application",
          "What are the password rules?", "How can I recover a forgotten password?"]


def test_gaps_cluster_by_meaning_and_new_topics_show_as_drift(tmp_path, monkeypatch,
                                                              local_embedder) -> None:
    from ragtune.workspace import Workspace

    ws = Workspace.init(tmp_path / "ws", overrides={"generation": {"backend": "fake"},
                                                    "monitor": {"min_answers": 5}})
    ws.embedder = local_embedder
    ws.ingest([EXAMPLES / "kb" / "it"], collection="it")
    now = time.time()
    clock = Clock(now - 10 * DAY)
    monkeypatch.setattr("ragtune.answer.traces.time", types.SimpleNamespace(time=clock.time))

    def ask(questions, at):
        answers = []
        for i, q in enumerate(questions):
            clock.now = at + 60 * i
            answers.append(ws.ask(q))
        return answers

    before = ask(IT_BEFORE, now - 10 * DAY)
    it_now = ask(IT_NOW, now - 2 * DAY)
    pets = ask(PETS, now - DAY)
    stock = ask(STOCK, now - DAY / 2)
    operator = Principal("operator", admin=True)
    for a in pets:
        if not a.refused:  # answered from unrelated IT pages: the asker says so
            ws.store.add_feedback(a.trace.id, operator, -1, "not about pets")
    assert all(not a.refused for a in before + it_now) and all(a.trace.not_found for a in stock)

    report, clusters, _ = monitor_report(ws, since=now - 7 * DAY, until=now)
    assert report["gaps"]["questions"] == len(PETS) + len(STOCK)
    assert sorted(c.size for c in clusters) == [5, 6]  # two topics, no shared words needed
    pets_cluster, stock_cluster = clusters
    assert set(pets_cluster.central) <= set(PETS) and set(stock_cluster.central) <= set(STOCK)
    assert stock_cluster.reasons == {"not_found": 5}
    assert "nothing in the knowledge base answers them" in stock_cluster.headline

    q = report["drift"]["questions"]
    assert q["questions"] == [len(it_now) + len(PETS) + len(STOCK), len(IT_BEFORE)]
    assert q["drifted"] and q["p_value"] < 0.05 and q["mmd"] > 0
    corpus = report["drift"]["corpus"]
    assert corpus["beyond_floor"][1] == 0.0 and corpus["beyond_floor"][0] > 0
