"""Fast writes for the PostgreSQL store: COPY, BM25 statistics added per batch, write batches.

A document write used to be one transaction of row-by-row inserts (chunks with their HNSW
insert, ~80 postings per chunk, and a document-frequency upsert per term): 190 chunks/s at
10k chunks on 2 cores, of which the HNSW inserts took 40%. Here:

- chunk rows go in with one binary ``COPY`` (vectors in pgvector's binary format, chunk
  numbers reserved from the identity sequence first), postings with one binary ``COPY``
  built by numpy (no Python object per posting);
- the written chunks' BM25 statistics (:class:`PendingStats`) are summed in memory and
  added to ``lexicon``/``corpus`` once per transaction: with Zipf-shaped text a batch of
  documents shares most of its terms, so one upsert per (term, ACL) replaces one per
  (term, document);
- :class:`WriteBatch`: inside ``PostgresStore.write_lock()`` (the batch ``ragtune ingest``
  already opens) the calling thread's documents share one transaction, committed every
  ``COMMIT_CHUNKS`` chunks or ``COMMIT_SECONDS`` seconds and when the batch ends; each
  document is a savepoint, so one bad document rolls back alone, and a killed writer loses
  at most the uncommitted documents, each wholly (no half-replaced document, no log entry
  without its document: the ingest log commits with them);
- a batch that starts on an empty store, or writes more chunks than the store held when
  it began (at least ``DEFER_INDEX_CHUNKS``), drops the HNSW index (or does not create it)
  and builds it once when the batch ends:
  building a graph over N vectors is far cheaper than N inserts into it. Meanwhile
  searches scan exactly (correct, slower); a writer killed before the build leaves the
  store without the index, which ``integrity_check`` reports and the next batch rebuilds.

>>> PendingStats().empty
True
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np

try:
    import psycopg
except ImportError:  # pragma: no cover - postgres.py reports the missing extra
    psycopg = None  # type: ignore[assignment]

COMMIT_CHUNKS = 20_000
COMMIT_SECONDS = 2.0
DEFER_INDEX_CHUNKS = 10_000

_COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + b"\x00" * 8  # signature, flags, header extension
_COPY_TRAILER = b"\xff\xff"
_POSTING = np.dtype([("fields", ">i2"), ("l_term", ">i4"), ("term", ">i4"), ("l_chunk", ">i4"),
                     ("chunk", ">i8"), ("l_tf", ">i4"), ("tf", ">i4"), ("l_length", ">i4"),
                     ("length", ">i4"), ("l_acl", ">i4"), ("acl", ">i4")])
POSTINGS_COPY = "COPY postings (term, chunk, tf, length, acl) FROM STDIN (FORMAT BINARY)"


def postings_copy_data(ns: Sequence[int], terms: Sequence[np.ndarray],
                       acls: Sequence[int]) -> tuple[bytes, np.ndarray]:
    """(binary COPY data of ``postings (term, chunk, tf, length, acl)``, the unique terms of
    each chunk concatenated) for chunks numbered ``ns`` with term hashes ``terms`` (int4)
    and ACL ids ``acls`` (pg_schema migration 5: a posting carries its chunk's length and
    ACL so the BM25 arm never reads the chunk row).

    >>> data, uniq = postings_copy_data([7], [np.array([3, 3, 5], dtype=np.int32)], [1])
    >>> len(data) == 19 + 2 * 46 + 2, uniq.tolist()
    (True, [3, 5])
    """
    uniq_all, chunk_all, tf_all, length_all, acl_all = [], [], [], [], []
    for n, t, acl in zip(ns, terms, acls, strict=True):
        uniq, tf = np.unique(t, return_counts=True)
        uniq_all.append(uniq)
        chunk_all.append(np.full(len(uniq), n, dtype=np.int64))
        tf_all.append(tf)
        length_all.append(np.full(len(uniq), len(t), dtype=np.int32))
        acl_all.append(np.full(len(uniq), acl, dtype=np.int32))
    uniq = np.concatenate(uniq_all) if uniq_all else np.zeros(0, dtype=np.int32)
    rows = np.empty(len(uniq), dtype=_POSTING)
    rows["fields"], rows["l_term"], rows["l_chunk"], rows["l_tf"] = 5, 4, 8, 4
    rows["l_length"], rows["l_acl"] = 4, 4
    rows["term"] = uniq
    for field, parts in (("chunk", chunk_all), ("tf", tf_all), ("length", length_all),
                         ("acl", acl_all)):
        rows[field] = np.concatenate(parts) if parts else 0
    return _COPY_HEADER + rows.tobytes() + _COPY_TRAILER, uniq


class PendingStats:
    """BM25 statistics of written chunks not yet added to ``lexicon`` and ``corpus``: per
    ACL, every chunk's unique terms, the chunk count and the term total."""

    def __init__(self) -> None:
        self.terms: dict[tuple[str, ...], list[np.ndarray]] = {}
        self.chunks: dict[tuple[str, ...], list[int]] = {}
        # terms whose df a removal took to 0 or below: their rows are deleted after the
        # pending additions are in (a term removed and re-added in one batch stays)
        self.emptied: set[int] = set()
        self.shrunk = False  # a removal took place: delete ACL totals that fell to 0
        self.touched = False  # postings were added, removed or retagged

    @property
    def empty(self) -> bool:
        return not self.chunks and not self.shrunk

    def add(self, acl: Sequence[str], unique_terms: np.ndarray, chunks: int, terms: int) -> None:
        key = tuple(acl)
        self.touched = True
        self.terms.setdefault(key, []).append(unique_terms)
        counts = self.chunks.setdefault(key, [0, 0])
        counts[0] += chunks
        counts[1] += terms

    def merge(self, other: PendingStats) -> None:
        for key, arrays in other.terms.items():
            self.terms.setdefault(key, []).extend(arrays)
        for key, (chunks, terms) in other.chunks.items():
            counts = self.chunks.setdefault(key, [0, 0])
            counts[0] += chunks
            counts[1] += terms
        self.emptied |= other.emptied
        self.shrunk |= other.shrunk
        self.touched |= other.touched

    def flush(self, cur: psycopg.Cursor) -> None:
        """Add everything pending to ``lexicon`` and ``corpus`` (one upsert per ACL each)."""
        for acl, arrays in self.terms.items():
            terms, df = np.unique(np.concatenate(arrays), return_counts=True)
            cur.execute("INSERT INTO lexicon AS l (term, acl, df) SELECT t, %s::text[], d "
                        "FROM unnest(%s::int4[], %s::int4[]) AS u (t, d) ORDER BY t "
                        "ON CONFLICT (term, acl) DO UPDATE SET df = l.df + excluded.df",
                        (list(acl), terms.tolist(), df.tolist()))
        for acl, (chunks, terms_total) in self.chunks.items():
            cur.execute("INSERT INTO corpus AS c (acl, chunks, terms) VALUES (%s, %s, %s) "
                        "ON CONFLICT (acl) DO UPDATE SET chunks = c.chunks + excluded.chunks, "
                        "terms = c.terms + excluded.terms", (list(acl), chunks, terms_total))
        if self.emptied:
            cur.execute("DELETE FROM lexicon WHERE term = ANY(%s) AND df <= 0", (sorted(self.emptied),))
        if self.shrunk:
            cur.execute("DELETE FROM corpus WHERE chunks <= 0")
        if self.touched:
            cur.execute("UPDATE meta SET value = (value::int8 + 1)::text "
                        "WHERE key = 'postings_generation'")
        self.terms.clear()
        self.chunks.clear()
        self.emptied.clear()
        self.shrunk = self.touched = False


