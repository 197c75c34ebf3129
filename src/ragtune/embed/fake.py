"""A deterministic embedder with no model: for tests and for trying ragtune without torch.

It is a hashing-trick bag of words: every lowercased word (and every pair of adjacent
words) adds +1 or -1 to one of ``dimension`` slots picked by a BLAKE2 hash, and the row is
L2-normalised. Texts that share words get a high cosine, texts that share none get one
near 0, so retrieval tests with it mean something.

>>> e = FakeEmbedder(dimension=64)
>>> v = e.embed_documents(["the cat sat", "a cat sat down", "quarterly tax report"])
>>> bool(v[0] @ v[1] > v[0] @ v[2])
True
>>> e.count_tokens("Hello, world!")
4
"""

from __future__ import annotations

import hashlib
import itertools
import re

import numpy as np

# Words (letters/digits/underscore runs) and single punctuation marks: a rough stand-in
# for a subword tokenizer's count, good enough to bound chunks in tests.
_TOKEN = re.compile(r"\w+|[^\w\s]")
_WORD = re.compile(r"\w+")


def _slot(feature: str, dimension: int) -> tuple[int, float]:
    """Map a feature to (slot, sign). BLAKE2, not ``hash()``: stable across processes.

    >>> _slot("cat", 8) == _slot("cat", 8)
    True
    """
    digest = hashlib.blake2b(feature.encode("utf-8"), digest_size=8).digest()
    n = int.from_bytes(digest, "little")
    return n % dimension, (1.0 if (n >> 63) & 1 else -1.0)


class FakeEmbedder:
    """Hashing-trick embedder; implements :class:`ragtune.embed.base.Embedder`."""

    name = "fake"

    def __init__(self, dimension: int = 384, *, bigrams: bool = True) -> None:
        if dimension < 1:
            raise ValueError(f"dimension must be greater than 0, got {dimension}")
        self.dimension = dimension
        self.bigrams = bigrams

    def _vector(self, text: str) -> np.ndarray:
        v = np.zeros(self.dimension, dtype=np.float32)
        words = _WORD.findall(text.lower())
        features = list(words)
        if self.bigrams:
            # Half weight: word overlap should dominate, phrase overlap only break ties.
            features += [f"{a} {b}" for a, b in itertools.pairwise(words)]
        for i, feature in enumerate(features):
            slot, sign = _slot(feature, self.dimension)
            v[slot] += sign * (1.0 if i < len(words) else 0.5)
        norm = float(np.linalg.norm(v))
        if norm == 0.0:
            # No words at all (empty or punctuation only): a fixed unit vector keeps the
            # "every row has norm 1" contract without a division by zero.
            v[_slot("<empty>", self.dimension)[0]] = 1.0
            return v
        return v / norm

    def embed_documents(self, texts: list[str]) -> np.ndarray:
        """Embed passages; shape (len(texts), dimension), float32, rows of norm 1."""
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        return np.stack([self._vector(t) for t in texts]).astype(np.float32, copy=False)

    def embed_query(self, text: str) -> np.ndarray:
        """Embed one query; shape (dimension,)."""
        return self._vector(text)

    def count_tokens(self, text: str) -> int:
        """Words plus punctuation marks."""
        return len(_TOKEN.findall(text))

    def __repr__(self) -> str:
        return f"FakeEmbedder(dimension={self.dimension})"
