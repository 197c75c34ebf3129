"""Per-query wins/losses between retrieval modes and the bootstrap interval of the
difference (``ragtune eval retrieval``), checked on values computed by hand."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ragtune.evaluate.retrieval import compare_modes, mode_comparisons
from tests.test_cli import run

TINY = Path(__file__).resolve().parent.parent / "data" / "beir_tiny"


def test_counts_and_mean_by_hand() -> None:
    per_query = {"fused": {"q1": 1.0, "q2": 0.5, "q3": 0.2, "q4": 0.9},
                 "dense": {"q1": 0.5, "q2": 0.5, "q3": 0.4, "q4": 0.6, "q5": 1.0}}
    c = compare_modes(per_query, "fused", "dense")
    # q5 has no fused score: only the 4 shared queries count.
    # diffs: +0.5, 0, -0.2, +0.3 -> 2 wins, 1 tie, 1 loss, mean 0.6 / 4 = 0.15
    assert (c.queries, c.wins, c.ties, c.losses) == (4, 2, 1, 1)
    assert c.mean_diff == pytest.approx(0.15)
    # Every resample's mean lies between the smallest and the largest difference.
    assert -0.2 <= c.ci_low <= c.mean_diff <= c.ci_high <= 0.5
    assert not c.significant


def test_a_constant_difference_has_a_zero_width_interval() -> None:
    c = compare_modes({"a": {"q1": 0.8, "q2": 0.6, "q3": 0.5},
                       "b": {"q1": 0.6, "q2": 0.4, "q3": 0.3}}, "a", "b")
    assert (c.wins, c.ties, c.losses) == (3, 0, 0)
    assert (c.mean_diff, c.ci_low, c.ci_high) == pytest.approx((0.2, 0.2, 0.2))
    assert c.significant


def test_the_interval_is_the_percentile_interval_of_resampled_means() -> None:
    # Two queries, diffs +1 and 0: a resample's mean is 0, 0.5 or 1 with probability
    # 1/4, 1/2, 1/4; 2.5% and 97.5% percentiles of many resamples are therefore 0 and 1.
    c = compare_modes({"a": {"q1": 1.0, "q2": 0.0}, "b": {"q1": 0.0, "q2": 0.0}}, "a", "b",
                      samples=4000)
    assert (c.mean_diff, c.ci_low, c.ci_high) == (0.5, 0.0, 1.0)
    assert not c.significant  # the interval touches 0


def test_every_pair_of_modes_once() -> None:
    per_query = {m: {"q1": v} for m, v in (("dense", 0.1), ("lexical", 0.2), ("fused", 0.3))}
    pairs = [(c.a, c.b) for c in mode_comparisons(per_query)]
    assert pairs == [("dense", "lexical"), ("dense", "fused"), ("lexical", "fused")]


def test_eval_retrieval_cli_reports_wins_and_intervals(tmp_path) -> None:
    home = tmp_path / "ws"
    run("init", home=home)
    out = run("eval", "retrieval", "--beir", str(TINY), "--json", home=home)
    result = json.loads(out.stdout)
    assert set(result["per_query_ndcg@10"]) == {"dense", "lexical", "fused"}
    pairs = {(c["a"], c["b"]): c for c in result["comparisons"]}
    assert set(pairs) == {("dense", "lexical"), ("dense", "fused"), ("lexical", "fused")}
    for c in pairs.values():
        assert c["wins"] + c["ties"] + c["losses"] == c["queries"] == result["queries"]
        assert c["ci_low"] <= c["mean_diff"] <= c["ci_high"]
        per = result["per_query_ndcg@10"]
        diff = sum(per[c["a"]][q] - per[c["b"]][q] for q in per[c["a"]]) / c["queries"]
        assert c["mean_diff"] == pytest.approx(diff)
    table = run("eval", "retrieval", "--beir", str(TINY), home=home).stdout
    assert "dense vs fused" in table and "95% CI" in table
