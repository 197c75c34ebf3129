"""Answer-level metrics as pure functions: one question's scores, and their aggregate.

Retrieval and SQuAD metrics come from :mod:`ragtune.evaluate.metrics` (checked there against
pytrec_eval and the SQuAD v1.1 script); this module adds what a grounded answer needs.
Every function takes plain values (no workspace, no model), so each is tested on
hand-computed goldens.

>>> retrieval_scores(["d3", "d1"], {"d1"}, k=5)
{'recall@5': 1.0, 'mrr@10': 0.5, 'ndcg@10': 0.6309297535714575}
>>> citation_precision([True, True, False])
0.6666666666666666
>>> groundedness([True, False]) is None, groundedness([])
(False, None)

"Not applicable" is ``None``, never 0: a system that retrieves nothing has no context to be
grounded in, and an answer with no claim-making sentence has nothing to check.

Definitions (also printed in every report, :data:`DEFINITIONS`):
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from ragtune.evaluate.metrics import mrr_at_k, ndcg_at_k, recall_at_k
from ragtune.textmatch import exact_match, normalize_answer, token_f1

# A non-refused answer to an answerable question counts as correct at this token F1.
CORRECT_F1 = 0.5

DEFINITIONS: dict[str, str] = {
    "exact_match": "SQuAD v1.1 exact match against any reference answer (answerable questions).",
    "token_f1": "SQuAD v1.1 token F1, best over the reference answers (answerable questions; "
                "a refusal scores 0).",
    "contains_answer": "share of answerable questions whose answer contains a reference answer "
                       "(SQuAD-normalised, as whole words): credits verbose but right answers "
                       "that token F1 penalises.",
    "embedding_similarity": "cosine similarity of the answer and the closest reference answer "
                            "under the workspace's embedder (answerable questions).",
    "judge_correct": "share of answerable questions an LLM judge marked CORRECT (only when "
                     "--judge-url was given).",
    "recall@k": "share of the gold source documents among the top-k retrieved documents "
                "(documents ranked by their best chunk; k = retrieval.top_k).",
    "mrr@10": "reciprocal rank of the first gold document in the top 10 retrieved.",
    "ndcg@10": "nDCG@10 of the retrieved documents, gold documents relevance 1.",
    "context_recall": "share of the gold documents present in the prompt the system built "
                      "(after the generation.source_tokens budget).",
    "groundedness": "share of the answers' claim-making sentences supported by the retrieved "
                    "context (pooled over answers; the citation checker's rule). Not applicable "
                    "to systems that retrieve nothing.",
    "citation_precision": "share of citations whose cited chunk supports every sentence citing "
                          "it (pooled). Not applicable without retrieval.",
    "citation_recall": "share of the gold source documents that the answer cites (answerable "
                       "questions with gold sources). Not applicable without retrieval.",
    "correct_refusal_rate": "on unanswerable questions, the share the system refused.",
    "false_refusal_rate": "on answerable questions, the share the system wrongly refused.",
    "unsupported_claims_rate": (
        "share of all questions whose answer makes a claim that is neither right nor backed: "
        "not a refusal, and either the question is unanswerable or the answer is wrong (token "
        f"F1 < {CORRECT_F1} and it does not contain a reference answer), and no citation of "
        "the answer is supported by its source. Errs towards not counting."),
    "format_compliance": "share of answers matching the required regex or JSON schema.",
    "latency_p50_s / latency_p95_s": "percentiles (linear interpolation) of the time from "
                                     "question to full answer.",
    "cost_per_query_usd": "mean cost of one answer: tokens x price for hosted models, "
                          "seconds x costs.compute_per_hour / 3600 for local ones.",
}

__doc__ += "\n".join(f"- ``{k}``: {v}" for k, v in DEFINITIONS.items())

# Metrics where a higher value is better; the rest (latency, cost, refusals of answerable
# questions, unsupported claims) are better lower. Used by regression checks and reports.
HIGHER_IS_BETTER = frozenset({
    "exact_match", "token_f1", "contains_answer", "embedding_similarity", "judge_correct",
    "mrr@10", "ndcg@10",
    "context_recall", "groundedness", "citation_precision", "citation_recall",
    "correct_refusal_rate", "format_compliance"})
LOWER_IS_BETTER = frozenset({
    "false_refusal_rate", "unsupported_claims_rate", "latency_p50_s", "latency_p95_s",
    "first_token_p50_s", "cost_per_query_usd", "prompt_tokens_mean", "completion_tokens_mean",
    "errors"})


def higher_is_better(metric: str) -> bool | None:
    """True/False for a known metric (``recall@K`` for any K), None for an unknown one.

    >>> higher_is_better("recall@5"), higher_is_better("latency_p95_s"), higher_is_better("x")
    (True, False, None)
    """
    if metric in HIGHER_IS_BETTER or re.fullmatch(r"recall@\d+", metric):
        return True
    if metric in LOWER_IS_BETTER:
        return False
    return None


# ----------------------------------------------------------------------------- one question

def contains_answer(prediction: str, references: Sequence[str]) -> float:
    """1.0 if a SQuAD-normalised reference occurs in the normalised prediction as whole
    words, else 0.0.

    >>> contains_answer("You may return items within 30 days of delivery.", ["30 days"])
    1.0
    >>> contains_answer("Within 130 days.", ["30 days"])
    0.0
    """
    words = f" {normalize_answer(prediction)} "
    return 1.0 if any(ref and f" {ref} " in words
                      for ref in (normalize_answer(r) for r in references)) else 0.0


def answer_scores(prediction: str, references: Sequence[str], refused: bool) -> dict[str, float]:
    """SQuAD exact match and token F1, and :func:`contains_answer`; a refusal scores 0.

    >>> answer_scores("30 days", ["30 days from delivery", "30 days"], refused=False)
    {'exact_match': 1.0, 'token_f1': 1.0, 'contains_answer': 1.0}
    >>> answer_scores("I could not find this.", ["30 days"], refused=True)
    {'exact_match': 0.0, 'token_f1': 0.0, 'contains_answer': 0.0}
    """
    if refused:
        return {"exact_match": 0.0, "token_f1": 0.0, "contains_answer": 0.0}
    return {"exact_match": exact_match(prediction, references),
            "token_f1": token_f1(prediction, references),
            "contains_answer": contains_answer(prediction, references)}


def retrieval_scores(ranked_docs: Sequence[str], gold: Iterable[str], k: int) -> dict[str, float]:
    """Recall@k, MRR@10 and nDCG@10 of a ranked list of document ids (repeats allowed: a
    document counts at its first position) against gold documents of relevance 1.

    >>> retrieval_scores(["a", "a", "b"], {"b", "c"}, k=2)
    {'recall@2': 0.5, 'mrr@10': 0.5, 'ndcg@10': 0.38685280723454163}
    """
    judged = {g: 1 for g in gold}
    return {f"recall@{k}": recall_at_k(ranked_docs, judged, k),
            "mrr@10": mrr_at_k(ranked_docs, judged, 10),
            "ndcg@10": ndcg_at_k(ranked_docs, judged, 10)}


def context_recall(prompt_docs: Iterable[str], gold: Iterable[str]) -> float | None:
    """Share of gold documents among the documents put in the prompt; None without gold.

    >>> context_recall(["a", "x"], ["a", "b"]), context_recall(["a"], [])
    (0.5, None)
    """
    gold_set = set(gold)
    if not gold_set:
        return None
    return len(gold_set & set(prompt_docs)) / len(gold_set)


def groundedness(supported: Sequence[bool]) -> float | None:
    """Share of claim-making sentences supported by the context; None when there are none.

    >>> groundedness([True, True, False, True])
    0.75
    """
    return sum(supported) / len(supported) if supported else None


def citation_precision(supported: Sequence[bool]) -> float | None:
    """Share of citations whose chunk supports the sentences citing it; None without any."""
    return sum(supported) / len(supported) if supported else None


def citation_recall(cited_docs: Iterable[str], gold: Iterable[str]) -> float | None:
    """Share of gold documents the answer cites; None when the question has no gold source.

    >>> citation_recall(["a", "a", "z"], ["a", "b"])
    0.5
    """
    return context_recall(cited_docs, gold)


def unsupported_claim(*, answerable: bool, refused: bool, f1: float | None,
                      any_supported_citation: bool, has_text: bool = True,
                      contains: bool = False) -> bool:
    """True when an answer states something that is neither right nor backed by a source.

    That is: it is not a refusal and not empty, and either the question is unanswerable (any
    claim is invented) or the answer is wrong (token F1 below :data:`CORRECT_F1` and it does
    not ``contain`` a reference answer), and none of its citations is supported by its source.

    >>> unsupported_claim(answerable=True, refused=False, f1=0.1, any_supported_citation=False)
    True
    >>> unsupported_claim(answerable=True, refused=False, f1=0.1, any_supported_citation=True)
    False
    >>> unsupported_claim(answerable=False, refused=False, f1=None, any_supported_citation=False)
    True
    """
    if refused or not has_text or any_supported_citation:
        return False
    return (not answerable) or (f1 is not None and f1 < CORRECT_F1 and not contains)


def cosine_max(answer_vec: np.ndarray, reference_vecs: np.ndarray) -> float:
    """Highest cosine similarity between one vector and rows of a matrix.

    >>> round(cosine_max(np.array([1.0, 0.0]), np.array([[0.0, 2.0], [1.0, 1.0]])), 6)
    0.707107
    """
    a = np.asarray(answer_vec, dtype=np.float64).ravel()
    refs = np.atleast_2d(np.asarray(reference_vecs, dtype=np.float64))
    norms = np.linalg.norm(refs, axis=1) * np.linalg.norm(a)
    with np.errstate(invalid="ignore", divide="ignore"):
        sims = np.where(norms > 0, refs @ a / np.where(norms > 0, norms, 1.0), 0.0)
    return float(sims.max()) if sims.size else 0.0


# ----------------------------------------------------------------------------- LLM judge

JUDGE_SYSTEM = ("You grade answers to questions. Reply with exactly one word: CORRECT if the "
                "answer states the same facts as a reference answer (wording may differ), "
                "otherwise INCORRECT.")


def judge_messages(question: str, references: Sequence[str], prediction: str) -> list[dict[str, str]]:
    """The chat messages asking a judge model whether ``prediction`` is correct."""
    refs = "\n".join(f"- {r}" for r in references)
    return [{"role": "system", "content": JUDGE_SYSTEM},
            {"role": "user", "content": f"Question: {question}\nReference answers:\n{refs}\n"
                                        f"Answer to grade: {prediction}\nVerdict:"}]


def parse_judgement(reply: str) -> float | None:
    """1.0 for CORRECT, 0.0 for INCORRECT, None when the reply says neither.

    >>> parse_judgement("CORRECT."), parse_judgement("incorrect"), parse_judgement("maybe")
    (1.0, 0.0, None)
    """
    words = re.findall(r"[a-z]+", reply.lower())
    if "incorrect" in words[:3]:
        return 0.0
    if "correct" in words[:3]:
        return 1.0
    return None


# ----------------------------------------------------------------------------- aggregates

def percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q``-th percentile with linear interpolation (numpy's default); None if empty.

    >>> percentile([1.0, 2.0, 3.0, 4.0], 50), percentile([1.0, 2.0, 3.0, 4.0], 95)
    (2.5, 3.85)
    """
    if not values:
        return None
    s = sorted(values)
    pos = (len(s) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


def mean(values: Iterable[float | None]) -> float | None:
    """Mean of the values that are not None; None if there are none.

    >>> mean([1.0, None, 0.0]), mean([None])
    (0.5, None)
    """
    kept = [v for v in values if v is not None]
    return math.fsum(kept) / len(kept) if kept else None


def _share(flags: Sequence[bool]) -> float | None:
    return sum(flags) / len(flags) if flags else None


def aggregate(records: Sequence[Mapping[str, Any]], *, k: int) -> dict[str, Any]:
    """Aggregate per-question records (as :mod:`ragtune.evaluate.qa` writes them).

    A record has ``answerable``, ``refused``, ``scores`` (per-question metrics, None where
    not applicable), ``sentences_supported`` (list of bools, or None without retrieval),
    ``citations_supported`` (same), ``timings`` and ``tokens`` and ``cost_usd``. Answer
    metrics average over answerable questions; pooled shares pool sentences or citations
    over all answers; refusal rates split by answerability.
    """
    answerable = [r for r in records if r["answerable"]]
    unanswerable = [r for r in records if not r["answerable"]]

    def s(r: Mapping[str, Any], key: str) -> Any:
        return r["scores"].get(key)

    retrieves = any(r.get("sentences_supported") is not None for r in records)
    sentences = [b for r in records for b in (r.get("sentences_supported") or [])]
    citations = [b for r in records for b in (r.get("citations_supported") or [])]
    latencies = [r["timings"]["total_s"] for r in records if "total_s" in r.get("timings", {})]
    first = [r["timings"]["first_token_s"] for r in records
             if "first_token_s" in r.get("timings", {})]
    formats = [s(r, "format_ok") for r in records if s(r, "format_ok") is not None]
    out: dict[str, Any] = {
        "questions": len(records), "answerable": len(answerable),
        "unanswerable": len(unanswerable),
        "exact_match": mean(s(r, "exact_match") for r in answerable),
        "token_f1": mean(s(r, "token_f1") for r in answerable),
        "contains_answer": mean(s(r, "contains_answer") for r in answerable),
        "embedding_similarity": mean(s(r, "embedding_similarity") for r in answerable),
        "judge_correct": mean(s(r, "judge_correct") for r in answerable),
        f"recall@{k}": mean(s(r, f"recall@{k}") for r in answerable),
        "mrr@10": mean(s(r, "mrr@10") for r in answerable),
        "ndcg@10": mean(s(r, "ndcg@10") for r in answerable),
        "context_recall": mean(s(r, "context_recall") for r in answerable),
        "groundedness": (sum(sentences) / len(sentences) if sentences else None) if retrieves else None,
        "sentences_checked": len(sentences) if retrieves else None,
        "citation_precision": citation_precision(citations) if retrieves else None,
        "citations": len(citations) if retrieves else None,
        "citation_recall": mean(s(r, "citation_recall") for r in answerable) if retrieves else None,
        "correct_refusal_rate": _share([bool(r["refused"]) for r in unanswerable]),
        "false_refusal_rate": _share([bool(r["refused"]) for r in answerable]),
        "unsupported_claims_rate": _share([bool(s(r, "unsupported_claim")) for r in records]),
        "unsupported_claims": sum(bool(s(r, "unsupported_claim")) for r in records),
        "format_compliance": _share([bool(f) for f in formats]),
        "latency_p50_s": percentile(latencies, 50),
        "latency_p95_s": percentile(latencies, 95),
        "first_token_p50_s": percentile(first, 50),
        "prompt_tokens_mean": mean(r.get("tokens", {}).get("prompt") for r in records),
        "completion_tokens_mean": mean(r.get("tokens", {}).get("completion") for r in records),
        "cost_per_query_usd": mean(r.get("cost_usd") for r in records),
        "cost_total_usd": math.fsum(r.get("cost_usd") or 0.0 for r in records),
        "errors": sum(1 for r in records if r.get("error")),
    }
    return out


def paired_bootstrap(a: Sequence[float], b: Sequence[float], *, samples: int = 2000,
                     seed: int = 0, confidence: float = 0.95) -> tuple[float, float, float]:
    """Mean of ``a - b`` over paired items and its bootstrap confidence interval.

    Items are resampled with replacement ``samples`` times (fixed seed: reproducible); the
    interval is the percentile interval. With n items the interval is wide when n is small,
    which is the point: a report must not call a difference real that the sample cannot show.

    >>> d, lo, hi = paired_bootstrap([1.0, 1.0, 1.0, 0.0], [0.0, 0.0, 0.0, 0.0])
    >>> d, lo <= d <= hi, hi
    (0.75, True, 1.0)
    """
    if len(a) != len(b):
        raise ValueError(f"paired samples differ in length: {len(a)} vs {len(b)}")
    if not a:
        return 0.0, 0.0, 0.0
    diff = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(diff), size=(samples, len(diff)))
    means = diff[idx].mean(axis=1)
    tail = (1.0 - confidence) / 2 * 100
    lo, hi = np.percentile(means, [tail, 100 - tail])
    return float(diff.mean()), float(lo), float(hi)
