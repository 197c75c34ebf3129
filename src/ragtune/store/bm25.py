"""An in-memory BM25 index: raw term frequencies as a sparse matrix, one column per term.

Why not score with FTS5's ``bm25()``: FTS5 computes the score for every matching row, and
a question's common words match most of a large store (0.45-1.4 s per query at 100k
chunks in ``bench/search_latency.py``). Here a query reads the posting columns of its few
terms and scores them with numpy — a few milliseconds at 100k chunks, the approach of the
bm25s library. FTS5 stays the persistent full-text index of the store (text, section,
title), from which this index is rebuilt when the store changes.

Statistics follow the reader. The document frequencies, the number of chunks and the
average length that BM25 needs are computed over the rows a principal may read
(:class:`CorpusStats`), so a user's scores do not move when a document they cannot read
is added or removed: the words of restricted text leave no trace in them (issue 17).

>>> idx = BM25Index.build(["tents are waterproof", "stoves burn gas", "tents tents tents"])
>>> [int(i) for i in idx.top(idx.scores("waterproof tent"), 2)]
[0, 2]
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy import sparse

from ragtune.config import StoreSettings
from ragtune.store.analysis import Analyzer


@dataclass(frozen=True)
class BM25Params:
    """How a store analyses and scores text (``[store] bm25_*`` settings)."""

    analyzer: Analyzer = field(default_factory=Analyzer)
    k1: float = 1.2
    b: float = 0.5  # as StoreSettings.bm25_b (config.py says why)

    @classmethod
    def from_settings(cls, settings: StoreSettings) -> BM25Params:
        return cls(Analyzer(settings.bm25_stemmer, settings.bm25_stopwords),
                   settings.bm25_k1, settings.bm25_b)


@dataclass(frozen=True)
class CorpusStats:
    """BM25 weights under the statistics of the rows one reader may see.

    ``rows`` is a boolean mask (None: every row); ``n`` the visible rows; ``weights`` holds
    one precomputed BM25 weight per stored (row, term) pair, in the index's column order:
    ``idf(term) * tf * (k1 + 1) / (tf + k1 * (1 - b + b * length / avgdl))`` with df, N and
    avgdl over the visible rows, and 0 for a row the reader may not see. Built once per
    reader and store generation (O(postings)); a query then only sums its terms' columns.
    """

    rows: np.ndarray | None
    n: int
    weights: np.ndarray


class BM25Index:
    """Okapi BM25 (k1, b; Lucene's idf) over documents given as arrays of term hashes."""

    def __init__(self, tf: sparse.csc_matrix, lengths: np.ndarray, columns: dict[int, int],
                 params: BM25Params) -> None:
        self.tf = tf  # rows x terms, raw counts
        self.lengths = lengths
        self.columns = columns  # term hash -> column
        self.params = params
        self._column_of = np.repeat(np.arange(tf.shape[1], dtype=np.int64), np.diff(tf.indptr))
        self.all_rows = self.stats(None)

    @property
    def size(self) -> int:
        return self.tf.shape[0]

    @classmethod
    def build(cls, texts: Sequence[str], params: BM25Params | None = None) -> BM25Index:
        params = params or BM25Params()
        return cls.from_terms([params.analyzer.term_hashes(t) for t in texts], params)

    @classmethod
    def from_terms(cls, docs: Sequence[np.ndarray], params: BM25Params | None = None) -> BM25Index:
        n = len(docs)
        lengths = np.fromiter((len(d) for d in docs), dtype=np.float32, count=n)
        flat = np.concatenate(docs) if n else np.zeros(0, dtype=np.uint32)
        hashes, cols = np.unique(flat, return_inverse=True)
        rows = np.repeat(np.arange(n, dtype=np.int64), lengths.astype(np.int64))
        tf = sparse.csr_matrix((np.ones(len(flat), dtype=np.float32), (rows, cols.ravel())),
                               shape=(n, max(len(hashes), 1)))
        tf.sum_duplicates()
        return cls(tf.tocsc(), lengths, {int(h): i for i, h in enumerate(hashes)},
                   params or BM25Params())

    def stats(self, rows: np.ndarray | None) -> CorpusStats:
        """Weights under the statistics of ``rows`` (a boolean mask; None: all rows)."""
        k1, b = self.params.k1, self.params.b
        tf, row_of = self.tf, self.tf.indices
        visible = self.lengths if rows is None else self.lengths[rows]
        n = len(visible)
        avgdl = float(visible.mean()) if n else 1.0
        norm = k1 * (1.0 - b + b * self.lengths / max(avgdl, 1e-9))
        seen = None if rows is None else rows[row_of]
        df = np.bincount(self._column_of if seen is None else self._column_of[seen],
                         minlength=tf.shape[1]).astype(np.float64)
        # Lucene's BM25 idf: always positive, so a very common word never lowers a score.
        idf = np.log(1.0 + (n - df + 0.5) / (df + 0.5))
        weights = (idf[self._column_of] * tf.data * (k1 + 1.0)
                   / (tf.data + norm[row_of])).astype(np.float32)
        if seen is not None:
            weights[~seen] = 0.0
        return CorpusStats(rows, n, weights)

    def scores(self, query: str, stats: CorpusStats | None = None) -> np.ndarray:
        """BM25 score of every row for ``query`` under ``stats`` (default: all rows).

        Rows outside ``stats.rows`` score 0 and count in no statistic.
        """
        stats = stats or self.all_rows
        out = np.zeros(self.size, dtype=np.float32)
        hashes = self.params.analyzer.term_hashes(query)
        # A word the question repeats counts as often as it occurs (Okapi's query-term
        # frequency with k3 = infinity, as bm25s does): long, paragraph-like questions
        # weigh their recurring words more.
        ids, repeats = np.unique(np.fromiter(
            (self.columns[int(h)] for h in hashes if int(h) in self.columns), dtype=np.int64),
            return_counts=True)
        indptr, indices, weights = self.tf.indptr, self.tf.indices, stats.weights
        for j, qtf in zip(ids.tolist(), repeats.tolist()):
            start, end = indptr[j], indptr[j + 1]
            if qtf == 1:
                out[indices[start:end]] += weights[start:end]
            else:
                out[indices[start:end]] += qtf * weights[start:end]
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
