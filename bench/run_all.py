"""Run every benchmark in turn; each prints its table and writes bench/results/<name>.json.

    .venv/bin/python bench/run_all.py [NAME ...]   # e.g. search_latency ask_latency

Benchmarks time things; they never gate CI. Expect the whole set to take 30-60 minutes
on 2 cores (the 100k-chunk store is built once and cached in bench/results/).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ALL = ["embed_speed", "ingest_speed", "retrieval_quality", "search_latency", "ask_latency",
       "route_latency", "adapter_serving", "train_throughput", "multiturn_retrieval",
       "serve_load"]
# Not in the default set (an hour or more of CPU training): raft_quality.

if __name__ == "__main__":
    failed = []
    for name in sys.argv[1:] or ALL:
        print(f"\n=== {name} ===", flush=True)
        if subprocess.call([sys.executable, str(HERE / f"{name}.py")]) != 0:
            failed.append(name)
    if failed:
        sys.exit(f"failed: {', '.join(failed)}")
