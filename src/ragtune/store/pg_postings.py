"""A process's copy of the PostgreSQL store's postings, for BM25 in numpy (``[store]
postings_in_memory = true``).

Why: BM25 in SQL reads every posting of a question's terms, and a question's words are in
a good share of the chunks (the public IR collections' questions read 0.35-2.4 postings
per document, bench/store_scale.py's synthetic ones about 1): at 1M chunks that is about a
million postings, 0.3-1.3 s of SQL per question on 2 cores. numpy sums the same postings in
tens of milliseconds. Only the postings are copied (term, ACL id, chunk, tf, the chunk's
length); the statistics (N, average length, document frequencies) still come from the
database, per reader, in the question's transaction (pg_query.ReaderStats), so scores are
those of the SQL path (tested equal), and the top chunks are read from ``chunks`` under
row-level security as before.

Kept in step by a counter: every write that changes postings adds 1 to ``meta``'s
``postings_generation`` in its transaction. A question reads the counter with its
statistics; the copy answers only when it was loaded at that same generation, otherwise
the SQL path answers and the copy reloads in a background thread (from one snapshot:
counter, chunks and postings in one REPEATABLE READ transaction). So a change takes effect
on the next question either way; the copy only ever makes a question faster.

>>> p = Postings.from_arrays(7, chunk_n=[10, 11], length=[3, 5],  # generation 7, two chunks
...     groups=[(42, 1, [10, 11], [2, 1])])  # term 42, ACL id 1: in both chunks, tf 2 and 1
>>> [(n, round(s, 3)) for n, s in p.top({42: 2.2}, None, c1=0.3, c2=0.2, k=5)]
[(10, 1.517), (11, 0.957)]
>>> p.top({42: 2.2}, [2], c1=0.3, c2=0.2, k=5)  # a reader of ACL 2 only
[]
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

# array_send(int8[]) / array_send(int4[]): ndim, has-nulls flag, element type, then per
# dimension its size and lower bound; then each element as its length and value
_ARRAY_HEADER = 20
_INT8S = np.dtype([("len", ">i4"), ("v", ">i8")])
_INT4S = np.dtype([("len", ">i4"), ("v", ">i4")])

LOAD_SQL = (
    "SELECT term, acl, array_send(array_agg(chunk)), array_send(array_agg(tf)) "
    "FROM postings GROUP BY term, acl ORDER BY term, acl")


def _ints(data: bytes, dtype: np.dtype) -> np.ndarray:
    """The values of a one-dimensional, null-free array from ``array_send``."""
    return np.frombuffer(data, dtype=dtype, offset=_ARRAY_HEADER)["v"]


@dataclass
class Postings:
    """Postings grouped by (term, ACL id): ``rows`` (positions in ``chunk_n``) and ``tf``
    for each group between its start and end in ``groups[term]``."""

    generation: int
    chunk_n: np.ndarray  # int64, sorted: the chunks' numbers
    length: np.ndarray  # float64: their BM25 lengths
    rows: np.ndarray  # int32 per posting
    tf: np.ndarray  # float32 per posting (whole numbers: exact), float64 when scored
    groups: dict[int, list[tuple[int, int, int]]]  # term -> [(acl id, start, end)]

    @classmethod
    def from_arrays(cls, generation: int, chunk_n: Sequence[int] | np.ndarray,
                    length: Sequence[float] | np.ndarray,
                    groups: Sequence[tuple[int, int, Any, Any]]) -> Postings:
        """``groups``: (term, acl id, chunk numbers, tf) per group; chunks as ``chunk_n``."""
        chunk_n = np.asarray(chunk_n, dtype=np.int64)
        out: dict[int, list[tuple[int, int, int]]] = {}
        rows, tfs, at = [], [], 0
        for term, acl, chunks, tf in groups:
            rows.append(np.searchsorted(chunk_n, np.asarray(chunks, dtype=np.int64)).astype(np.int32))
            tfs.append(np.asarray(tf, dtype=np.float32))
            out.setdefault(int(term), []).append((int(acl), at, at + len(chunks)))
            at += len(chunks)
        return cls(generation, chunk_n, np.asarray(length, dtype=np.float64),
                   np.concatenate(rows) if rows else np.zeros(0, np.int32),
                   np.concatenate(tfs) if tfs else np.zeros(0, np.float32), out)

    @classmethod
    def load(cls, cur: Any) -> Postings:
        """Read the copy in ``cur``'s transaction (a psycopg cursor, admin, one snapshot)."""
        generation = int(cur.execute(
            "SELECT value FROM meta WHERE key = 'postings_generation'").fetchone()[0])
        chunks = cur.execute("SELECT array_send(coalesce(array_agg(n ORDER BY n), '{}')), "
                             "array_send(coalesce(array_agg(length ORDER BY n), '{}')) "
                             "FROM chunks", binary=True).fetchone()
        chunk_n, length = _ints(chunks[0], _INT8S), _ints(chunks[1], _INT4S)
        groups = [(term, acl, _ints(c, _INT8S), _ints(t, _INT4S))
                  for term, acl, c, t in cur.execute(LOAD_SQL, binary=True)]
        return cls.from_arrays(generation, chunk_n, length, groups)

    @property
    def size(self) -> int:
        return len(self.rows)

    def top(self, weights: dict[int, float], readable: list[int] | None, *, c1: float,
            c2: float, k: int) -> list[tuple[int, float]]:
        """(chunk number, score) of the ``k`` best chunks, best first, ties by chunk number:
        the SQL path's ``w * tf / (tf + c1 + c2 * length)`` summed over the terms, over the
        postings of the ACL ids in ``readable`` (None: all)."""
        allowed = None if readable is None else set(readable)
        rows, parts = [], []
        for term, w in weights.items():
            for acl, start, end in self.groups.get(term, ()):
                if allowed is not None and acl not in allowed:
                    continue
                r, tf = self.rows[start:end], self.tf[start:end].astype(np.float64)
                rows.append(r)
                parts.append(w * tf / (tf + c1 + c2 * self.length[r]))
        if not rows:
            return []
        scores = np.bincount(np.concatenate(rows), weights=np.concatenate(parts),
                             minlength=len(self.chunk_n))
        hit = np.flatnonzero(scores)
        if len(hit) > k:  # every row scoring at least the k-th best: ties cut by number
            kth = np.partition(scores[hit], len(hit) - k)[len(hit) - k]
            hit = hit[scores[hit] >= kth]
        best = hit[np.lexsort((hit, -scores[hit]))][:k]  # rows follow chunk numbers
        return [(int(self.chunk_n[i]), float(scores[i])) for i in best]


