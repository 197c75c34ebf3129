"""RAFT vs style adapter vs base, all with RAG, on distractor-heavy contexts (issue 4).

    nice .venv/bin/python bench/raft_quality.py [--k 3] [--raft-steps 8] [--style-steps 8]
        [--max-length 896] [--lr 1e-3] [--max-eval N] [--systems base,style,raft] [--tag T] [--fresh]

The run reported for issue 4 (2-core shared CPU, ~11 min of RAFT training):
``--raft-steps 8 --style-steps 8 --max-length 896``.

1. Ingests the sample knowledge base (examples/kb, public documents; the real packaged
   MiniLM embedder) into a work folder (bench/results/raft_quality_work, reused by later
   runs unless --fresh).
2. ``build_raft`` with the sample eval questions (examples/eval/kb_eval.jsonl) as the
   question file, as the anonymous reader: the document split (``split_documents``, seed 0,
   20 % of documents held out) sends questions about training documents to the RAFT
   training file and questions about held-out documents to the eval file. Each eval
   context is the oracle chunk plus ``k`` distractors the live retriever ranked highest
   for the question (among held-out documents), in a shuffled order.
3. Trains two LoRA adapters on the packaged Qwen2.5-0.5B (CPU, capped steps, printed): the
   RAFT adapter on the RAFT training file, and a style adapter on
   examples/finetune/support_style.jsonl (a reused adapter is kept when its options match).
4. Generates greedily with ``HFGenerator`` (one base model, adapters switched in place) for
   base + RAG, style adapter + RAG and RAFT adapter + RAG on exactly the same prompts (the
   ``ragtune ask`` rag prompt), and scores the final answer (the text after "Answer:" when
   there is one, markers removed) against the reference answers: exact match and token F1
   (SQuAD), ``contains`` (a normalised reference occurs in the answer: fairer to answers that
   are correct but longer than the reference), citation correctness (the answer cites the
   oracle's number; precision = share of cited numbers that are the oracle), refusals, and
   for RAFT the share of replies whose ##begin_quote## spans are verbatim in the oracle.

Prints a table and writes bench/results/raft_quality.json. On a shared 2-core CPU one
training step over a RAFT example of ~600 tokens takes 20-70 s, so the adapters here are
small-budget adapters: read the numbers as "what a few minutes of CPU training buys".
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("RAGTUNE_CACHE", str(ROOT / ".cache" / "ragtune"))
WORK = ROOT / "bench" / "results" / "raft_quality_work"
BASE = "qwen2.5-0.5b"


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def workspace(fresh: bool):
    from ragtune.workspace import Workspace

    if fresh:
        shutil.rmtree(WORK, ignore_errors=True)
    if (WORK / "ws" / "ragtune.toml").exists():
        return Workspace.open(WORK / "ws")
    WORK.mkdir(parents=True, exist_ok=True)
    shutil.copytree(ROOT / "examples" / "kb", WORK / "kb", dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("restricted"))
    ws = Workspace.init(WORK / "ws")
    t = time.perf_counter()
    report = ws.ingest([WORK / "kb"])
    log(f"ingested {len(report.added)} documents ({report.chunks_written} chunks) in "
        f"{time.perf_counter() - t:.0f} s")
    return ws


def fits(path: Path, tokenizer, max_length: int, out: Path) -> tuple[int, int]:
    """Copy the examples of ``path`` that fit ``max_length`` tokens to ``out`` (a cut-off
    answer would teach the model to stop mid-quote); returns (kept, total)."""
    rows = [json.loads(x) for x in path.read_text().splitlines() if x.strip()]
    def n_tokens(messages: list[dict]) -> int:
        text = tokenizer.apply_chat_template(messages, tokenize=False)
        return len(tokenizer(text, add_special_tokens=False)["input_ids"])

    kept = [r for r in rows if n_tokens(r["messages"]) <= max_length]
    out.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in kept))
    return len(kept), len(rows)


def train(name: str, data: Path, steps: int, batch: int, max_length: int, lr: float,
          lineage: dict | None) -> dict:
    from ragtune.finetune.adapters import AdapterRegistry
    from ragtune.finetune.dataset import dataset_hash
    from ragtune.finetune.train import TrainConfig, train_adapter

    registry = AdapterRegistry(WORK / "adapters")
    config = TrainConfig(base_model=BASE, max_steps=steps, batch_size=batch, learning_rate=lr,
                         max_length=max_length, val_fraction=0.0, early_stopping_patience=0,
                         save_steps=10_000, eval_steps=10_000)
    folder = registry.path_for(name)
    run_file = folder / "run.json"
    if run_file.exists():
        run = json.loads(run_file.read_text())
        if run["config"] == config.to_dict() and run["dataset"]["hash"] == dataset_hash(data):
            log(f"reusing adapter {name} ({run['steps']} steps, {run['train_time_s']:.0f} s)")
            return run
        shutil.rmtree(folder)
    shutil.rmtree(folder.with_name(folder.name + ".partial"), ignore_errors=True)
    log(f"training {name}: {steps} steps x {batch} examples, lr {lr}, max_length {max_length}")

    def on_step(step, total, loss, tps, eta):
        log(f"  {name} step {step}/{total} loss {loss:.3f} ({tps:.0f} tok/s, ETA {eta:.0f} s)")

    run = train_adapter(config, data, folder, on_step=on_step, lineage=lineage).run
    log(f"trained {name} in {run['train_time_s']:.0f} s; loss {run['loss_curve'][0][1]:.3f} -> "
        f"{run['loss_curve'][-1][1]:.3f}")
    return run


def score(text: str, meta: dict, hits: list) -> dict:
    from ragtune.finetune.raft_quotes import final_answer, quotes_in
    from ragtune.generate.citations import (
        attribute_uncited,
        is_refusal,
        parse_markers,
        strip_markers,
    )
    from ragtune.textmatch import exact_match, normalize_answer, token_f1

    final = final_answer(text)
    answer = strip_markers(final).strip()
    refs = meta["answers"]
    cited = parse_markers(final)
    n = meta["oracle_n"]
    norm = normalize_answer(answer)
    quotes = quotes_in(text)
    # what `ragtune ask` would show: uncited sentences attributed to a supporting source
    served = parse_markers(attribute_uncited(final, hits)[0]) if not is_refusal(final) else ()
    return {
        "em": exact_match(answer, refs), "f1": token_f1(answer, refs),
        "contains": float(any(normalize_answer(r) and normalize_answer(r) in norm for r in refs)),
        "cites_oracle": float(n in cited),
        "citation_precision": (sum(c == n for c in cited) / len(cited)) if cited else 0.0,
        "cites_anything": float(bool(cited)), "refused": float(is_refusal(text)),
        "served_cites_oracle": float(n in served),
        "quoted": float(bool(quotes)), "quotes_verbatim": float(bool(quotes) and all(
            q and q in meta["oracle_text"] for q in quotes)),
    }


KEYS = ["em", "f1", "contains", "cites_oracle", "served_cites_oracle", "citation_precision",
        "refused", "quotes_verbatim"]


def summarise(results: dict[str, list[dict]], gen_s: dict[str, float]) -> dict[str, dict]:
    return {s: {k: round(statistics.mean(r[k] for r in res), 3) for k in KEYS}
            | {"mean_generate_s": round(gen_s.get(s, 0.0) / max(1, len(res)), 1)}
            for s, res in results.items()}


def print_table(summary: dict[str, dict], questions: int, documents: int, k: int) -> None:
    print(f"\n{questions} eval questions on {documents} held-out documents, oracle + {k} "
          "retrieved distractors each")
    short = {"served_cites_oracle": "served_cite", "citation_precision": "cite_prec",
             "cites_oracle": "cites_oracle", "quotes_verbatim": "quotes_ok"}
    print(f"{'system':22}" + "".join(f"{short.get(k, k):>13}" for k in KEYS))
    for s, m in summary.items():
        print(f"{s:22}" + "".join(f"{m[k]:13.3f}" for k in KEYS))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--k", type=int, default=3, help="distractors per context")
    ap.add_argument("--raft-steps", type=int, default=8)
    ap.add_argument("--style-steps", type=int, default=8)
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--max-length", type=int, default=896)
    ap.add_argument("--max-eval", type=int, default=None, help="score at most N eval questions")
    ap.add_argument("--max-tokens", type=int, default=128)
    ap.add_argument("--fresh", action="store_true", help="rebuild the workspace and adapters")
    ap.add_argument("--systems", default="base,style,raft",
                    help="which of base, style, raft to score (e.g. only raft after retraining it)")
    ap.add_argument("--tag", default="", help="results go to raft_quality[-TAG].json")
    ap.add_argument("--rescore", type=Path, default=None,
                    help="re-score the replies saved in this results file (no generation)")
    args = ap.parse_args()
    started = time.perf_counter()

    from ragtune.finetune.hf_generator import HFGenerator
    from ragtune.finetune.raft import build_raft, load_questions, training_lineage

    ws = workspace(args.fresh)
    principal = ws.principal(None)
    data = WORK / "data"
    report = build_raft(ws.store, ws.retriever, principal,
                        load_questions(ROOT / "examples" / "eval" / "kb_eval.jsonl"),
                        out_train=data / "raft_train.jsonl", out_eval=data / "raft_eval.jsonl",
                        k=args.k, p=0.8, seed=0, eval_fraction=0.2,
                        questions_from="examples/eval/kb_eval.jsonl")
    log(f"RAFT build: {report.train_examples} train ({report.with_oracle} with the oracle), "
        f"{report.eval_examples} eval examples; dropped {report.dropped}; "
        f"{len(report.train_documents)} train / {len(report.eval_documents)} eval documents")

    rows = [json.loads(x) for x in (data / "raft_eval.jsonl").read_text().splitlines()]
    rows = rows[: args.max_eval] if args.max_eval else rows
    chunks = {c.id: c for c in ws.store.iter_chunks()}
    docs = {d.id: d for d in ws.store.list_documents(None)}

    def prompt_hits(meta: dict) -> list:
        from ragtune.types import Hit

        return [Hit(chunks[c], 0.0, docs[chunks[c].doc_id].source, docs[chunks[c].doc_id].title)
                for c in meta["sources"]]

    if args.rescore:  # score saved replies again (new metrics) without generating
        saved = json.loads(args.rescore.read_text())
        by_id = {r["metadata"]["question_id"]: r for r in rows}
        saved["per_question"] = {
            s: [score(r["reply"], by_id[r["id"]]["metadata"] | {
                "oracle_text": chunks[by_id[r["id"]]["metadata"]["chunk_id"]].text},
                prompt_hits(by_id[r["id"]]["metadata"])) | {"id": r["id"], "reply": r["reply"]}
                for r in res] for s, res in saved["per_question"].items()}
        saved["summary"] = summarise(saved["per_question"], {s: v.get("mean_generate_s", 0.0) * len(
            saved["per_question"][s]) for s, v in saved["summary"].items()})
        print_table(saved["summary"], len(rows), len(report.eval_documents), args.k)
        args.rescore.write_text(json.dumps(saved, indent=2))
        return
    gen = HFGenerator(BASE, adapters_root=WORK / "adapters", max_tokens=args.max_tokens)
    tok = gen.tokenizer
    kept, total = fits(data / "raft_train.jsonl", tok, args.max_length, data / "raft_train_fit.jsonl")
    log(f"{kept} of {total} RAFT training examples fit {args.max_length} tokens")
    lineage = training_lineage(data / "raft_train.jsonl")
    wanted = {s.strip() for s in args.systems.split(",") if s.strip()}
    runs = {}
    if "raft" in wanted:
        runs["raft"] = train("raft", data / "raft_train_fit.jsonl", args.raft_steps, args.batch,
                             args.max_length, args.lr, lineage)
    if "style" in wanted:
        runs["style"] = train("style", ROOT / "examples" / "finetune" / "support_style.jsonl",
                              args.style_steps, args.batch, 256, args.lr, None)

    systems = {name: adapter for name, adapter, key in (
        ("base + RAG", None, "base"), ("style adapter + RAG", "style", "style"),
        ("RAFT adapter + RAG", "raft", "raft")) if key in wanted}
    results: dict[str, list[dict]] = {s: [] for s in systems}
    gen_s: dict[str, float] = {s: 0.0 for s in systems}
    for i, row in enumerate(rows, 1):
        meta = row["metadata"] | {"oracle_text": chunks[row["metadata"]["chunk_id"]].text}
        for system, adapter in systems.items():
            gen.use_adapter(adapter)
            t = time.perf_counter()
            text = gen.complete(row["messages"][:-1]).text
            gen_s[system] += time.perf_counter() - t
            results[system].append(score(text, meta, prompt_hits(meta))
                                   | {"id": meta["question_id"], "reply": text})
        log(f"eval {i}/{len(rows)}: {meta['question']!r} (oracle [{meta['oracle_n']}] of "
            f"{len(meta['sources'])}) -> " + " | ".join(
                f"{s.split()[0]}: {r[-1]['reply'][:70]!r}" for s, r in results.items()))

    summary = summarise(results, gen_s)
    print_table(summary, len(rows), len(report.eval_documents), args.k)
    for name, run in runs.items():
        print(f"{name} adapter: {run['steps']} steps x {args.batch} examples "
              f"({run['dataset']['examples']} in the file), {run['train_time_s']:.0f} s of training, "
              f"loss {run['loss_curve'][0][1]:.3f} -> {run['loss_curve'][-1][1]:.3f}")
    out = {
        "k": args.k, "eval_questions": len(rows), "build": report.to_dict(),
        "raft_training_examples_fit": [kept, total], "summary": summary,
        "training": {n: {key: r.get(key) for key in ("steps", "train_time_s", "loss_curve",
                                                      "train_tokens_per_s", "config")}
                     for n, r in runs.items()},
        "per_question": results, "wall_s": round(time.perf_counter() - started, 1),
        "measured_at": time.time(),
    }
    name = f"raft_quality{'-' + args.tag if args.tag else ''}.json"
    (ROOT / "bench" / "results" / name).write_text(json.dumps(out, indent=2))
    log(f"done in {out['wall_s']:.0f} s; bench/results/{name}")


if __name__ == "__main__":
    sys.exit(main())
