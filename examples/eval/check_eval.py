"""Check that the sample evaluation set agrees with the sample knowledge base.

For every line of ``kb_eval.jsonl`` it verifies the schema, that each source file exists
under ``examples/kb/``, that unanswerable questions have no sources, that questions on
``restricted/`` documents carry the ``restricted`` tag, and, for answerable questions, that
every content word of the first (reference) answer occurs in the text of its sources.
It prints counts per tag, folder and format, and exits 1 if anything is wrong::

    .venv/bin/python examples/eval/check_eval.py
    .venv/bin/python examples/eval/check_eval.py path/to/other_eval.jsonl

The word check is deliberately simple (lower-cased tokens, a stop-word list, plural "s"
ignored): it catches a reference answer that drifted from the document, not paraphrase.
"""

from __future__ import annotations

import json
import re
import sys
from collections import Counter
from functools import cache
from pathlib import Path

HERE = Path(__file__).resolve().parent
KB = HERE.parent / "kb"
DEFAULT = HERE / "kb_eval.jsonl"

REQUIRED = {
    "id": str,
    "question": str,
    "answers": list,
    "sources": list,
    "answerable": bool,
    "tags": list,
}
_STOPWORDS = """a an the and or of to in on at by for from with without as is are be been was were it
    its this that these those than then there their they them you your yours i my me we our
    us he she his her do does did not no yes only if unless when while which who whom what
    can cannot may must should will would could up down into over under about after before
    per each every any all also but so such same other out off more most less least very
    just own one's s t"""
STOPWORDS = frozenset(_STOPWORDS.split())
TOKEN = re.compile(r"[a-z0-9]+(?:[.,][0-9]+)*")


def tokens(text: str) -> list[str]:
    """Lower-cased word and number tokens; "$6.95" -> "6.95", "1,000" -> "1,000".

    >>> tokens("Costs $6.95, or 1,000 points (15%).")
    ['costs', '6.95', 'or', '1,000', 'points', '15']
    """
    return [t.rstrip(".,") for t in TOKEN.findall(text.lower())]


def stem(token: str) -> str:
    """Drop a plural "s" so "months" matches "month" (numbers are kept as they are)."""
    return (
        token[:-1] if len(token) > 3 and token.endswith("s") and not token[-2].isdigit() else token
    )


def content_words(text: str) -> list[str]:
    """The tokens of an answer that must appear in its source."""
    return [t for t in tokens(text) if t not in STOPWORDS]


def _json_text(value: object) -> str:
    if isinstance(value, dict):
        return " ".join(_json_text(v) for v in value.values())
    if isinstance(value, list):
        return " ".join(_json_text(v) for v in value)
    return str(value)


@cache
def document_text(rel: str) -> str:
    """The plain text of one knowledge-base file, by format."""
    path = KB / rel
    suffix = path.suffix.lower()
    if suffix == ".pdf":
        from pypdf import PdfReader

        return "\n".join(page.extract_text() or "" for page in PdfReader(path).pages)
    if suffix == ".docx":
        import docx

        return "\n".join(p.text for p in docx.Document(str(path)).paragraphs)
    raw = path.read_text(encoding="utf-8")
    if suffix == ".html":
        return re.sub(r"<[^>]+>", " ", raw).replace("&amp;", "&")
    if suffix == ".jsonl":
        return "\n".join(_json_text(json.loads(line)) for line in raw.splitlines() if line.strip())
    if suffix == ".json":
        return _json_text(json.loads(raw))
    return raw


def check_line(name: str, lineno: int, line: str, seen: set[str]) -> tuple[dict | None, list[str]]:
    """Validate one JSONL line; return the parsed record and a list of problems."""
    where = f"{name}:{lineno}"
    try:
        rec = json.loads(line)
    except json.JSONDecodeError as exc:
        return None, [f"{where}: invalid JSON ({exc})"]
    problems = []
    for key, kind in REQUIRED.items():
        if not isinstance(rec.get(key), kind):
            problems.append(f"{where}: key {key!r} missing or not {kind.__name__}")
    if problems:
        return None, problems
    where = f"{where} ({rec['id']})"
    if rec["id"] in seen:
        problems.append(f"{where}: duplicate id")
    seen.add(rec["id"])
    if not rec["answers"] or not all(isinstance(a, str) and a for a in rec["answers"]):
        problems.append(f"{where}: 'answers' must be non-empty strings")
    if rec["answerable"] != bool(rec["sources"]):
        problems.append(
            f"{where}: answerable={rec['answerable']} but {len(rec['sources'])} sources"
        )
    if not rec["answerable"] and "unanswerable" not in rec["tags"]:
        problems.append(f"{where}: unanswerable question without the 'unanswerable' tag")
    restricted = any(s.startswith("restricted/") for s in rec["sources"])
    if restricted != ("restricted" in rec["tags"]):
        problems.append(f"{where}: 'restricted' tag does not match its sources")
    for source in rec["sources"]:
        if not (KB / source).is_file():
            problems.append(f"{where}: source {source!r} not found under {KB}")
    if rec["answerable"] and not problems:
        text = {stem(t) for s in rec["sources"] for t in tokens(document_text(s))}
        missing = [w for w in content_words(rec["answers"][0]) if stem(w) not in text]
        if missing:
            problems.append(f"{where}: answer words not in sources: {missing}")
    return rec, problems


def main(argv: list[str]) -> int:
    path = Path(argv[0]) if argv else DEFAULT
    seen: set[str] = set()
    records, problems = [], []
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if line.strip():
            rec, found = check_line(path.name, lineno, line, seen)
            problems += found
            if rec is not None:
                records.append(rec)
    tags = Counter(t for r in records for t in r["tags"])
    folders = Counter(s.split("/")[0] for r in records for s in r["sources"])
    formats = Counter(Path(s).suffix.lstrip(".") for r in records for s in r["sources"])
    answerable = sum(r["answerable"] for r in records)
    print(
        f"{len(records)} questions: {answerable} answerable, {len(records) - answerable} unanswerable"
    )
    print("folders:", dict(sorted(folders.items())))
    print("formats:", dict(sorted(formats.items())))
    print("tags:   ", dict(sorted(tags.items())))
    for problem in problems:
        print("PROBLEM", problem)
    print("OK" if not problems else f"{len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
