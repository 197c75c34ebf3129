"""Search latency at 100k chunks: p50/p95 of fused (dense + BM25), dense and BM25 search, query embedding included.

Embedding 100k real passages would take over an hour on 2 cores, so the store is filled
with synthetic chunks: text sampled (Zipf) from the vocabulary of the sample knowledge
base, and random unit vectors. Queries are real questions, embedded by the real model on
every call, so the timings include query embedding, BM25, the vector scan and fusion.
Above 20k vectors the store scans an int8 copy and rescores the best 256 rows exactly
(store/vector_scan.py); recall@10 of the ACL-filtered dense top 10 against an exact fp32
scan is measured on every query.

    .venv/bin/python bench/search_latency.py [--chunks 100000] [--queries 200]

Prints a table and writes bench/results/search_latency.json.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import time
from pathlib import Path

import numpy as np

from ragtune.config import EmbeddingSettings, RetrievalSettings, StoreSettings
from ragtune.embed.factory import make_embedder
from ragtune.retrieve.search import StoreRetriever
from ragtune.store.base import Store
from ragtune.store.factory import open_store
from ragtune.store.sqlite import SQLiteStore
from ragtune.types import Chunk, Document, Principal, Section

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"


def vocabulary() -> list[str]:
    words: list[str] = []
    for p in sorted((ROOT / "examples").rglob("*")):
        if p.suffix in {".md", ".txt", ".html"}:
            words += re.findall(r"[a-z]{3,}", p.read_text(errors="ignore").lower())
    if len(words) < 1000:
        words += re.findall(r"[a-z]{3,}", (ROOT / "README.md").read_text().lower()) * 10
    counts: dict[str, int] = {}
    for w in words:
        counts[w] = counts.get(w, 0) + 1
    return sorted(counts, key=lambda w: -counts[w])


def questions(n: int) -> list[str]:
    path = ROOT / "examples" / "eval" / "kb_eval.jsonl"
    qs = [json.loads(line)["question"] for line in path.read_text().splitlines() if line.strip()] \
        if path.exists() else []
    qs = qs or ["How many days do I have to return a tent?", "How do I reset my VPN password?"]
    return [qs[i % len(qs)] for i in range(n)]


def build(store: Store, n_chunks: int, dim: int, per_doc: int = 10) -> None:
    rng = np.random.default_rng(0)
    vocab = vocabulary()
    ranks = np.arange(1, len(vocab) + 1)
    p = 1.0 / ranks
    p /= p.sum()
    t = time.perf_counter()
    for d in range(n_chunks // per_doc):
        texts = [" ".join(rng.choice(vocab, size=120, p=p)) for _ in range(per_doc)]
        doc = Document(f"synthetic/{d}.md", f"Synthetic {d}",
                       tuple(Section((f"Synthetic {d}", f"Part {i}"), t) for i, t in enumerate(texts)))
        chunks = [Chunk(Chunk.make_id(doc.id, s.label, s.text), doc.id, s.text, s.label, i, 120)
                  for i, s in enumerate(doc.sections)]
        vecs = rng.normal(size=(per_doc, dim)).astype(np.float32)
        vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
        store.upsert_document(doc, chunks, vecs, groups=["hr"] if d % 10 == 0 else ())
    print(f"built {n_chunks} chunks in {time.perf_counter() - t:.0f} s")
    store.close()


def dense_recall(store: SQLiteStore, embedder, qs: list[str], principal: Principal) -> float:
    """Mean recall@10 of the store's dense search against an exact fp32 scan (same ACL)."""
    index = store._search_index()
    mask = index.allowed_rows(principal, None)
    found = []
    for q in qs:
        v = embedder.embed_query(q)
        scores = index.matrix @ v
        if mask is not None:
            scores = np.where(mask, scores, -np.inf)
        want = {int(index.rowids[i]) for i in np.argsort(-scores)[:10]}
        got = {h.chunk.id for h in store.dense_search(v, 10, principal)}
        want_ids = {r[0] for r in store._db.execute(
            f"SELECT id FROM chunks WHERE rowid IN ({','.join(map(str, want))})")}
        found.append(len(got & want_ids) / 10)
    return float(np.mean(found))


