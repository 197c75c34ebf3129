"""Retrieval: dense, lexical (BM25) and fused (weighted or reciprocal-rank fusion), ACL-filtered.

``fused`` is what other tools call hybrid search; ``hybrid`` is accepted as its old name.

>>> rrf_fuse([["a", "b"], ["b", "c"]], k=60)[0]
('b', 0.03252247488101534)
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np

from ragtune.config import RETRIEVAL_MODE_ALIASES, RETRIEVAL_MODES, RetrievalSettings
from ragtune.embed.base import Embedder
from ragtune.errors import InputError
from ragtune.store.base import SearchFilter, Store
from ragtune.types import Hit, Principal


def rrf_fuse(rankings: Sequence[Sequence[str]], k: int = 60) -> list[tuple[str, float]]:
    """Reciprocal-rank fusion: score(d) = Σ 1 / (k + rank_i(d)), ranks from 1.

    Ties are broken by first appearance, so the result is deterministic.
    """
    scores: dict[str, float] = {}
    for ranking in rankings:
        for rank, key in enumerate(ranking, start=1):
            scores[key] = scores.get(key, 0.0) + 1.0 / (k + rank)
    return sorted(scores.items(), key=lambda kv: -kv[1])


def weighted_fuse(rankings: Sequence[Sequence[tuple[str, float]]],
                  weights: Sequence[float]) -> list[tuple[str, float]]:
    """Convex combination of min-max normalised scores; a method that missed a key adds 0.

    Unlike RRF it keeps how far apart the scores are, not only their order.

    >>> weighted_fuse([[("a", 0.9), ("b", 0.5)], [("b", 12.0), ("c", 2.0)]], [0.5, 0.5])
    [('a', 0.5), ('b', 0.5), ('c', 0.0)]
    """
    fused: dict[str, float] = {}
    for ranking, w in zip(rankings, weights):
        if not ranking:
            continue
        scores = [s for _, s in ranking]
        lo, hi = min(scores), max(scores)
        span = hi - lo
        for key, s in ranking:
            norm = (s - lo) / span if span > 0 else 1.0
            fused[key] = fused.get(key, 0.0) + w * norm
    return sorted(fused.items(), key=lambda kv: -kv[1])


def zscore_fuse(rankings: Sequence[Sequence[tuple[str, float]]],
                weights: Sequence[float]) -> list[tuple[str, float]]:
    """Weighted sum of z-scored scores (each list centred on its mean, scaled by its
    standard deviation); a method that missed a key adds that list's lowest z-score.

    Unlike min-max scaling, one outlying top score does not squash the rest of a list.

    >>> [k for k, _ in zscore_fuse([[("a", 3.0), ("b", 2.0), ("c", 1.0)],
    ...                             [("b", 9.0), ("c", 1.0), ("d", 0.5)]], [0.5, 0.5])]
    ['b', 'a', 'c', 'd']
    """
    fused: dict[str, float] = {}
    floors: list[float] = []
    normed: list[dict[str, float]] = []
    for ranking in rankings:
        scores = [s for _, s in ranking]
        if not scores:
            normed.append({})
            floors.append(0.0)
            continue
        mean = sum(scores) / len(scores)
        std = (sum((s - mean) ** 2 for s in scores) / len(scores)) ** 0.5
        z = {key: (s - mean) / std if std > 0 else 0.0 for key, s in ranking}
        normed.append(z)
        floors.append(min(z.values()))
    keys = dict.fromkeys(key for ranking in rankings for key, _ in ranking)
    for key in keys:
        fused[key] = sum(w * z.get(key, floor) for z, floor, w in zip(normed, floors, weights))
    return sorted(fused.items(), key=lambda kv: -kv[1])


def fuse(dense: Sequence[tuple[str, float]], lexical: Sequence[tuple[str, float]],
         settings: RetrievalSettings) -> list[tuple[str, float]]:
    """The fused ranking of hybrid mode, as ``settings`` configure it (method, weight,
    RRF constant). Pure: bench/retrieval_sets.py tunes the defaults with it.

    >>> fuse([("a", 0.9), ("b", 0.5)], [("b", 7.0)], RetrievalSettings(fusion="rrf"))[0][0]
    'b'
    """
    if settings.fusion == "rrf":
        return rrf_fuse([[cid for cid, _ in dense], [cid for cid, _ in lexical]],
                        k=settings.rrf_k)
    w = settings.dense_weight
    if settings.fusion == "zscore":
        return zscore_fuse([dense, lexical], [w, 1.0 - w])
    return weighted_fuse([dense, lexical], [w, 1.0 - w])


_POOL: tuple[int, ThreadPoolExecutor] | None = None  # (process id, pool)
_POOL_LOCK = threading.Lock()


def _arm_pool() -> ThreadPoolExecutor:
    """Threads that embed fused queries beside the BM25 arm, shared by every retriever
    (a server's concurrent searches each take one). Created on first use, and again in a
    forked child: its parent's threads did not come with it, and a pool that believes it
    has them would never run the task."""
    global _POOL
    with _POOL_LOCK:
        if _POOL is None or _POOL[0] != os.getpid():
            _POOL = (os.getpid(), ThreadPoolExecutor(max(2, min(8, os.cpu_count() or 2)),
                                                     thread_name_prefix="ragtune-query-embed"))
        return _POOL[1]


def _timed_embed(embedder: Embedder, query: str) -> tuple[np.ndarray, float]:
    t = time.perf_counter()
    vector = embedder.embed_query(query)
    return vector, time.perf_counter() - t


@dataclass
class RetrievalResult:
    """Hits in rank order, plus what the relevance floor and the trace need."""

    hits: list[Hit]
    mode: str
    best_similarity: float | None  # highest dense cosine among candidates (None: not computed)
    found: bool  # False when below the relevance floor
    timings: dict[str, float] = field(default_factory=dict)
    vector: np.ndarray | None = field(default=None, repr=False)  # the query embedding (dense)


@runtime_checkable
class Retriever(Protocol):
    """Finds the chunks a principal may read that best answer a query (the retrieval role).

    ``settings`` carries what the answer pipeline reads besides the hits (the relevance
    floor). Every backend passes ``tests/contracts/retriever.py``.
    """

    settings: RetrievalSettings

    def search(self, query: str, principal: Principal, *, k: int | None = None,
               mode: str | None = None, filters: SearchFilter | None = None,
               candidates: int | None = None) -> RetrievalResult: ...


class StoreRetriever:
    """The built-in retriever: dense, lexical or fused search of a Store, as a principal.

    >>> from ragtune.embed.fake import FakeEmbedder
    >>> from ragtune.store.sqlite import SQLiteStore
    >>> retriever = StoreRetriever(SQLiteStore(":memory:"), FakeEmbedder(16), RetrievalSettings())
    >>> retriever.search("return window", Principal.anonymous()).hits
    []
    """

    def __init__(self, store: Store, embedder: Embedder, settings: RetrievalSettings) -> None:
        self.store = store
        self.embedder = embedder
        self.settings = settings

    def search(self, query: str, principal: Principal, *, k: int | None = None,
               mode: str | None = None, filters: SearchFilter | None = None,
               candidates: int | None = None) -> RetrievalResult:
        query = query.strip()
        if not query:
            raise InputError("query", "the question is empty")
        mode = mode or self.settings.mode
        mode = RETRIEVAL_MODE_ALIASES.get(mode, mode)
        if mode not in RETRIEVAL_MODES:
            raise InputError("mode", f"unknown retrieval mode {mode!r} (fused, dense or lexical)")
        k = k or self.settings.top_k
        n = max(candidates or self.settings.candidates, k)
        timings: dict[str, float] = {}
        dense: list[tuple[str, float]] = []
        lexical: list[tuple[str, float]] = []
        vector = None
        embedding: Future[tuple[np.ndarray, float]] | None = None
        if mode == "fused":
            # The query is embedded on another thread while BM25 runs here: both release
            # the GIL (ONNX Runtime, numpy), so with a free core fused costs about
            # max(embed, BM25), not their sum. On a saturated machine it gains nothing
            # (docs/retrieval-quality.md, "Speed"). Store calls stay on this thread.
            embedding = _arm_pool().submit(_timed_embed, self.embedder, query)
        if mode in {"fused", "lexical"}:
            t = time.perf_counter()
            try:
                lexical = self.store.lexical_ranking(query, n, principal, filters)
            except BaseException:
                if embedding is not None:
                    embedding.cancel()
                raise
            timings["lexical_s"] = time.perf_counter() - t
        if mode in {"fused", "dense"}:
            if embedding is not None:
                vector, timings["embed_s"] = embedding.result()
            else:
                vector, timings["embed_s"] = _timed_embed(self.embedder, query)
            t = time.perf_counter()
            dense = self.store.dense_ranking(vector, n, principal, filters)
            timings["dense_s"] = time.perf_counter() - t

        if mode == "dense":
            ranked = dense
        elif mode == "lexical":
            ranked = lexical
        else:
            ranked = fuse(dense, lexical, self.settings)
        # Only the kept candidates' text is read from the store.
        ranked = ranked[:k]
        dense_by_id, lexical_by_id = dict(dense), dict(lexical)
        chunks = {c.chunk.id: c for c in self.store.get_chunks([cid for cid, _ in ranked], principal)}
        hits: list[Hit] = []
        for cid, score in ranked:
            sc = chunks.get(cid)
            if sc is None:  # deleted between the ranking and the read
                continue
            hits.append(Hit(sc.chunk, score, sc.document, sc.title,
                            dense_score=dense_by_id.get(cid), lexical_score=lexical_by_id.get(cid),
                            rank=len(hits) + 1))
        best = max((score for _, score in dense), default=None) if dense else None
        if mode == "lexical":
            found = bool(hits)
        else:
            found = best is not None and best >= self.settings.min_similarity
        return RetrievalResult(hits, mode, best, found, timings, vector)
