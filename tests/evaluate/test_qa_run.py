"""One system over an eval set: records, aggregate, resume, failures, regression checks."""

from __future__ import annotations

import json

import pytest

from ragtune.errors import InputError, ModelError
from ragtune.evaluate.evalset import load_evalset
from ragtune.evaluate.qa import QAEvaluator, SystemSpec, read_records, regression_check
from ragtune.generate.fake import FakeGenerator
from tests.evaluate.conftest import INVENTED


@pytest.mark.parametrize("text,expected", [
    ("base", ("base", "base", "base", None)),
    (" RAG ", ("rag", "rag", "rag", None)),
    ("finetuned:a", ("finetuned:a", "finetuned", "finetuned", "a")),
    ("hybrid:a", ("hybrid:a", "hybrid", "hybrid", "a")),
    ("raft:b", ("raft:b", "raft", "rag", "b")),
    ("rag:b", ("raft:b", "raft", "rag", "b")),
])
def test_system_spec_parse(text, expected) -> None:
    s = SystemSpec.parse(text)
    assert (s.name, s.kind, s.mode, s.adapter) == expected


@pytest.mark.parametrize("text,problem", [
    ("finetuned", "needs an adapter"), ("hybrid:", "needs an adapter"),
    ("base:a", "model alone"), ("gpt", "unknown system")])
def test_system_spec_errors(text, problem) -> None:
    with pytest.raises(InputError, match=problem):
        SystemSpec.parse(text)


def test_from_mode_matches_ask_flags() -> None:
    assert SystemSpec.from_mode("rag", "b").name == "raft:b"
    assert SystemSpec.from_mode("rag", None).name == "rag"
    assert SystemSpec.from_mode("finetuned", "a").name == "finetuned:a"


def test_rag_run_records_and_aggregate(kb_ws, eval_file, tmp_path) -> None:
    ev = load_evalset(eval_file)
    run = QAEvaluator(kb_ws, ev).run(SystemSpec.parse("rag"), tmp_path / "rag.jsonl")
    recs = {r["id"]: r for r in run.records}
    q1 = recs["q1"]
    assert q1["answer"].startswith("Items can be returned within 30 days") and not q1["refused"]
    assert q1["scores"]["token_f1"] > 0.3 and q1["scores"]["recall@5"] == 1.0
    assert q1["scores"]["context_recall"] == 1.0 and q1["scores"]["citation_recall"] == 1.0
    assert q1["scores"]["groundedness"] == 1.0 and q1["scores"]["citation_precision"] == 1.0
    assert q1["citations"][0]["document"].endswith("policies/returns.md")
    assert q1["citations_supported"] == [True] and q1["scores"]["unsupported_claim"] is False
    assert q1["cost_basis"] == "compute" and q1["cost_usd"] >= 0 and q1["timings"]["total_s"] >= 0
    assert q1["tokens"]["prompt"] > 20 and q1["retrieved"] and "text" not in q1["retrieved"][0]
    m = run.metrics
    assert (m["questions"], m["answerable"], m["unanswerable"]) == (6, 4, 2)
    assert m["recall@5"] == 1.0 and m["citation_precision"] == 1.0
    assert 0 < m["token_f1"] <= 1 and m["latency_p50_s"] is not None
    # every line of the file is a record of this system, in eval-set order
    lines = [json.loads(x) for x in (tmp_path / "rag.jsonl").read_text().splitlines()]
    assert [r["id"] for r in lines] == ["q1", "q2", "q3", "q4", "q5", "q6"]
    assert {r["system"] for r in lines} == {"rag"}


