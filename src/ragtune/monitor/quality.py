"""Answer quality on live traffic, per collection, per mode/adapter and per day, with the
change against the previous window and whether that change is more than noise.

Every metric is a ratio of two sums over answers, ``Σ y / Σ x`` (supported sentences over
sentences, refusals over answers...). Its change between two windows is tested with a
z-test whose variance comes from the delta method for ratio metrics (Deng, Knoblich & Lu,
"Applying the Delta Method in Metric Analytics", KDD 2018): the answer, not the sentence,
is the unit sampled, so ten sentences of one bad answer do not count as ten independent
failures. For per-answer rates (x = 1) it is the two-proportion z-test (unpooled).

>>> y0, x0 = np.array([1, 0, 1, 1.0]), np.ones(4)
>>> r, var, n = ratio_estimate(y0, x0)
>>> round(r, 2), round(var, 4), n
(0.75, 0.0625, 4)
>>> round(change_test(0.75, 0.0625, 0.25, 0.0625)[1], 3)   # p-value of 0.75 vs 0.25
0.157
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
from scipy.stats import norm

from ragtune.monitor.records import STAGES, Records

NO_RETRIEVAL = "(no retrieval)"
DELETED = "(deleted document)"


@dataclass(frozen=True)
class Metric:
    name: str
    definition: str
    higher_is_better: bool
    units: Callable[[Records], tuple[np.ndarray, np.ndarray]]  # (y, x) per answer


def _claims(r: Records) -> np.ndarray:
    """Answers whose sentences were checked against sources: retrieved, and not refused
    (or refused only because the support check removed every claim)."""
    return r.retrieved & r.claimed


METRICS: tuple[Metric, ...] = (
    Metric("groundedness", "share of the sentences the model wrote in answers with sources "
           "that the sources support (the citation checker's rule; sentences the support "
           "check removed count as unsupported), pooled over answers", True,
           lambda r: (r.supported_sentences * _claims(r), r.sentences * _claims(r))),
    Metric("citation_support", "share of citations whose cited source supports every sentence "
           "citing it", True,
           lambda r: (r.supported_citations * _claims(r), r.citations * _claims(r))),
    Metric("refusal_rate", "share of answers that refused (the floor, the model saying it does "
           "not know, or an out-of-scope route)", False,
           lambda r: (r.refused.astype(float), np.ones(len(r)))),
    Metric("not_found_rate", "share of retrieving answers refused by the relevance floor: "
           "nothing in the knowledge base was similar enough to answer from", False,
           lambda r: (r.not_found.astype(float), r.retrieved.astype(float))),
    Metric("unsupported_rate", "share of answers with sources where the model made at least "
           "one claim its sources do not support (shown, or removed before showing)", False,
           lambda r: ((r.unsupported & _claims(r)).astype(float), _claims(r).astype(float))),
    Metric("thumbs_down_rate", "share of rated answers whose latest rating is thumbs down",
           False, lambda r: (r.down.astype(float), r.rated.astype(float))),
)
METRIC_NAMES = tuple(m.name for m in METRICS)


def ratio_estimate(y: np.ndarray, x: np.ndarray) -> tuple[float | None, float, int]:
    """``Σy/Σx``, its delta-method variance, and the answers that count (x > 0)."""
    est, var, units = _grouped(np.zeros(len(y), dtype=np.int64), 1, y, x)
    return (None if np.isnan(est[0]) else float(est[0])), float(var[0]), int(units[0])


def _grouped(codes: np.ndarray, k: int, y: np.ndarray,
             x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per group: ratio, delta-method variance of the ratio, answers with x > 0."""
    y = np.asarray(y, dtype=np.float64)
    x = np.asarray(x, dtype=np.float64)
    n = np.bincount(codes, minlength=k).astype(np.float64)
    sy, sx = np.bincount(codes, y, k), np.bincount(codes, x, k)
    syy, sxx, sxy = (np.bincount(codes, y * y, k), np.bincount(codes, x * x, k),
                     np.bincount(codes, x * y, k))
    units = np.bincount(codes, (x > 0).astype(np.float64), k)
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = np.where(sx > 0, sy / sx, np.nan)
        my, mx = sy / n, sx / n
        dof = np.maximum(n - 1, 1)
        vy, vx = (syy - n * my * my) / dof, (sxx - n * mx * mx) / dof
        cxy = (sxy - n * mx * my) / dof
        var = (vy - 2 * ratio * cxy + ratio * ratio * vx) / (n * mx * mx)
    return ratio, np.where(np.isfinite(var), np.maximum(var, 0.0), np.nan), units.astype(np.int64)


def change_test(now: float, var_now: float, before: float,
                var_before: float) -> tuple[float, float]:
    """``(z, two-sided p)`` of ``now - before`` (independent windows)."""
    se = math.sqrt(var_now + var_before)
    diff = now - before
    if se == 0:
        return (0.0, 1.0) if diff == 0 else (math.copysign(math.inf, diff), 0.0)
    z = diff / se
    return z, float(2 * norm.sf(abs(z)))


