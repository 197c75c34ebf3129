"""The advise rule table, its scenarios, reconciliation with a report, and the command."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from ragtune.errors import InputError
from ragtune.evaluate.advise import RULES, Answers, advise, reconcile, rule_table

# For each rule: answers that make it fire, and close answers that must not.
TRIGGERS = {
    "changes-often": (Answers(data_change="weekly"), Answers(data_change="monthly")),
    "changes-monthly": (Answers(data_change="monthly"), Answers(data_change="daily")),
    "static": (Answers(data_change="never"), Answers(data_change="monthly")),
    "citations": (Answers(citations=True), Answers(citations=False)),
    "format": (Answers(format_required=True), Answers(format_required=False)),
    "access-control": (Answers(access_control=True), Answers(access_control=False)),
    "deletion": (Answers(deletion=True), Answers(deletion=None)),
    "volume-long-prompts": (Answers(monthly_queries=200_000, prompt_tokens=2_000),
                            Answers(monthly_queries=200_000, prompt_tokens=500)),
    "no-training-budget": (Answers(training_budget="none"), Answers(training_budget="small")),
    "cpu-only": (Answers(training_budget="small", gpu=False), Answers(training_budget="small")),
    "training-capacity": (Answers(gpu=True), Answers(gpu=False, training_budget="small")),
    "few-examples": (Answers(labelled_examples=40), Answers(labelled_examples=None)),
    "many-examples": (Answers(labelled_examples=5_000), Answers(labelled_examples=999)),
}


def test_every_rule_has_a_trigger_test() -> None:
    assert set(TRIGGERS) == {r.id for r in RULES}
    assert len(rule_table()) == len(RULES)


@pytest.mark.parametrize("rule_id", sorted(TRIGGERS))
def test_rule_fires_only_on_its_condition(rule_id) -> None:
    fires, quiet = TRIGGERS[rule_id]
    assert rule_id in {r.id for r in advise(fires).fired}
    assert rule_id not in {r.id for r in advise(quiet).fired}


@pytest.mark.parametrize("answers,choice", [
    (Answers(data_change="daily", citations=True, access_control=True, deletion=True), "rag"),
    (Answers(data_change="never", format_required=True, monthly_queries=500_000,
             prompt_tokens=3_000, training_budget="large", gpu=True, labelled_examples=5_000),
     "finetune"),
    (Answers(citations=True, format_required=True, gpu=True, labelled_examples=2_000), "hybrid"),
    (Answers(format_required=True, training_budget="none"), "rag"),
    (Answers(), None),  # nothing known: no basis to decide
    (Answers(citations=False, deletion=False, gpu=False), None),  # answers favour nothing
])
def test_scenarios(answers, choice) -> None:
    adv = advise(answers)
    assert adv.choice == choice, adv.scores
    assert adv.next_steps and all(s.startswith("ragtune ") for s in adv.next_steps)


def test_points_add_up_and_unanswered_factors_are_listed() -> None:
    adv = advise(Answers(data_change="daily", citations=True))
    assert adv.scores == {"rag": 6, "hybrid": 3, "finetune": -5}
    assert [r.id for r in adv.fired] == ["changes-often", "citations"]
    assert "deletion" in adv.unanswered and "citations" not in adv.unanswered
    d = adv.to_dict()
    assert d["label"] == "RAG" and d["reasons"][1]["rule"] == "citations"


def test_answers_are_validated() -> None:
    with pytest.raises(InputError, match="--data-change: must be one of never, monthly"):
        Answers(data_change="hourly")
    with pytest.raises(InputError, match="--training-budget"):
        Answers(training_budget="huge")
    with pytest.raises(InputError, match="--monthly-queries: must be >= 0"):
        Answers(monthly_queries=-1)


def report(winner: str, kind: str, *, rag_precision=0.95, pairs=()) -> dict:
    data = {"ragtune_report": 1, "eval": {"questions": 97},
            "systems": [
                {"name": "rag", "kind": "rag", "metrics": {"token_f1": 0.5,
                                                           "citation_precision": rag_precision,
                                                           "format_compliance": 0.4}},
                {"name": "finetuned:a", "kind": "finetuned",
                 "metrics": {"token_f1": 0.3, "citation_precision": None, "format_compliance": 0.3}}],
            "recommendation": {"system": winner, "headline": f"{winner}: best"},
            "break_even": {"pairs": list(pairs)}}
    if winner not in {s["name"] for s in data["systems"]}:
        data["systems"].append({"name": winner, "kind": kind, "metrics": {"token_f1": 0.6}})
    return data


def test_reconcile_agreement() -> None:
    answers = Answers(data_change="daily", citations=True)
    out = reconcile(advise(answers), report("rag", "rag"), answers)
    assert out["agree"] and out["measured"] == "rag"
    assert out["notes"][0] == "The measurements agree, on 97 questions: rag: best."


def test_reconcile_disagreement_keeps_hard_constraints() -> None:
    answers = Answers(citations=True, deletion=True)
    out = reconcile(advise(answers), report("finetuned:b", "finetuned"), answers)
    assert not out["agree"] and out["measured"] == "finetune" and out["advised"] == "rag"
    assert "disagree" in out["notes"][0]
    assert "Keep retrieval anyway" in out["notes"][1] and "must cite" in out["notes"][1]


def test_reconcile_says_when_the_advice_was_not_tested() -> None:
    answers = Answers(citations=True, format_required=True, gpu=True)  # -> hybrid
    data = report("rag", "rag")
    out = reconcile(advise(answers), data, answers)
    assert out["advised"] == "hybrid" and out["tested"] is False and out["agree"] is None
    assert out["notes"][0].startswith("Not tested: the bake-off compared rag, finetuned:a")
    assert "hybrid:ADAPTER or raft:ADAPTER" in out["notes"][0]


def test_reconcile_points_at_weak_measurements() -> None:
    answers = Answers(citations=True, format_required=True, monthly_queries=50_000)
    pairs = [{"system": "finetuned:a", "reference": "rag", "volume": 20_000.0, "text": "x"},
             {"system": "raft:b", "reference": "rag", "volume": None,
              "text": "no break-even: raft:b costs more per query"}]
    out = reconcile(advise(answers), report("rag", "rag", rag_precision=0.6, pairs=pairs), answers)
    notes = "\n".join(out["notes"])
    assert "only 60% supported" in notes
    assert "finetuned:a follows it no more often than rag (30% vs 40%)" in notes
    # every cost sentence says which way cost points and whether that agrees (advice: hybrid)
    assert ("Cost: at your 50,000 queries a month finetuned:a costs less than rag (they break "
            "even at 20,000 a month), so on cost alone finetuned:a would win; the recommendation "
            "stays hybrid (RAG + a fine-tuned adapter) for the reasons above (answers must cite "
            "sources, a required format, style or tone)") in notes
    assert ("Cost: raft:b never becomes cheaper than rag (no break-even), so on cost alone rag "
            "would win; the recommendation stays hybrid") in notes


@pytest.mark.parametrize("volume,monthly,agrees", [
    (2_000.0, 10_000, False),  # above break-even: the adapter is cheaper, advice is RAG
    (50_000.0, 10_000, True),  # below: training does not pay back, RAG is cheaper too
    (None, 10_000, True),      # never cheaper
    (0.0, None, False),        # never dearer
])
def test_cost_notes_agree_with_the_recommendation_or_say_why_not(volume, monthly, agrees) -> None:
    answers = Answers(citations=True, deletion=True, monthly_queries=monthly)  # -> RAG
    adv = advise(answers)
    pair = {"system": "finetuned:a", "reference": "rag", "volume": volume, "text": "x"}
    out = reconcile(adv, report("rag", "rag", pairs=[pair]), answers)
    (note,) = [n for n in out["notes"] if n.startswith("Cost:")]
    if agrees:
        assert note.endswith("cost agrees with the recommendation."), note
    else:
        assert "on cost alone finetuned:a would win; the recommendation stays RAG" in note, note
        assert "answers must cite sources" in note and "deletable" in note


def test_no_basis_with_a_report_takes_the_measurements_alone() -> None:
    pair = {"system": "finetuned:a", "reference": "rag", "volume": 0.0, "text": "x"}
    out = reconcile(advise(Answers()), report("finetuned:a", "finetuned", pairs=[pair]), Answers())
    assert out["advised"] is None and out["agree"] is None
    assert out["notes"][0].startswith("With no answers to weigh, the measurements are the only "
                                      "basis: on 97 questions the bake-off recommends finetuned:a")
    assert out["notes"][1] == "Cost: finetuned:a costs no more than rag at any volume."


# ---------------------------------------------------------------- the command

def _app():
    from ragtune.cli import app

    return app


def test_advise_flags_and_json() -> None:
    r = CliRunner().invoke(_app(), ["advise", "--data-change", "daily", "--citations",
                                    "--no-format", "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["recommendation"] == "rag" and out["answers"]["citations"] is True
    assert out["answers"]["format_required"] is False and out["answers"]["gpu"] is None
    assert {x["rule"] for x in out["reasons"]} == {"changes-often", "citations"}


def test_advise_interactive_asks_only_what_is_missing() -> None:
    # flags given: data change and citations; prompts for the other eight, in order
    answers = "y\n3000\n500000\nn\nn\nlarge\ny\n5000\n"
    r = CliRunner().invoke(_app(), ["advise", "--data-change", "never", "--no-citations",
                                    "--interactive"], input=answers)
    assert r.exit_code == 0, r.output
    assert "How often" not in r.output and "Must answers cite" not in r.output
    assert "Is a specific output format" in r.output
    assert "Recommendation: fine-tuning" in r.output
    assert "ragtune finetune train" in r.output


def test_advise_reconciles_with_a_report_file(tmp_path) -> None:
    path = tmp_path / "report.json"
    path.write_text(json.dumps(report("finetuned:b", "finetuned")))
    r = CliRunner().invoke(_app(), ["advise", "--citations", "--report", str(path), "--json"])
    assert r.exit_code == 0, r.output
    rec = json.loads(r.stdout)["reconciliation"]
    assert rec["agree"] is False and rec["measured_system"] == "finetuned:b"