def test_systems_without_retrieval_report_not_applicable(kb_ws, eval_file) -> None:
    ev = load_evalset(eval_file)
    evaluator = QAEvaluator(kb_ws, ev)
    base = evaluator.run(SystemSpec.parse("base"))
    assert all(base.metrics[k] is None for k in ("groundedness", "citation_precision",
                                                 "citation_recall", "recall@5", "context_recall"))
    assert base.metrics["correct_refusal_rate"] == 1.0  # fake base model: "I don't know."
    assert base.metrics["false_refusal_rate"] == 1.0 and base.metrics["token_f1"] == 0.0
    tuned = evaluator.run(SystemSpec.parse("finetuned:a"))
    assert tuned.records[0]["answer"] == INVENTED and tuned.records[0]["adapter"] == "a"
    assert tuned.records[0]["mode"] == "finetuned"
    # answers every question with the invented window: unsupported on q2..q6, and on q1 too
    # (F1 of the wrong window against "30 days" is below 0.5)
    assert tuned.metrics["unsupported_claims"] == 6 and tuned.metrics["groundedness"] is None
    # the adapter was trained on returns.md: q1 is flagged as seen in training
    assert tuned.metrics["questions_on_training_documents"] == 1
    assert any("trained on" in w for w in tuned.warnings)


def test_raft_system_is_rag_with_the_adapter(kb_ws, eval_file) -> None:
    run = QAEvaluator(kb_ws, load_evalset(eval_file)).run(SystemSpec.parse("raft:a"))
    assert run.records[0]["model"] == "fake-adapter" and run.records[0]["mode"] == "rag"
    assert run.metrics["citation_precision"] == 1.0


def test_resume_skips_done_questions_and_repairs_a_partial_line(kb_ws, eval_file, tmp_path,
                                                                 monkeypatch) -> None:
    ev = load_evalset(eval_file)
    out = tmp_path / "rag.jsonl"
    first = QAEvaluator(kb_ws, ev).run(SystemSpec.parse("rag"), out)
    lines = out.read_text().splitlines()
    # simulate a kill after 3 records, in the middle of writing the 4th
    out.write_text("\n".join(lines[:3]) + "\n" + lines[3][:40])
    asked: list[str] = []
    real_ask = kb_ws.ask

    def counting_ask(question, user=None, **kw):
        asked.append(question)
        return real_ask(question, user, **kw)

    monkeypatch.setattr(kb_ws, "ask", counting_ask)
    again = QAEvaluator(kb_ws, ev).run(SystemSpec.parse("rag"), out)
    assert again.resumed == 3 and len(asked) == 3
    assert [r["id"] for r in again.records] == [r["id"] for r in first.records]
    assert again.metrics["token_f1"] == pytest.approx(first.metrics["token_f1"])
    recs = [json.loads(x) for x in out.read_text().splitlines()]  # every line parses again
    assert sorted(r["id"] for r in recs) == ["q1", "q2", "q3", "q4", "q5", "q6"]
    # a third run asks nothing
    asked.clear()
    QAEvaluator(kb_ws, ev).run(SystemSpec.parse("rag"), out)
    assert asked == []


def test_changed_settings_or_documents_are_answered_again(kb_ws, eval_file, tmp_path) -> None:
    ev = load_evalset(eval_file)
    out = tmp_path / "rag.jsonl"
    QAEvaluator(kb_ws, ev).run(SystemSpec.parse("rag"), out)
    QAEvaluator(kb_ws, ev).run(SystemSpec.parse("base"), out)  # another system, same file
    assert QAEvaluator(kb_ws, ev).run(SystemSpec.parse("rag"), out).resumed == 6
    kb_ws.settings = kb_ws.settings.replace("generation", max_tokens=4)
    again = QAEvaluator(kb_ws, ev).run(SystemSpec.parse("rag"), out)
    assert again.resumed == 0
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert sorted(r["system"] for r in lines) == ["base"] * 6 + ["rag"] * 6  # stale ones gone
    (kb_ws.root.parent / "kb" / "it" / "vpn.md").write_text("# VPN\n\nUse the new portal.\n")
    kb_ws.ingest([kb_ws.root.parent / "kb"])
    assert QAEvaluator(kb_ws, ev).run(SystemSpec.parse("rag"), out).resumed == 0


