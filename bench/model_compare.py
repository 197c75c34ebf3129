"""The packaged 0.5B vs the packaged 1.5B model: speed ratio and answers on the same questions.

    PYTHONPATH=src:bench .venv/bin/python bench/model_compare.py [--questions 6] [--threads 0]

Both models answer the same HotpotQA questions (bench/qa_public.py's workspace, which must
exist) in one process, one after the other per question, so both see the same machine load:
the speed figures are ratios against the 0.5B in the same run. Prints per model: prompt and
generation tokens/s, answer time, and contains-answer/refusals on these questions.
The 1.5B needs ``pip install 'ragtune[local-large]'`` (22 packages, 1.1 GB).
"""

from __future__ import annotations

import argparse
import statistics
import time

from qa_bench_lib import cache_dir, write_results

from ragtune.config import GenerationSettings
from ragtune.evaluate.evalset import load_evalset
from ragtune.evaluate.qa_metrics import contains_answer
from ragtune.generate.factory import make_generator
from ragtune.workspace import Workspace


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--questions", type=int, default=6)
    ap.add_argument("--unanswerable", type=int, default=2)
    ap.add_argument("--threads", type=int, default=0)
    args = ap.parse_args()
    data = cache_dir("hotpotqa")
    evalset = sorted(data.glob("eval-*.jsonl"))[-1]
    questions = load_evalset(evalset).questions
    chosen = [q for q in questions if q.answerable][: args.questions] + \
             [q for q in questions if not q.answerable][: args.unanswerable]
    models = {name: make_generator(GenerationSettings(model=name, threads=args.threads))
              for name in ("qwen2.5-0.5b", "qwen2.5-1.5b")}
    ws = Workspace.open(data / "ws")
    stats: dict[str, dict[str, list[float]]] = {m: {"prompt_tps": [], "gen_tps": [], "total_s": [],
                                                    "contains": [], "refused_answerable": [],
                                                    "refused_unanswerable": []} for m in models}
    for q in chosen:
        for name, gen in models.items():
            ws.generator = gen
            t = time.perf_counter()
            answer = ws.ask(q.question, origin="eval")
            total = time.perf_counter() - t
            done = gen.last_completion
            s = stats[name]
            if done and "first_token_s" in done.timings and done.prompt_tokens:
                s["prompt_tps"].append(done.prompt_tokens / max(1e-6, done.timings["first_token_s"]))
            if done and done.timings.get("tokens_per_s"):
                s["gen_tps"].append(done.timings["tokens_per_s"])
            s["total_s"].append(total)
            if q.answerable:
                s["contains"].append(0.0 if answer.refused else contains_answer(answer.text, q.answers))
                s["refused_answerable"].append(float(answer.refused))
            else:
                s["refused_unanswerable"].append(float(answer.refused))
            print(f"{name:13} {total:6.1f} s  {q.question[:50]!r} -> {answer.text[:100]!r}", flush=True)
    rows = {}
    for name, s in stats.items():
        rows[name] = {k: statistics.mean(v) if v else None for k, v in s.items()}
    base = rows["qwen2.5-0.5b"]
    print("\n| model | prompt tok/s | gen tok/s | answer s (mean) | ratio vs 0.5B | contains-answer | "
          "refused answerable | refused unanswerable |\n|---|---|---|---|---|---|---|---|")
    for name, r in rows.items():
        ratio = r["total_s"] / base["total_s"] if base["total_s"] else None
        print(f"| {name} | {r['prompt_tps']:.1f} | {r['gen_tps'] or 0:.1f} | {r['total_s']:.1f} | "
              f"{ratio:.2f} | {r['contains']:.2f} | {r['refused_answerable']:.2f} | "
              f"{r['refused_unanswerable'] if r['refused_unanswerable'] is not None else float('nan'):.2f} |")
    write_results("model_compare", {"questions": len(chosen), "models": rows})


if __name__ == "__main__":
    main()