def bm25s_latency(store: SQLiteStore, qs: list[str]) -> dict[str, float]:
    """The same lexical search with the bm25s library (Snowball stemmer, English stopwords)
    over the same chunk texts: the plain reference ragtune's BM25 is timed against. No ACL
    (bm25s has none), top 50 like ragtune's candidates."""
    try:
        import bm25s
        import Stemmer
    except ImportError:
        return {}
    rows = store._db.execute("SELECT title, section, text FROM chunks ORDER BY rowid").fetchall()
    stemmer = Stemmer.Stemmer("english")
    retriever = bm25s.BM25()
    retriever.index(bm25s.tokenize(["\n".join(r) for r in rows], stopwords="en",
                                   stemmer=stemmer, show_progress=False), show_progress=False)
    lat = []
    for q in qs:
        t = time.perf_counter()
        tokens = bm25s.tokenize([q], stopwords="en", stemmer=stemmer, show_progress=False)
        retriever.retrieve(tokens, k=50, show_progress=False, n_threads=1)
        lat.append((time.perf_counter() - t) * 1000)
    return {"p50_ms": percentile(lat, 50), "p95_ms": percentile(lat, 95),
            "mean_ms": statistics.fmean(lat)}


def percentile(xs: list[float], q: float) -> float:
    return float(np.percentile(np.array(xs), q))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--chunks", type=int, default=100_000)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--backend", default="sqlite", help="store backend (ragtune.store.factory)")
    ap.add_argument("--url", default="", help="server address for server backends")
    args = ap.parse_args()
    RESULTS.mkdir(parents=True, exist_ok=True)
    embedder = make_embedder(EmbeddingSettings())
    db = RESULTS / f"search_latency_{args.backend}_{args.chunks}.db"
    settings = StoreSettings(backend=args.backend, path=str(db), url=args.url)
    if not db.exists():
        build(open_store(settings, RESULTS), args.chunks, embedder.dimension)
        db.touch()  # marks the build done for every backend (SQLite writes the file itself)
    store = open_store(settings, RESULTS)
    retriever = StoreRetriever(store, embedder, RetrievalSettings())
    principal = Principal("bench", frozenset({"it"}))  # ACL filtering on: 10% of docs hidden
    qs = questions(args.queries)
    t = time.perf_counter()
    retriever.search(qs[0], principal)  # warm-up: model load, vector matrix load
    warm = time.perf_counter() - t
    out: dict[str, dict[str, float]] = {}
    for mode in ("fused", "dense", "lexical"):
        lat = []
        for q in qs:
            t = time.perf_counter()
            retriever.search(q, principal, mode=mode)
            lat.append((time.perf_counter() - t) * 1000)
        out[mode] = {"p50_ms": percentile(lat, 50), "p95_ms": percentile(lat, 95),
                     "mean_ms": statistics.fmean(lat)}
    out["bm25s (reference)"] = bm25s_latency(store, qs)
    # recall of SQLite's int8 scan against exact fp32 (its own index; other backends: bench/store_scale.py)
    recall = dense_recall(store, embedder, qs, principal) if isinstance(store, SQLiteStore) else float("nan")
    print(f"\n{args.chunks} chunks, {len(qs)} queries, first query (loads) {warm:.1f} s")
    print(f"{'mode':8} {'p50 ms':>8} {'p95 ms':>8} {'mean ms':>8}")
    for mode, m in out.items():
        if m:
            print(f"{mode:8} {m['p50_ms']:8.1f} {m['p95_ms']:8.1f} {m['mean_ms']:8.1f}")
    if out.get("bm25s (reference)"):
        print(f"lexical p50 / bm25s p50 = "
              f"{out['lexical']['p50_ms'] / out['bm25s (reference)']['p50_ms']:.2f}")
    print(f"dense recall@10 vs exact fp32 scan: {recall:.4f}")
    print("targets: p50 <= 20 ms, p95 <= 50 ms (fused); lexical p50 < 5 ms; "
          "recall@10 vs exact >= 0.98")
    (RESULTS / "search_latency.json").write_text(json.dumps(
        {"chunks": args.chunks, "queries": len(qs), "embedder": embedder.name, "modes": out,
         "recall_at_10_vs_exact": recall}, indent=2))


if __name__ == "__main__":
    main()