def test_resume_refuses_answers_of_another_eval_set(kb_ws, eval_file, tmp_path) -> None:
    out = tmp_path / "rag.jsonl"
    QAEvaluator(kb_ws, load_evalset(eval_file)).run(SystemSpec.parse("rag"), out)
    changed = eval_file.read_text().replace("How do I reset my VPN password?",
                                            "How do I change my VPN password?")
    eval_file.write_text(changed)
    with pytest.raises(InputError, match=r"rag.jsonl:2: written for a different eval set"):
        read_records(out, load_evalset(eval_file), "rag")


def test_model_errors_become_failed_records_and_are_retried(kb_ws, eval_file, tmp_path,
                                                            monkeypatch) -> None:
    ev = load_evalset(eval_file)
    real_ask = kb_ws.ask

    def flaky(question, user=None, **kw):
        if "VPN" in question:
            raise ModelError("server at http://x returned 500")
        return real_ask(question, user, **kw)

    monkeypatch.setattr(kb_ws, "ask", flaky)
    out = tmp_path / "rag.jsonl"
    run = QAEvaluator(kb_ws, ev).run(SystemSpec.parse("rag"), out)
    bad = next(r for r in run.records if r["id"] == "q2")
    assert bad["error"].startswith("model error") and bad["scores"]["token_f1"] == 0.0
    assert run.metrics["errors"] == 1 and any("failed" in w for w in run.warnings)
    monkeypatch.setattr(kb_ws, "ask", real_ask)
    again = QAEvaluator(kb_ws, ev).run(SystemSpec.parse("rag"), out)
    assert again.resumed == 5 and again.metrics["errors"] == 0


def test_format_judge_and_embedding_similarity(kb_ws, eval_file) -> None:
    judge = FakeGenerator(reply=lambda msgs: "CORRECT" if "30 days" in msgs[-1]["content"]
                          .split("Answer to grade:")[1] else "INCORRECT")
    ev = QAEvaluator(kb_ws, load_evalset(eval_file), judge=judge, format_regex=r"\[\d\]$")
    run = ev.run(SystemSpec.parse("rag"))
    recs = {r["id"]: r for r in run.records}
    assert recs["q1"]["scores"]["judge_correct"] == 1.0
    assert recs["q2"]["scores"]["judge_correct"] == 0.0
    assert run.metrics["judge_correct"] == pytest.approx(0.25)  # 1 of 4 answerable
    assert recs["q1"]["scores"]["format_ok"] is True  # fake answers end with " [1]"
    # the refusal below the relevance floor (q6) has no marker: 5 of 6 comply
    assert recs["q6"]["refused"] and recs["q6"]["scores"]["format_ok"] is False
    assert run.metrics["format_compliance"] == pytest.approx(5 / 6)
    assert 0.0 < recs["q1"]["scores"]["embedding_similarity"] <= 1.0 + 1e-6
    assert "judge_correct" not in recs["q5"]["scores"]  # unanswerable: not judged


def test_gold_sources_the_user_cannot_read_are_warned(fake_ws, tmp_path) -> None:
    from tests.conftest import write

    write(tmp_path / "pub" / "a.md", "# A\n\nPublic text about parking.\n")
    write(tmp_path / "hr" / "salary.md", "# Salary\n\nBands are secret.\n")
    fake_ws.ingest([tmp_path / "pub"])
    fake_ws.ingest([tmp_path / "hr"], groups=["hr"])
    e = write(tmp_path / "e.jsonl", json.dumps(
        {"id": "s1", "question": "What are the salary bands?", "answers": ["secret"],
         "sources": ["hr/salary.md"], "answerable": True, "tags": []}) + "\n")
    anon = QAEvaluator(fake_ws, load_evalset(e))
    assert any("may not read" in w and "s1" in w for w in anon.warnings)
    assert not QAEvaluator(fake_ws, load_evalset(e), user="ana").warnings


# ---------------------------------------------------------------- regression checks

