"""Retrieval evaluation on a BEIR folder: index the corpus, run every mode, score the runs.

Documents are chunked exactly as in ingestion; a document's score for a query is the
score of its best-ranked chunk, so metrics are computed on document ids as BEIR defines
them.

>>> # results = evaluate_beir(Path("scifact"), embedder, Settings())
>>> # results["metrics"]["hybrid"]["ndcg@10"]
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ragtune.config import Settings
from ragtune.embed.base import Embedder
from ragtune.evaluate.beir import BeirDataset, load_beir
from ragtune.evaluate.metrics import evaluate_per_query, evaluate_run
from ragtune.evaluate.qa_metrics import paired_bootstrap
from ragtune.ingest.chunking import chunk_document, chunk_embedding_text
from ragtune.retrieve.search import Retriever, StoreRetriever
from ragtune.store.base import Store
from ragtune.store.factory import open_store
from ragtune.types import Document, Principal, ProgressFn, Section

METRICS = ("ndcg@10", "recall@10", "recall@100", "mrr@10")
_ADMIN = Principal("eval", admin=True)


@dataclass(frozen=True)
class ModeComparison:
    """How mode ``a`` did against mode ``b``, query by query, on one metric.

    ``wins``: queries where ``a`` scored higher; ``mean_diff``: mean of ``a - b``, with its
    paired-bootstrap confidence interval ``[ci_low, ci_high]``. An interval that holds 0
    says the sample cannot tell the two apart.
    """

    a: str
    b: str
    metric: str
    queries: int
    wins: int
    ties: int
    losses: int
    mean_diff: float
    ci_low: float
    ci_high: float

    @property
    def significant(self) -> bool:
        return self.ci_low > 0 or self.ci_high < 0


def compare_modes(per_query: Mapping[str, Mapping[str, float]], a: str, b: str, *,
                  metric: str = "ndcg@10", tie: float = 1e-9, samples: int = 2000,
                  seed: int = 0, confidence: float = 0.95) -> ModeComparison:
    """Wins, ties and losses of mode ``a`` against ``b`` and the bootstrap interval of the
    mean difference, over the queries both were scored on (``per_query[mode][query]``).

    >>> c = compare_modes({"x": {"q1": 1.0, "q2": 0.5, "q3": 0.2},
    ...                    "y": {"q1": 0.5, "q2": 0.5, "q3": 0.4}}, "x", "y")
    >>> (c.wins, c.ties, c.losses, round(c.mean_diff, 4))
    (1, 1, 1, 0.1)
    """
    qids = sorted(set(per_query[a]) & set(per_query[b]))
    xs = [per_query[a][q] for q in qids]
    ys = [per_query[b][q] for q in qids]
    diffs = [x - y for x, y in zip(xs, ys)]
    mean, lo, hi = paired_bootstrap(xs, ys, samples=samples, seed=seed, confidence=confidence)
    return ModeComparison(a, b, metric, len(qids), sum(d > tie for d in diffs),
                          sum(abs(d) <= tie for d in diffs), sum(d < -tie for d in diffs),
                          mean, lo, hi)


def mode_comparisons(per_query: Mapping[str, Mapping[str, float]],
                     **kw: float | str) -> list[ModeComparison]:
    """Every pair of modes, in the order given (first against the later ones)."""
    modes = list(per_query)
    return [compare_modes(per_query, a, b, **kw)  # type: ignore[arg-type]
            for i, a in enumerate(modes) for b in modes[i + 1:]]


def index_beir(data: BeirDataset, store: Store, embedder: Embedder, settings: Settings,
               progress: ProgressFn | None = None, batch_docs: int = 64) -> dict[str, str]:
    """Chunk, embed and store the corpus; returns store source → BEIR doc id."""
    ids = list(data.corpus)
    for start in range(0, len(ids), batch_docs):
        part = ids[start:start + batch_docs]
        # A record with a title and no text (common in older collections) is still a
        # document: its title is its text, as BEIR's own retrievers index title + text.
        docs = [Document(source=f"beir:{i}", title=data.corpus[i].get("title", ""),
                         sections=(Section((), data.corpus[i].get("text", "")
                                           or data.corpus[i].get("title", "")),))
                for i in part]
        per_doc = [chunk_document(d, max_tokens=settings.chunking.max_tokens,
                                  overlap=settings.chunking.overlap,
                                  count_tokens=embedder.count_tokens) for d in docs]
        texts = [chunk_embedding_text(c, d.title) for d, cs in zip(docs, per_doc) for c in cs]
        vectors = embedder.embed_documents(texts) if texts else np.zeros((0, embedder.dimension))
        offset = 0
        for d, cs in zip(docs, per_doc):
            store.upsert_document(d, cs, vectors[offset:offset + len(cs)])
            offset += len(cs)
        if progress:
            progress(min(start + batch_docs, len(ids)), len(ids), "index")
    return {f"beir:{i}": i for i in ids}


def run_queries(data: BeirDataset, retriever: Retriever, mode: str, source_to_id: dict[str, str],
                depth: int = 100, progress: ProgressFn | None = None) -> dict[str, dict[str, float]]:
    """{query id: {doc id: score}} with scores decreasing in rank order (no ties)."""
    run: dict[str, dict[str, float]] = {}
    qids = [q for q in data.qrels if q in data.queries]
    for n, qid in enumerate(qids, start=1):
        # Several chunks may share a document: fetch extra candidates and keep each doc's best.
        result = retriever.search(data.queries[qid], _ADMIN, k=depth * 3, mode=mode,
                                  candidates=depth * 3)
        scores: dict[str, float] = {}
        for hit in result.hits:
            doc = source_to_id.get(hit.document)
            if doc is not None and doc not in scores:
                scores[doc] = float(depth * 3 - len(scores))
            if len(scores) >= depth:
                break
        run[qid] = scores
        if progress and (n % 10 == 0 or n == len(qids)):
            progress(n, len(qids), mode)
    return run


def evaluate_beir(folder: Path, embedder: Embedder, settings: Settings, *,
                  modes: Sequence[str] = ("dense", "lexical", "fused"),
                  progress: ProgressFn | None = None, store: Store | None = None) -> dict[str, Any]:
    """Index ``folder``'s corpus and report METRICS per retrieval mode.

    The corpus goes into ``store``, by default a scratch store of the configured backend
    (``[store]``) in a temporary folder, so the workspace's own documents stay untouched.
    """
    data = load_beir(folder)
    with tempfile.TemporaryDirectory(prefix="ragtune-beir-") as scratch:
        if store is None:
            store = open_store(settings.store, Path(scratch))
        try:
            return _evaluate(data, store, embedder, settings, modes, progress)
        finally:
            store.close()


def _evaluate(data: BeirDataset, store: Store, embedder: Embedder, settings: Settings,
              modes: Sequence[str], progress: ProgressFn | None) -> dict[str, Any]:
    t = time.perf_counter()
    source_to_id = index_beir(data, store, embedder, settings, progress)
    index_s = time.perf_counter() - t
    retriever = StoreRetriever(store, embedder, settings.retrieval)
    metrics: dict[str, dict[str, float]] = {}
    per_query: dict[str, dict[str, float]] = {}
    latency: dict[str, float] = {}
    for mode in (m.strip() for m in modes):
        t = time.perf_counter()
        run = run_queries(data, retriever, mode, source_to_id, progress=progress)
        latency[mode] = (time.perf_counter() - t) / max(len(run), 1)
        metrics[mode] = evaluate_run(run, data.qrels, METRICS)
        per_query[mode] = {q: v["ndcg@10"] for q, v in
                           evaluate_per_query(run, data.qrels, ("ndcg@10",)).items()}
    return {"dataset": data.name, "documents": len(data.corpus), "queries": len(data.qrels),
            "embedder": embedder.name, "index_s": index_s, "metrics": metrics,
            "mean_query_s": latency, "per_query_ndcg@10": per_query,
            "comparisons": [asdict(c) for c in mode_comparisons(per_query)]}
