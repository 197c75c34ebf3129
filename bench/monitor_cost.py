"""What monitoring costs: recording each answer, and ``ragtune monitor`` over 100k records.

1. **Recording**: the same questions answered on the sample knowledge base (fake embedder and
   generator, so the pipeline itself takes about a millisecond and the sink's share shows),
   alternately with the trace sink off and with the workspace's store sink on (a real
   SQLite file in WAL mode). Prints the median answer time of both, their difference and
   ratio, and the median time of the sink's ``record`` alone. Target: under 2 ms per answer.
2. **Reporting**: 100k synthetic answer records over 14 days, cloned from real records of
   that pipeline (answerable, below the floor, unsupported claims, hybrid routes, stale
   adapter; question vectors with noise; 5% rated), then ``ragtune monitor --since 7d
   --json`` run as a user would (a subprocess). The reference in the same run is reading
   the same records' summaries (SQL + JSON). Target: under 10 s on 2 cores. Wall time on
   a shared machine says more about its load than about ragtune, so CPU seconds (user +
   system) of the subprocess are printed beside it, with the load average.

    .venv/bin/python bench/monitor_cost.py [--records 100000] [--answers 300]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
sys.path.insert(0, str(ROOT))

FAKE = {"embedding": {"backend": "fake"}, "generation": {"backend": "fake"},
        "retrieval": {"min_similarity": 0.15},
        "access": {"users": {"ana": ["hr"]}, "admins": ["ops"]}}


def workspace(base: Path):
    from ragtune.workspace import Workspace

    ws = Workspace.init(base / "ws", overrides=FAKE)
    for name in ("policies", "shipping", "manuals", "it", "hr", "expenses"):
        ws.ingest([ROOT / "examples" / "kb" / name], collection=name)
    return ws


def questions() -> list[str]:
    rows = [json.loads(x) for x in (ROOT / "examples/eval/kb_eval.jsonl").read_text().splitlines()
            if x.strip()]
    return [r["question"] for r in rows]


def recording_cost(ws, n: int) -> dict[str, float]:
    from ragtune.answer.traces import StoreTraceSink

    qs = questions()
    answerer = ws.answerer
    sink = StoreTraceSink(ws.store)
    plain, recorded, sink_only = [], [], []
    plain_cpu, recorded_cpu = [], []  # CPU seconds: what a loaded shared machine distorts least
    for q in qs[:10]:  # warm caches (search index, imports)
        answerer.ask(q, ws.principal("ana"))
    for i in range(n):
        q = qs[i % len(qs)]
        for with_sink in ((False, True) if i % 2 else (True, False)):
            answerer.sink = sink if with_sink else None
            c, t = time.process_time(), time.perf_counter()
            answer = answerer.ask(q, ws.principal("ana"))
            (recorded if with_sink else plain).append(time.perf_counter() - t)
            (recorded_cpu if with_sink else plain_cpu).append(time.process_time() - c)
        answer.trace.id = uuid.uuid4().hex  # a new record of the same answer
        t = time.perf_counter()
        sink.record(answer)
        sink_only.append(time.perf_counter() - t)
    p, r = statistics.median(plain), statistics.median(recorded)
    pc, rc = statistics.median(plain_cpu), statistics.median(recorded_cpu)
    return {"answers": n, "plain_median_ms": p * 1e3, "recorded_median_ms": r * 1e3,
            "difference_ms": (r - p) * 1e3, "ratio": r / p,
            "plain_cpu_median_ms": pc * 1e3, "recorded_cpu_median_ms": rc * 1e3,
            "difference_cpu_ms": (rc - pc) * 1e3,
            "sink_record_median_ms": statistics.median(sink_only) * 1e3,
            "sink_record_p95_ms": float(np.percentile(sink_only, 95)) * 1e3}


def seed_records(ws) -> list:
    """Real records of every kind, from the pipeline, to clone."""
    from ragtune.generate.fake import FakeGenerator, default_reply
    from ragtune.types import Route
    from tests.evaluate.conftest import add_adapter

    def reply(messages):
        q = messages[-1]["content"].split("Question:")[-1].lower()
        return "It lasts ninety-nine years on the moon [1]." if "warranty" in q else default_reply(messages)

    ws.generator = FakeGenerator(reply=reply)
    add_adapter(ws, "style", trained_on=(str((ROOT / "examples/kb/policies/returns-policy.md").resolve()),))
    ws.adapters.generator = lambda adapter: FakeGenerator(name="fake-style")
    ws.routing = lambda q, p: (Route("it", "knowledge", 0.9, ("it",), "bench") if "password" in q.lower()
                               else Route("policy", "knowledge", 0.9, ("policies",), "bench"))
    ws.store.purge_traces(time.time() + 1)
    for q in questions():
        ws.ask(q, "ana")
    for q in ["zorblax flurb quux", "quux blorp zorblax", "flurb quux"]:
        ws.ask(q, "ana")
    for q in questions()[:30]:
        ws.ask(q, "ana", mode="hybrid", adapter="style")
    return ws.store.traces()


def build_records(ws, n: int, rng: np.random.Generator) -> float:
    """Append ``n`` records cloned from real ones over 14 days; returns seconds taken."""
    seeds = seed_records(ws)
    ws.store.purge_traces(time.time() + 1)
    now = time.time()
    ts = np.sort(now - rng.random(n) * 14 * 86400)
    users = [f"user{i}" for i in range(200)]
    t = time.perf_counter()
    for i in range(n):
        s = seeds[int(rng.integers(len(seeds)))]
        vector = None
        if s.vector is not None:
            v = s.vector + rng.normal(scale=0.05, size=s.vector.shape).astype(np.float32)
            vector = v / np.linalg.norm(v)
        ws.store.append_trace(replace(s, id=f"r{i:06d}", ts=float(ts[i]),
                                      principal=users[int(rng.integers(len(users)))],
                                      vector=vector))
    append_s = time.perf_counter() - t
    db = ws.store._db  # bench only: feedback on 5% of the records, in one transaction
    rows = [(f"r{i:06d}", float(ts[i]) + 60, "user0", int(rng.choice([-1, 1])), "")
            for i in rng.choice(n, n // 20, replace=False)]
    db.execute("BEGIN")
    db.executemany("INSERT INTO feedback (trace_id, ts, principal, rating, comment) "
                   "VALUES (?,?,?,?,?)", rows)
    db.execute("COMMIT")
    return append_s


def read_reference(ws) -> float:
    """The plain reference: read every summary of the last 14 days (SQL + JSON)."""
    t = time.perf_counter()
    rows = ws.store._db.execute("SELECT summary FROM traces WHERE ts >= ?",
                                (time.time() - 14 * 86400,)).fetchall()
    [json.loads(r[0]) for r in rows]
    return time.perf_counter() - t


def child_seconds() -> float:
    """CPU seconds (user + system) of the finished child processes so far."""
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def run_monitor(ws, runs: int = 3) -> tuple[list[float], list[float], dict]:
    """``ragtune monitor --since 7d --json --as ops`` (an admin: every record) as a
    subprocess: wall and CPU seconds per run."""
    env = dict(os.environ, RAGTUNE_HOME=str(ws.root), PYTHONPATH=str(ROOT / "src"))
    cmd = [sys.executable, "-m", "ragtune.cli", "monitor", "--since", "7d", "--json", "--as", "ops"]
    wall, cpu = [], []
    for _ in range(runs):
        c, t = child_seconds(), time.perf_counter()
        p = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
        wall.append(time.perf_counter() - t)
        cpu.append(child_seconds() - c)
    return wall, cpu, json.loads(p.stdout)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=100_000)
    ap.add_argument("--answers", type=int, default=300)
    ap.add_argument("--keep", type=Path, help="build the workspace here and reuse it next time")
    args = ap.parse_args()
    base = args.keep or Path(tempfile.mkdtemp(prefix="ragtune-monitor-bench-"))
    built = base / f"records-{args.records}"
    try:
        if built.exists():
            from ragtune.workspace import Workspace

            ws, rec, append_s = Workspace.open(base / "ws"), None, None
        else:
            shutil.rmtree(base / "ws", ignore_errors=True)
            ws = workspace(base)
            rec = recording_cost(ws, args.answers)
            print(f"recording: answer {rec['plain_median_ms']:.2f} ms without the sink, "
                  f"{rec['recorded_median_ms']:.2f} ms with it: {rec['difference_ms']:+.3f} ms "
                  f"({rec['ratio']:.2f}x); CPU {rec['plain_cpu_median_ms']:.2f} vs "
                  f"{rec['recorded_cpu_median_ms']:.2f} ms: {rec['difference_cpu_ms']:+.3f} ms; "
                  f"sink.record alone {rec['sink_record_median_ms']:.3f} ms median, "
                  f"{rec['sink_record_p95_ms']:.3f} ms p95 (target < 2 ms; load average "
                  f"{os.getloadavg()[0]:.1f})")
            append_s = build_records(ws, args.records, np.random.default_rng(0))
            print(f"{args.records} records appended in {append_s:.1f} s "
                  f"({append_s / args.records * 1e3:.3f} ms each)")
            built.touch()
        c = time.process_time()
        ref_wall = read_reference(ws)
        ref_cpu = time.process_time() - c
        wall, cpu, report = run_monitor(ws)
        load = os.getloadavg()[0]
        print(f"ragtune monitor --since 7d over {args.records} records "
              f"({report['traffic']['answers']} in the window, "
              f"{report['traffic']['previous_answers']} before; {report['gaps']['questions']} "
              f"gap questions in {report['gaps']['cluster_count']} clusters): CPU "
              f"{min(cpu):.2f} s, wall {min(wall):.2f} s (best of {len(wall)}; target < 10 s on "
              f"2 cores; this machine: {os.cpu_count()} cores, load average {load:.1f}); reading "
              f"the summaries alone: CPU {ref_cpu:.2f} s, wall {ref_wall:.2f} s "
              f"(monitor / reading: {min(cpu) / ref_cpu:.1f}x CPU)")
        out = {"recording": rec, "records": args.records, "append_s": append_s,
               "monitor_wall_s": wall, "monitor_cpu_s": cpu, "read_summaries_wall_s": ref_wall,
               "read_summaries_cpu_s": ref_cpu, "cores": os.cpu_count(), "load_average": load,
               "window_answers": report["traffic"]["answers"],
               "gap_questions": report["gaps"]["questions"]}
        RESULTS.mkdir(parents=True, exist_ok=True)
        (RESULTS / "monitor_cost.json").write_text(json.dumps(out, indent=2) + "\n")
    finally:
        if args.keep is None:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