BASE = {"ragtune_report": 1, "systems": [
    {"name": "rag", "metrics": {"token_f1": 0.60, "citation_precision": 0.9,
                                "groundedness": 0.8, "correct_refusal_rate": 0.5}},
    {"name": "base", "metrics": {"token_f1": 0.1}}]}


def test_thresholds_absolute_and_against_the_baseline() -> None:
    now = {"token_f1": 0.55, "citation_precision": 0.95, "latency_p95_s": 3.2,
           "groundedness": 0.8, "correct_refusal_rate": 0.5}
    fails, checks = regression_check(now, ["token_f1=0.5"], ["latency_p95_s=5"])
    assert fails == [] and [c["ok"] for c in checks] == [True, True]
    fails, _ = regression_check(now, ["token_f1=baseline"], baseline=BASE, system="rag")
    assert fails == ["token_f1 = 0.55 is below 0.6 (baseline)"]
    fails, _ = regression_check(now, ["token_f1=baseline-0.1"], baseline=BASE, system="rag")
    assert fails == []
    fails, _ = regression_check(now, [], ["latency_p95_s=3"])
    assert fails == ["latency_p95_s = 3.2 is above 3"]
    # baseline alone guards the main quality metrics with the tolerance
    fails, checks = regression_check(now, baseline=BASE, system="rag", tolerance=0.02)
    assert {c["metric"] for c in checks} == {"token_f1", "citation_precision", "groundedness",
                                             "correct_refusal_rate"}
    assert fails == ["token_f1 = 0.55 is below 0.58 (baseline-0.02)"]


def test_threshold_errors_and_unmeasured_metrics() -> None:
    with pytest.raises(InputError, match="expected METRIC=VALUE"):
        regression_check({"token_f1": 0.5}, ["token_f1"])
    with pytest.raises(InputError, match="unknown metric 'f1'"):
        regression_check({"token_f1": 0.5}, ["f1=0.5"])
    with pytest.raises(InputError, match="pass --baseline"):
        regression_check({"token_f1": 0.5}, ["token_f1=baseline"])
    with pytest.raises(InputError, match="no system 'hybrid:a'"):
        regression_check({"token_f1": 0.5}, baseline=BASE, system="hybrid:a")
    fails, _ = regression_check({"citation_precision": None}, ["citation_precision=0.5"])
    assert fails and "not measured" in fails[0]


def test_unmatched_sources_are_summarised_and_a_foreign_beir_set_is_refused(kb_ws, tmp_path) -> None:
    from tests.conftest import ROOT, write

    rows = [{"id": f"m{i}", "question": f"Question {i}?", "answers": ["x"],
             "sources": [f"gone/doc{i}.md"], "answerable": True, "tags": []} for i in range(7)]
    e = write(tmp_path / "m.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
    warnings = QAEvaluator(kb_ws, load_evalset(e)).warnings
    assert len(warnings) == 1
    assert warnings[0].startswith("7 eval source(s) matches no document") and ", ..." in warnings[0]
    with pytest.raises(InputError, match="eval retrieval --beir"):
        QAEvaluator(kb_ws, load_evalset(ROOT / "tests" / "data" / "beir_tiny"))


def test_beir_set_scores_retrieval_only(fake_ws) -> None:
    """A BEIR corpus indexed into the workspace's store: eval qa scores retrieval alone."""
    from ragtune.evaluate.beir import load_beir
    from ragtune.evaluate.retrieval import index_beir
    from tests.conftest import ROOT

    folder = ROOT / "tests" / "data" / "beir_tiny"
    index_beir(load_beir(folder), fake_ws.store, fake_ws.embedder, fake_ws.settings)
    run = QAEvaluator(fake_ws, load_evalset(folder)).run(SystemSpec.parse("rag"))
    assert run.metrics["questions"] == 10 and run.metrics["token_f1"] is None
    assert run.metrics["ndcg@10"] > 0.3 and run.metrics["cost_per_query_usd"] is None
    assert all(r["answer"] == "" and r["scores"]["unsupported_claim"] is None for r in run.records)