def _labels(current: Sequence[str], previous: Sequence[str]) -> tuple[list[str], dict[str, int]]:
    names = sorted(set(current) | set(previous))
    return names, {n: i for i, n in enumerate(names)}


def compare_groups(current: Records, previous: Records, cur_keys: Sequence[str],
                   prev_keys: Sequence[str], *, alpha: float,
                   min_answers: int) -> dict[str, dict[str, dict[str, Any]]]:
    """Every metric per group of both windows: value, answers, previous value, change, p."""
    names, code = _labels(cur_keys, prev_keys)
    k = len(names)
    cur_codes = np.fromiter((code[c] for c in cur_keys), dtype=np.int64, count=len(cur_keys))
    prev_codes = np.fromiter((code[c] for c in prev_keys), dtype=np.int64, count=len(prev_keys))
    out: dict[str, dict[str, dict[str, Any]]] = {n: {} for n in names}
    for metric in METRICS:
        r1, v1, n1 = _grouped(cur_codes, k, *metric.units(current))
        r0, v0, n0 = _grouped(prev_codes, k, *metric.units(previous))
        for g, name in enumerate(names):
            now = None if np.isnan(r1[g]) else float(r1[g])
            before = None if np.isnan(r0[g]) else float(r0[g])
            entry: dict[str, Any] = {"value": now, "n": int(n1[g]), "previous": before,
                                     "previous_n": int(n0[g]), "change": None, "p_value": None,
                                     "significant": False}
            if now is not None and before is not None:
                entry["change"] = now - before
                if n1[g] >= min_answers and n0[g] >= min_answers and np.isfinite(v1[g] + v0[g]):
                    _, p = change_test(now, float(v1[g]), before, float(v0[g]))
                    entry["p_value"] = p
                    entry["significant"] = p < alpha
            out[name][metric.name] = entry
    return {n: m for n, m in out.items() if any(e["n"] or e["previous_n"] for e in m.values())}


def day_of(ts: float) -> str:
    """The UTC day of a Unix time, as reports label it.

    >>> day_of(86400 * 365)
    '1971-01-01'
    """
    return datetime.fromtimestamp(ts, tz=UTC).date().isoformat()


def by_day(records: Records) -> list[dict[str, Any]]:
    """One row per UTC day with answers: the answers and every metric's value."""
    if not len(records):
        return []
    days = np.floor(records.ts / 86400).astype(np.int64)
    first = int(days.min())
    codes = days - first
    k = int(codes.max()) + 1
    counts = np.bincount(codes, minlength=k)
    values = {m.name: _grouped(codes, k, *m.units(records))[0] for m in METRICS}
    return [{"day": day_of((first + g) * 86400), "answers": int(counts[g]),
             **{name: (None if np.isnan(v[g]) else float(v[g])) for name, v in values.items()}}
            for g in range(k) if counts[g]]


def collections_of(records: Records, collection_of: dict[str, str]) -> list[str]:
    """Each answer's collection: that of its best retrieved document."""
    out = []
    for s in records.summaries:
        top = s.get("top_document")
        out.append(NO_RETRIEVAL if not top else collection_of.get(top, DELETED))
    return out


def _percentiles(values: np.ndarray) -> dict[str, float | None]:
    values = values[np.isfinite(values)]
    if not len(values):
        return {"p50": None, "p95": None}
    p50, p95 = np.percentile(values, [50, 95])
    return {"p50": float(p50), "p95": float(p95)}


def latency(records: Records) -> dict[str, Any]:
    """Percentiles of each stage's time (seconds) and the mean tokens per answer."""
    stages = {stage: _percentiles(records.timings[:, i]) for i, stage in enumerate(STAGES)
              if np.isfinite(records.timings[:, i]).any()}
    tokens = {kind: (float(np.nanmean(col)) if np.isfinite(col).any() else None)
              for kind, col in zip(("prompt", "completion"), records.tokens.T)}
    return {"stages": stages, "tokens_mean": tokens}


def answer_quality(current: Records, previous: Records, collection_of: dict[str, str], *,
                   alpha: float, min_answers: int) -> dict[str, Any]:
    """The quality section of a monitor report (live answers of both windows)."""
    everyone = ["all"] * len(current), ["all"] * len(previous)
    overall = compare_groups(current, previous, *everyone, alpha=alpha, min_answers=min_answers)
    return {
        "definitions": {m.name: m.definition for m in METRICS},
        "higher_is_better": {m.name: m.higher_is_better for m in METRICS},
        "overall": overall.get("all", {}),
        "by_collection": compare_groups(current, previous, collections_of(current, collection_of),
                                        collections_of(previous, collection_of), alpha=alpha,
                                        min_answers=min_answers),
        "by_mode": compare_groups(current, previous, current.modes, previous.modes, alpha=alpha,
                                  min_answers=min_answers),
        "by_day": by_day(current),
        "previous_by_day": by_day(previous),
        "latency": latency(current),
        "alpha": alpha,
        "min_answers": min_answers,
    }
