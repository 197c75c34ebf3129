"""A small knowledge base, an eval set over it and a stand-in adapter, for the QA tests.

Models are the project's fakes (hashing embedder, FakeGenerator): the retrieval, citation
checking, scoring, resume and report code all run for real on top of them. The "adapter"
is a registered adapter folder (run.json with duration and lineage) whose generator is a
FakeGenerator: with sources in the prompt it answers like the fake base model, without
sources it states an invented return window, as an adapter that memorised wrongly would.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ragtune.generate.fake import FakeGenerator, default_reply
from tests.conftest import write

KB = {
    "policies/returns.md": "# Returns\n\n## Window\n\nItems can be returned within 30 days of "
                           "delivery.\n\n## Gift cards\n\nGift cards cannot be returned or "
                           "exchanged.\n",
    "it/vpn.md": "# VPN\n\n## Password reset\n\nReset your VPN password at the IT portal under "
                 "Account settings.\n",
    "expenses/travel.md": "# Travel expenses\n\n## Meals\n\nThe daily meal allowance for work "
                          "travel is 45 euros.\n",
    "hr/leave.md": "# Leave\n\n## Annual leave\n\nEmployees get 25 days of paid annual leave "
                   "each year.\n",
}

QUESTIONS = [
    {"id": "q1", "question": "How many days do I have to return items after delivery?",
     "answers": ["30 days"], "sources": ["policies/returns.md"], "answerable": True,
     "tags": ["policy"]},
    {"id": "q2", "question": "How do I reset my VPN password?",
     "answers": ["At the IT portal under Account settings"], "sources": ["it/vpn.md"],
     "answerable": True, "tags": ["it"]},
    {"id": "q3", "question": "What is the daily meal allowance for work travel?",
     "answers": ["45 euros"], "sources": ["expenses/travel.md"], "answerable": True,
     "tags": ["expenses"]},
    {"id": "q4", "question": "How many days of paid annual leave do employees get?",
     "answers": ["25 days"], "sources": ["hr/leave.md"], "answerable": True, "tags": ["hr"]},
    {"id": "q5", "question": "What colour is the company zeppelin?",
     "answers": ["The knowledge base does not say."], "sources": [], "answerable": False,
     "tags": ["unanswerable"]},
    {"id": "q6", "question": "Which quantum router firmware does the moon base run?",
     "answers": ["The knowledge base does not say."], "sources": [], "answerable": False,
     "tags": ["unanswerable"]},
]

INVENTED = "Items can be returned within 14 days of purchase."


def adapter_reply(messages: list[dict[str, str]]) -> str:
    user = messages[-1]["content"]
    return default_reply(messages) if user.startswith("Sources:") else INVENTED


def add_adapter(ws, name: str = "a", duration_s: float = 600.0,
                trained_on: tuple[str, ...] = ("policies/returns.md",)) -> Path:
    """Register an adapter folder the way train_adapter leaves one (run.json + config)."""
    folder = ws.adapters_root / name
    write(folder / "adapter_config.json", json.dumps({"peft_type": "LORA"}))
    write(folder / "run.json", json.dumps({
        "name": name, "base_model": "tiny", "created_at": 0.0, "duration_s": duration_s,
        "lineage": {"documents": [{"source": s, "version": 1} for s in trained_on]}}))
    return folder


@pytest.fixture
def kb_ws(fake_ws, tmp_path, monkeypatch):
    """The fake workspace with KB ingested and adapter 'a' answering as described above."""
    for rel, text in KB.items():
        write(tmp_path / "kb" / rel, text)
    fake_ws.ingest([tmp_path / "kb"])
    add_adapter(fake_ws)
    gen = FakeGenerator(reply=adapter_reply, name="fake-adapter")
    monkeypatch.setattr(fake_ws.adapters, "generator", lambda adapter: gen)
    return fake_ws


@pytest.fixture
def eval_file(tmp_path) -> Path:
    return write(tmp_path / "eval.jsonl", "".join(json.dumps(q) + "\n" for q in QUESTIONS))
