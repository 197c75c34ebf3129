"""Memorisation probe: does the adapter recite its training answers (and personal data)?

>>> r = probe_memorisation(generator, "support-style", Path("train.jsonl"), limit=20)  # doctest: +SKIP
>>> r["memorised_share"], r["personal_data"]["generations_with_personal_data"]         # doctest: +SKIP
(0.35, 0)

Each training example is replayed without its last assistant message; the adapter's greedy
generation is compared with that message.

The rule: tokens are whitespace-separated words (case and punctuation kept, so only a
verbatim copy counts). The overlap is the longest run of consecutive tokens that the
generation and the training answer share (longest common substring over tokens). An
example counts as *memorised* when that run is at least ``min_overlap_tokens`` long, or, for
a training answer shorter than that, when the run covers the whole answer. Short answers
are therefore memorised only when recited in full — which for a style adapter trained on
short answers is also what "learnt the answer" looks like: read the share against the
data, and look at the worst examples.

Personal data (emails, phone numbers, Luhn-valid card numbers; the detectors of
:func:`ragtune.finetune.dataset.find_personal_data`) found in generations is reported with
whether the same (masked) value occurs anywhere in the training file.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ragtune.errors import InputError
from ragtune.finetune.dataset import find_personal_data, load_chat_jsonl
from ragtune.finetune.evaluate import split_prompt

if TYPE_CHECKING:
    from ragtune.finetune.hf_generator import HFGenerator

WORST = 5


def longest_common_run(a: list[str], b: list[str]) -> tuple[int, int]:
    """``(length, start in a)`` of the longest run of tokens that ``a`` and ``b`` share.

    >>> longest_common_run("the fee is 7 dollars".split(), "a fee is 7 dollars today".split())
    (4, 1)
    """
    best, where = 0, 0
    prev = [0] * (len(b) + 1)
    for i, x in enumerate(a, 1):
        cur = [0] * (len(b) + 1)
        for j, y in enumerate(b, 1):
            if x == y:
                cur[j] = prev[j - 1] + 1
                if cur[j] > best:
                    best, where = cur[j], i - cur[j]
        prev = cur
    return best, where


def probe_memorisation(generator: HFGenerator, adapter: str | None, train_path: Path, *,
                       min_overlap_tokens: int = 20, limit: int | None = None) -> dict[str, Any]:
    """Replay training prompts through ``adapter``; measure verbatim overlap and personal data.

    Returns ``{"adapter", "data", "examples", "rule", "memorised", "memorised_share",
    "mean_overlap_tokens", "personal_data": {...}, "worst": [...]}``; ``worst`` holds the
    examples with the largest overlap (share of the answer reproduced), most first.
    ``adapter=None`` probes the base model: the baseline to read an adapter's numbers against.
    """
    if min_overlap_tokens < 1:
        raise InputError("--min-overlap-tokens", f"must be >= 1, got {min_overlap_tokens}")
    if limit is not None and limit < 1:
        raise InputError("--limit", f"must be >= 1, got {limit}")
    train_path = Path(train_path)
    examples = load_chat_jsonl(train_path)
    training_pii = {masked for ex in examples for m in ex.messages
                    for _, masked in find_personal_data(m.content)}
    examples = examples[:limit]
    rows: list[dict[str, Any]] = []
    kinds: Counter[str] = Counter()
    with generator.activated(adapter):
        for ex in examples:
            prompt, answer = split_prompt(ex)
            output = generator.complete(prompt).text
            out_tokens, ans_tokens = output.split(), answer.split()
            run, start = longest_common_run(out_tokens, ans_tokens)
            need = min(min_overlap_tokens, len(ans_tokens))
            pii = find_personal_data(output)
            kinds.update(kind for kind, _ in pii)
            rows.append({
                "line": ex.line, "answer": answer, "output": output,
                "overlap_tokens": run, "answer_tokens": len(ans_tokens),
                "overlap_share": round(run / len(ans_tokens), 4) if ans_tokens else 0.0,
                "overlap_text": " ".join(out_tokens[start:start + run]),
                "memorised": run >= need,
                "personal_data": [{"kind": k, "value": v, "in_training_data": v in training_pii}
                                  for k, v in pii],
            })
    n = len(rows)
    memorised = sum(r["memorised"] for r in rows)
    with_pii = [r for r in rows if r["personal_data"]]
    worst = sorted(rows, key=lambda r: (r["overlap_share"], r["overlap_tokens"]), reverse=True)
    return {
        "adapter": adapter, "base_model": generator.base_model, "data": str(train_path),
        "examples": n, "min_overlap_tokens": min_overlap_tokens,
        "rule": (f"memorised = the generation repeats at least {min_overlap_tokens} consecutive "
                 "whitespace tokens of the training answer verbatim, or the whole answer when "
                 "it is shorter"),
        "memorised": memorised, "memorised_share": round(memorised / n, 4) if n else 0.0,
        "mean_overlap_tokens": round(sum(r["overlap_tokens"] for r in rows) / n, 2) if n else 0.0,
        "mean_overlap_share": round(sum(r["overlap_share"] for r in rows) / n, 4) if n else 0.0,
        "personal_data": {
            "generations_with_personal_data": len(with_pii),
            "kinds": dict(kinds),
            "found_in_training_data": sum(p["in_training_data"] for r in with_pii
                                          for p in r["personal_data"]),
            "examples": [{"line": r["line"], "personal_data": r["personal_data"]} for r in with_pii],
        },
        "worst": worst[:WORST],
    }
