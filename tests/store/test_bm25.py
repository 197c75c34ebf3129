"""BM25 scores against the textbook formula computed by hand, term by term."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ragtune.store.analysis import LEGACY, Analyzer
from ragtune.store.bm25 import BM25Index, BM25Params, idf_weight

PARAMS = BM25Params(LEGACY, k1=1.2, b=0.75)  # the textbook values reference_bm25 uses
analyze = LEGACY.analyze

DOCS = [
    "Tents must be returned within 30 days.",
    "Stoves and tents ship free; stoves need gas canisters.",
    "The VPN password resets every 90 days.",
    "Gift cards cannot be returned.",
]


def reference_bm25(docs: list[str], query: str, k1: float = 1.2, b: float = 0.75) -> list[float]:
    terms = [analyze(d) for d in docs]
    avgdl = sum(map(len, terms)) / len(terms)
    out = []
    for t in terms:
        score = 0.0
        for q in analyze(query):  # a repeated query word counts each time
            df = sum(q in d for d in terms)
            tf = t.count(q)
            if tf:
                score += idf_weight(len(docs), df) * tf * (k1 + 1) / (tf + k1 * (1 - b + b * len(t) / avgdl))
        out.append(score)
    return out


@pytest.mark.parametrize("query", ["returned tents", "stoves gas", "days", "password vpn days",
                                   "nothing here", "days days tents"])
def test_matches_reference(query):
    idx = BM25Index.build(DOCS, PARAMS)
    assert idx.scores(query) == pytest.approx(reference_bm25(DOCS, query), rel=1e-5, abs=1e-6)


def test_golden_value():
    # "days" -> "day": df = 2 of 4 docs, tf = 1 in doc 0, which has 6 terms; avgdl = 24 / 4
    idx = BM25Index.build(DOCS, PARAMS)
    assert analyze(DOCS[0]) == ["tent", "must", "return", "within", "30", "day"]
    assert sum(len(analyze(d)) for d in DOCS) == 24
    expected = math.log(1 + 2.5 / 2.5) * 2.2 / (1 + 1.2 * (0.25 + 0.75 * 6 / (24 / 4)))
    assert idx.scores("days")[0] == pytest.approx(expected, rel=1e-5)


def test_top_orders_by_score_and_skips_zero():
    idx = BM25Index.build(DOCS, PARAMS)
    s = idx.scores("stoves tents")
    top = idx.top(s, 10).tolist()
    assert top[0] == 1 and 2 not in top and 3 not in top


def test_empty_index():
    idx = BM25Index.build([], PARAMS)
    assert idx.scores("anything").shape == (0,)


def test_snowball_analysis_golden():
    a = Analyzer("snowball", "english")
    assert a.analyze("The runners were running quickly; policies don't apply.") == [
        "runner", "run", "quick", "polici", "appli"]
    assert a.analyze("connections connected connecting") == ["connect"] * 3


@pytest.mark.parametrize("stemmer,stopwords", [("snowball", "english"), ("light", "short"),
                                               ("none", "none")])
def test_every_analysis_matches_the_formula(stemmer, stopwords):
    params = BM25Params(Analyzer(stemmer, stopwords), k1=0.9, b=0.4)
    idx = BM25Index.build(DOCS, params)
    a = params.analyzer
    terms = [a.analyze(d) for d in DOCS]
    avgdl = sum(map(len, terms)) / len(terms)
    for query in ("returned tents", "stoves need gas", "stoves stoves gas"):
        expected = []
        for t in terms:
            score = 0.0
            for q in a.analyze(query):
                df, tf = sum(q in d for d in terms), t.count(q)
                if tf:
                    score += idf_weight(len(DOCS), df) * tf * 1.9 / (
                        tf + 0.9 * (0.6 + 0.4 * len(t) / avgdl))
            expected.append(score)
        assert idx.scores(query) == pytest.approx(expected, rel=1e-5, abs=1e-6)


def test_statistics_over_visible_rows_equal_an_index_of_those_rows_alone():
    # A reader who sees rows 0 and 2 gets the scores of an index built on those two only.
    full = BM25Index.build(DOCS, PARAMS)
    alone = BM25Index.build([DOCS[0], DOCS[2]], PARAMS)
    rows = np.array([True, False, True, False])
    for query in ("returned days", "tents", "vpn password days"):
        seen = full.scores(query, full.stats(rows))
        assert seen[[0, 2]] == pytest.approx(alone.scores(query), rel=1e-5, abs=1e-6)
        assert seen[[1, 3]].tolist() == [0.0, 0.0]
