"""The statistics behind the quality section: ratio metrics, their delta-method variance
(checked against a bootstrap and, for per-answer rates, against the two-proportion
z-test's textbook formula), grouping, and the per-day rows."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import norm

from ragtune.monitor.quality import (
    by_day,
    change_test,
    collections_of,
    compare_groups,
    ratio_estimate,
)
from ragtune.monitor.records import Records


def records(rows: list[dict], ts: list[float] | None = None, modes: list[str] | None = None,
            ratings: dict[str, int] | None = None) -> Records:
    n = len(rows)
    ids = [f"r{i}" for i in range(n)]
    return Records.of(ids, np.array(ts if ts is not None else [float(i) for i in range(n)]),
                   ["ana"] * n, modes or ["rag"] * n, [None] * n, ["ask"] * n, rows,
                   np.zeros((n, 0), np.float32), np.zeros(n, bool), ratings or {})


def answer(sentences: int = 2, supported: int = 2, refused: bool = False,
           not_found: bool = False, top: str | None = "a.md") -> dict:
    return {"retrieved": True, "refused": refused, "not_found": not_found,
            "sentences": sentences, "supported_sentences": supported, "citations": 1,
            "supported_citations": int(supported == sentences), "top_document": top,
            "timings": {"total_s": 1.0}}


def test_delta_method_variance_matches_a_bootstrap() -> None:
    rng = np.random.default_rng(1)
    x = rng.integers(1, 8, size=400).astype(float)  # sentences per answer
    y = x * (rng.random(400) < 0.8)  # an answer is supported as a whole, or not at all
    value, var, n = ratio_estimate(y, x)
    assert value == pytest.approx(y.sum() / x.sum()) and n == 400
    idx = rng.integers(0, 400, size=(4000, 400))
    boot = y[idx].sum(1) / x[idx].sum(1)
    assert np.sqrt(var) == pytest.approx(boot.std(), rel=0.08)
    # pooling sentences as if independent would understate it: they fail together
    assert var > 2 * value * (1 - value) / x.sum()


def test_per_answer_rates_are_the_two_proportion_z_test() -> None:
    a = np.array([1.0] * 30 + [0.0] * 70)
    b = np.array([1.0] * 15 + [0.0] * 85)
    va, vb = ratio_estimate(a, np.ones(100))[1], ratio_estimate(b, np.ones(100))[1]
    z, p = change_test(0.30, va, 0.15, vb)
    textbook = (0.30 - 0.15) / np.sqrt(0.3 * 0.7 / 99 + 0.15 * 0.85 / 99)  # unpooled, n-1
    assert z == pytest.approx(textbook) and p == pytest.approx(2 * norm.sf(textbook))
    assert change_test(0.5, 0.0, 0.5, 0.0) == (0.0, 1.0)
    assert change_test(0.6, 0.0, 0.5, 0.0)[1] == 0.0


def test_compare_groups_flags_a_real_change_and_not_noise() -> None:
    rng = np.random.default_rng(0)
    before = records([answer(refused=bool(r)) for r in rng.random(200) < 0.1])
    same = records([answer(refused=bool(r)) for r in rng.random(200) < 0.1])
    worse = records([answer(refused=bool(r)) for r in rng.random(200) < 0.3])
    keys = ["all"] * 200
    quiet = compare_groups(same, before, keys, keys, alpha=0.05, min_answers=20)["all"]
    loud = compare_groups(worse, before, keys, keys, alpha=0.05, min_answers=20)["all"]
    assert not quiet["refusal_rate"]["significant"] and quiet["refusal_rate"]["p_value"] > 0.05
    assert loud["refusal_rate"]["significant"] and loud["refusal_rate"]["change"] > 0.1
    few = compare_groups(worse, before, keys, keys, alpha=0.05, min_answers=500)["all"]
    assert few["refusal_rate"]["p_value"] is None and not few["refusal_rate"]["significant"]


def test_groups_metrics_and_days() -> None:
    rows = [answer(2, 2, top="a.md"), answer(2, 1, top="b.md"), answer(0, 0, refused=True,
                                                                     not_found=True, top="a.md"),
            answer(4, 4, top="gone.md")]
    r = records(rows, ts=[0.0, 10.0, 86400.0 * 2, 86400.0 * 2 + 5], modes=["rag", "rag", "rag",
                                                                          "hybrid:x"],
                ratings={"r0": -1, "r1": 1})
    cols = collections_of(r, {"a.md": "policies", "b.md": "it"})
    assert cols == ["policies", "it", "policies", "(deleted document)"]
    g = compare_groups(r, records([]), cols, [], alpha=0.05, min_answers=1)
    assert g["policies"]["groundedness"]["value"] == 1.0 and g["policies"]["groundedness"]["n"] == 1
    assert g["policies"]["not_found_rate"]["value"] == 0.5
    assert g["it"]["unsupported_rate"]["value"] == 1.0
    assert g["policies"]["thumbs_down_rate"]["value"] == 1.0
    assert g["it"]["thumbs_down_rate"]["value"] == 0.0
    assert g["policies"]["refusal_rate"]["previous"] is None
    days = by_day(r)
    assert [(d["day"], d["answers"]) for d in days] == [("1970-01-01", 2), ("1970-01-03", 2)]
    assert days[0]["groundedness"] == 0.75 and days[1]["refusal_rate"] == 0.5
    assert by_day(records([])) == []


def test_sentences_the_support_check_removed_count_as_unsupported_claims() -> None:
    # answer.unsupported = "remove": the shown answer is all supported, the reply was not
    shown_ok = answer(2, 2)
    trimmed = dict(answer(2, 2), removed_sentences=1)  # one invented sentence not shown
    all_removed = dict(answer(0, 0, refused=True), removed_sentences=2)  # refused after
    declined = answer(0, 0, refused=True)  # "I don't know": no claim made
    r = records([shown_ok, trimmed, all_removed, declined])
    assert r.unsupported.tolist() == [False, True, True, False]
    assert r.claimed.tolist() == [True, True, True, False]
    g = compare_groups(r, records([]), ["c"] * 4, [], alpha=0.05, min_answers=1)["c"]
    assert g["unsupported_rate"]["value"] == pytest.approx(2 / 3)
    assert g["groundedness"]["value"] == pytest.approx(4 / 7)  # 4 supported of 7 written
