"""Store backends at scale: ingest throughput, dense and fused search p50/p95, ANN recall@10.

    .venv/bin/python bench/store_scale.py [--chunks 100000] [--backends sqlite,postgres,chroma]
        [--vectors random|clustered|minilm] [--ef-sweep 40,100,400]

Synthetic corpus (as bench/search_latency.py): chunk text sampled (Zipf) from the sample
knowledge base's vocabulary, random unit vectors (384 dimensions, the hardest case for an
HNSW graph: real embeddings cluster). 90% of the documents are restricted to a group the
searching principal is not in, so every search filters away 90% of the rows; the admin
searches unfiltered. Query vectors are random unit vectors and query texts real questions;
timings are the store's work only (no query embedding): the dense ranking, and for fused
the dense + BM25 rankings, reciprocal-rank fusion and reading the top chunks.

``--vectors minilm``: real text and real vectors instead (bench/real_chunks.py): ~10-word
pieces of the Cranfield, CISI, CACM and NPL abstracts, embedded by the default ``[embedding]``
model (packaged MiniLM, ONNX int8; cached in ~/.cache/ragtune-bench/emb), the collections'
own queries as query texts and vectors, the same 50-chunk documents and 90%-restricted ACL.

recall@10: the store's dense top 10 against an exact inner-product scan over the same
rows (ACL applied). PostgreSQL runs on a throwaway local server (ragtune.store.pg_local,
shared_buffers large enough to hold the index), Chroma embedded. The ingest is the store's
side of ``ragtune ingest``: one ``write_lock()`` batch (on PostgreSQL: shared transactions,
COPY, the HNSW index built after a large load; store/pg_bulk.py), per document the lookups
before the write, the write and the log entry. Prints a table and adds each backend's
figures (with the command and time) to bench/results/store_scale_<chunks>_<vectors>.json.
``--ef-sweep``: recall@10 and latency (k = 10, both principals) per HNSW candidate list
(PostgreSQL ``ef_search``, Chroma's collection ``ef_search``), then the default again.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from ragtune.retrieve.search import rrf_fuse
from ragtune.store.base import Store
from ragtune.types import Chunk, Document, Principal, Section

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
from search_latency import questions, vocabulary

DIM, PER_DOC, WORDS = 384, 50, 120
SEE_10 = Principal("bench", frozenset({"public-ish"}))
ADMIN = Principal("admin", admin=True)


def unit(v: np.ndarray) -> np.ndarray:
    return (v / np.linalg.norm(v, axis=-1, keepdims=True)).astype(np.float32)


def corpus(n_chunks: int, seed: int = 0, vectors: str = "random"):
    """(document, chunks, vectors, groups) for every synthetic document, deterministic.

    ``random``: uniform on the sphere, no structure (an HNSW graph's worst case).
    ``clustered``: 1,000 topic centres, each chunk a centre plus noise (real embeddings
    cluster by topic; this keeps that shape without a model)."""
    rng = np.random.default_rng(seed)
    centres = unit(np.random.default_rng(seed + 1).normal(size=(1000, DIM)))
    vocab = np.array(vocabulary(), dtype=object)
    cdf = np.cumsum(1.0 / np.arange(1, len(vocab) + 1))
    cdf /= cdf[-1]
    for d in range(n_chunks // PER_DOC):
        # Zipf words by inverse CDF: one draw per document (rng.choice with p per chunk
        # spent 13 minutes on 1M chunks before the store saw any)
        words = vocab[np.minimum(np.searchsorted(cdf, rng.random((PER_DOC, WORDS))), len(vocab) - 1)]
        texts = [" ".join(row) for row in words]
        doc = Document(f"synthetic/{d}.md", f"Synthetic {d}", tuple(
            Section((f"Synthetic {d}", f"Part {i}"), t) for i, t in enumerate(texts)))
        chunks = [Chunk(Chunk.make_id(doc.id, s.label, s.text), doc.id, s.text, s.label, i, WORDS)
                  for i, s in enumerate(doc.sections)]
        noise = rng.normal(size=(PER_DOC, DIM))
        if vectors == "clustered":
            noise = centres[rng.integers(0, len(centres), PER_DOC)] + 0.6 * noise / np.sqrt(DIM)
        yield doc, chunks, unit(noise), ("public-ish",) if d % 10 == 0 else ("restricted",)


def open_store(name: str, tmp: Path, pg_url: str, postings_in_memory: bool = False) -> Store:
    if name == "sqlite":
        from ragtune.store.sqlite import SQLiteStore
        return SQLiteStore(tmp / "scale.db")
    if name == "postgres":
        from ragtune.store.postgres import PostgresStore
        return PostgresStore(pg_url, schema="scale", postings_in_memory=postings_in_memory)
    from ragtune.store.chroma import ChromaStore
    return ChromaStore(tmp / "chroma")


def percentiles(ms: list[float]) -> dict[str, float]:
    return {"p50_ms": float(np.percentile(ms, 50)), "p95_ms": float(np.percentile(ms, 95))}


def real_corpus(n_chunks: int):
    from real_chunks import load
    from retrieval_sets_data import data_root

    return load(n_chunks, data_root() / "emb")


def set_ef(store: Store, ef: int | None) -> tuple[Store, int | None]:
    """Set the store's HNSW search candidate list (None: leave it). Returns the store to use
    from now on and the value before (None: no such setting; SQLite searches exactly)."""
    if hasattr(store, "ef_search"):  # PostgreSQL: SET LOCAL hnsw.ef_search per search
        before = store.ef_search
        if ef is not None:
            store.ef_search = ef
        return store, before
    from ragtune.store.chroma import ChromaStore

    if not isinstance(store, ChromaStore):
        return store, None
    before = store._chunks.configuration_json["hnsw"]["ef_search"]
    if ef is None or ef == before:
        return store, before
    # Chroma keeps the candidate list an index was loaded with for the life of the process
    # (modify() alone changes nothing until then): drop its cached system and reopen.
    store._chunks.modify(configuration={"hnsw": {"ef_search": ef}})
    store.close()
    store._client.clear_system_cache()
    return ChromaStore(store.path), before


def measure(store: Store, n_chunks: int, n_queries: int, vectors: str,
            ef_sweep: list[int], real=None) -> tuple[dict[str, object], Store]:
    t = time.perf_counter()
    matrix, allowed, ids = [], [], []
    rows = real.rows() if real is not None else corpus(n_chunks, vectors=vectors)
    loaded = store.stats()["chunks"] == n_chunks  # --pg-data: a store kept from a run before
    if loaded:
        print(f"  {type(store).__name__}: holds {n_chunks} chunks already: searches only",
              flush=True)
        for _, chunks, vecs, groups in rows:
            matrix.append(vecs)
            allowed += [groups == ("public-ish",)] * len(chunks)
            ids += [c.id for c in chunks]
    # The store's side of `ragtune ingest` (ingest/sync.py), without parsing and embedding:
    # one write batch; per document the lookups before it, the write and the log entry.
    with store.write_lock():
        for doc, chunks, vecs, groups in ([] if loaded else rows):
            store.get_document(doc.source)
            store.existing_embeddings([c.id for c in chunks])
            result = store.upsert_document(doc, chunks, vecs, groups=groups)
            store.log_ingest(doc.source, result.status, f"version {result.version}")
            matrix.append(vecs)
            allowed += [groups == ("public-ish",)] * len(chunks)
            ids += [c.id for c in chunks]
            if len(ids) // (n_chunks // 10) > (len(ids) - len(chunks)) // (n_chunks // 10):
                print(f"  {type(store).__name__}: {len(ids)} chunks written in "
                      f"{time.perf_counter() - t:.0f} s", flush=True)
        load_s = time.perf_counter() - t
    ingest_s = time.perf_counter() - t  # with what the batch does at its end (an index build)
    print(f"  (the store was loaded before: {ingest_s:.0f} s to regenerate the corpus)" if loaded else
          f"  ingest {ingest_s:.0f} s ({n_chunks / ingest_s:.0f} chunks/s), of which the batch's "
          f"end (PostgreSQL: HNSW build after a large load) {ingest_s - load_s:.0f} s", flush=True)
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    matrix_a, allowed_a = np.concatenate(matrix), np.array(allowed)
    if real is not None:  # the collections' own queries, text and vector
        qv, qs = real.query_vectors[:n_queries], real.queries[:n_queries]
    else:  # queries shaped like the corpus: random, or near a topic centre
        qv = np.concatenate([v for _, _, v, _ in corpus(PER_DOC * max(1, n_queries // PER_DOC + 1),
                                                          seed=7, vectors=vectors)])[:n_queries]
        qs = questions(n_queries)
    store.dense_ranking(qv[0], 10, SEE_10)  # warm-up (caches, in-memory indexes)
    t = time.perf_counter()
    store.lexical_ranking(qs[0], 10, SEE_10)
    copy = getattr(store, "postings", None)  # PostgreSQL with --postings-in-memory
    if copy is not None:
        copy.wait()
        postings = copy.current
        print(f"  postings copy: {postings.size} postings loaded in {time.perf_counter() - t:.1f} s, "
              f"{(postings.rows.nbytes + postings.tf.nbytes) / 2**20:.0f} MiB", flush=True)
    out: dict[str, object] = {} if loaded else {
        "ingest_chunks_per_s": n_chunks / ingest_s, "ingest_s": ingest_s,
        "batch_end_s": ingest_s - load_s, "peak_rss_mb_after_ingest": rss_mb}
    out["postings_in_memory"] = copy is not None
    out |= {"readable_fraction_acl90": float(allowed_a.mean()),
            "default_ef_search": set_ef(store, None)[1]}
    # exact top 10 per query and principal (ACL applied), shared by every measurement below
    exact = {}
    for who, principal in (("acl90", SEE_10), ("admin", ADMIN)):
        scores = qv @ matrix_a.T
        if principal is SEE_10:
            scores = np.where(allowed_a, scores, -np.inf)
        exact[who] = [{ids[i] for i in np.argsort(-row)[:10]} for row in scores]
    for who, principal in (("acl90", SEE_10), ("admin", ADMIN)):
        dense_ms, fused_ms, recall = [], [], []
        for v, q, want in zip(qv, qs, exact[who]):
            t = time.perf_counter()
            dense = store.dense_ranking(v, 50, principal)
            dense_ms.append((time.perf_counter() - t) * 1000)
            t = time.perf_counter()
            dense = store.dense_ranking(v, 50, principal)
            lexical = store.lexical_ranking(q, 50, principal)
            fused = rrf_fuse([[c for c, _ in dense], [c for c, _ in lexical]])[:5]
            store.get_chunks([c for c, _ in fused], principal)
            fused_ms.append((time.perf_counter() - t) * 1000)
            recall.append(len(want & {c for c, _ in dense[:10]}) / 10)
        out[who] = {"dense": percentiles(dense_ms), "fused": percentiles(fused_ms),
                    "recall_at_10": float(np.mean(recall))}
    default = set_ef(store, None)[1]
    if ef_sweep and default is not None:  # recall and latency per HNSW candidate list
        for who, principal in (("acl90", SEE_10), ("admin", ADMIN)):
            sweep = {}
            for ef in ef_sweep:
                store = set_ef(store, ef)[0]
                store.dense_ranking(qv[0], 10, principal)  # warm-up (a reopened store loads)
                ms, rec = [], []
                for v, want in zip(qv, exact[who]):
                    t = time.perf_counter()
                    got = store.dense_ranking(v, 10, principal)
                    ms.append((time.perf_counter() - t) * 1000)
                    rec.append(len(want & {c for c, _ in got}) / 10)
                sweep[ef] = {**percentiles(ms), "recall_at_10": float(np.mean(rec))}
                print(f"  {who:6} ef_search {ef:5} dense k=10 p50 {sweep[ef]['p50_ms']:7.1f} "
                      f"p95 {sweep[ef]['p95_ms']:7.1f}  recall@10 {sweep[ef]['recall_at_10']:.3f}",
                      flush=True)
            out[f"ef_search_sweep_{who}_k10"] = sweep
        store = set_ef(store, default)[0]
    return out, store


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--chunks", type=int, default=100_000)
    ap.add_argument("--queries", type=int, default=100)
    ap.add_argument("--backends", default="sqlite,postgres,chroma")
    ap.add_argument("--shared-buffers", default="4GB")
    ap.add_argument("--maintenance-work-mem", default="1GB",
                    help="PostgreSQL: memory of the HNSW build (1M 384-d vectors need ~3GB)")
    ap.add_argument("--vectors", choices=("random", "clustered", "minilm"), default="random",
                    help="minilm: real text and MiniLM vectors (bench/real_chunks.py)")
    ap.add_argument("--ef-sweep", default="",
                    help="PostgreSQL and Chroma: HNSW ef_search values, e.g. 40,100,400")
    ap.add_argument("--postings-in-memory", action="store_true",
                    help="PostgreSQL: [store] postings_in_memory (BM25 over a copy in memory)")
    ap.add_argument("--pg-data", type=Path, default=None,
                    help="PostgreSQL: keep the server's data here; a later run with the same "
                         "--chunks and --vectors searches the stored chunks without loading")
    args = ap.parse_args()
    from ragtune.store.pg_local import LocalPostgres

    out_path = ROOT / "bench" / "results" / f"store_scale_{args.chunks}_{args.vectors}.json"
    # one file per size and vector shape; each run adds or replaces its backends' entries
    results: dict[str, object] = {"chunks": args.chunks, "dim": DIM, "queries": args.queries,
                                  "vectors": args.vectors}
    real = real_corpus(args.chunks) if args.vectors == "minilm" else None
    if real is not None:
        results |= {"model": real.model, "embed_s": real.embed_s,
                    "embed_chunks_per_s": args.chunks / real.embed_s,
                    "source_documents_used": len(real.docs),
                    "source_documents": real.per_set,
                    "chunks_per_set": real.chunks_per_set(),
                    "mean_words": float(np.mean([len(t.split()) for d in real.docs
                                                 for t in d.texts]))}
    with tempfile.TemporaryDirectory(dir=ROOT / "bench") as tmp_s:
        tmp = Path(tmp_s)
        pg = LocalPostgres(args.pg_data or tmp / "pg", settings={"shared_buffers": args.shared_buffers,
                                                 "maintenance_work_mem": args.maintenance_work_mem})
        if "postgres" in args.backends:
            pg.start()
        try:
            for name in args.backends.split(","):
                store = open_store(name, tmp, pg.url, args.postings_in_memory)
                r, store = measure(store, args.chunks, args.queries, args.vectors,
                                   [int(x) for x in args.ef_sweep.split(",") if x], real)
                store.close()
                r["command"] = " ".join(["bench/store_scale.py", *sys.argv[1:]])
                r["queries"] = args.queries
                r["measured_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
                key = f"{name}+postings_in_memory" if r["postings_in_memory"] else name
                if "ingest_s" in r:
                    results[key] = r
                    print(f"{name:9} ingest {r['ingest_chunks_per_s']:8.0f} chunks/s ({r['ingest_s']:.0f}"
                          f" s, peak RSS {r['peak_rss_mb_after_ingest']:.0f} MB)", flush=True)
                else:  # searched a kept store: keep the ingest figures measured when it loaded
                    r = {**json.loads(out_path.read_text()).get(name, {}), **r} \
                        if out_path.exists() else r
                results[key] = r
                for who in ("acl90", "admin"):
                    m = r[who]
                    print(f"  {who:6} dense p50 {m['dense']['p50_ms']:7.1f} p95 {m['dense']['p95_ms']:7.1f}"
                          f"  fused p50 {m['fused']['p50_ms']:7.1f} p95 {m['fused']['p95_ms']:7.1f}"
                          f"  recall@10 {m['recall_at_10']:.3f}", flush=True)
                out_path.parent.mkdir(parents=True, exist_ok=True)
                # re-read: another run (another backend) may have written meanwhile
                merged = json.loads(out_path.read_text()) if out_path.exists() else {}
                out_path.write_text(json.dumps({**merged, **results, key: r}, indent=2))
        finally:
            pg.stop()


if __name__ == "__main__":
    main()