class PostingsCopy:
    """The current :class:`Postings` of one store, reloaded in the background when the
    store's generation moved on. ``load`` opens its own admin transaction."""

    def __init__(self, load: Callable[[], Postings]) -> None:
        self._load = load
        self._lock = threading.Lock()
        self._loading: threading.Thread | None = None
        self.current: Postings | None = None
        self.loads = 0  # how many times it was (re)loaded
        self.error: str | None = None  # the last load's failure, if any

    def at(self, generation: int) -> Postings | None:
        """The copy when it holds ``generation``; else None, and a reload starts (once)."""
        current = self.current
        if current is not None and current.generation == generation:
            return current
        with self._lock:
            if self._loading is None or not self._loading.is_alive():
                self._loading = threading.Thread(target=self._reload, daemon=True,
                                                 name="ragtune-postings-copy")
                self._loading.start()
        return None

    def wait(self, timeout: float | None = None) -> None:
        """Wait for a reload under way (tests, benchmarks)."""
        loading = self._loading
        if loading is not None:
            loading.join(timeout)

    def _reload(self) -> None:
        try:
            self.current = self._load()
            self.loads += 1
            self.error = None
        except Exception as e:  # noqa: BLE001 - the SQL path answers meanwhile
            self.error = f"{type(e).__name__}: {e}"
