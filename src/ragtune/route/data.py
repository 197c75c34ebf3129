"""Labelled questions for the intent router: load, check, split and score.

One JSON object per line, ``{"text": "...", "label": "..."}``; blank lines are skipped.
Every problem names the file and line::

    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "intents.jsonl"
    >>> _ = p.write_text('{"text": "Hi!", "label": "direct"}\\n{"text": "", "label": "hr"}\\n')
    >>> load_intents(p)
    Traceback (most recent call last):
    ...
    ragtune.errors.InputError: ...intents.jsonl:2: 'text' is empty

Labels name what the router does with a question (see :func:`label_kind`): ``direct`` and
``out_of_scope`` are built in, ``knowledge`` retrieves from every readable collection, and
any other label is a domain route (``hr``, ``it``...) that retrieves from its collections.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ragtune.errors import InputError
from ragtune.jsonl import read_jsonl

KINDS = ("knowledge", "direct", "out_of_scope")
# Fewer examples than this per label still train, with a warning: 2 is the least a
# validation split can use (one to train, one to check).
MIN_EXAMPLES = 2
FEW_EXAMPLES = 5


def label_kind(label: str) -> str:
    """What a label does: ``direct``, ``out_of_scope`` or ``knowledge`` (domain routes too).

    >>> [label_kind(x) for x in ("direct", "out_of_scope", "knowledge", "hr")]
    ['direct', 'out_of_scope', 'knowledge', 'knowledge']
    """
    return label if label in ("direct", "out_of_scope") else "knowledge"


@dataclass(frozen=True)
class IntentExample:
    """One labelled question; ``line`` is where it came from (None when built in code)."""

    text: str
    label: str
    line: int | None = None


def _parse(obj: Any) -> tuple[str, str]:
    """(text, label) from one decoded line, or TypeError/ValueError saying what is wrong."""
    if not isinstance(obj, dict):
        raise TypeError(f"expected an object like {{\"text\": ..., \"label\": ...}}, "
                         f"got {type(obj).__name__}")
    for key in ("text", "label"):
        if key not in obj:
            raise ValueError(f"missing '{key}' (keys: {', '.join(map(str, obj)) or 'none'})")
        if not isinstance(obj[key], str):
            raise TypeError(f"'{key}' must be a string, got {type(obj[key]).__name__}")
        if not obj[key].strip():
            raise ValueError(f"'{key}' is empty")
    label = obj["label"].strip()
    if any(c.isspace() for c in label):
        raise ValueError(f"label {label!r} contains spaces: use one word such as "
                         f"{'_'.join(label.split())!r}")
    return obj["text"].strip(), label


def load_intents(path: str | Path) -> list[IntentExample]:
    """Read a ``{"text", "label"}`` JSONL file; the first bad line raises :class:`InputError`.

    Only the lines are checked here; :func:`check_labels` checks the label counts.
    """
    path = Path(path)
    out = []
    for n, obj in read_jsonl(path):
        try:
            q, label = _parse(obj)
        except (TypeError, ValueError) as e:
            raise InputError(str(path), str(e), line=n) from None
        out.append(IntentExample(q, label, n))
    if not out:
        raise InputError(str(path), "no examples (expected one {\"text\", \"label\"} "
                                    "object per line)")
    return out


def check_labels(examples: Sequence[IntentExample], where: str = "training data") -> list[str]:
    """Raise :class:`InputError` for data a router cannot learn from; return warnings.

    Errors: fewer than 2 labels, a label with fewer than 2 examples. Warnings: a label
    with fewer than 5, the same text under two labels, repeated lines.

    >>> ex = [IntentExample("hi", "direct"), IntentExample("hello", "direct"),
    ...       IntentExample("vpn down", "it")]
    >>> check_labels(ex)
    Traceback (most recent call last):
    ...
    ragtune.errors.InputError: training data: label 'it' has 1 example; every label needs at least 2 (one to train, one to validate)
    """
    counts = Counter(e.label for e in examples)
    if len(counts) < 2:
        raise InputError(where, f"a router needs at least 2 labels, got {len(counts)} "
                                f"({', '.join(counts) or 'no examples'})")
    few = sorted((n, label) for label, n in counts.items() if n < MIN_EXAMPLES)
    if few:
        listed = ", ".join(f"'{label}' has {n} example{'s' * (n != 1)}" for n, label in few)
        raise InputError(where, f"label {listed}; every label needs at least {MIN_EXAMPLES} "
                                "(one to train, one to validate)")
    warnings = [f"label '{label}' has only {n} examples; {FEW_EXAMPLES} or more route better"
                for label, n in sorted(counts.items()) if n < FEW_EXAMPLES]
    seen: dict[str, IntentExample] = {}
    for e in examples:
        key = " ".join(e.text.lower().split())
        first = seen.setdefault(key, e)
        if first is e:
            continue
        at = f" (line {e.line}, first on line {first.line})" if e.line else ""
        if first.label != e.label:
            warnings.append(f"{e.text!r} is labelled both '{first.label}' and '{e.label}'{at}")
        else:
            warnings.append(f"{e.text!r} is repeated{at}")
    return warnings


def stratified_split(examples: Sequence[IntentExample], val_fraction: float,
                     seed: int = 0) -> tuple[list[IntentExample], list[IntentExample]]:
    """(train, validation): ``val_fraction`` of every label held out, at least one each.

    Seeded, so the same data and seed always give the same split; every label keeps at
    least one training example. ``val_fraction=0`` holds nothing out.

    >>> ex = [IntentExample(f"q{i}", "ab"[i % 2]) for i in range(10)]
    >>> train, val = stratified_split(ex, 0.2, seed=0)
    >>> len(train), len(val), sorted(e.label for e in val)
    (8, 2, ['a', 'b'])
    """
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    rnd = random.Random(seed)
    by_label: dict[str, list[IntentExample]] = {}
    for e in examples:
        by_label.setdefault(e.label, []).append(e)
    train: list[IntentExample] = []
    val: list[IntentExample] = []
    for label in sorted(by_label):
        group = list(by_label[label])
        rnd.shuffle(group)
        n_val = 0 if val_fraction == 0 else min(len(group) - 1, max(1, round(len(group) * val_fraction)))
        val += group[:n_val]
        train += group[n_val:]
    # interleave labels again: training batches then mix labels from the first step
    rnd.shuffle(train)
    return train, val


def examples_sha256(examples: Sequence[IntentExample]) -> str:
    """sha256 of the (text, label) pairs in order: the same data gives the same digest,
    whatever file or whitespace it came from."""
    h = hashlib.sha256()
    for e in examples:
        h.update(json.dumps([e.text, e.label], ensure_ascii=False).encode() + b"\n")
    return h.hexdigest()


def score(labels: Sequence[str], truth: Sequence[str], predicted: Sequence[str]) -> dict[str, Any]:
    """Accuracy, macro-F1, per-label precision/recall/F1/support and the confusion matrix.

    ``confusion[i][j]`` counts questions labelled ``labels[i]`` predicted as ``labels[j]``.

    >>> s = score(["a", "b"], ["a", "a", "b"], ["a", "b", "b"])
    >>> s["accuracy"], s["confusion"]["matrix"]
    (0.6667, [[1, 1], [0, 1]])
    """
    from sklearn.metrics import (  # type: ignore[import-untyped]
        confusion_matrix,
        precision_recall_fscore_support,
    )

    labels = list(labels)
    p, r, f, support = precision_recall_fscore_support(
        truth, predicted, labels=labels, average=None, zero_division=0)
    correct = sum(t == y for t, y in zip(truth, predicted, strict=True))
    return {
        "examples": len(truth),
        "accuracy": round(correct / len(truth), 4) if truth else None,
        # over labels present in the validation set: an absent label has no recall to miss
        "macro_f1": round(float(sum(fi for fi, s in zip(f, support) if s) /
                                max(1, sum(1 for s in support if s))), 4),
        "per_label": {label: {"precision": round(float(p[i]), 4), "recall": round(float(r[i]), 4),
                              "f1": round(float(f[i]), 4), "support": int(support[i])}
                      for i, label in enumerate(labels)},
        "confusion": {"labels": labels,
                      "matrix": confusion_matrix(truth, predicted, labels=labels).tolist()},
    }
