"""Knowledge gaps: the questions the knowledge base failed, grouped by meaning.

A live answer is a *gap* when it was refused, found nothing above the relevance floor,
got a thumbs down, or made a claim its sources do not support. Gap questions are clustered
on their embeddings (the vectors retrieval computed, stored with each record; questions
without one are embedded now) by average-linkage agglomerative clustering with a cosine
distance threshold (:func:`scipy.cluster.hierarchy.linkage`, the routine scikit-learn's
AgglomerativeClustering runs too; scipy is a core dependency, so the monitor needs no
``local`` extra), so the number of topics is not fixed in advance. Each cluster is named by
its most central questions, sized and ranked, and can be exported as an eval-set stub
(:func:`export_gaps`) so the gap can be fixed and then measured with ``ragtune eval qa``.

>>> v = np.array([[1, 0], [0.99, 0.1], [0, 1.0]], dtype=np.float32)
>>> cluster_vectors(v, distance=0.2).tolist()
[0, 0, 1]
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
from scipy.cluster.hierarchy import fcluster, linkage

from ragtune.jsonl import write_jsonl_atomic
from ragtune.monitor.records import Records
from ragtune.textmatch import normalize_answer

EmbedFn = Callable[[list[str]], np.ndarray]
REASONS = ("not_found", "refused", "thumbs_down", "unsupported")
MAX_FIT = 2000  # clustered exactly; more gap questions are assigned to the nearest cluster
MAX_EMBED = 2000  # questions without a stored vector embedded per report, at most


def gap_mask(r: Records) -> np.ndarray:
    """Which answers are gaps (any of :data:`REASONS`)."""
    return r.refused | r.not_found | r.down | r.unsupported


def reasons(r: Records, i: int) -> list[str]:
    """Why answer ``i`` is a gap; a floor refusal is ``not_found``, not also ``refused``."""
    out = []
    if r.not_found[i]:
        out.append("not_found")
    elif r.refused[i]:
        out.append("refused")
    if r.down[i]:
        out.append("thumbs_down")
    if r.unsupported[i]:
        out.append("unsupported")
    return out


def _normalise(v: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(v, axis=1, keepdims=True)
    return v / np.where(norms > 0, norms, 1.0)


def cluster_vectors(vectors: np.ndarray, distance: float, *, max_fit: int = MAX_FIT,
                    seed: int = 0) -> np.ndarray:
    """Cluster labels (0..k-1, -1: joins no cluster) of ``vectors`` by cosine distance.

    Up to ``max_fit`` vectors are clustered exactly (average linkage: a cluster's members
    are on average within ``distance`` of each other); beyond that a seeded sample is, and
    every other vector joins the cluster whose centroid is nearest, if within ``distance``.
    """
    n = len(vectors)
    if n <= 1:
        return np.zeros(n, dtype=np.int64)
    v = _normalise(np.asarray(vectors, dtype=np.float32))
    fit = np.arange(n) if n <= max_fit else np.sort(
        np.random.default_rng(seed).choice(n, max_fit, replace=False))
    tree = linkage(v[fit].astype(np.float64), method="average", metric="cosine")
    fitted = fcluster(tree, t=distance, criterion="distance").astype(np.int64) - 1
    if n <= max_fit:
        return fitted
    k = int(fitted.max()) + 1
    centroids = np.zeros((k, v.shape[1]), dtype=np.float32)
    np.add.at(centroids, fitted, v[fit])
    centroids = _normalise(centroids)
    sims = v @ centroids.T
    labels = np.where(1.0 - sims.max(axis=1) <= distance, sims.argmax(axis=1), -1)
    labels[fit] = fitted
    return labels.astype(np.int64)


@dataclass
class GapCluster:
    """One topic the knowledge base fails on; ``members`` are record indices, most central
    first."""

    members: list[int]
    name: str
    central: list[str]
    reasons: dict[str, int]
    top_documents: list[tuple[str, int]]
    headline: str = ""
    rank: int = 0

    @property
    def size(self) -> int:
        return len(self.members)


def _verdict(reason_counts: Counter, size: int) -> str:
    if reason_counts["not_found"] + reason_counts["refused"] >= size / 2:
        return "nothing in the knowledge base answers them"
    if reason_counts["thumbs_down"] >= size / 2:
        return "users marked the answers wrong"
    return "the answers made claims their sources do not support"


def _describe(records: Records, questions: list[str | None], members: list[int],
              vectors: np.ndarray | None) -> GapCluster:
    if vectors is not None and len(members) > 1:
        centroid = _normalise(vectors.mean(axis=0, keepdims=True))[0]
        order = np.argsort(-(vectors @ centroid), kind="stable")
        members = [members[i] for i in order]
    central, seen = [], set()
    for i in members:
        q = questions[i]
        if q and normalize_answer(q) not in seen:
            seen.add(normalize_answer(q))
            central.append(q)
        if len(central) == 3:
            break
    counts: Counter = Counter(r for i in members for r in reasons(records, i))
    docs = Counter(records.summaries[i].get("top_document") for i in members)
    docs.pop(None, None)
    top = docs.most_common(3)
    name = central[0] if central else (
        f"questions nearest to {Path(top[0][0]).name}" if top else "questions without text")
    return GapCluster(members, name, central, {r: counts[r] for r in REASONS if counts[r]}, top,
                      headline=f"{len(members)} question{'s' * (len(members) != 1)} about "
                               f"“{name}”: {_verdict(counts, len(members))}")


def find_gaps(records: Records, *, distance: float, embed: EmbedFn | None = None,
              max_fit: int = MAX_FIT) -> tuple[list[GapCluster], dict[str, int]]:
    """The gap clusters of ``records``, largest first, and counts of what was clustered."""
    idx = np.flatnonzero(gap_mask(records))
    vectors = records.vectors[idx] if records.vectors.size else np.zeros((len(idx), 0), np.float32)
    has = records.has_vector[idx].copy()
    questions = records.questions()
    missing = [j for j in range(len(idx)) if not has[j] and questions[idx[j]]][:MAX_EMBED]
    if missing and embed is not None:
        fresh = np.asarray(embed([questions[idx[j]] for j in missing]), dtype=np.float32)
        if vectors.shape[1] == 0:
            vectors = np.zeros((len(idx), fresh.shape[1]), dtype=np.float32)
        if fresh.shape[1] == vectors.shape[1]:
            vectors[missing] = fresh
            has[missing] = True
    usable = np.flatnonzero(has)
    labels = cluster_vectors(vectors[usable], distance, max_fit=max_fit)
    clusters = []
    order = np.argsort(labels, kind="stable")
    bounds = np.flatnonzero(np.diff(labels[order])) + 1
    for group in np.split(order, bounds) if len(order) else []:
        if labels[group[0]] == -1:
            continue
        pos = usable[group]
        clusters.append(_describe(records, questions, [int(idx[p]) for p in pos], vectors[pos]))
    unclustered = [int(idx[p]) for p in usable[labels == -1]]
    no_vector = [int(idx[j]) for j in np.flatnonzero(~has)]
    clusters.sort(key=lambda c: (-c.size, -max(records.ts[c.members])))
    for rank, c in enumerate(clusters, 1):
        c.rank = rank
    return clusters, {"questions": len(idx), "clustered": len(usable) - len(unclustered),
                      "unclustered": len(unclustered), "without_vector": len(no_vector)}


def gaps_section(clusters: Sequence[GapCluster], counts: dict[str, int], records: Records, *,
                 limit: int = 20) -> dict[str, Any]:
    """The knowledge-gaps section of a monitor report (the ``limit`` largest clusters)."""
    out = []
    for c in clusters[:limit]:
        ts = records.ts[c.members]
        out.append({
            "rank": c.rank, "size": c.size, "name": c.name, "headline": c.headline,
            "questions": c.central, "reasons": c.reasons,
            "documents": [{"source": s, "answers": n} for s, n in c.top_documents],
            "askers": len({records.principals[i] for i in c.members}),
            "first_seen": float(ts.min()), "last_seen": float(ts.max()),
            "comments": [records.comments[records.ids[i]] for i in c.members
                         if records.ids[i] in records.comments][:3],
        })
    return {**counts, "clusters": out, "cluster_count": len(clusters),
            "definition": "refused, below the relevance floor, thumbs down, or a claim its "
                          "sources do not support; clustered by the meaning of the question"}


def export_gaps(clusters: Sequence[GapCluster], records: Records, path: Path,
                ranks: Sequence[int] = ()) -> int:
    """Write the clusters (all, or those ranked ``ranks``) as an eval-set stub for
    ``ragtune eval qa``: one line per distinct question, unanswerable for now (the
    knowledge base does not answer it), tagged with its cluster. Returns the lines written.

    Once documents that answer a cluster are ingested, set ``answerable`` to true and add
    the reference ``answers`` and ``sources``; the stub then measures the fix.
    """
    rows = []
    questions = records.questions()
    for c in clusters:
        if ranks and c.rank not in ranks:
            continue
        seen: set[str] = set()
        for i in c.members:
            q = questions[i]
            if not q or normalize_answer(q) in seen:
                continue
            seen.add(normalize_answer(q))
            rows.append({
                "id": f"gap{c.rank}-{len(seen):03d}", "question": q, "answers": [], "sources": [],
                "answerable": False, "tags": ["gap", f"gap-{c.rank}"],
                "metadata": {"cluster": c.rank, "cluster_name": c.name,
                             "reasons": reasons(records, i), "trace_id": records.ids[i],
                             "asked_at": datetime.fromtimestamp(records.ts[i]).isoformat(
                                 timespec="seconds"),
                             "todo": "when the knowledge base answers this, set answerable "
                                     "to true and add the reference answers and sources"}})
    write_jsonl_atomic(Path(path), rows)
    return len(rows)
