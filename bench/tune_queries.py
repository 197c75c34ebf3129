"""Which pseudo-queries teach the retriever, and which judge can tell? ICT sentences against
questions the packaged chat model writes, on public labelled sets.

    PYTHONPATH=src:bench .venv/bin/python bench/tune_queries.py --sets cacm,cranfield,cisi

Per set (bench/DATASETS.md; 30% of documents held out by hash, as ``tune retriever``):

1. the corpus is ingested into a fresh default workspace (packaged MiniLM, int8 ONNX);
2. the packaged chat model (``tune.questions.asker``, the prompt ``tune retriever`` uses)
   writes one question for ``--held`` held-out chunks and ``--train`` train chunks (cached
   in ``$RAGTUNE_BENCH_DATA/questions/<set>.json``: ~1-2 s a question on 2 cores);
3. three embedders are fine-tuned for ``--steps`` steps of 16 triples, with hard negatives
   mined as ``tune retriever`` mines them: on ICT queries, on the written questions, and on
   half of each;
4. every embedder is scored against the packaged one by three judges on the held-out
   documents: ICT sentences (``tune retriever --queries ict``'s judge), written questions
   (the default judge) and the set's real labelled queries. Both sides of every comparison
   are embedded freshly, in the same batches (int8 activations are quantised per batch).

Prints one table row per (judge, embedder): nDCG@10 packaged -> adapted, the gain and its
paired-bootstrap 95% interval; writes bench/results/tune_queries.json.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

from retrieval_sets import CachedEmbedder
from retrieval_sets_data import SETS, data_root, ensure_beir

from ragtune.evaluate.beir import load_beir
from ragtune.evaluate.qa_metrics import paired_bootstrap
from ragtune.evaluate.retrieval import index_beir
from ragtune.ingest.chunking import chunk_embedding_text
from ragtune.tune.data import (
    Passage,
    PseudoQuery,
    held_out_corpus,
    ict_queries,
    mine_negatives,
    split_documents,
)
from ragtune.tune.evaluate import dense_scores
from ragtune.tune.questions import asker, clean_question
from ragtune.tune.run import OPERATOR
from ragtune.tune.train import EmbedderTrainConfig, train_embedder
from ragtune.workspace import Workspace


def questions_for(name: str, passages: list[Passage], ws: Workspace) -> dict[str, str | None]:
    """A question per passage, from the cache or the workspace's chat model."""
    path = data_root() / "questions" / f"{name}.json"
    cache = json.loads(path.read_text()) if path.exists() else {}
    ask, t0, n = asker(ws.generator), time.perf_counter(), 0
    for p in passages:
        if p.chunk_id not in cache:
            cache[p.chunk_id] = ask(p)
            n += 1
            if n % 20 == 0:
                print(f"  {n} questions, {(time.perf_counter() - t0) / n:.2f} s each",
                      file=sys.stderr, flush=True)
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(json.dumps(cache))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(cache))
    # the same cleaning as tune retriever's, also for answers cached by an earlier prompt run
    return {p.chunk_id: clean_question(cache[p.chunk_id] or "") for p in passages}


