"""Retrieval drift: are people asking about other things than before, things the corpus
does not cover, or along other routes?

- **questions**: this window's question embeddings against the previous window's, by the
  maximum mean discrepancy (MMD², Gretton et al. 2012; RBF kernel, median-distance
  bandwidth) with a permutation test (200 random splits of the pooled questions): 0 means
  the same distribution, and the p-value says whether the distance is more than sampling
  noise;
- **corpus**: each question's distance to the corpus is 1 - its best retrieved cosine
  similarity (recorded at answer time); the two windows' distributions are compared with
  the two-sample Kolmogorov-Smirnov test, and the share beyond the relevance floor reported;
- **routes**: each router label's share of traffic in both windows, with a two-proportion
  test; a route is flagged when its share moved by at least ``route_share_change``.

>>> rng = np.random.default_rng(0)
>>> same = mmd_test(rng.normal(size=(60, 4)), rng.normal(size=(60, 4)))
>>> moved = mmd_test(rng.normal(size=(60, 4)), rng.normal(size=(60, 4)) + 1.5)
>>> same["p_value"] > 0.05, moved["p_value"] < 0.01, moved["mmd"] > same["mmd"]
(True, True, True)
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np
from scipy.stats import ks_2samp

from ragtune.monitor.quality import change_test, ratio_estimate
from ragtune.monitor.records import Records

MAX_SAMPLE = 500  # vectors per window in the MMD test
MIN_QUESTIONS = 10  # fewer in a window: no test


def _mmd2(k: np.ndarray, a: np.ndarray) -> np.ndarray:
    """Unbiased MMD² for each row of ``a``, a 0/1 matrix marking which of the pooled points
    are the first sample (the kernel's diagonal is 1).

    Every permutation in one matrix product: scipy's permutation_test calls the statistic
    once per resample and indexes three kernel blocks each time, 40x slower at 500 + 500.
    """
    m = a.sum(axis=1)
    n = a.shape[1] - m
    ak = a @ k
    xx = (ak * a).sum(axis=1)
    x_all = ak.sum(axis=1)
    xy = x_all - xx
    yy = k.sum() - 2 * x_all + xx
    return (xx - m) / (m * (m - 1)) + (yy - n) / (n * (n - 1)) - 2 * xy / (m * n)


def mmd_test(x: np.ndarray, y: np.ndarray, *, resamples: int = 200,
             seed: int = 0) -> dict[str, Any]:
    """MMD² between samples ``x`` and ``y`` (rows) and its permutation p-value."""
    rng = np.random.default_rng(seed)
    if len(x) > MAX_SAMPLE:
        x = x[rng.choice(len(x), MAX_SAMPLE, replace=False)]
    if len(y) > MAX_SAMPLE:
        y = y[rng.choice(len(y), MAX_SAMPLE, replace=False)]
    z = np.vstack([x, y]).astype(np.float64)
    sq = np.maximum((z * z).sum(1)[:, None] + (z * z).sum(1)[None, :] - 2 * z @ z.T, 0.0)
    median = float(np.median(sq[np.triu_indices(len(z), 1)]))
    k = np.exp(-sq / (median if median > 0 else 1.0))
    observed = np.zeros((1, len(z)))
    observed[0, :len(x)] = 1.0
    shuffled = np.zeros((resamples, len(z)))
    for row in shuffled:
        row[rng.permutation(len(z))[:len(x)]] = 1.0
    stat = float(_mmd2(k, observed)[0])
    null = _mmd2(k, shuffled)
    # the observed split counts as one of the permutations: p is never 0
    p = (1 + int((null >= stat - 1e-12).sum())) / (resamples + 1)
    return {"mmd": stat, "p_value": p, "samples": [len(x), len(y)]}


def question_drift(current: Records, previous: Records, *, alpha: float) -> dict[str, Any]:
    x, y = current.vectors[current.has_vector], previous.vectors[previous.has_vector]
    out: dict[str, Any] = {"questions": [len(x), len(y)], "mmd": None,
                           "p_value": None, "drifted": False}
    if len(x) < MIN_QUESTIONS or len(y) < MIN_QUESTIONS or x.shape[1] != y.shape[1]:
        out["note"] = f"needs {MIN_QUESTIONS}+ questions with embeddings in both windows"
        return out
    out.update(mmd_test(x, y))
    out["drifted"] = out["p_value"] < alpha
    return out


def corpus_drift(current: Records, previous: Records, *, alpha: float,
                 floor: float) -> dict[str, Any]:
    a, b = current.best[np.isfinite(current.best)], previous.best[np.isfinite(previous.best)]
    out: dict[str, Any] = {
        "questions": [len(a), len(b)],
        "median_distance": [None if not len(s) else float(1 - np.median(s)) for s in (a, b)],
        "beyond_floor": [None if not len(s) else float((s < floor).mean()) for s in (a, b)],
        "ks": None, "p_value": None, "drifted": False, "floor": floor}
    if len(a) >= MIN_QUESTIONS and len(b) >= MIN_QUESTIONS:
        test = ks_2samp(a, b)
        out["ks"], out["p_value"] = float(test.statistic), float(test.pvalue)
        out["drifted"] = out["p_value"] < alpha
        out["histogram"] = histograms(a, b)
    return out


def histograms(a: np.ndarray, b: np.ndarray, bins: int = 10) -> dict[str, list[float]]:
    """Shares of both windows' best similarities in equal bins over their joint range."""
    lo, hi = float(min(a.min(), b.min())), float(max(a.max(), b.max()))
    edges = np.linspace(lo, hi if hi > lo else lo + 1e-6, bins + 1)
    return {"edges": edges.tolist(),
            "current": (np.histogram(a, edges)[0] / len(a)).tolist(),
            "previous": (np.histogram(b, edges)[0] / len(b)).tolist()}


def route_drift(current: Records, previous: Records, *, alpha: float, min_change: float,
                min_answers: int) -> list[dict[str, Any]]:
    """Each route's share of routed answers in both windows; sharp moves flagged."""
    cur = [s.get("route") for s in current.summaries if s.get("route")]
    prev = [s.get("route") for s in previous.summaries if s.get("route")]
    cc, pc = Counter(cur), Counter(prev)
    out = []
    for label in sorted(set(cc) | set(pc)):
        y1, y0 = np.array([r == label for r in cur], float), np.array([r == label for r in prev], float)
        s1, v1, n1 = ratio_estimate(y1, np.ones(len(y1)))
        s0, v0, n0 = ratio_estimate(y0, np.ones(len(y0)))
        row: dict[str, Any] = {"route": label, "answers": [cc[label], pc[label]],
                               "share": [s1, s0], "change": None, "p_value": None,
                               "flagged": False}
        if s1 is not None and s0 is not None:
            row["change"] = s1 - s0
            if n1 >= min_answers and n0 >= min_answers:
                row["p_value"] = change_test(s1, v1, s0, v0)[1]
                row["flagged"] = abs(row["change"]) >= min_change and row["p_value"] < alpha
        out.append(row)
    return out


def drift_report(current: Records, previous: Records, *, alpha: float, floor: float,
                 route_change: float, min_answers: int) -> dict[str, Any]:
    """The drift section of a monitor report (live answers of both windows)."""
    return {"questions": question_drift(current, previous, alpha=alpha),
            "corpus": corpus_drift(current, previous, alpha=alpha, floor=floor),
            "routes": route_drift(current, previous, alpha=alpha, min_change=route_change,
                                  min_answers=min_answers),
            "route_share_change": route_change}
