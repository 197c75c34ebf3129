"""Turn the sample knowledge base + its eval set into BEIR-format folders.

- ``northwind_beir``: corpus = one record per KB document (loaded with ragtune's own
  loaders, all formats); qrels = each answerable question's gold source documents.
- ``northwind_passages``: corpus = the documents' sections (long ones cut by the chunker);
  qrels = the passages of a gold document that contain every content word of the
  question's reference answer — passage retrieval, the harder and more realistic task.

    .venv/bin/python bench/make_kb_beir.py [OUT_DIR]   # default bench/data/
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

from ragtune.ingest.chunking import chunk_document
from ragtune.ingest.loaders import SUPPORTED_EXTENSIONS, load_file
from ragtune.store.analysis import SHORT_STOPWORDS as STOPWORDS

ROOT = Path(__file__).resolve().parent.parent
KB = ROOT / "examples" / "kb"
EVAL = ROOT / "examples" / "eval" / "kb_eval.jsonl"


def _content_words(text: str) -> set[str]:
    return {w for w in re.findall(r"[a-z0-9]+", text.lower()) if w not in STOPWORDS and len(w) > 1}


def _eval_rows() -> list[dict]:
    rows = [json.loads(x) for x in EVAL.read_text(encoding="utf-8").splitlines() if x.strip()]
    return [r for r in rows if r.get("answerable") and r.get("sources")]


def _kb_files() -> list[Path]:
    return [p for p in sorted(KB.rglob("*")) if p.suffix.lower() in SUPPORTED_EXTENSIONS and p.is_file()]


def build_passages(out: Path) -> Path:
    (out / "qrels").mkdir(parents=True, exist_ok=True)
    passages: dict[str, tuple[str, str]] = {}  # id -> (doc rel path, text)
    with (out / "corpus.jsonl").open("w", encoding="utf-8") as f:
        for path in _kb_files():
            doc = load_file(path)
            rel = path.relative_to(KB).as_posix()
            for chunk in chunk_document(doc, max_tokens=200, overlap=0):
                pid = f"{rel}#{chunk.ordinal}"
                passages[pid] = (rel, chunk.text)
                f.write(json.dumps({"_id": pid, "title": f"{doc.title} > {chunk.section}",
                                    "text": chunk.text}) + "\n")
    kept = 0
    with (out / "queries.jsonl").open("w", encoding="utf-8") as fq, \
            (out / "qrels" / "test.tsv").open("w", encoding="utf-8") as fr:
        fr.write("query-id\tcorpus-id\tscore\n")
        for r in _eval_rows():
            want = _content_words(r["answers"][0])
            rel = [pid for pid, (doc, text) in passages.items()
                   if doc in r["sources"] and want <= _content_words(text)]
            if not rel or not want:
                continue
            kept += 1
            fq.write(json.dumps({"_id": r["id"], "text": r["question"]}) + "\n")
            for pid in rel:
                fr.write(f"{r['id']}\t{pid}\t1\n")
    print(f"{out.name}: {len(passages)} passages, {kept} queries with a judged passage")
    return out


def build(out: Path) -> Path:
    (out / "qrels").mkdir(parents=True, exist_ok=True)
    with (out / "corpus.jsonl").open("w", encoding="utf-8") as f:
        for path in _kb_files():
            doc = load_file(path)
            rel = path.relative_to(KB).as_posix()
            f.write(json.dumps({"_id": rel, "title": doc.title, "text": doc.text}) + "\n")
    answerable = _eval_rows()
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
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "bench" / "data"
    print(build(target / "northwind_beir"), build_passages(target / "northwind_passages"))
