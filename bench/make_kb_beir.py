"""Turn the sample knowledge base + its eval set into a BEIR-format folder.

corpus.jsonl: one record per KB document (loaded with ragtune's own loaders, all formats);
queries.jsonl: the answerable eval questions; qrels/test.tsv: their gold source documents.

    .venv/bin/python bench/make_kb_beir.py [OUT]   # default bench/data/northwind_beir
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from ragtune.ingest.loaders import SUPPORTED_EXTENSIONS, load_file

ROOT = Path(__file__).resolve().parent.parent
KB = ROOT / "examples" / "kb"
EVAL = ROOT / "examples" / "eval" / "kb_eval.jsonl"


def build(out: Path) -> Path:
    (out / "qrels").mkdir(parents=True, exist_ok=True)
    with (out / "corpus.jsonl").open("w", encoding="utf-8") as f:
        for path in sorted(KB.rglob("*")):
            if path.suffix.lower() in SUPPORTED_EXTENSIONS and path.is_file():
                doc = load_file(path)
                rel = path.relative_to(KB).as_posix()
                f.write(json.dumps({"_id": rel, "title": doc.title, "text": doc.text}) + "\n")
    rows = [json.loads(line) for line in EVAL.read_text(encoding="utf-8").splitlines() if line.strip()]
    answerable = [r for r in rows if r.get("answerable") and r.get("sources")]
    with (out / "queries.jsonl").open("w", encoding="utf-8") as f:
        for r in answerable:
            f.write(json.dumps({"_id": r["id"], "text": r["question"]}) + "\n")
    with (out / "qrels" / "test.tsv").open("w", encoding="utf-8") as f:
        f.write("query-id\tcorpus-id\tscore\n")
        for r in answerable:
            for s in r["sources"]:
                f.write(f"{r['id']}\t{s}\t1\n")
    return out


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "bench" / "data" / "northwind_beir"
    print(build(target))
