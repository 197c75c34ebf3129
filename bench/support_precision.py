"""Precision of the "supported" mark on a labelled set of sentences built from public docs.

    .venv/bin/python bench/support_precision.py

``bench/data/support_labels.jsonl``: 48 sentences about 8 passages of Typer's documentation
(fastapi/typer, MIT, commit 9a7b2e83f6b62c750d6026b0de9ebf2026a8b8fa, docs/tutorial/...):
per passage 2 faithful paraphrases (supported) and 4 unsupported sentences: 2 invented APIs,
1 contradiction, 1 detail the passage does not state. Each sentence is checked as citing its
passage ([1]) with :func:`ragtune.generate.citations.check_answer`.

Prints precision and recall of the supported mark per rule, and how many invented-API
sentences were marked supported (the target is zero). "before" is the rule this replaced:
share of content words anywhere in the chunk, no code-name or polarity check.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from ragtune.generate.citations import check_answer, strip_markers
from ragtune.generate.support import bag
from ragtune.types import Chunk, Hit

DATA = Path(__file__).resolve().parent / "data" / "support_labels.jsonl"


def _hit(text: str) -> Hit:
    return Hit(Chunk("c1", "d", text, "S", 0, len(text.split())), 1.0, "doc.md", "Doc")


def before(sentence: str, passage: str, threshold: float) -> bool:
    claim, source = bag(strip_markers(sentence)), bag(passage)
    if claim.numbers - source.numbers:
        return False
    return not claim.words or len(claim.words & source.words) / len(claim.words) >= threshold


def main() -> None:
    rows = [json.loads(line) for line in DATA.read_text().splitlines() if line.strip()]
    print(f"{len(rows)} sentences, {sum(r['supported'] for r in rows)} supported by their passage\n")
    print("| rule | threshold | precision | recall | invented APIs marked supported | false supported by kind |")
    print("|---|---|---|---|---|---|")
    best = None
    for name, window in (("before", None), ("whole chunk", None), ("window 3", 3), ("window 2", 2)):
        for threshold in (0.5, 0.6, 0.7, 0.8):
            marks = []
            for r in rows:
                if name == "before":
                    ok = before(r["sentence"], r["passage"], threshold)
                else:
                    _, checks = check_answer(r["sentence"] + " [1]", [_hit(r["passage"])],
                                             threshold=threshold, window=window)
                    ok = bool(checks) and checks[0].supported
                marks.append((ok, r))
            tp = sum(ok and r["supported"] for ok, r in marks)
            fp = [r for ok, r in marks if ok and not r["supported"]]
            positives = sum(r["supported"] for r in rows)
            precision = tp / (tp + len(fp)) if tp + len(fp) else 1.0
            recall = tp / positives
            kinds = Counter(r["kind"] for r in fp)
            print(f"| {name} | {threshold} | {precision:.3f} | {recall:.3f} | "
                  f"{kinds.get('invented_api', 0)} | {dict(kinds) or '-'} |")
            if name == "window 3" and threshold == 0.5:
                best = [r["sentence"] for r in fp]
    print(f"\nfalse 'supported' under the default (window 3, 0.5): {best}")


if __name__ == "__main__":
    main()
