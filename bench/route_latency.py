"""Intent routing: training time, accuracy, and the latency routing adds to a question.

Trains a router on ``examples/intents/intents.jsonl`` with the defaults (or loads one with
``--router DIR``), then:

- validation accuracy / macro-F1 (the stratified split held out of training);
- accuracy on ``examples/intents/intents_heldout.jsonl`` (70 questions written apart from
  the training set, 10 per label), and at ``--min-confidence`` the share of questions
  routed (coverage) and the accuracy of those routed (the rest fall back to retrieval
  over every readable collection, which is safe, not wrong);
- latency of ``router.predict`` and of the whole ``policy.decide`` (classifier + the
  store's ACL lookup) on ~200 questions (intents, held-out and the eval questions), one at
  a time as they arrive, after a warm-up; p50 / p95 / mean in ms.

    .venv/bin/python bench/route_latency.py [--steps 20] [--fp32] [--threads 1|2|0]
    .venv/bin/python bench/route_latency.py --router .ragtune/routers/intents

Writes bench/results/route_latency.json. Pin it to 2 cores (``taskset -c 0,1``) to match
the target machine; on a shared machine the load average is recorded beside the numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from ragtune.config import RoutingSettings
from ragtune.route.data import load_intents, score
from ragtune.route.model import IntentRouter, RouterTrainConfig
from ragtune.route.policy import decide
from ragtune.types import Principal

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
RESULTS = ROOT / "bench" / "results"
ROUTES = {"policy": ["policies", "shipping"]}


def questions(n: int) -> list[str]:
    qs = [e.text for e in load_intents(EXAMPLES / "intents" / "intents.jsonl")]
    qs += [e.text for e in load_intents(EXAMPLES / "intents" / "intents_heldout.jsonl")]
    for line in (EXAMPLES / "eval" / "kb_eval.jsonl").read_text().splitlines():
        if line.strip():
            qs.append(json.loads(line)["question"])
    return qs[:n]


def percentiles(ms: list[float]) -> dict[str, float]:
    ms = sorted(ms)
    return {"p50_ms": round(statistics.median(ms), 2),
            "p95_ms": round(ms[min(len(ms) - 1, int(0.95 * len(ms)))], 2),
            "mean_ms": round(statistics.fmean(ms), 2), "n": len(ms)}


def timed(fn, items: list[str], warmup: int = 10) -> dict[str, float]:
    """Wall-clock percentiles, plus the median CPU time of this process per call: on a
    shared machine the wall clock includes waiting for a core, the CPU time does not
    (with one thread it is what an idle core would take)."""
    for q in items[:warmup]:
        fn(q)
    ms, cpu = [], []
    for q in items:
        t, c = time.perf_counter(), time.process_time()
        fn(q)
        ms.append((time.perf_counter() - t) * 1000)
        cpu.append((time.process_time() - c) * 1000)
    return {**percentiles(ms), "cpu_p50_ms": round(statistics.median(cpu), 2)}


def heldout_scores(router: IntentRouter, min_confidence: float) -> dict[str, float]:
    held = load_intents(EXAMPLES / "intents" / "intents_heldout.jsonl")
    preds = router.predict_many([e.text for e in held])
    s = score(router.labels, [e.label for e in held], [p[0] for p in preds])
    routed = [(e, p) for e, p in zip(held, preds, strict=True) if p[1] >= min_confidence]
    return {"accuracy": s["accuracy"], "macro_f1": s["macro_f1"], "examples": len(held),
            "mean_confidence": round(statistics.fmean(p[1] for p in preds), 3),
            "coverage": round(len(routed) / len(held), 3),
            "routed_accuracy": round(sum(e.label == p[0] for e, p in routed) / max(1, len(routed)), 3)}


def workspace_store(tmp: Path):
    """The sample knowledge base in a fake-embedder workspace (restricted/ for group hr)."""
    from ragtune.workspace import Workspace

    ws = Workspace.init(tmp / "ws", overrides={"embedding": {"backend": "fake"},
                                               "generation": {"backend": "fake"}})
    kb = EXAMPLES / "kb"
    for folder in ("policies", "shipping", "manuals", "it", "hr", "expenses"):
        ws.ingest([kb / folder], collection=folder)
    ws.ingest([kb / "restricted"], collection="hr-restricted", groups=["hr"])
    return ws.store


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--router", type=Path, help="Load this router folder instead of training.")
    ap.add_argument("--steps", type=int, default=RouterTrainConfig.steps)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--fp32", action="store_true", help="fp32 ONNX body instead of int8.")
    ap.add_argument("--threads", type=int, default=1, help="ONNX Runtime threads (0 = all cores).")
    ap.add_argument("--n", type=int, default=200, help="Questions timed.")
    ap.add_argument("--min-confidence", type=float, default=RoutingSettings.min_confidence)
    ap.add_argument("--out", type=Path, default=RESULTS / "route_latency.json")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="route-bench-") as tmp:
        run(args, Path(tmp))


def run(args: argparse.Namespace, tmp: Path) -> None:
    load_before = os.getloadavg()[0]
    result: dict = {"cores": len(os.sched_getaffinity(0)), "threads": args.threads}
    if args.router:
        folder = args.router
        result["training"] = json.loads((folder / "router.json").read_text()).get("training")
    else:
        config = replace(RouterTrainConfig(), steps=args.steps, quantize=not args.fp32)
        examples = load_intents(EXAMPLES / "intents" / "intents.jsonl")
        t = time.perf_counter()
        router, report = IntentRouter.train(examples, seed=args.seed, config=config)
        train_s = time.perf_counter() - t
        folder = router.save(tmp / "router")
        result["training"] = {**report["training"], "wall_s": round(train_s, 1)}
        result["validation"] = {k: report["metrics"][k] for k in ("accuracy", "macro_f1", "examples")}
        result["confusion"] = report["metrics"]["confusion"]
        print(f"trained in {train_s:.1f} s (fine-tune {report['training']['fine_tune_s']} s, "
              f"export {report['training']['export_s']} s); validation accuracy "
              f"{report['metrics']['accuracy']:.3f}, macro-F1 {report['metrics']['macro_f1']:.3f} "
              f"on {report['metrics']['examples']}")
    t = time.perf_counter()
    router = IntentRouter.load(folder, threads=args.threads or None)
    result["load_s"] = round(time.perf_counter() - t, 2)
    result["runtime"] = router.runtime
    result["quantize"] = bool(router.info.get("quantize"))
    result["heldout"] = heldout_scores(router, args.min_confidence)
    h = result["heldout"]
    print(f"held-out accuracy {h['accuracy']:.3f}, macro-F1 {h['macro_f1']:.3f} on "
          f"{h['examples']}; at min_confidence {args.min_confidence}: coverage {h['coverage']:.2f}, "
          f"routed accuracy {h['routed_accuracy']:.3f}")

    qs = questions(args.n)
    result["predict"] = timed(router.predict, qs)
    store = workspace_store(tmp)
    routing = RoutingSettings(router="bench", routes=ROUTES, min_confidence=args.min_confidence)
    anonymous = Principal.anonymous()
    result["decide"] = timed(lambda q: decide(router, q, routing=routing, principal=anonymous,
                                              store=store), qs)
    result["load_average"] = [round(load_before, 2), round(os.getloadavg()[0], 2)]
    print(f"{'':10}{'p50 ms':>9}{'p95 ms':>9}{'mean ms':>9}{'CPU p50':>9}   ({len(qs)} questions, "
          f"{router.runtime}{' int8' if result['quantize'] else ' fp32'}, "
          f"{args.threads or 'all'} thread(s), {result['cores']} cores)")
    for name in ("predict", "decide"):
        r = result[name]
        print(f"{name:10}{r['p50_ms']:>9.2f}{r['p95_ms']:>9.2f}{r['mean_ms']:>9.2f}"
              f"{r['cpu_p50_ms']:>9.2f}")
    print(f"load average before/after: {result['load_average']}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
