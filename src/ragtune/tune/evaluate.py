"""Dense retrieval quality of one embedder on held-out documents: the keep-or-reject judge.

Queries are ranked against a corpus of chunks by cosine (exact, numpy); each document
scores as its best chunk (as BEIR scores a chunked corpus) and the run is judged at the
document level with :func:`ragtune.evaluate.metrics.evaluate_run` (nDCG@10, MRR@10,
Recall@100). The same function scores the pseudo-queries of a user's held-out documents
and, in ``bench/tune_retriever.py``, real labelled queries.

>>> from ragtune.embed.fake import FakeEmbedder
>>> corpus = {"c1": ("d1", "tents keep rain out"), "c2": ("d2", "stoves burn gas")}
>>> m = dense_scores(FakeEmbedder(), {"q": "tents keep rain out"}, {"q": {"d1": 1}}, corpus)
>>> m["ndcg@10"]
1.0
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

import numpy as np

from ragtune.embed.base import Embedder
from ragtune.evaluate.metrics import evaluate_per_query, evaluate_run

METRICS = ("ndcg@10", "mrr@10", "recall@100")
DEPTH = 100
_BATCH = 64


def embed_all(embedder: Embedder, texts: list[str],
              progress: Callable[[int, int], None] | None = None) -> np.ndarray:
    """``embedder.embed_documents`` in batches, reporting texts done."""
    parts = []
    for start in range(0, len(texts), _BATCH):
        parts.append(embedder.embed_documents(texts[start:start + _BATCH]))
        if progress:
            progress(min(start + _BATCH, len(texts)), len(texts))
    return np.concatenate(parts) if parts else np.zeros((0, embedder.dimension), np.float32)


def dense_run(embedder: Embedder, queries: Mapping[str, str],
              corpus: Mapping[str, tuple[str, str]],
              progress: Callable[[int, int], None] | None = None) -> dict[str, dict[str, float]]:
    """{query id: {doc id: best chunk cosine}} over the top ``DEPTH`` documents."""
    ids = list(corpus)
    docs = np.array([corpus[c][0] for c in ids])
    matrix = embed_all(embedder, [corpus[c][1] for c in ids], progress)
    qids = list(queries)
    qv = embed_all(embedder, [queries[q] for q in qids])
    run: dict[str, dict[str, float]] = {}
    for qid, row in zip(qids, qv @ matrix.T if len(ids) else np.zeros((len(qids), 0))):
        best: dict[str, float] = {}
        for i in np.argsort(-row)[:DEPTH * 4]:  # several chunks may share a document
            best.setdefault(str(docs[i]), float(row[i]))
            if len(best) == DEPTH:
                break
        run[qid] = best
    return run


def dense_scores(embedder: Embedder, queries: Mapping[str, str],
                 qrels: Mapping[str, Mapping[str, int]], corpus: Mapping[str, tuple[str, str]],
                 progress: Callable[[int, int], None] | None = None) -> dict[str, float]:
    """nDCG@10, MRR@10 and Recall@100 of dense retrieval, plus ``queries``, ``passages``,
    ``passages_per_s`` (the embedding speed, used to budget the rest of a run) and
    ``per_query`` nDCG@10 (for paired comparisons)."""
    started = time.perf_counter()
    run = dense_run(embedder, queries, corpus, progress)
    seconds = max(time.perf_counter() - started, 1e-6)
    scores = evaluate_run(run, qrels, METRICS)
    per_query = evaluate_per_query(run, qrels, ("ndcg@10",))
    return {**{k: round(v, 4) for k, v in scores.items()}, "queries": len(queries),
            "passages": len(corpus), "passages_per_s": round((len(corpus) + len(queries)) / seconds, 1),
            "per_query": {q: round(v["ndcg@10"], 4) for q, v in per_query.items()}}
