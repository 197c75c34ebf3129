"""Retrieval metrics against hand-computed values and against pytrec_eval; QA metrics
against the official SQuAD v1.1 evaluation script's definitions."""

from __future__ import annotations

import math
import random
import re

import pytest

from ragtune.errors import ConfigError, InputError
from ragtune.evaluate.metrics import (
    evaluate_per_query,
    evaluate_run,
    hit_rate_at_k,
    mrr_at_k,
    ndcg_at_k,
    parse_metric,
    precision_at_k,
    rank_scores,
    recall_at_k,
)
from ragtune.textmatch import exact_match, normalize_answer, token_f1

# ---------------------------------------------------------------- hand-computed goldens

RANKED = ["d1", "d2", "d3", "d4", "d5"]
RELEVANT = {"d2": 3, "d4": 1, "d9": 2, "d5": 0}  # d9 never retrieved, d5 judged non-relevant


def test_ndcg_graded_by_hand() -> None:
    # DCG@5 = 3/log2(3) + 1/log2(5); ideal order 3, 2, 1 -> 3/1 + 2/log2(3) + 1/2
    dcg = 3 / math.log2(3) + 1 / math.log2(5)
    idcg = 3 + 2 / math.log2(3) + 0.5
    assert ndcg_at_k(RANKED, RELEVANT, k=5) == pytest.approx(dcg / idcg, abs=1e-12)
    # @2 the ideal keeps only 3 and 2
    assert ndcg_at_k(RANKED, RELEVANT, k=2) == pytest.approx(
        (3 / math.log2(3)) / (3 + 2 / math.log2(3)), abs=1e-12
    )
    assert ndcg_at_k(["d2", "d9", "d4"], RELEVANT, k=3) == pytest.approx(1.0)


def test_recall_precision_mrr_hit_by_hand() -> None:
    assert recall_at_k(RANKED, RELEVANT, k=5) == pytest.approx(2 / 3)  # d2, d4 of d2, d4, d9
    assert recall_at_k(RANKED, RELEVANT, k=1) == 0.0
    assert precision_at_k(RANKED, RELEVANT, k=5) == pytest.approx(2 / 5)
    assert precision_at_k(RANKED, RELEVANT, k=10) == pytest.approx(2 / 10)  # divisor is k
    assert mrr_at_k(RANKED, RELEVANT, k=10) == 0.5
    assert mrr_at_k(RANKED, RELEVANT, k=1) == 0.0
    assert hit_rate_at_k(RANKED, RELEVANT, k=2) == 1.0
    assert hit_rate_at_k(RANKED, RELEVANT, k=1) == 0.0


def test_no_relevant_documents_gives_zero() -> None:
    for fn in (ndcg_at_k, recall_at_k, precision_at_k, mrr_at_k, hit_rate_at_k):
        assert fn(["a", "b"], {"a": 0}, 10) == 0.0
        assert fn([], {"a": 1}, 10) == 0.0


def test_repeated_document_counts_once_at_first_position() -> None:
    # a doc retrieved through two chunks must not be counted twice nor push others out
    assert recall_at_k(["a", "a", "b"], {"a": 1, "b": 1}, k=2) == 1.0
    assert precision_at_k(["a", "a"], {"a": 1}, k=2) == 0.5
    assert ndcg_at_k(["a", "a"], {"a": 1}, k=2) == pytest.approx(1.0)


def test_k_must_be_positive() -> None:
    with pytest.raises(ValueError, match="k must be at least 1"):
        ndcg_at_k(["a"], {"a": 1}, k=0)


def test_rank_scores_breaks_ties_by_docid_descending() -> None:
    assert rank_scores({"a": 1.0, "b": 1.0, "c": 2.0, "a10": 1.0, "a9": 1.0}) == [
        "c",
        "b",
        "a9",
        "a10",
        "a",
    ]


def test_evaluate_run_averages_over_judged_queries_only() -> None:
    run = {
        "q1": {"a": 0.9, "b": 0.8},  # relevant a at rank 1
        "q2": {"x": 0.9, "c": 0.1},  # relevant c at rank 2
        "q3": {"z": 1.0},  # judged, but nothing relevant: skipped
        "q4": {"a": 1.0},  # not judged at all: ignored
    }
    qrels = {"q1": {"a": 1}, "q2": {"c": 2}, "q3": {"z": 0}, "q5": {"e": 1}}  # q5 not run
    got = evaluate_run(run, qrels, metrics=("mrr@10", "recall@1", "hit@2", "p@1"))
    assert got == {
        "mrr@10": pytest.approx((1 + 0.5 + 0) / 3),
        "recall@1": pytest.approx(1 / 3),
        "hit@2": pytest.approx(2 / 3),
        "p@1": pytest.approx(1 / 3),
    }
    assert set(evaluate_per_query(run, qrels, ("mrr@10",))) == {"q1", "q2", "q5"}


def test_evaluate_run_ties_follow_docid_order() -> None:
    # all scores equal: order is c, b, a, so a relevant 'a' sits at rank 3
    got = evaluate_run({"q": {"a": 0.0, "b": 0.0, "c": 0.0}}, {"q": {"a": 1}}, ("mrr@10",))
    assert got["mrr@10"] == pytest.approx(1 / 3)


def test_evaluate_run_no_judged_queries() -> None:
    assert evaluate_run({}, {}, ("ndcg@10",)) == {"ndcg@10": 0.0}


