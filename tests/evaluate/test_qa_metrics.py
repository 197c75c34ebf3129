"""Answer-level metrics: hand-computed goldens, plus numpy / pytrec_eval as references."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

from ragtune.evaluate import qa_metrics as m

# ---------------------------------------------------------------- one question


def test_answer_scores_follow_squad_and_zero_refusals() -> None:
    assert m.answer_scores("The 30 days.", ["30 days"], refused=False) == {
        "exact_match": 1.0, "token_f1": 1.0, "contains_answer": 1.0}
    # "within 30 days of delivery" vs "30 days": P = 2/5, R = 2/2 -> F1 = 4/7
    got = m.answer_scores("within 30 days of delivery", ["30 days", "a month"], refused=False)
    assert got["exact_match"] == 0.0 and got["token_f1"] == pytest.approx(4 / 7)
    assert got["contains_answer"] == 1.0
    # a refusal that happens to share words with the reference still scores 0
    assert m.answer_scores("30 days? I don't know.", ["30 days"], refused=True) == {
        "exact_match": 0.0, "token_f1": 0.0, "contains_answer": 0.0}


@pytest.mark.parametrize("prediction,references,expected", [
    ("You may return items within **30 days** of delivery [1].", ["30 days"], 1.0),
    ("Within 130 days.", ["30 days"], 0.0),          # whole words only
    ("The Summit tier needs $1,000 a year.", ["$1,000 a year"], 1.0),  # normalised both sides
    ("Thirty days.", ["30 days"], 0.0),              # no number words: not the same string
    ("Anything", ["a", "the"], 0.0),                 # references that normalise to nothing
])
def test_contains_answer(prediction, references, expected) -> None:
    assert m.contains_answer(prediction, references) == expected


def test_retrieval_scores_by_hand() -> None:
    # gold {b, c}; ranked a, b, a, d, c -> distinct a, b, d, c
    got = m.retrieval_scores(["a", "b", "a", "d", "c"], ["b", "c"], k=2)
    assert got["recall@2"] == 0.5  # only b in the top 2 distinct
    assert got["mrr@10"] == 0.5
    dcg = 1 / math.log2(3) + 1 / math.log2(5)
    idcg = 1 + 1 / math.log2(3)
    assert got["ndcg@10"] == pytest.approx(dcg / idcg, abs=1e-12)
    assert m.retrieval_scores([], ["b"], k=5) == {"recall@5": 0.0, "mrr@10": 0.0, "ndcg@10": 0.0}


def test_retrieval_scores_match_pytrec_eval() -> None:
    pytrec_eval = pytest.importorskip("pytrec_eval")
    rnd = random.Random(7)
    docs = [f"d{i:02d}" for i in range(30)]
    for trial in range(40):
        ranked = rnd.sample(docs, 12)
        gold = rnd.sample(docs, rnd.randint(1, 3))
        run = {"q": {d: float(100 - i) for i, d in enumerate(ranked[:10])}}
        ev = pytrec_eval.RelevanceEvaluator({"q": dict.fromkeys(gold, 1)},
                                            {"recall_5", "recip_rank", "ndcg_cut_10"})
        ref = ev.evaluate(run)["q"]
        got = m.retrieval_scores(ranked, gold, k=5)
        assert got["recall@5"] == pytest.approx(ref["recall_5"], abs=1e-9), trial
        assert got["mrr@10"] == pytest.approx(ref["recip_rank"], abs=1e-9), trial
        assert got["ndcg@10"] == pytest.approx(ref["ndcg_cut_10"], abs=1e-9), trial


def test_context_and_citation_recall_and_none() -> None:
    assert m.context_recall(["a", "a", "x"], ["a", "b"]) == 0.5
    assert m.context_recall(["a"], []) is None
    assert m.citation_recall([], ["a"]) == 0.0
    assert m.citation_recall(["a", "b"], ["a", "b"]) == 1.0


def test_groundedness_and_citation_precision_are_none_when_nothing_to_check() -> None:
    assert m.groundedness([True, False, True]) == pytest.approx(2 / 3)
    assert m.groundedness([]) is None
    assert m.citation_precision([False]) == 0.0
    assert m.citation_precision([]) is None


@pytest.mark.parametrize("answerable,refused,f1,cited,text,expected", [
    (True, False, 0.1, False, True, True),     # wrong and unbacked: invented
    (True, False, 0.8, False, True, False),    # right without citation: not invented
    (True, False, 0.1, True, True, False),     # wrong but a source backs it: not invented
    (True, True, 0.0, False, True, False),     # refusal claims nothing
    (False, False, None, False, True, True),   # any claim on an unanswerable question
    (False, False, None, True, True, False),   # ... unless a source supports it
    (True, False, 0.0, False, False, False),   # empty answer states nothing
])
def test_unsupported_claim_truth_table(answerable, refused, f1, cited, text, expected) -> None:
    assert m.unsupported_claim(answerable=answerable, refused=refused, f1=f1,
                               any_supported_citation=cited, has_text=text) is expected


def test_a_verbose_answer_containing_the_reference_is_not_unsupported() -> None:
    assert not m.unsupported_claim(answerable=True, refused=False, f1=0.14,
                                   any_supported_citation=False, contains=True)


def test_cosine_max_by_hand() -> None:
    refs = np.array([[0.0, 3.0], [3.0, 4.0]])
    assert m.cosine_max(np.array([1.0, 0.0]), refs) == pytest.approx(0.6)
    assert m.cosine_max(np.zeros(2), refs) == 0.0


@pytest.mark.parametrize("reply,expected", [
    ("CORRECT", 1.0), ("Correct.", 1.0), ("  incorrect - the window is 30 days", 0.0),
    ("INCORRECT", 0.0), ("The answer is wrong", None), ("", None)])
def test_parse_judgement(reply, expected) -> None:
    assert m.parse_judgement(reply) == expected


def test_judge_messages_carry_question_references_and_answer() -> None:
    msgs = m.judge_messages("How long?", ["30 days", "a month"], "Thirty days.")
    assert msgs[0]["role"] == "system" and "CORRECT" in msgs[0]["content"]
    assert all(s in msgs[1]["content"] for s in ("How long?", "- 30 days", "- a month", "Thirty days."))


# ---------------------------------------------------------------- aggregates


def test_percentile_matches_numpy() -> None:
    rnd = random.Random(3)
    for n in (1, 2, 5, 17, 100):
        values = [rnd.uniform(0, 10) for _ in range(n)]
        for q in (0, 5, 50, 95, 100):
            assert m.percentile(values, q) == pytest.approx(float(np.percentile(values, q)), abs=1e-12)
    assert m.percentile([], 50) is None


def test_paired_bootstrap() -> None:
    a, b = [0.5] * 10, [0.2] * 10
    d, lo, hi = m.paired_bootstrap(a, b)
    assert (d, lo, hi) == pytest.approx((0.3, 0.3, 0.3))  # no variance, no interval
    rnd = random.Random(1)
    x = [rnd.random() for _ in range(200)]
    y = [v - 0.05 + rnd.gauss(0, 0.3) for v in x]
    d1 = m.paired_bootstrap(x, y, seed=4)
    assert d1 == m.paired_bootstrap(x, y, seed=4)  # reproducible
    diff = np.subtract(x, y)
    assert d1[0] == pytest.approx(float(diff.mean()))
    # reference: the normal-approximation interval, which the bootstrap approaches at n = 200
    half = 1.96 * float(diff.std(ddof=1)) / math.sqrt(len(diff))
    assert d1[1] == pytest.approx(diff.mean() - half, abs=0.006)
    assert d1[2] == pytest.approx(diff.mean() + half, abs=0.006)
    # a 0.02 mean difference with large swings on 40 items: the interval includes 0
    noisy = [0.02 + (0.5 if i % 2 else -0.5) for i in range(40)]
    _, lo, hi = m.paired_bootstrap(noisy, [0.0] * 40)
    assert lo < 0 < hi
    with pytest.raises(ValueError):
        m.paired_bootstrap([1.0], [1.0, 2.0])


def _rec(answerable, refused, scores, sentences=None, citations=None, total_s=1.0,
         tokens=None, cost=0.01, error=None):
    return {"answerable": answerable, "refused": refused, "scores": scores,
            "sentences_supported": sentences, "citations_supported": citations,
            "timings": {"total_s": total_s, "first_token_s": total_s / 2},
            "tokens": tokens or {"prompt": 100, "completion": 10}, "cost_usd": cost,
            "error": error}


def test_aggregate_by_hand() -> None:
    records = [
        _rec(True, False, {"exact_match": 1.0, "token_f1": 1.0, "recall@5": 1.0, "mrr@10": 1.0,
                           "ndcg@10": 1.0, "context_recall": 1.0, "citation_recall": 1.0,
                           "unsupported_claim": False},
             sentences=[True, True], citations=[True], total_s=1.0),
        _rec(True, True, {"exact_match": 0.0, "token_f1": 0.0, "recall@5": 0.0, "mrr@10": 0.0,
                          "ndcg@10": 0.0, "context_recall": 0.0, "citation_recall": 0.0,
                          "unsupported_claim": False},
             sentences=[], citations=[], total_s=2.0),
        _rec(True, False, {"exact_match": 0.0, "token_f1": 0.5, "recall@5": 1.0, "mrr@10": 0.5,
                           "ndcg@10": 0.6, "context_recall": 1.0, "citation_recall": 0.0,
                           "unsupported_claim": False},
             sentences=[False, True], citations=[False, True], total_s=3.0),
        _rec(False, True, {"unsupported_claim": False}, sentences=[], citations=[], total_s=4.0),
        _rec(False, False, {"unsupported_claim": True}, sentences=[False], citations=[],
             total_s=5.0, error=None),
    ]
    agg = m.aggregate(records, k=5)
    assert (agg["questions"], agg["answerable"], agg["unanswerable"]) == (5, 3, 2)
    assert agg["exact_match"] == pytest.approx(1 / 3)
    assert agg["token_f1"] == pytest.approx(0.5)
    assert agg["recall@5"] == pytest.approx(2 / 3)
    assert agg["mrr@10"] == pytest.approx(0.5)
    assert agg["groundedness"] == pytest.approx(3 / 5)  # pooled: T T F T F
    assert agg["sentences_checked"] == 5
    assert agg["citation_precision"] == pytest.approx(2 / 3) and agg["citations"] == 3
    assert agg["citation_recall"] == pytest.approx(1 / 3)
    assert agg["correct_refusal_rate"] == 0.5 and agg["false_refusal_rate"] == pytest.approx(1 / 3)
    assert agg["unsupported_claims_rate"] == pytest.approx(1 / 5) and agg["unsupported_claims"] == 1
    assert agg["latency_p50_s"] == 3.0 and agg["latency_p95_s"] == pytest.approx(4.8)
    assert agg["first_token_p50_s"] == 1.5
    assert agg["cost_per_query_usd"] == pytest.approx(0.01)
    assert agg["cost_total_usd"] == pytest.approx(0.05)
    assert agg["format_compliance"] is None and agg["judge_correct"] is None
    assert agg["errors"] == 0


def test_aggregate_without_retrieval_is_not_applicable_not_zero() -> None:
    records = [_rec(True, False, {"exact_match": 0.0, "token_f1": 0.2, "unsupported_claim": True}),
               _rec(False, True, {"unsupported_claim": False})]
    agg = m.aggregate(records, k=5)
    for key in ("groundedness", "citation_precision", "citation_recall", "recall@5",
                "context_recall", "sentences_checked", "citations"):
        assert agg[key] is None, key
    assert agg["token_f1"] == pytest.approx(0.2) and agg["unsupported_claims_rate"] == 0.5


def test_metric_direction() -> None:
    assert m.higher_is_better("token_f1") and m.higher_is_better("recall@20")
    assert m.higher_is_better("unsupported_claims_rate") is False
    assert m.higher_is_better("nonsense") is None
    assert not (m.HIGHER_IS_BETTER & m.LOWER_IS_BETTER)
