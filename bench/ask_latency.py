"""`ask` latency on the sample knowledge base with the real packaged models.

Ingests examples/kb into a fresh workspace (real MiniLM), then asks eval questions with
the real Qwen2.5-0.5B on llama.cpp, timing the first streamed token and the full answer.
Peak RSS is the whole process (embedder + generator + store).

    .venv/bin/python bench/ask_latency.py [--questions 10]

Targets (issue 2): first token <= 5 s and full answer <= 15 s median, peak RSS <= 3 GB.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import tempfile
import time
from pathlib import Path

from ragtune.workspace import Workspace

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--questions", type=int, default=10)
    args = ap.parse_args()
    rows = [json.loads(x) for x in (ROOT / "examples/eval/kb_eval.jsonl").read_text().splitlines() if x.strip()]
    qs = [r["question"] for r in rows if r["answerable"] and "restricted" not in r.get("tags", [])]
    qs = qs[:: max(1, len(qs) // args.questions)][: args.questions]
    ws = Workspace.init(Path(tempfile.mkdtemp()) / "ws")
    t = time.perf_counter()
    ws.ingest([ROOT / "examples" / "kb"])
    ingest_s = time.perf_counter() - t
    t = time.perf_counter()
    ws.generator  # noqa: B018 — load the model once, outside the timings
    load_s = time.perf_counter() - t
    first, total, tokens = [], [], []
    for q in qs:
        answer = ws.ask(q)
        tm = answer.trace.timings
        if not answer.refused or "first_token_s" in tm:
            first.append(tm.get("first_token_s", tm["total_s"]))
        total.append(tm["total_s"])
        tokens.append(answer.trace.tokens.get("completion", 0))
        print(f"{tm['total_s']:5.1f} s  {q[:60]!r} -> {answer.text[:80]!r}")
    rss_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 / 1024
    out = {
        "questions": len(qs), "ingest_s": ingest_s, "model_load_s": load_s,
        "first_token_median_s": statistics.median(first) if first else None,
        "total_median_s": statistics.median(total), "total_max_s": max(total),
        "completion_tokens_median": statistics.median(tokens), "peak_rss_gb": rss_gb,
    }
    print(f"\nmedian first token {out['first_token_median_s']:.2f} s (target <= 5), "
          f"median answer {out['total_median_s']:.2f} s (target <= 15), "
          f"peak RSS {rss_gb:.2f} GB (target <= 3); model load {load_s:.1f} s, ingest {ingest_s:.0f} s")
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "ask_latency.json").write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