class WriteBatch:
    """One thread's write batch on one connection (see the module docstring).

    The store routes its own (admin) statements from the batch's thread here, so reads
    before a write (``get_document``, ``existing_embeddings``) see the batch's uncommitted
    documents and the ingest log commits with them.
    """

    def __init__(self, conn: psycopg.Connection, rows_at_start: int) -> None:
        self.conn = conn
        self.stats = PendingStats()
        self.rows_at_start = rows_at_start
        self.written = 0  # chunks written in this batch
        self.uncommitted = 0
        self.opened: float | None = None  # when the open transaction began
        self.index_dropped = False

    def begin(self, settings: dict[str, str]) -> None:
        if self.opened is None:
            self.conn.execute("BEGIN")
            self.conn.execute("SELECT " + ", ".join(["set_config(%s, %s, true)"] * len(settings)),
                              [x for kv in settings.items() for x in kv])
            self.opened = time.monotonic()

    def wrote(self, chunks: int) -> None:
        self.written += chunks
        self.uncommitted += chunks

    def due(self) -> bool:
        """Whether the open transaction has grown or aged enough to commit."""
        return self.opened is not None and (
            self.uncommitted >= COMMIT_CHUNKS or time.monotonic() - self.opened >= COMMIT_SECONDS)

    def defer_index(self) -> bool:
        """Whether this batch has outgrown the store enough to build the index at its end."""
        return not self.index_dropped and self.written > max(DEFER_INDEX_CHUNKS, self.rows_at_start)

    def commit(self) -> None:
        if self.opened is None:
            return
        with self.conn.cursor() as cur:
            self.stats.flush(cur)
        self.conn.execute("COMMIT")
        self.opened, self.uncommitted = None, 0

    def rollback(self) -> None:
        if self.opened is not None:
            self.stats = PendingStats()
            self.conn.execute("ROLLBACK")
            self.opened, self.uncommitted = None, 0
