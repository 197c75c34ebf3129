"""Retrieval metrics as pure functions, matching trec_eval (as wrapped by ``pytrec_eval``):
the tests check them against it to 1e-9. Answer matching (exact match, token F1, SQuAD
v1.1 definitions) lives below, in :mod:`ragtune.textmatch`, where fine-tuning can use it too.

A ranked list is a list of document ids, best first; judgments map a document id to a
graded relevance (``> 0`` means relevant). A document repeated in a ranked list counts
once, at its first position: a retriever that returns several chunks of one document
thus scores that document by its best chunk, as trec_eval would after keeping one score
per document.

>>> ranked = ["d3", "d1", "d7"]
>>> relevant = {"d1": 2, "d7": 1, "d9": 1}
>>> recall_at_k(ranked, relevant, k=2)  # d1 of {d1, d7, d9}
0.3333333333333333
>>> mrr_at_k(ranked, relevant, k=10)  # first relevant at rank 2
0.5
>>> run = {"q1": {"d3": 0.9, "d1": 0.8, "d7": 0.1}}
>>> evaluate_run(run, {"q1": relevant}, metrics=("mrr@10", "recall@2"))
{'mrr@10': 0.5, 'recall@2': 0.3333333333333333}
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence

from ragtune.errors import ConfigError

Ranked = Sequence[str]
Judgments = Mapping[str, int]

DEFAULT_METRICS: tuple[str, ...] = ("ndcg@10", "recall@10", "recall@100", "mrr@10")


def _top_k(ranked: Ranked, k: int) -> list[str]:
    """The first ``k`` distinct ids of ``ranked`` (repeats count at their first position)."""
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    seen: set[str] = set()
    out: list[str] = []
    for doc in ranked:
        if doc not in seen:
            seen.add(doc)
            out.append(doc)
            if len(out) == k:
                break
    return out


def _num_relevant(relevant: Judgments) -> int:
    return sum(1 for rel in relevant.values() if rel > 0)


def ndcg_at_k(ranked: Ranked, relevant: Judgments, k: int = 10) -> float:
    """Normalised discounted cumulative gain at ``k`` (trec_eval ``ndcg_cut_k``).

    Gain is the graded relevance itself (judgments ``<= 0`` give nothing), the discount
    of 1-based rank ``r`` is ``log2(r + 1)``, and the ideal ranking sorts all judgments
    by relevance, cut at ``k``. No relevant document gives 0.0.

    >>> round(ndcg_at_k(["a", "b"], {"b": 1}), 6)  # 1/log2(3) over 1/log2(2)
    0.63093
    >>> ndcg_at_k(["b", "a"], {"a": 1, "b": 2})  # already ideal
    1.0
    """
    top = _top_k(ranked, k)
    dcg = sum(max(relevant.get(doc, 0), 0) / math.log2(i + 2) for i, doc in enumerate(top))
    gains = sorted((rel for rel in relevant.values() if rel > 0), reverse=True)[:k]
    idcg = sum(rel / math.log2(i + 2) for i, rel in enumerate(gains))
    return dcg / idcg if idcg > 0 else 0.0


def recall_at_k(ranked: Ranked, relevant: Judgments, k: int = 10) -> float:
    """Share of the relevant documents found in the top ``k`` (trec_eval ``recall_k``).

    The denominator is every document judged relevant, retrieved or not.

    >>> recall_at_k(["a", "x", "b"], {"a": 1, "b": 3, "c": 1, "z": 0}, k=2)
    0.3333333333333333
    """
    n_rel = _num_relevant(relevant)
    if n_rel == 0:
        return 0.0
    found = sum(1 for doc in _top_k(ranked, k) if relevant.get(doc, 0) > 0)
    return found / n_rel


def precision_at_k(ranked: Ranked, relevant: Judgments, k: int = 10) -> float:
    """Relevant documents in the top ``k``, divided by ``k`` (trec_eval ``P_k``).

    The divisor is ``k`` even when fewer than ``k`` documents were retrieved.

    >>> precision_at_k(["a", "x"], {"a": 1}, k=5)
    0.2
    """
    found = sum(1 for doc in _top_k(ranked, k) if relevant.get(doc, 0) > 0)
    return found / k


def mrr_at_k(ranked: Ranked, relevant: Judgments, k: int = 10) -> float:
    """Reciprocal rank of the first relevant document within the top ``k``, else 0.0.

    Equals trec_eval ``recip_rank`` on a run truncated to ``k`` documents.

    >>> mrr_at_k(["x", "y", "a"], {"a": 1}, k=10)
    0.3333333333333333
    >>> mrr_at_k(["x", "y", "a"], {"a": 1}, k=2)
    0.0
    """
    for i, doc in enumerate(_top_k(ranked, k)):
        if relevant.get(doc, 0) > 0:
            return 1.0 / (i + 1)
    return 0.0


def hit_rate_at_k(ranked: Ranked, relevant: Judgments, k: int = 10) -> float:
    """1.0 if any relevant document is in the top ``k``, else 0.0 (a.k.a. success@k).

    >>> hit_rate_at_k(["x", "a"], {"a": 1}, k=1), hit_rate_at_k(["x", "a"], {"a": 1}, k=2)
    (0.0, 1.0)
    """
    return 1.0 if mrr_at_k(ranked, relevant, k) > 0 else 0.0


_METRICS: dict[str, Callable[[Ranked, Judgments, int], float]] = {
    "ndcg": ndcg_at_k,
    "recall": recall_at_k,
    "precision": precision_at_k,
    "p": precision_at_k,
    "mrr": mrr_at_k,
    "hit_rate": hit_rate_at_k,
    "hit": hit_rate_at_k,
}


def parse_metric(name: str) -> tuple[Callable[[Ranked, Judgments, int], float], int]:
    """Turn ``"ndcg@10"`` into (function, k). Known names: ndcg, recall, precision (p),
    mrr, hit_rate (hit).

    >>> parse_metric("recall@100")[1]
    100
    """
    base, _, cut = name.strip().lower().partition("@")
    if base not in _METRICS or not cut.isdigit() or int(cut) < 1:
        known = ", ".join(sorted(_METRICS))
        raise ConfigError(f"metric {name!r}: expected NAME@K with K >= 1 and NAME in {known}")
    return _METRICS[base], int(cut)


def rank_scores(scores: Mapping[str, float]) -> list[str]:
    """Document ids by score, best first; equal scores by document id, descending.

    This is trec_eval's (and so pytrec_eval's) order: it sorts by score descending and
    breaks ties by comparing document ids as strings, the greater id first. Matching it
    makes our numbers equal the reference on runs with ties (BM25 and fused scores tie
    often).

    >>> rank_scores({"d1": 0.5, "d2": 0.9, "d3": 0.5, "d10": 0.5})
    ['d2', 'd3', 'd10', 'd1']
    """
    return [doc for doc, _ in sorted(scores.items(), key=lambda kv: (kv[1], kv[0]), reverse=True)]


def evaluate_per_query(
    run: Mapping[str, Mapping[str, float]],
    qrels: Mapping[str, Judgments],
    metrics: Iterable[str] = DEFAULT_METRICS,
) -> dict[str, dict[str, float]]:
    """Each metric for each query that has at least one relevant document.

    A query missing from ``run`` scores 0.0 (it retrieved nothing); run queries without
    judgments are ignored. Useful for paired comparisons and bootstrap intervals.

    >>> evaluate_per_query({"q1": {"a": 1.0}}, {"q1": {"a": 1}, "q2": {"b": 1}, "q3": {"c": 0}},
    ...                    metrics=("mrr@10",))
    {'q1': {'mrr@10': 1.0}, 'q2': {'mrr@10': 0.0}}
    """
    parsed = [(name, *parse_metric(name)) for name in metrics]
    out: dict[str, dict[str, float]] = {}
    for qid in sorted(qrels):
        judged = qrels[qid]
        if _num_relevant(judged) == 0:
            continue  # nothing to find: every metric is undefined, as in BEIR and trec_eval
        ranked = rank_scores(run.get(qid, {}))
        out[qid] = {name: fn(ranked, judged, k) for name, fn, k in parsed}
    return out


def evaluate_run(
    run: Mapping[str, Mapping[str, float]],
    qrels: Mapping[str, Judgments],
    metrics: Iterable[str] = DEFAULT_METRICS,
) -> dict[str, float]:
    """Mean of each metric over the queries of ``qrels`` with at least one relevant doc.

    ``run`` maps query id to {doc id: score}; documents are ranked by :func:`rank_scores`
    (score descending, ties by doc id descending, as pytrec_eval). A judged query the run
    lacks counts as 0.0, so skipping hard queries cannot raise the mean. (BEIR's own
    script averages over the queries present in the run instead; with a run that answers
    every query, as ours do, the two agree.) No judged query gives 0.0 for every metric.

    >>> evaluate_run({"q1": {"a": 0.2, "b": 0.2}}, {"q1": {"a": 1}}, metrics=("mrr@10",))
    {'mrr@10': 0.5}
    """
    names = list(metrics)
    per_query = evaluate_per_query(run, qrels, names)
    n = len(per_query)
    return {
        name: (math.fsum(scores[name] for scores in per_query.values()) / n if n else 0.0)
        for name in names
    }
