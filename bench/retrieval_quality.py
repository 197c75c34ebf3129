"""Retrieval quality per mode (dense, BM25, fused) on BEIR-format folders.

    .venv/bin/python bench/retrieval_quality.py [FOLDER ...]

Defaults: the sample knowledge base as BEIR (bench/make_kb_beir.py builds it: 43 documents
in 7 formats, 82 answerable questions) and tests/data/beir_tiny (30 documents, 10
queries). Uses the workspace default embedder (packaged all-MiniLM-L6-v2). Prints a table
and writes bench/results/retrieval_quality.json. Target (issue 2): fused nDCG@10 above both
dense-only and BM25-only.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from ragtune.config import Settings
from ragtune.embed.factory import make_embedder
from ragtune.evaluate.retrieval import evaluate_beir

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))


def main() -> None:
    from make_kb_beir import build, build_passages

    data = ROOT / "bench" / "data"
    folders = [Path(a) for a in sys.argv[1:]] or [
        build_passages(data / "northwind_passages"), build(data / "northwind_beir"),
        ROOT / "tests" / "data" / "beir_tiny"]
    settings = Settings()
    embedder = make_embedder(settings.embedding)
    out = {}
    for folder in folders:
        r = evaluate_beir(folder, embedder, settings)
        out[folder.name] = r
        print(f"\n{folder.name}: {r['documents']} documents, {r['queries']} queries, "
              f"embedder {r['embedder']}")
        print(f"{'mode':8} " + " ".join(f"{m:>10}" for m in next(iter(r['metrics'].values()))))
        for mode, metrics in r["metrics"].items():
            print(f"{mode:8} " + " ".join(f"{v:10.4f}" for v in metrics.values()))
        best = max(r["metrics"], key=lambda m: r["metrics"][m]["ndcg@10"])
        print(f"best nDCG@10: {best}")
    (ROOT / "bench" / "results").mkdir(parents=True, exist_ok=True)
    (ROOT / "bench" / "results" / "retrieval_quality.json").write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
