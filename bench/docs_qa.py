"""Real documentation: Typer's docs as a knowledge base, developer questions written blind.

    .venv/bin/python bench/docs_qa.py [--limit-dev 40] [--floors]

Corpus: fastapi/typer at commit 9a7b2e83f6b62c750d6026b0de9ebf2026a8b8fa (MIT licence), its
``docs/`` Markdown pages and ``docs_src/`` code (pulled into the pages by their ``{* *}``
include directives), copied under ``~/.cache/ragtune-bench/typer`` from a clone (see
bench/data/docs_qa.md). Questions: bench/data/typer_docs_questions.jsonl, written and
committed before the corpus was read (40 developer, 5 invented-API, 10 off-topic).

Grades (fixed before the first run, see typer_docs_questions.md): correct = the shown answer
contains a key phrase; partly = not refused, no key phrase, but a cited source holds one;
off-topic and invented-API questions should be refused; no sentence naming an invented API
may be marked supported. ``--floors`` prints the best dense similarity of in-scope and
off-topic questions on this corpus (no generation): evidence for retrieval.min_similarity.
Targets (issue 16): correct-or-partly >= 0.70, off-topic refusals >= 0.90, zero supported
invented APIs.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
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
    workspace,
    write_results,
)

COMMIT = "9a7b2e83f6b62c750d6026b0de9ebf2026a8b8fa"
QUESTIONS = ROOT / "bench" / "data" / "typer_docs_questions.jsonl"
INVENTED = {"inv01": "Spinner", "inv02": "middleware", "inv03": "secret", "inv04": "Table",
            "inv05": "set_theme"}


def prepare(data: Path, clone: Path | None, limit_dev: int | None) -> tuple[Path, Path]:
    site = data / "site"
    if not (site / "docs").is_dir():
        if clone is None:
            raise SystemExit(f"{site} is missing: pass --clone PATH (a git clone or mirror of "
                             f"github.com/fastapi/typer holding commit {COMMIT})")
        site.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(["git", "-C", str(clone), "archive", COMMIT, "docs", "docs_src"],
                                 check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(site)], input=archive, check=True)
        for p in site.rglob("*"):  # only the pages and the code they include
            if p.is_file() and p.suffix not in {".md", ".py"}:
                p.unlink()
    rows = [json.loads(x) for x in QUESTIONS.read_text().splitlines() if x.strip()]
    dev = [r for r in rows if r["id"].startswith("dev")][:limit_dev]
    rows = dev + [r for r in rows if not r["id"].startswith("dev")]
    evalset = data / f"eval-{len(dev)}.jsonl"
    evalset.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return site, evalset


def grade(records: list[dict[str, Any]]) -> dict[str, Any]:
    dev = [r for r in records if r["id"].startswith("dev")]
    off = [r for r in records if r["id"].startswith("off")]
    inv = [r for r in records if r["id"].startswith("inv")]
    grades = {}
    for r in dev:
        text = r["answer"].lower()
        keys = [k.lower() for k in r["references"]]
        cited = " ".join(c.get("quote", "") for c in r["citations"]).lower()
        if not r["refused"] and any(k in text for k in keys):
            grades[r["id"]] = "correct"
        elif not r["refused"] and any(k in cited for k in keys):
            grades[r["id"]] = "partly"
        else:
            grades[r["id"]] = "refused" if r["refused"] else "wrong"
    supported_invented = sum(
        1 for r in inv for s in r["sentences"]
        if s["supported"] and re.search(re.escape(INVENTED[r["id"]]), s["text"], re.IGNORECASE))
    lat = [r["timings"].get("total_s") for r in records if r["timings"].get("total_s") is not None]
    from ragtune.evaluate.qa_metrics import percentile

    return {
        "dev": len(dev),
        "correct": sum(g == "correct" for g in grades.values()) / max(1, len(dev)),
        "correct_or_partly": sum(g in {"correct", "partly"} for g in grades.values()) / max(1, len(dev)),
        "dev_refused": sum(g == "refused" for g in grades.values()) / max(1, len(dev)),
        "off_topic_refused": sum(r["refused"] for r in off) / max(1, len(off)),
        "off_topic_refused_before_generation": sum(
            any("refused without generation" in n for n in r["notes"]) for r in off) / max(1, len(off)),
        "invented_refused": sum(r["refused"] for r in inv) / max(1, len(inv)),
        "invented_api_supported_marks": supported_invented,
        "latency_p50_s": percentile(lat, 50), "latency_p95_s": percentile(lat, 95),
        "grades": grades,
    }


def floors(ws: Any) -> None:
    """Best dense cosine of each question (in scope vs off-topic): where a floor separates them."""
    rows = [json.loads(x) for x in QUESTIONS.read_text().splitlines() if x.strip()]
    by_kind: dict[str, list[float]] = {}
    for r in rows:
        best = ws.search(r["question"], k=5, mode="dense").best_similarity or 0.0
        by_kind.setdefault(r["id"][:3], []).append(best)
    for kind, values in by_kind.items():
        values.sort()
        print(f"{kind}: n={len(values)} min {values[0]:.3f} p10 {values[len(values) // 10]:.3f} "
              f"median {values[len(values) // 2]:.3f} max {values[-1]:.3f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clone", type=Path, default=None, help="git clone or mirror of fastapi/typer")
    ap.add_argument("--limit-dev", type=int, default=None, help="first N developer questions")
    ap.add_argument("--systems", default="rag")
    ap.add_argument("--set", action="append", default=[], help="AREA.KEY=VALUE override")
    ap.add_argument("--tag", default="default")
    ap.add_argument("--floors", action="store_true", help="only print similarity floors")
    ap.add_argument("--partial", action="store_true", help="grade the answers recorded so far")
    ap.add_argument("--regate", default="", help="re-check the recorded replies under gate "
                    "settings 'THRESHOLD,remove|flag,quote|refuse' (no model runs)")
    args = ap.parse_args()
    data = cache_dir("typer")
    site, evalset = prepare(data, args.clone, args.limit_dev)
    ws = workspace(data / "ws", site, parse_sets(args.set))
    if args.floors:
        floors(ws)
        return
    runs = (recorded(data, args.tag, args.systems.split(",")) if args.partial
            else run_systems(ws, evalset, args.systems.split(","), data, args.tag))
    if args.regate:
        runs = regated(ws, evalset, runs, args.regate)
    rows = [{"system": name, **grade(recs)} for name, recs in runs.items()]
    print(f"\nTyper docs ({COMMIT[:8]}), variant '{args.tag}' {args.set or ''}\n")
    print(table(rows, ["system", "dev", "correct", "correct_or_partly", "dev_refused",
                       "off_topic_refused", "off_topic_refused_before_generation",
                       "invented_refused", "invented_api_supported_marks", "latency_p50_s",
                       "latency_p95_s"]))
    for row in rows:
        print(f"\n{row['system']} grades: {row['grades']}")
    print(f"\nwritten {write_results(f'docs_qa-{args.tag}', {'overrides': args.set, 'systems': rows})}")


if __name__ == "__main__":
    main()
