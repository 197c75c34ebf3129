"""Training-data health before fine-tuning: what ``ragtune data validate`` cannot see line
by line.

- **near-duplicates**: pairs of examples whose prompts (the last user message) embed within
  ``near`` cosine similarity of each other (exact duplicates included): they over-weight
  one example;
- **label conflicts**: near-duplicate prompts whose answers disagree (SQuAD-normalised token
  F1 below 0.5): the model is taught two answers to one question;
- **train/eval overlap**: eval prompts that near-duplicate a training prompt, so the eval
  measures memory, not generalisation (the eval file may be chat JSONL or an eval set);
- **per-source balance**: examples per source document (``metadata.source`` as written by
  ``ragtune data synth``/``raft``); one source with most of the examples is flagged.

>>> balance(["a.md"] * 8 + ["b.md", "c.md"])["flagged"]
True
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ragtune.errors import InputError
from ragtune.finetune.dataset import load_chat_jsonl
from ragtune.jsonl import jsonl_lines
from ragtune.textmatch import token_f1

EmbedFn = Callable[[list[str]], np.ndarray]
NEAR = 0.95  # cosine similarity at which two prompts count as the same question
SHOWN = 20  # examples of each problem listed in a report
NO_SOURCE = "(no source)"


def _prompt_and_answer(messages: Sequence[Any]) -> tuple[str, str]:
    user = next((m.content for m in reversed(messages) if m.role == "user"), "")
    reply = next((m.content for m in reversed(messages) if m.role == "assistant"), "")
    return user, reply


def load_examples(path: Path) -> list[dict[str, Any]]:
    """``{line, prompt, answer, source}`` per example of a chat JSONL file, or per question
    of an eval set (no answer needed)."""
    path = Path(path)
    first = next((raw for _, raw in jsonl_lines(path)), None)
    if first is None:
        raise InputError(str(path), "the file holds no examples")
    try:
        is_chat = "messages" in json.loads(first)
    except json.JSONDecodeError:
        is_chat = True  # load_chat_jsonl names the line
    if not is_chat:
        from ragtune.evaluate.evalset import load_evalset

        return [{"line": q.line, "prompt": q.question, "answer": " | ".join(q.answers),
                 "source": q.sources[0] if q.sources else NO_SOURCE}
                for q in load_evalset(path).questions]
    metadata = {n: (json.loads(raw).get("metadata") or {}) for n, raw in jsonl_lines(path)}
    out = []
    for ex in load_chat_jsonl(path):
        prompt, answer = _prompt_and_answer(ex.messages)
        meta = metadata.get(ex.line) or {}
        source = meta.get("source") or meta.get("doc_id") or NO_SOURCE
        out.append({"line": ex.line, "prompt": prompt, "answer": answer, "source": str(source)})
    return out


def similar_pairs(a: np.ndarray, b: np.ndarray | None, near: float,
                  block: int = 2048) -> list[tuple[int, int, float]]:
    """Index pairs (i, j, cosine) with cosine >= ``near``: within ``a`` (i < j) when ``b``
    is None, else between ``a`` and ``b``. Rows must be L2-normalised.

    >>> v = np.array([[1.0, 0], [1.0, 0], [0, 1.0]])
    >>> similar_pairs(v, None, 0.9)
    [(0, 1, 1.0)]
    """
    other = a if b is None else b
    out = []
    for start in range(0, len(a), block):
        sims = a[start:start + block] @ other.T
        rows, cols = np.nonzero(sims >= near - 1e-6)
        for r, c in zip(rows.tolist(), cols.tolist()):
            i = start + r
            if b is None and c <= i:
                continue
            out.append((i, c, round(float(min(sims[r, c], 1.0)), 4)))
    return out


def balance(sources: Sequence[str]) -> dict[str, Any]:
    """Examples per source; flagged when one source has over half of them (3+ sources) or
    ten times the median source's count."""
    counts = Counter(sources)
    total = sum(counts.values())
    values = sorted(counts.values())
    top_source, top = counts.most_common(1)[0] if counts else ("", 0)
    median = float(np.median(values)) if values else 0.0
    flagged = len(counts) >= 3 and (top / total > 0.5 or (median > 0 and top / median >= 10))
    return {"sources": len(counts), "examples": total, "largest": top_source,
            "largest_share": top / total if total else None,
            "largest_to_median": top / median if median else None, "flagged": flagged,
            "counts": dict(counts.most_common(SHOWN))}


def training_data_health(train: Path, embed: EmbedFn, *, eval_path: Path | None = None,
                         near: float = NEAR) -> dict[str, Any]:
    """The training-data section of a monitor report for one dataset (and its eval file)."""
    examples = load_examples(train)
    vectors = np.asarray(embed([e["prompt"] for e in examples]), dtype=np.float32)
    dupes = similar_pairs(vectors, None, near)
    conflicts = []
    for i, j, sim in dupes:
        a, b = examples[i]["answer"], examples[j]["answer"]
        if a and b and token_f1(a, [b]) < 0.5:
            conflicts.append({"lines": [examples[i]["line"], examples[j]["line"]],
                              "similarity": sim, "prompt": examples[i]["prompt"][:200],
                              "answers": [a[:200], b[:200]]})
    out: dict[str, Any] = {
        "path": str(train), "examples": len(examples), "near": near,
        "near_duplicates": len(dupes),
        "near_duplicate_pairs": [{"lines": [examples[i]["line"], examples[j]["line"]],
                                  "similarity": s, "prompt": examples[i]["prompt"][:200]}
                                 for i, j, s in dupes[:SHOWN]],
        "label_conflicts": len(conflicts), "label_conflict_pairs": conflicts[:SHOWN],
        "balance": balance([e["source"] for e in examples]),
        "eval": None,
    }
    if eval_path is not None:
        held = load_examples(eval_path)
        held_vectors = np.asarray(embed([e["prompt"] for e in held]), dtype=np.float32)
        overlap = similar_pairs(held_vectors, vectors, near)
        leaked = sorted({i for i, _, _ in overlap})
        out["eval"] = {"path": str(eval_path), "examples": len(held),
                       "overlapping": len(leaked),
                       "overlap_share": len(leaked) / len(held) if held else None,
                       "pairs": [{"eval_line": held[i]["line"], "train_line": examples[j]["line"],
                                  "similarity": s, "prompt": held[i]["prompt"][:200]}
                                 for i, j, s in overlap[:SHOWN]]}
    return out