def run_set(name: str, args: argparse.Namespace) -> dict:
    spec = {s.name: s for s in SETS}[name]
    data = load_beir(ensure_beir(spec))
    with tempfile.TemporaryDirectory() as tmp:
        ws = Workspace.init(Path(tmp) / "ws")
        cached = CachedEmbedder(ws.embedder, data_root() / "emb" / f"{name}-{ws.embedder.name}.npz")
        source_to_id = index_beir(data, ws.store, cached, ws.settings)
        cached.save()
        base = cached.inner  # scored freshly batched, like every adapted model
        docs = {d.id: d for d in ws.store.list_documents(None) if d.chunks}
        split = split_documents(sorted(docs), held_out=args.held_out, seed=args.seed)
        passages = []
        for c in ws.store.iter_chunks():
            full = chunk_embedding_text(c, docs[c.doc_id].title if c.doc_id in docs else "")
            passages.append(Passage(c.id, c.doc_id, full[: len(full) - len(c.text)].rstrip("\n"), c.text))
        held = [p for p in passages if p.doc_id in set(split.held_out)]
        train = {p.chunk_id: p for p in passages if p.doc_id in set(split.train)}
        rnd = random.Random(args.seed)
        held_pick = rnd.sample(held, min(args.held, len(held)))
        train_pick = rnd.sample(sorted(train.values(), key=lambda p: p.chunk_id),
                                min(args.train, len(train)))
        asked = questions_for(name, held_pick + train_pick, ws)

        ict_held = ict_queries(held, seed=args.seed, keep_sentence=0.0, limit=500)
        corpus = {p.chunk_id: (p.doc_id, p.embedding_text()) for p in held}
        beir_id = {d.id: source_to_id[d.source] for d in docs.values()}
        real_corpus = {cid: (beir_id[doc], text) for cid, (doc, text) in corpus.items()}
        held_beir = {doc for doc, _ in real_corpus.values()}
        qrels = {q: {d: r for d, r in rel.items() if d in held_beir and r > 0}
                 for q, rel in data.qrels.items()}
        qrels = {q: rel for q, rel in qrels.items() if rel}
        judges = {
            "ict": ({q.chunk_id: q.query for q in ict_held},
                    {q.chunk_id: {q.doc_id: 1} for q in ict_held}, held_out_corpus(held, ict_held)),
            "questions": ({p.chunk_id: asked[p.chunk_id] for p in held_pick if asked[p.chunk_id]},
                          {p.chunk_id: {p.doc_id: 1} for p in held_pick if asked[p.chunk_id]}, corpus),
            "real": ({q: data.queries[q] for q in qrels}, qrels, real_corpus)}

        vectors: dict[str, object] = {}

        def dense(q: str) -> list[str]:
            if q not in vectors:
                vectors[q] = base.embed_query(q)
            return [c for c, _ in ws.store.dense_ranking(vectors[q], 30, OPERATOR)]

        def lexical(q: str) -> list[str]:
            return [c for c, _ in ws.store.lexical_ranking(q, 30, OPERATOR)]

        n = args.steps * 16
        ict_train = ict_queries(train.values(), seed=args.seed, limit=n)
        written = [PseudoQuery(asked[p.chunk_id], p.chunk_id, p.doc_id, p.embedding_text())
                   for p in train_pick if asked[p.chunk_id]]
        models = {"packaged": base}
        trained = {"ict": ict_train, "questions": written[:n],
                   "half each": ict_train[: n // 2] + written[: n // 2]}
        for label, queries in trained.items():
            examples = mine_negatives(queries, [dense, lexical], train, seed=args.seed)
            folder = Path(tmp) / f"m-{label.replace(' ', '-')}"
            t0 = time.perf_counter()
            train_embedder(examples, folder, EmbedderTrainConfig(steps=args.steps, batch_size=16,
                                                                 seed=args.seed),
                           checkpoint=Path(tmp) / f"ck-{label.replace(' ', '-')}")
            print(f"  trained on {label}: {len(examples)} triples, {time.perf_counter() - t0:.0f} s",
                  file=sys.stderr, flush=True)
            models[label] = ws.local_embedder(str(folder.resolve()))
        rows = []
        for judge, (queries, rels, judged) in judges.items():
            before = dense_scores(base, queries, rels, judged)
            for label, model in models.items():
                if label == "packaged":
                    continue
                after = dense_scores(model, queries, rels, judged)
                qs = sorted(before["per_query"])
                _, lo, hi = paired_bootstrap([after["per_query"][q] for q in qs],
                                             [before["per_query"][q] for q in qs])
                rows.append({"set": name, "judge": judge, "queries": before["queries"],
                             "trained on": label, "before": before["ndcg@10"],
                             "after": after["ndcg@10"],
                             "gain": round(after["ndcg@10"] - before["ndcg@10"], 4),
                             "ci95": [round(lo, 4), round(hi, 4)]})
    return {"held_out_documents": len(split.held_out), "questions_written":
            sum(1 for p in held_pick + train_pick if asked[p.chunk_id]), "rows": rows}


def table(rows: list[dict]) -> list[str]:
    out = ["| set | judge (queries) | trained on | nDCG@10 packaged → adapted | gain (95% CI) |",
           "|---|---|---|---|---|"]
    for r in rows:
        out.append(f"| {r['set']} | {r['judge']} ({r['queries']}) | {r['trained on']} | "
                   f"{r['before']:.4f} → {r['after']:.4f} | {r['gain']:+.4f} "
                   f"({r['ci95'][0]:+.3f}, {r['ci95'][1]:+.3f}) |")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sets", default="cacm,cranfield,cisi")
    ap.add_argument("--held", type=int, default=150, help="held-out chunks to write a question for")
    ap.add_argument("--train", type=int, default=480, help="train chunks to write a question for")
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--held-out", type=float, default=0.3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "tune_queries.json"))
    args = ap.parse_args()
    results, rows = {}, []
    for name in args.sets.split(","):
        print(f"{name} ...", file=sys.stderr, flush=True)
        results[name] = run_set(name, args)
        rows += results[name]["rows"]
        print("\n".join(table(results[name]["rows"])), flush=True)
    command = "PYTHONPATH=src:bench .venv/bin/python bench/tune_queries.py " + " ".join(sys.argv[1:])
    print(f"\n{command}\n" + "\n".join(table(rows)))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"command": command, "results": results}, indent=2) + "\n")


if __name__ == "__main__":
    main()
