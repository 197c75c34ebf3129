"""An in-memory BM25 index as a sparse matrix: one column of precomputed weights per term.

Why not score with FTS5's ``bm25()``: FTS5 computes the score for every matching row, and
a question's common words match most of a large store (0.45-1.4 s per query at 100k
chunks in ``bench/search_latency.py``). Here a query sums a few precomputed sparse columns
into a dense score vector and takes the top k — a few milliseconds at 100k chunks, the
approach of the bm25s library. FTS5 stays the persistent full-text index of the store
(text, section, title), from which this index is rebuilt when the store changes.

>>> idx = BM25Index.build(["tents are waterproof", "stoves burn gas", "tents tents tents"])
>>> [int(i) for i in idx.top(idx.scores("waterproof tent"), 2)]
[0, 2]
"""

from __future__ import annotations

import math
import re
import zlib
from collections.abc import Sequence

import numpy as np
from scipy import sparse

_TOKEN = re.compile(r"\w+", re.UNICODE)
STOPWORDS = frozenset(
    "a an and are as at be but by can do does for from has have how i if in into is it its "
    "me my of on or our so than that the their them then there these they this to was we "
    "what when where which who why will with you your".split()
)


def stem(word: str) -> str:
    """A light, predictable stemmer: plural and -ing/-ed endings.

    >>> [stem(w) for w in ["policies", "returns", "glass", "shipping", "returned", "days"]]
    ['policy', 'return', 'glass', 'shipp', 'return', 'day']
    """
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 5 and word.endswith("ing"):
        return word[:-3]
    if len(word) > 4 and word.endswith("ed"):
        return word[:-2]
    if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


def analyze(text: str) -> list[str]:
    """Lowercased word tokens without stopwords, stemmed.

    >>> analyze("What is the Return window for tents?")
    ['return', 'window', 'tent']
    """
    return [stem(w) for w in _TOKEN.findall(text.lower()) if w not in STOPWORDS]


def term_hashes(text: str) -> np.ndarray:
    """The analyzed terms of ``text`` as uint32 hashes (crc32 of the stem), in order.

    Stored per chunk at ingest time, so building the index never tokenizes again.

    >>> term_hashes("tents") .tolist() == term_hashes("Tent").tolist()
    True
    """
    return np.fromiter((zlib.crc32(t.encode("utf-8")) for t in analyze(text)), dtype=np.uint32)


class BM25Index:
    """Okapi BM25 (k1, b) over documents given as arrays of term hashes; row i is document i."""

    def __init__(self, weights: sparse.csc_matrix, columns: dict[int, int]) -> None:
        self.weights = weights
        self.columns = columns  # term hash -> column

    @property
    def size(self) -> int:
        return self.weights.shape[0]

    @classmethod
    def build(cls, texts: Sequence[str], k1: float = 1.2, b: float = 0.75) -> BM25Index:
        return cls.from_terms([term_hashes(t) for t in texts], k1=k1, b=b)

    @classmethod
    def from_terms(cls, docs: Sequence[np.ndarray], k1: float = 1.2, b: float = 0.75) -> BM25Index:
        n = len(docs)
        lengths = np.fromiter((len(d) for d in docs), dtype=np.int64, count=n)
        flat = np.concatenate(docs) if n else np.zeros(0, dtype=np.uint32)
        hashes, cols = np.unique(flat, return_inverse=True)
        rows = np.repeat(np.arange(n, dtype=np.int64), lengths)
        tf = sparse.csr_matrix((np.ones(len(flat), dtype=np.float32), (rows, cols.ravel())),
                               shape=(n, max(len(hashes), 1)))
        tf.sum_duplicates()
        df = np.bincount(tf.indices, minlength=tf.shape[1]).astype(np.float32)
        # Lucene's BM25 idf: always positive, so a very common word never lowers a score.
        idf = np.log(1.0 + (n - df + 0.5) / (df + 0.5)).astype(np.float32)
        avgdl = float(lengths.mean()) if n else 1.0
        norm = k1 * (1.0 - b + b * lengths.astype(np.float32) / max(avgdl, 1e-9))
        row_of = np.repeat(np.arange(n), np.diff(tf.indptr))
        data = tf.data * (k1 + 1.0) / (tf.data + norm[row_of]) * idf[tf.indices]
        weights = sparse.csr_matrix((data.astype(np.float32), tf.indices, tf.indptr),
                                    shape=tf.shape).tocsc()
        return cls(weights, {int(h): i for i, h in enumerate(hashes)})

    def scores(self, query: str) -> np.ndarray:
        """BM25 score of every document for ``query`` (0 where no term matches)."""
        ids = sorted({self.columns[int(h)] for h in term_hashes(query) if int(h) in self.columns})
        out = np.zeros(self.size, dtype=np.float32)
        w = self.weights
        for j in ids:
            start, end = w.indptr[j], w.indptr[j + 1]
            out[w.indices[start:end]] += w.data[start:end]
        return out

    @staticmethod
    def top(scores: np.ndarray, k: int) -> np.ndarray:
        """Indices of the k highest positive scores, best first (ties: lower index first)."""
        positive = np.flatnonzero(scores > 0)
        if len(positive) == 0:
            return positive
        k = min(k, len(positive))
        part = positive[np.argpartition(-scores[positive], k - 1)[:k]]
        return part[np.lexsort((part, -scores[part]))]


def idf_weight(n: int, df: int) -> float:
    """The idf used above, for tests: ``log(1 + (n - df + 0.5) / (df + 0.5))``."""
    return math.log(1.0 + (n - df + 0.5) / (df + 0.5))