@pytest.mark.parametrize("bad", ["ndcg", "ndcg@", "ndcg@0", "map@10", "recall@ten"])
def test_unknown_metric_names_are_rejected(bad: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(repr(bad))):
        parse_metric(bad)


# -------------------------------------------------------------- agreement with pytrec_eval

pytrec_eval = pytest.importorskip("pytrec_eval")

TREC_MEASURES = {
    "ndcg_cut_10": "ndcg@10",
    "recall_10": "recall@10",
    "recall_100": "recall@100",
    "P_5": "p@5",
}


def _random_collection(seed: int, n_queries: int = 300) -> tuple[dict, dict]:
    """Runs with many tied scores, graded qrels with unretrieved and zero-graded docs."""
    rng = random.Random(seed)
    run: dict[str, dict[str, float]] = {}
    qrels: dict[str, dict[str, int]] = {}
    for q in range(n_queries):
        qid = f"q{q}"
        pool = [f"d{rng.randrange(400)}" for _ in range(rng.randrange(1, 160))]
        # scores drawn from few values so that ties are common
        run[qid] = {doc: rng.choice([0.0, 0.25, 0.5, 1.0, rng.random()]) for doc in pool}
        judged = rng.sample(range(400), rng.randrange(0, 12))
        qrels[qid] = {f"d{d}": rng.choice([0, 1, 1, 2, 3]) for d in judged}
    return run, qrels


def _mean_over_relevant(per_query: dict, qrels: dict, measure: str) -> float:
    qids = [q for q in qrels if any(r > 0 for r in qrels[q].values())]
    return math.fsum(per_query[q][measure] for q in qids) / len(qids)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_evaluate_run_matches_pytrec_eval(seed: int) -> None:
    run, qrels = _random_collection(seed)
    ref = pytrec_eval.RelevanceEvaluator(qrels, set(TREC_MEASURES)).evaluate(run)
    ours = evaluate_run(run, qrels, metrics=TREC_MEASURES.values())
    ours_per_query = evaluate_per_query(run, qrels, TREC_MEASURES.values())
    for trec_name, our_name in TREC_MEASURES.items():
        assert ours[our_name] == pytest.approx(
            _mean_over_relevant(ref, qrels, trec_name), abs=1e-9
        ), our_name
        for qid, scores in ours_per_query.items():
            assert scores[our_name] == pytest.approx(ref[qid][trec_name], abs=1e-9), (qid, our_name)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_mrr_matches_pytrec_recip_rank_on_top10_runs(seed: int) -> None:
    # recip_rank is not cut: truncate each run to its top 10 in trec_eval's order first
    run, qrels = _random_collection(seed)
    top10 = {q: {d: docs[d] for d in rank_scores(docs)[:10]} for q, docs in run.items()}
    ref = pytrec_eval.RelevanceEvaluator(qrels, {"recip_rank"}).evaluate(top10)
    ours = evaluate_run(run, qrels, metrics=("mrr@10",))["mrr@10"]
    assert ours == pytest.approx(_mean_over_relevant(ref, qrels, "recip_rank"), abs=1e-9)


def test_random_collection_really_has_ties() -> None:
    # guards the comparison above: without ties it would not test tie-breaking
    run, _ = _random_collection(0)
    tied = sum(len(set(docs.values())) < len(docs) for docs in run.values())
    assert tied > 200


# ------------------------------------------------------------------------- QA (SQuAD v1.1)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("The Cat sat on a mat.", "cat sat on mat"),
        ("  An  apple,  THE  pear!  ", "apple pear"),
        ("theatre and anthem", "theatre and anthem"),  # articles only as whole words
        ("U.S.A. (1776)", "usa 1776"),
        ("", ""),
    ],
)
def test_normalize_answer(text: str, expected: str) -> None:
    assert normalize_answer(text) == expected


def test_exact_match_is_max_over_references() -> None:
    assert exact_match("The Denver Broncos", ["Denver Broncos", "Broncos"]) == 1.0
    assert exact_match("Broncos!", ["Denver Broncos", "broncos"]) == 1.0
    assert exact_match("Denver", ["Denver Broncos"]) == 0.0


def test_token_f1_by_hand() -> None:
    # pred tokens: denver broncos won; gold: denver broncos -> P = 2/3, R = 1, F1 = 0.8
    assert token_f1("the Denver Broncos won", ["Denver Broncos"]) == pytest.approx(0.8)
    # max over references: second reference gives P = R = 1
    assert token_f1("Broncos", ["Denver Broncos", "the broncos"]) == pytest.approx(1.0)
    # repeated tokens count as a multiset: common("x x y", "x y y") = {x, y}, P = R = 2/3
    assert token_f1("x x y", ["x y y"]) == pytest.approx(2 / 3)
    assert token_f1("nothing in common", ["Denver"]) == 0.0


def test_token_f1_empty_answers_score_zero_as_in_v1_1() -> None:
    assert token_f1("the", ["a"]) == 0.0  # both normalise to empty
    assert exact_match("the", ["a"]) == 1.0  # whereas EM compares the empty strings


def test_qa_metrics_need_a_list_of_references() -> None:
    with pytest.raises(InputError, match="no reference answers"):
        exact_match("x", [])
    with pytest.raises(InputError, match="one string"):
        token_f1("x", "x")  # type: ignore[arg-type]
