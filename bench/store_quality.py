"""Retrieval quality per store backend on BEIR folders, and PostgreSQL's two lexical arms.

    .venv/bin/python bench/store_quality.py [FOLDER ...]

The same chunks and the same real MiniLM vectors go into SQLite, PostgreSQL (a throwaway
local server, ragtune.store.pg_local) and Chroma (embedded); nDCG@10 per retrieval mode
must agree within 0.005 of SQLite. For PostgreSQL's lexical arm it also ranks with
PostgreSQL full-text search (``to_tsvector('english', ...)`` with ``ts_rank_cd``, OR of the
query's words) beside the stored BM25 statistics the store uses.

Defaults: bench/data/northwind_beir and bench/data/northwind_passages. Prints a table and
writes bench/results/store_quality.json.
"""

from __future__ import annotations

import json
import re
import sys
import tempfile
from pathlib import Path

import numpy as np

from ragtune.config import Settings
from ragtune.embed.factory import make_embedder
from ragtune.evaluate.beir import load_beir
from ragtune.evaluate.metrics import evaluate_run
from ragtune.evaluate.retrieval import index_beir, run_queries
from ragtune.retrieve.search import StoreRetriever
from ragtune.store.bm25 import BM25Params
from ragtune.store.chroma import ChromaStore
from ragtune.store.pg_local import LocalPostgres
from ragtune.store.postgres import PostgresStore
from ragtune.store.sqlite import SQLiteStore
from ragtune.types import Principal

ROOT = Path(__file__).resolve().parent.parent
ADMIN = Principal("bench", admin=True)


class CachedEmbedder:
    """The real embedder, computing each text once: every backend gets the same vectors
    (and the bench embeds the corpus once, not once per backend)."""

    def __init__(self, inner) -> None:
        self.inner, self.name, self.dimension = inner, inner.name, inner.dimension
        self._docs: dict[str, np.ndarray] = {}
        self._queries: dict[str, np.ndarray] = {}

    def embed_documents(self, texts: list[str]) -> np.ndarray:
        todo = [t for t in dict.fromkeys(texts) if t not in self._docs]
        if todo:
            self._docs.update(zip(todo, self.inner.embed_documents(todo)))
        return np.stack([self._docs[t] for t in texts]) if texts else \
            np.zeros((0, self.dimension), dtype=np.float32)

    def embed_query(self, text: str) -> np.ndarray:
        if text not in self._queries:
            self._queries[text] = self.inner.embed_query(text)
        return self._queries[text]

    def count_tokens(self, text: str) -> int:
        return self.inner.count_tokens(text)


def tsvector_run(store: PostgresStore, data, source_to_id: dict[str, str]) -> dict[str, dict[str, float]]:
    """Lexical ranking by PostgreSQL full-text search (a GIN-indexed tsvector per chunk)."""
    with store.session(ADMIN) as cur:
        cur.execute("ALTER TABLE chunks ADD COLUMN IF NOT EXISTS tsv tsvector GENERATED ALWAYS AS "
                    "(setweight(to_tsvector('english', title), 'A') || "
                    "setweight(to_tsvector('english', section), 'B') || "
                    "to_tsvector('english', text)) STORED")
        cur.execute("CREATE INDEX IF NOT EXISTS chunks_tsv ON chunks USING gin (tsv)")
    run: dict[str, dict[str, float]] = {}
    for qid in (q for q in data.qrels if q in data.queries):
        words = re.findall(r"\w+", data.queries[qid].lower())
        scores: dict[str, float] = {}
        if words:
            with store.session(ADMIN) as cur:
                rows = cur.execute(
                    "SELECT d.source FROM chunks ch JOIN documents d ON d.id = ch.doc_id, "
                    "to_tsquery('english', %s) q WHERE ch.tsv @@ q "
                    "ORDER BY ts_rank_cd(ch.tsv, q) DESC, ch.n LIMIT 300",
                    (" | ".join(words),)).fetchall()
            for (source,) in rows:
                doc = source_to_id.get(source)
                if doc is not None and doc not in scores:
                    scores[doc] = float(300 - len(scores))
        run[qid] = scores
    return run


def main() -> None:
    data_dir = ROOT / "bench" / "data"
    folders = [Path(a) for a in sys.argv[1:]] or [data_dir / "northwind_beir",
                                                  data_dir / "northwind_passages"]
    settings = Settings()
    embedder = CachedEmbedder(make_embedder(settings.embedding))
    fused = settings.retrieval.mode
    modes = ("dense", "lexical", fused)
    out: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp, LocalPostgres(Path(tmp) / "pg") as pg:
        for folder in folders:
            data = load_beir(folder)
            # every backend with the configured analysis ([store] bm25_*, quoted_phrases)
            analysis = {"bm25": BM25Params.from_settings(settings.store),
                        "quoted_phrases": settings.store.quoted_phrases}
            stores = {"sqlite": SQLiteStore(":memory:", **analysis),
                      "postgres": PostgresStore(pg.url, schema=f"q_{folder.name}", **analysis),
                      "chroma": ChromaStore(Path(tmp) / f"chroma_{folder.name}", **analysis)}
            result: dict[str, dict[str, float]] = {}
            for name, store in stores.items():
                source_to_id = index_beir(data, store, embedder, settings)
                retriever = StoreRetriever(store, embedder, settings.retrieval)
                for mode in modes:
                    run = run_queries(data, retriever, mode, source_to_id)
                    result[f"{name}/{mode}"] = evaluate_run(run, data.qrels, ("ndcg@10",))
            result["postgres/lexical-tsvector"] = evaluate_run(
                tsvector_run(stores["postgres"], data, source_to_id), data.qrels, ("ndcg@10",))
            for store in stores.values():
                store.close()
            out[folder.name] = result
            print(f"\n{folder.name}: {len(data.corpus)} documents, {len(data.qrels)} queries")
            base = {m: result[f"sqlite/{m}"]["ndcg@10"] for m in modes}
            print(f"{'backend/mode':28} {'nDCG@10':>8} {'vs sqlite':>10}")
            for key, metrics in result.items():
                mode = key.split("/", 1)[1]
                delta = metrics["ndcg@10"] - base.get(mode, base["lexical"])
                print(f"{key:28} {metrics['ndcg@10']:8.4f} {delta:+10.4f}")
    (ROOT / "bench" / "results").mkdir(parents=True, exist_ok=True)
    (ROOT / "bench" / "results" / "store_quality.json").write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
