"""The bake-off: systems parsing, the recommendation rules, a full run and its reports."""

from __future__ import annotations

import json
import random

import pytest

from ragtune.errors import InputError
from ragtune.evaluate import compare as cmp
from ragtune.evaluate import qa_metrics as m
from ragtune.evaluate.evalset import load_evalset
from ragtune.evaluate.qa import QARun, SystemSpec
from ragtune.evaluate.report import load_report, render_markdown, write_reports


def test_parse_systems() -> None:
    specs = cmp.parse_systems("base,rag,finetuned:A1,hybrid:a,raft:b")
    assert [s.name for s in specs] == ["base", "rag", "finetuned:A1", "hybrid:a", "raft:b"]
    assert [s.mode for s in specs] == ["base", "rag", "finetuned", "hybrid", "rag"]
    with pytest.raises(InputError, match="listed twice"):
        cmp.parse_systems("rag,base,rag")
    with pytest.raises(InputError, match="at least one system"):
        cmp.parse_systems(" , ")
    with pytest.raises(InputError, match="unknown system 'gpt4'"):
        cmp.parse_systems("rag,gpt4")
    assert cmp.answers_path(cmp.Path("o"), specs[2]).name == "answers-finetuned_A1.jsonl"


# ---------------------------------------------------------------- recommendation rules

def fake_run(name: str, f1: list[float], *, unsupported: float = 0.0, refuse_unanswerable=1.0,
             cost: float = 0.001, unanswerable: int = 0, cites: bool = True) -> QARun:
    """A run whose records carry the given per-question F1 and rates."""
    spec = SystemSpec.parse(name)
    records = []
    n_unsup = round(unsupported * (len(f1) + unanswerable))
    for i, v in enumerate(f1):
        records.append({"answerable": True, "refused": False,
                        "scores": {"token_f1": v, "exact_match": float(v == 1.0),
                                   "unsupported_claim": i < n_unsup},
                        "sentences_supported": [True] if spec.retrieves and cites else None,
                        "citations_supported": [True] if spec.retrieves and cites else None,
                        "timings": {"total_s": 1.0}, "tokens": {}, "cost_usd": cost})
    n_ref = round(refuse_unanswerable * unanswerable)
    for j in range(unanswerable):
        records.append({"answerable": False, "refused": j < n_ref, "scores": {},
                        "sentences_supported": [] if spec.retrieves else None,
                        "citations_supported": [] if spec.retrieves else None,
                        "timings": {"total_s": 1.0}, "tokens": {}, "cost_usd": cost})
    return QARun(spec, records, m.aggregate(records, k=5), None)


def noisy(mean: float, n: int = 60, seed: int = 0) -> list[float]:
    rnd = random.Random(seed)
    return [min(1.0, max(0.0, mean + rnd.uniform(-0.3, 0.3))) for _ in range(n)]


def test_a_clear_f1_lead_wins_and_the_reasons_carry_numbers() -> None:
    rag, base = fake_run("rag", noisy(0.7)), fake_run("base", noisy(0.1, seed=1))
    rec = cmp.recommend([base, rag])
    assert rec["system"] == "rag" and rec["category"] == "RAG"
    c = rec["comparisons"][0]
    assert c["vs"] == "base" and c["significant"] and c["f1_delta"] == pytest.approx(
        rag.metrics["token_f1"] - base.metrics["token_f1"])
    assert rec["headline"].startswith("rag (RAG): +") and "citations 100% correct" in rec["headline"]
    text = "\n".join(rec["reasons"])
    assert "vs base: +" in text and "a real difference" in text
    assert "Sample: 60 questions (60 answerable, 0 unanswerable)" in rec["caveats"][0]


def test_a_statistical_tie_goes_to_the_cheaper_system() -> None:
    rag = fake_run("rag", noisy(0.60, seed=2), cost=0.002)
    tuned = fake_run("finetuned:a", noisy(0.58, seed=3), cost=0.0005)
    rec = cmp.recommend([rag, tuned])
    assert set(rec["tied_with_best"]) == {"rag", "finetuned:a"}
    assert rec["system"] == "finetuned:a" and rec["category"] == "fine-tuning"
    assert any("statistically tied" in r for r in rec["reasons"])
    assert any("not distinguishable" in r for r in rec["reasons"])


def test_near_equal_costs_go_to_the_higher_f1() -> None:
    rag = fake_run("rag", noisy(0.60, seed=2), cost=0.00100)
    tuned = fake_run("finetuned:a", noisy(0.58, seed=3), cost=0.00095)
    assert cmp.recommend([rag, tuned])["system"] == "rag"


def test_the_safety_rule_drops_an_inventive_system() -> None:
    tuned = fake_run("finetuned:a", noisy(0.62, seed=4), unsupported=0.5, cost=0.0001)
    rag = fake_run("rag", noisy(0.60, seed=5), unsupported=0.05, cost=0.002)
    rec = cmp.recommend([tuned, rag])
    assert rec["dropped_for_safety"] == ["finetuned:a"] and rec["system"] == "rag"
    assert "finetuned:a makes unsupported claims in 50% of answers" in rec["headline"]


