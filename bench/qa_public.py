"""Public QA benchmark: HotpotQA paragraphs as documents, base vs rag, answer quality.

    .venv/bin/python bench/qa_public.py [--systems base,rag] [--limit N] [--set answer.unsupported=flag]

Data and provenance: bench/data/qa_public.md (HotpotQA dev distractor, 53 questions, CC
BY-SA 4.0, sha256-checked; 10 unanswerable controls of our own). The 521 paragraphs become
Markdown documents in a workspace under ``~/.cache/ragtune-bench/hotpotqa`` (real MiniLM,
real packaged Qwen by default). Answers are cached per settings, so a re-run is cheap.

Prints per system: contains-answer (all answerable; and where retrieval put the paragraph
holding the answer into the prompt), token F1, groundedness, unsupported-claim rate, correct
and false refusals, latency p50/p95, plus what the claim gate removed or quoted.
Targets (issue 16): contains-answer >= 0.75 where retrieval found the passage, unsupported
claims <= 0.05, correct refusals >= 0.90 with false refusals <= 0.02, answer p95 <= 8 s.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path
from typing import Any

from qa_bench_lib import (
    ROOT,
    cache_dir,
    parse_sets,
    recorded,
    regated,
    run_systems,
    table,
    verified,
    workspace,
    write_results,
)

from ragtune.evaluate import qa_metrics as m
from ragtune.textmatch import normalize_answer

SHA256 = "c93b6c16f74eb19be3f549d7f99dd6976f8acdf4da747ebf521e638ef42c06cd"
HOW = ("Get it as bench/data/qa_public.md says: git show "
       "077eab2e2b7c8e81a7d7baaea8d22f4f13f9ad3f:hotpot_dev_distractor_v1.json from a clone of "
       "github.com/Rakin061/hotpot.")


def load_hotpot(path: Path) -> list[dict[str, Any]]:
    """The complete records of the (truncated) stored JSON array, in order."""
    text = path.read_text(encoding="utf-8")
    dec, i, out = json.JSONDecoder(), text.index("[") + 1, []
    while True:
        try:
            obj, i = dec.raw_decode(text, i)
        except json.JSONDecodeError:
            return out
        out.append(obj)
        while i < len(text) and text[i] in ", \n":
            i += 1


def slug(title: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", title).strip("_")[:80] + ".md"


def prepare(data: Path, limit: int | None) -> tuple[Path, Path, dict[str, str]]:
    """Write the corpus (one Markdown file per paragraph) and the eval set; returns their
    paths and, per question id, the document that holds the answer string (if any)."""
    records = load_hotpot(verified(data / "hotpot_dev_distractor_v1.json", SHA256, HOW))
    records = records[:limit] if limit else records
    corpus = data / "corpus"
    corpus.mkdir(exist_ok=True)
    paragraphs: dict[str, str] = {}
    for r in records:
        for title, sentences in r["context"]:
            paragraphs.setdefault(title, "".join(sentences).strip())
    for title, text in paragraphs.items():
        target = corpus / slug(title)
        body = f"# {title}\n\n{text}\n"
        if not target.exists() or target.read_text(encoding="utf-8") != body:
            target.write_text(body, encoding="utf-8")
    holder: dict[str, str] = {}
    rows = []
    for r in records:
        gold = sorted({t for t, _ in r["supporting_facts"]})
        for t in gold:
            if normalize_answer(r["answer"]) in normalize_answer(paragraphs.get(t, "")):
                holder[r["_id"]] = slug(t)
        rows.append({"id": r["_id"], "question": r["question"], "answers": [r["answer"]],
                     "sources": [slug(t) for t in gold], "answerable": True,
                     "tags": [r["type"]]})
    for line in (ROOT / "bench/data/qa_public_controls.jsonl").read_text().splitlines():
        c = json.loads(line)
        rows.append({"id": c["id"], "question": c["question"], "answers": [], "sources": [],
                     "answerable": False, "tags": [c["kind"]]})
    evalset = data / f"eval-{len(records)}.jsonl"
    evalset.write_text("".join(json.dumps(x) + "\n" for x in rows), encoding="utf-8")
    return corpus, evalset, holder


def summarise(records: list[dict[str, Any]], holder: dict[str, str]) -> dict[str, Any]:
    agg = m.aggregate(records, k=5)
    found = [r for r in records if r["answerable"] and holder.get(r["id"])
             and any(h["document"].endswith("/" + holder[r["id"]]) for h in r["retrieved"])]
    agg["answer_in_prompt"] = len(found)
    agg["contains_answer_found"] = m.mean(r["scores"].get("contains_answer") for r in found)
    notes = [n for r in records for n in r.get("notes", [])]
    agg["fallback_quotes"] = sum("extractive fallback" in n for n in notes)
    agg["answers_with_removed"] = sum(any("no source supports were not shown" in n for n in r.get("notes", []))
                                      for r in records)
    return agg


COLUMNS = ["system", "questions", "contains_answer", "contains_answer_found", "answer_in_prompt",
           "token_f1", "groundedness", "unsupported_claims_rate", "correct_refusal_rate",
           "false_refusal_rate", "latency_p50_s", "latency_p95_s", "fallback_quotes",
           "answers_with_removed"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--systems", default="base,rag")
    ap.add_argument("--limit", type=int, default=None, help="first N HotpotQA questions")
    ap.add_argument("--set", action="append", default=[], help="AREA.KEY=VALUE override")
    ap.add_argument("--tag", default="default", help="name of this settings variant")
    ap.add_argument("--partial", action="store_true", help="summarise the answers recorded so "
                    "far for --tag (no model runs)")
    ap.add_argument("--regate", default="", help="re-check the recorded replies of --tag under "
                    "gate settings 'THRESHOLD,remove|flag,quote|refuse' (no model runs)")
    args = ap.parse_args()
    data = cache_dir("hotpotqa")
    corpus, evalset, holder = prepare(data, args.limit)
    ws = workspace(data / "ws", corpus, parse_sets(args.set))
    runs = (recorded(data, args.tag, args.systems.split(",")) if args.partial
            else run_systems(ws, evalset, args.systems.split(","), data, args.tag))
    if args.regate:
        runs = regated(ws, evalset, runs, args.regate)
    rows = [{"system": name, **summarise(recs, holder)} for name, recs in runs.items()]
    print(f"\nHotpotQA dev (first {args.limit or 53}) + 10 unanswerable controls"
          f"{' (answered so far)' if args.partial else ''}; variant "
          f"'{args.tag}' {args.set or ''}; model {ws.settings.generation.model}, "
          f"source_tokens {ws.settings.generation.source_tokens}\n")
    print(table(rows, COLUMNS))
    name = f"qa_public-{args.tag}" + (f"-regate-{args.regate.replace(',', '-')}" if args.regate else "")
    path = write_results(name, {"variant": args.tag, "overrides": args.set, "regate": args.regate,
                                "systems": rows})
    print(f"\nwritten {path}")


if __name__ == "__main__":
    main()
