"""probe_memorisation: the overlap rule, personal data, and a real adapter vs its base."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

import pytest

from ragtune.errors import InputError
from ragtune.finetune.hf_generator import HFGenerator
from ragtune.finetune.probe import longest_common_run, probe_memorisation
from ragtune.generate.base import Completion

from .conftest import write_jsonl


class EchoGenerator:
    """Answers each prompt with a fixed reply per user question (a stand-in for a model)."""

    base_model = "echo"

    def __init__(self, replies: dict[str, str]) -> None:
        self.replies = replies
        self.active: list[str | None] = []

    @contextmanager
    def activated(self, adapter):
        self.active.append(adapter)
        yield self

    def complete(self, messages, **kw) -> Completion:
        return Completion(text=self.replies[messages[-1]["content"]])


def _row(q: str, a: str) -> dict:
    return {"messages": [{"role": "system", "content": "Be brief."},
                         {"role": "user", "content": q}, {"role": "assistant", "content": a}]}


LONG = " ".join(f"w{i}" for i in range(30))  # a 30-token answer


def test_overlap_rule_and_personal_data(tmp_path: Path) -> None:
    rows = [_row("q-long", LONG), _row("q-short", "Ask the office. Mail help@acme.example.com")]
    rows += [_row(f"q{i}", f"Answer number {i} is here.") for i in range(10)]
    data = write_jsonl(tmp_path / "train.jsonl", rows)
    replies = {
        "q-long": "Sure: " + " ".join(LONG.split()[5:25]) + " and more",   # 20-token run
        "q-short": "Ask the office. Mail help@acme.example.com",            # whole short answer
        "q0": "Answer number 0 is",                                         # 4 of 5 tokens
        "q1": "Call me at +1 415-555-0132 please.",                         # not in training data
    } | {f"q{i}": "No idea." for i in range(2, 10)}
    gen = EchoGenerator(replies)
    r = probe_memorisation(gen, "ad", data)
    assert gen.active == ["ad"] and r["examples"] == 12
    by_line = {w["line"]: w for w in r["worst"]}
    assert r["memorised"] == 2 and r["memorised_share"] == pytest.approx(2 / 12, abs=1e-4)
    assert by_line[1]["overlap_tokens"] == 20 and by_line[1]["memorised"]
    assert by_line[2]["memorised"] and by_line[2]["overlap_share"] == 1.0
    assert by_line[3]["overlap_tokens"] == 4 and not by_line[3]["memorised"]
    assert [w["line"] for w in r["worst"][:3]] == [2, 3, 1]  # by share of the answer reproduced
    assert probe_memorisation(gen, "ad", data, min_overlap_tokens=21)["memorised"] == 1
    assert probe_memorisation(gen, "ad", data, min_overlap_tokens=4)["memorised"] == 3
    pii = r["personal_data"]
    assert pii["generations_with_personal_data"] == 2 and pii["kinds"] == {"email": 1, "phone": 1}
    assert pii["found_in_training_data"] == 1
    leaked = {e["line"]: e["personal_data"][0] for e in pii["examples"]}
    assert leaked[2] == {"kind": "email", "value": "h***@acme.example.com", "in_training_data": True}
    assert leaked[4]["in_training_data"] is False
    assert probe_memorisation(gen, "ad", data, limit=2)["examples"] == 2
    with pytest.raises(InputError, match="min-overlap"):
        probe_memorisation(gen, "ad", data, min_overlap_tokens=0)


def test_longest_common_run() -> None:
    assert longest_common_run([], ["a"]) == (0, 0)
    assert longest_common_run(["x", "a", "b", "c", "y"], ["a", "b", "c"]) == (3, 1)
    assert longest_common_run(["A", "b"], ["a", "b"]) == (1, 1)  # case counts


def test_adapter_recites_more_than_its_base(tiny_model_dir: Path, adapters_root: Path,
                                            style_data: Path) -> None:
    gen = HFGenerator(str(tiny_model_dir), adapters_root=adapters_root, max_tokens=40)
    # The tiny adapter learnt the answer template ("ask the office within", the source
    # marker) but not the facts: 4-token runs, which the random base never produces.
    tuned = probe_memorisation(gen, "style", style_data, min_overlap_tokens=4, limit=6)
    base = probe_memorisation(gen, None, style_data, min_overlap_tokens=4, limit=6)
    assert tuned["mean_overlap_tokens"] >= base["mean_overlap_tokens"] + 3
    assert tuned["memorised_share"] == 1.0 and base["memorised_share"] == 0.0
    assert tuned["worst"][0]["overlap_text"] and len(tuned["worst"]) == 5
    assert gen.adapter is None  # probing restores the generator's adapter
