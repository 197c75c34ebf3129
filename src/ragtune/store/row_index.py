"""Chunks held in memory for searching: ACL and filter masks, BM25 per reader, top k.

The embedded SQLite store and the Chroma store both keep one of these per store
generation: one row per chunk (``chunk_ids``), per-document arrays of what the ACL and
filters test (groups, collection, update time), and a :class:`~ragtune.store.bm25.BM25Index`
over the chunks' stored term hashes. A search masks rows in numpy instead of asking the
database per query, and BM25 statistics follow the reader (issue 17): document
frequencies, N and the average length are those of the rows the principal may read, so
a restricted document never moves anyone else's scores.

>>> import numpy as np
>>> from ragtune.store.bm25 import BM25Index
>>> from ragtune.types import Principal
>>> idx = RowIndex(["c0", "c1"], np.array([0, 1], dtype=np.int32), ["d0", "d1"],
...                ["a.md", "b.md"], ["default"] * 2, np.zeros(2), [frozenset(), frozenset({"hr"})],
...                BM25Index.build(["tent guide", "tent salary"]))
>>> [cid for cid, _ in idx.lexical_top("tent", 5, Principal.anonymous())]  # c1 is hr's
['c0']
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ragtune.store.base import SearchFilter
from ragtune.store.bm25 import BM25Index, CorpusStats
from ragtune.types import Principal


def best_rows(scores: np.ndarray, k: int, positive_only: bool) -> np.ndarray:
    """Positions of the ``k`` best scores, best first (ties by position); only positive or
    only finite scores count.

    >>> best_rows(np.array([0.5, 2.0, 0.0, 2.0]), 2, positive_only=True).tolist()
    [1, 3]
    """
    candidates = np.flatnonzero(scores > 0) if positive_only else np.flatnonzero(
        np.isfinite(scores))
    if len(candidates) == 0:
        return candidates
    k = min(k, len(candidates))
    top = candidates[np.argpartition(-scores[candidates], k - 1)[:k]]
    return top[np.lexsort((top, -scores[top]))]


@dataclass
class RowIndex:
    """What a search needs in memory, valid for one version of the store's contents."""

    chunk_ids: list[str]  # one per row
    doc_codes: np.ndarray  # int32, row -> document code
    doc_ids: list[str]
    doc_sources: list[str]
    doc_collections: list[str]
    doc_updated: np.ndarray  # float64 per document
    doc_groups: list[frozenset[str]]
    bm25: BM25Index
    masks: dict[tuple, np.ndarray | None] = field(default_factory=dict, init=False, repr=False)
    lexical: dict[tuple, CorpusStats] = field(default_factory=dict, init=False, repr=False)

    def allowed_rows(self, principal: Principal, filters: SearchFilter | None) -> np.ndarray | None:
        """Boolean row mask of what ``principal`` may read under ``filters`` (None: all rows)."""
        key = (principal.admin, principal.groups, filters)
        if key in self.masks:
            return self.masks[key]
        docs = np.ones(len(self.doc_ids), dtype=bool)
        if not principal.admin:
            docs &= np.fromiter((principal.can_read(g) for g in self.doc_groups),
                                dtype=bool, count=len(self.doc_ids))
        if filters:
            if filters.collections:
                docs &= np.isin(np.array(self.doc_collections, dtype=object), filters.collections)
            if filters.documents:
                wanted = set(filters.documents)
                docs &= np.fromiter((i in wanted or s in wanted
                                     for i, s in zip(self.doc_ids, self.doc_sources)),
                                    dtype=bool, count=len(self.doc_ids))
            if filters.since is not None:
                docs &= self.doc_updated >= filters.since
            if filters.until is not None:
                docs &= self.doc_updated <= filters.until
        mask = None if docs.all() else docs[self.doc_codes]
        if len(self.masks) > 64:
            self.masks.clear()
        self.masks[key] = mask
        return mask

    def lexical_stats(self, principal: Principal) -> CorpusStats:
        """BM25 statistics over exactly the rows ``principal`` may read (not the filters:
        a filter narrows the results, while the statistics stay those of the reader)."""
        key = (principal.admin, principal.groups)
        if key not in self.lexical:
            if len(self.lexical) > 8:  # one weight per posting each: bound the memory
                self.lexical.clear()
            rows = self.allowed_rows(principal, None)
            self.lexical[key] = self.bm25.all_rows if rows is None else self.bm25.stats(rows)
        return self.lexical[key]

    def lexical_top(self, query: str, k: int, principal: Principal,
                    filters: SearchFilter | None = None, *, phrase_rows: np.ndarray | None = None,
                    quoted_phrases: str = "boost") -> list[tuple[str, float]]:
        """BM25 top ``k`` (chunk id, score) over what ``principal`` may read under ``filters``.

        ``phrase_rows``: the rows holding the query's quoted phrases (None: it quotes
        none). ``quoted_phrases = "boost"`` ranks them first: they score their BM25 plus the
        best BM25 among the rows the search may return, plus 1; ``"filter"`` keeps only them.
        """
        if not self.chunk_ids:
            return []
        scores = self.bm25.scores(query, self.lexical_stats(principal))
        mask = self.allowed_rows(principal, filters)
        if mask is not None:
            scores = np.where(mask, scores, 0.0)
        if phrase_rows is not None:
            if quoted_phrases == "filter":
                scores = np.where(phrase_rows, scores, 0.0)
            else:
                # Questions quote for emphasis as often as for exact strings: a hard filter
                # dropped every relevant row lacking the quoted words (CACM: BM25 nDCG@10
                # 0.43 with it, 0.51 without; bench/retrieval_sets.py).
                holds = phrase_rows if mask is None else phrase_rows & mask
                scores = scores + holds * (float(scores.max()) + 1.0)
        top = best_rows(scores, k, positive_only=True)
        return [(self.chunk_ids[i], float(scores[i])) for i in top]