def test_the_refusal_rule_needs_enough_unanswerable_questions() -> None:
    a = fake_run("rag", noisy(0.6, seed=6), unanswerable=8, refuse_unanswerable=0.9, cost=0.002)
    b = fake_run("raft:b", noisy(0.6, seed=7), unanswerable=8, refuse_unanswerable=0.1, cost=0.001)
    assert cmp.recommend([a, b])["system"] == "rag"  # b refuses 1 of 8: dropped
    a4 = fake_run("rag", noisy(0.6, seed=6), unanswerable=4, refuse_unanswerable=1.0, cost=0.002)
    b4 = fake_run("raft:b", noisy(0.6, seed=7), unanswerable=4, refuse_unanswerable=0.0, cost=0.001)
    rec = cmp.recommend([a4, b4])
    assert rec["system"] == "raft:b"  # 4 unanswerable questions: gate not applied, cheaper wins
    assert any("only 4 unanswerable" in c for c in rec["caveats"])


def test_retrieval_only_sets_make_no_recommendation() -> None:
    spec = SystemSpec.parse("rag")
    recs = [{"answerable": True, "refused": False, "scores": {"recall@5": 1.0},
             "sentences_supported": None, "citations_supported": None, "timings": {},
             "tokens": {}, "cost_usd": None}]
    rec = cmp.recommend([QARun(spec, recs, m.aggregate(recs, k=5), None)])
    assert rec["system"] is None and "retrieval-only" in rec["headline"]


# ---------------------------------------------------------------- the whole bake-off

def test_run_compare_writes_reports(kb_ws, eval_file, tmp_path) -> None:
    ev = load_evalset(eval_file)
    specs = cmp.parse_systems("base,rag,finetuned:a,raft:a")
    seen: list[tuple[str, int]] = []
    data = cmp.run_compare(kb_ws, ev, specs, tmp_path / "out", index_seconds=30.0,
                           progress=lambda s, d, t, q: seen.append((s, d)))
    assert [s["name"] for s in data["systems"]] == ["base", "rag", "finetuned:a", "raft:a"]
    assert ("finetuned:a", 6) in seen and ("base", 0) in seen
    setup = {s["name"]: s["setup"] for s in data["systems"]}
    assert setup["base"]["seconds"] == 0 and setup["rag"]["index"]["basis"] == "measured"
    assert setup["finetuned:a"]["training"]["seconds"] == 600.0 and "index" not in setup["finetuned:a"]
    assert setup["raft:a"]["seconds"] == pytest.approx(630.0)
    assert setup["raft:a"]["usd"] == pytest.approx(630.0 * kb_ws.settings.costs.compute_per_hour / 3600)
    pairs = {(p["system"], p["reference"]) for p in data["break_even"]["pairs"]}
    assert pairs == {("finetuned:a", "rag"), ("raft:a", "rag")}
    rec = data["recommendation"]
    assert rec["category"] in {"RAG", "hybrid"}
    assert "finetuned:a makes unsupported claims in 100% of answers" in rec["headline"]
    assert data["questions"][0]["systems"]["rag"]["citations"][0]["supported"] is True
    assert any("trained on" in w for w in data["warnings"])

    paths = write_reports(data, tmp_path / "out")
    assert load_report(paths["json"])["recommendation"]["system"] == rec["system"]
    md = paths["md"].read_text()
    for needle in ("## Recommendation", "Sample: 6 questions (4 answerable, 2 unanswerable)",
                   "| metric | base |", "| Answer F1 (0-100) |", "Cost per 1,000 questions",
                   "## Definitions", "unsupported_claims_rate", "| q1 |",
                   "Break-even:"):
        assert needle in md, needle
    html = paths["html"].read_text()
    for chart in ("chart-accuracy-latency", "chart-cost", "chart-break-even"):
        assert f'id="{chart}"' in html
    assert "<script" not in html and 'src="http' not in html and 'href="http' not in html
    # resuming: a second run asks nothing and gives the same numbers
    again = cmp.run_compare(kb_ws, ev, specs, tmp_path / "out", index_seconds=30.0)
    assert [s["metrics"]["token_f1"] for s in again["systems"]] == \
           [s["metrics"]["token_f1"] for s in data["systems"]]


def test_unknown_adapter_fails_before_any_question(kb_ws, eval_file, tmp_path) -> None:
    from ragtune.errors import NotFound

    with pytest.raises(NotFound, match="no finished adapter named 'zz'"):
        cmp.run_compare(kb_ws, load_evalset(eval_file), cmp.parse_systems("rag,finetuned:zz"),
                        tmp_path / "out")
    assert not (tmp_path / "out" / "answers-rag.jsonl").exists()


def test_hybrid_system_runs(kb_ws, eval_file, tmp_path) -> None:
    pytest.importorskip("ragtune.finetune.freshness",
                        reason="hybrid mode needs the adapter freshness check (lead's change)")
    data = cmp.run_compare(kb_ws, load_evalset(eval_file), cmp.parse_systems("rag,hybrid:a"),
                           tmp_path / "out")
    hybrid = data["systems"][1]
    assert hybrid["mode"] == "hybrid" and hybrid["metrics"]["questions"] == 6
    assert ("hybrid:a", "rag") in {(p["system"], p["reference"]) for p in data["break_even"]["pairs"]}


def test_markdown_of_a_single_system_report_has_no_recommendation(kb_ws, eval_file) -> None:
    from ragtune.evaluate.qa import QAEvaluator

    ev = load_evalset(eval_file)
    run = QAEvaluator(kb_ws, ev).run(SystemSpec.parse("rag"))
    data = cmp.build_report_data(kb_ws, ev, [run], {}, with_recommendation=False)
    md = render_markdown(data)
    assert "## Recommendation" not in md and "| rag |" in md
    json.dumps(data)  # JSON-ready
