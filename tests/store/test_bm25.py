"""BM25 scores against the textbook formula computed by hand, term by term."""

from __future__ import annotations

import math

import pytest

from ragtune.store.bm25 import BM25Index, analyze, idf_weight

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
        for q in set(analyze(query)):
            df = sum(q in d for d in terms)
            tf = t.count(q)
            if tf:
                score += idf_weight(len(docs), df) * tf * (k1 + 1) / (tf + k1 * (1 - b + b * len(t) / avgdl))
        out.append(score)
    return out


@pytest.mark.parametrize("query", ["returned tents", "stoves gas", "days", "password vpn days", "nothing here"])
def test_matches_reference(query):
    idx = BM25Index.build(DOCS)
    assert idx.scores(query) == pytest.approx(reference_bm25(DOCS, query), rel=1e-5, abs=1e-6)


def test_golden_value():
    # "days" -> "day": df = 2 of 4 docs, tf = 1 in doc 0, which has 6 terms; avgdl = 24 / 4
    idx = BM25Index.build(DOCS)
    assert analyze(DOCS[0]) == ["tent", "must", "return", "within", "30", "day"]
    assert sum(len(analyze(d)) for d in DOCS) == 24
    expected = math.log(1 + 2.5 / 2.5) * 2.2 / (1 + 1.2 * (0.25 + 0.75 * 6 / (24 / 4)))
    assert idx.scores("days")[0] == pytest.approx(expected, rel=1e-5)


def test_top_orders_by_score_and_skips_zero():
    idx = BM25Index.build(DOCS)
    s = idx.scores("stoves tents")
    top = idx.top(s, 10).tolist()
    assert top[0] == 1 and 2 not in top and 3 not in top


def test_empty_index():
    idx = BM25Index.build([])
    assert idx.scores("anything").shape == (0,)
