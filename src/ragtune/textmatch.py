"""Answer matching with the official SQuAD v1.1 evaluation script's definitions: normalise,
exact match, token F1. Pure functions at the bottom layer, so evaluation and fine-tuning
both use them without importing each other.

>>> exact_match("the Eiffel Tower", ["Eiffel Tower"]), token_f1("city of Paris", ["Paris"])
(1.0, 0.5)
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Sequence

from ragtune.errors import InputError

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = frozenset(string.punctuation)


def normalize_answer(text: str) -> str:
    """Lowercase, drop ASCII punctuation, drop the articles a/an/the, collapse spaces.

    Same steps, in the same order, as SQuAD v1.1's ``normalize_answer``.

    >>> normalize_answer("The  Eiffel-Tower, in Paris!")
    'eiffeltower in paris'
    """
    text = text.lower()
    text = "".join(ch for ch in text if ch not in _PUNCTUATION)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def _check_references(references: Sequence[str]) -> None:
    if isinstance(references, str):
        raise InputError("references", "expected a list of reference answers, got one string")
    if not references:
        raise InputError("references", "no reference answers given")


def exact_match(prediction: str, references: Sequence[str]) -> float:
    """1.0 if the normalised prediction equals any normalised reference, else 0.0.

    >>> exact_match("the Eiffel Tower", ["Eiffel Tower", "tour Eiffel"])
    1.0
    """
    _check_references(references)
    pred = normalize_answer(prediction)
    return max(1.0 if pred == normalize_answer(ref) else 0.0 for ref in references)


def _f1(prediction: str, reference: str) -> float:
    pred = normalize_answer(prediction).split()
    gold = normalize_answer(reference).split()
    same = sum((Counter(pred) & Counter(gold)).values())
    if same == 0:
        return 0.0  # v1.1: two empty answers also score 0 (v2.0 would give 1)
    precision = same / len(pred)
    recall = same / len(gold)
    return 2 * precision * recall / (precision + recall)


def token_f1(prediction: str, references: Sequence[str]) -> float:
    """Best token-overlap F1 against the references (SQuAD v1.1 ``f1_score``, max over refs).

    Tokens are whitespace-split after :func:`normalize_answer`; overlap counts repeats
    (multiset intersection).

    >>> token_f1("city of Paris", ["Paris"])  # P = 1/3, R = 1
    0.5
    """
    _check_references(references)
    return max(_f1(prediction, ref) for ref in references)
