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
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ragtune.config import Settings
from ragtune.embed.base import Embedder
from ragtune.evaluate.beir import BeirDataset, load_beir
from ragtune.evaluate.metrics import evaluate_run
from ragtune.ingest.chunking import chunk_document, chunk_embedding_text
from ragtune.retrieve.search import Retriever, StoreRetriever
from ragtune.store.base import Store
from ragtune.store.factory import open_store
from ragtune.types import Document, Principal, ProgressFn, Section

METRICS = ("ndcg@10", "recall@10", "recall@100", "mrr@10")
_ADMIN = Principal("eval", admin=True)


def index_beir(data: BeirDataset, store: Store, embedder: Embedder, settings: Settings,
               progress: ProgressFn | None = None, batch_docs: int = 64) -> dict[str, str]:
    """Chunk, embed and store the corpus; returns store source → BEIR doc id."""
    ids = list(data.corpus)
    for start in range(0, len(ids), batch_docs):
        part = ids[start:start + batch_docs]
        docs = [Document(source=f"beir:{i}", title=data.corpus[i].get("title", ""),
                         sections=(Section((), data.corpus[i].get("text", "")),)) for i in part]
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
    latency: dict[str, float] = {}
    for mode in modes:
        t = time.perf_counter()
        run = run_queries(data, retriever, mode.strip(), source_to_id, progress=progress)
        latency[mode] = (time.perf_counter() - t) / max(len(run), 1)
        metrics[mode.strip()] = evaluate_run(run, data.qrels, METRICS)
    return {"dataset": data.name, "documents": len(data.corpus), "queries": len(data.qrels),
            "embedder": embedder.name, "index_s": index_s, "metrics": metrics,
            "mean_query_s": latency}
