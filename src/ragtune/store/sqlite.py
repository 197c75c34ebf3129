"""SQLiteStore: the embedded default store — one WAL-mode SQLite file per workspace.

Text, section paths, vectors (float32 blobs), the FTS5 full-text index, group ACLs,
version history and the ingest log live in one file, so a document's removal or
replacement is a single transaction. Dense search runs on an in-memory matrix of all
vectors (exact inner product, so recall against exact search is 1.0), loaded on first use
and reloaded when another connection writes (a ``generation`` counter in ``meta``).

>>> import numpy as np
>>> from ragtune.types import Document, Section, Chunk, Principal
>>> store = SQLiteStore(":memory:")
>>> doc = Document("a.md", "A", (Section(("A",), "tents are waterproof"),))
>>> ch = Chunk(Chunk.make_id(doc.id, "A", "tents are waterproof"), doc.id, "tents are waterproof", "A", 0, 3)
>>> store.upsert_document(doc, [ch], np.ones((1, 4), dtype=np.float32) / 2).status
'added'
>>> [h.chunk.text for h in store.lexical_search("waterproof", 5, Principal.anonymous())]
['tents are waterproof']
"""

from __future__ import annotations

import fcntl
import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from ragtune.errors import StoreError
from ragtune.store.analysis import check_analysis, quoted_phrases
from ragtune.store.base import (
    FeedbackRecord,
    IngestLogEntry,
    ScoredChunk,
    SearchFilter,
    TraceRecord,
    WriteResult,
    chunk_vectors,
    may_read_trace,
)
from ragtune.store.bm25 import BM25Index, BM25Params
from ragtune.store.migrations import migrate
from ragtune.store.row_index import RowIndex, best_rows
from ragtune.store.trace_rows import (
    check_feedback,
    record_sources,
    records_from_rows,
    redacted,
    trace_where,
    vector_bytes,
)
from ragtune.store.vector_scan import MIN_ROWS, Int8Scanner
from ragtune.types import Chunk, Document, DocumentInfo, Principal

# meta key set while deleted text may still be on disk (finish_deletions clears it)
_ERASE_KEY = "erase_pending"

_CHUNK_COLS = "c.id, c.doc_id, c.text, c.section, c.ordinal, c.tokens, c.page, d.source, d.title"


def phrase_query(text: str) -> str | None:
    """The FTS5 query for the quoted phrases in ``text`` (all must occur), or None.

    >>> phrase_query('error "E-4012" on the "VPN client"')
    '"E 4012" AND "VPN client"'
    >>> phrase_query("no quotes") is None
    True
    """
    return " AND ".join(f'"{" ".join(words)}"' for words in quoted_phrases(text)) or None


@dataclass
class _SearchIndex(RowIndex):
    """The shared in-memory rows (store/row_index.py) plus SQLite's dense matrix, valid for
    one store ``generation``. Rows are chunks in rowid order."""

    generation: int
    rowids: np.ndarray  # int64, one per chunk
    matrix: np.ndarray  # float32 (n, dim), L2-normalised rows
    scanner: Int8Scanner | None = None  # built on the first dense search of a large store

    def dense_top(self, vector: np.ndarray, k: int,
                  mask: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """Best ``k`` rows by inner product (indices best first, exact scores).

        Large stores scan an int8 copy first and rescore its best rows exactly
        (store/vector_scan.py); small ones, or machines without ONNX Runtime, scan fp32.
        """
        if len(self.rowids) >= MIN_ROWS and self.scanner is None:
            try:
                self.scanner = Int8Scanner(self.matrix)
            except ImportError:
                pass
        if self.scanner is not None:
            return self.scanner.top(self.matrix, vector, k, mask)
        scores = self.matrix @ vector
        if mask is not None:
            scores = np.where(mask, scores, -np.inf)
        top = best_rows(scores, k, positive_only=False)
        return top, scores[top]


class SQLiteStore:
    """The embedded store. ``path`` is a file, or ``":memory:"`` for tests."""

    def __init__(self, path: str | Path, *, busy_timeout: float = 30.0,
                 bm25: BM25Params | None = None, quoted_phrases: str = "boost") -> None:
        self.path = str(path)
        self.bm25 = bm25 or BM25Params()
        self.quoted_phrases = quoted_phrases
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = sqlite3.connect(
                self.path, timeout=busy_timeout, isolation_level=None, check_same_thread=False
            )
            self._db.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
            if self.path != ":memory:":
                self._db.execute("PRAGMA journal_mode = WAL")
            self._db.execute("PRAGMA synchronous = NORMAL")
            self._db.execute("PRAGMA foreign_keys = ON")
            # Deleted text is overwritten on disk, not merely unlinked (deletion requests).
            self._db.execute("PRAGMA secure_delete = ON")
            self.schema_version = migrate(self._db, self.path)
        except sqlite3.DatabaseError as e:
            raise StoreError(f"{self.path}: cannot open the store: {e}") from None
        self._busy_timeout = busy_timeout
        self._lock = threading.RLock()
        self._index: _SearchIndex | None = None
        self._erase_tried = 0.0
        self._retry_erasure()  # a deletion an earlier process could not finish
        self.reanalyzed = self._ensure_analysis()

    def _stored_analysis(self) -> str:
        row = self._db.execute("SELECT value FROM meta WHERE key = 'bm25_analyzer'").fetchone()
        return row[0] if row else ""

    def _ensure_analysis(self) -> int:
        """Re-hash every chunk's BM25 terms from its stored text when the store was
        analysed otherwise than ``self.bm25.analyzer`` says (a settings change, or a store
        from before analysis was configurable). Returns the chunks re-analysed."""
        want = self.bm25.analyzer.key
        if self._stored_analysis() == want:
            return 0
        with self._transaction() as db:
            if self._stored_analysis() == want:  # another process did it meanwhile
                return 0
            rows = db.execute("SELECT rowid, title, section, text FROM chunks").fetchall()
            db.executemany("UPDATE chunks SET terms = ? WHERE rowid = ?", [
                (self._terms(title, section, text), rowid)
                for rowid, title, section, text in rows])
            db.execute("INSERT OR REPLACE INTO meta VALUES ('bm25_analyzer', ?)", (want,))
        return len(rows)

    def _terms(self, title: str, section: str, text: str) -> bytes:
        """The stored BM25 terms of a chunk: its document title, section path and text."""
        return self.bm25.analyzer.term_hashes(f"{title}\n{section}\n{text}").tobytes()

    # ----------------------------------------------------------------- transactions
    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as e:
                raise StoreError(f"{self.path}: store is busy ({e}); another process is writing") from None
            try:
                yield self._db
                self._db.execute(
                    "UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'generation'"
                )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._retry_erasure()

    @contextmanager
    def write_lock(self, timeout: float = 30.0) -> Iterator[None]:
        """Single-writer lock for a whole batch (ingest, sync). A second writer waits, then fails.

        SQLite already serialises transactions; this lock makes a second *batch* wait
        for the first instead of interleaving documents, and says who holds it.
        """
        if self.path == ":memory:":
            with self._lock:
                yield
            return
        lock_path = self.path + ".lock"
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            deadline = time.monotonic() + timeout
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "?"
                        raise StoreError(
                            f"{self.path}: another ragtune process (pid {holder}) is writing to "
                            f"this workspace; waited {timeout:.0f} s — try again when it finishes"
                        ) from None
                    time.sleep(0.1)
            os.ftruncate(fd, 0)
            os.pwrite(fd, str(os.getpid()).encode(), 0)
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    # ----------------------------------------------------------------- documents
    def _doc_info(self, row: sqlite3.Row | tuple) -> DocumentInfo:
        (doc_id, source, title, collection, version, content_hash, chunks, metadata,
         created, updated) = row
        groups = tuple(
            g for (g,) in self._db.execute(
                "SELECT grp FROM document_groups WHERE doc_id = ? ORDER BY grp", (doc_id,)
            )
        )
        return DocumentInfo(doc_id, source, title, collection, groups, version, content_hash,
                            chunks, created, updated, json.loads(metadata))

    _DOC_COLS = ("id, source, title, collection, version, content_hash, chunks, metadata, "
                 "created_at, updated_at")

    def get_document(self, ref: str) -> DocumentInfo | None:
        with self._lock:
            row = self._db.execute(
                f"SELECT {self._DOC_COLS} FROM documents WHERE id = ? OR source = ?", (ref, ref)
            ).fetchone()
            return self._doc_info(row) if row else None

    def list_documents(self, principal: Principal | None = None) -> list[DocumentInfo]:
        where, params = ("1", []) if principal is None else self._acl_sql(principal, None)
        with self._lock:
            rows = self._db.execute(
                f"SELECT {self._DOC_COLS} FROM documents d WHERE {where} ORDER BY source", params
            ).fetchall()
            return [self._doc_info(r) for r in rows]

    def count_documents(self) -> int:
        with self._lock:
            return self._db.execute("SELECT count(*) FROM documents").fetchone()[0]

    def document_versions(self, doc_id: str) -> list[dict[str, Any]]:
        with self._lock:
            rows = self._db.execute(
                "SELECT version, content_hash, chunks, ingested_at FROM versions "
                "WHERE doc_id = ? ORDER BY version", (doc_id,)
            ).fetchall()
        return [dict(zip(("version", "content_hash", "chunks", "ingested_at"), r)) for r in rows]

    def sources_under(self, prefix: str) -> list[str]:
        """Sources that start with ``prefix`` (a folder path ending in '/')."""
        with self._lock:
            rows = self._db.execute(
                "SELECT source FROM documents WHERE substr(source, 1, ?) = ?", (len(prefix), prefix)
            ).fetchall()
        return [r[0] for r in rows]

    def existing_embeddings(self, chunk_ids: Sequence[str]) -> dict[str, np.ndarray]:
        found: dict[str, np.ndarray] = {}
        ids = list(chunk_ids)
        with self._lock:
            for i in range(0, len(ids), 500):
                part = ids[i:i + 500]
                marks = ",".join("?" * len(part))
                for cid, blob in self._db.execute(
                    f"SELECT id, embedding FROM chunks WHERE id IN ({marks})", part
                ):
                    found[cid] = np.frombuffer(blob, dtype=np.float32).copy()
        return found

    def replace_vectors(self, vectors: Mapping[str, np.ndarray]) -> int:
        """New vectors for stored chunks in one transaction (see the Store protocol)."""
        rows = [(np.ascontiguousarray(v, dtype=np.float32).reshape(-1).tobytes(), cid)
                for cid, v in vectors.items()]
        if not rows:
            return 0
        with self._transaction() as db:
            stored = db.execute("SELECT length(embedding) FROM chunks LIMIT 1").fetchone()
            if stored and stored[0] != len(rows[0][0]):
                raise StoreError(f"{self.path}: {len(rows[0][0]) // 4}-dimensional vectors but "
                                 f"the store holds {stored[0] // 4}-dimensional ones")
            before = db.total_changes
            db.executemany("UPDATE chunks SET embedding = ? WHERE id = ?", rows)
            return db.total_changes - before

    def upsert_document(self, doc: Document, chunks: Sequence[Chunk], vectors: np.ndarray, *,
                        collection: str = "default", groups: Sequence[str] | None = None,
                        metadata: dict[str, Any] | None = None) -> WriteResult:
        """Add ``doc``, or replace its chunks if its content changed, in one transaction.
        ``groups=None`` keeps a stored document's groups (see the Store protocol)."""
        vectors = chunk_vectors(vectors, len(chunks), doc.source)
        content_hash = doc.content_hash
        now = time.time()
        with self._transaction() as db:
            check_analysis(self._stored_analysis(), self.bm25.analyzer, self.path)
            row = db.execute(
                "SELECT version, content_hash, collection, created_at FROM documents WHERE id = ?",
                (doc.id,),
            ).fetchone()
            old_groups = tuple(
                g for (g,) in db.execute(
                    "SELECT grp FROM document_groups WHERE doc_id = ? ORDER BY grp", (doc.id,)
                )
            )
            before = old_groups if row else None
            groups = old_groups if groups is None else tuple(sorted(set(groups)))
            if row and row[1] == content_hash and row[2] == collection and old_groups == groups:
                return WriteResult(doc.id, "unchanged", row[0], len(chunks), groups=groups,
                                   previous_groups=before)
            if row and row[1] == content_hash:
                # Same content, new collection or ACL: retag without a new version.
                db.execute("UPDATE documents SET collection = ?, updated_at = ? WHERE id = ?",
                           (collection, now, doc.id))
                self._set_groups(db, doc.id, groups)
                return WriteResult(doc.id, "retagged", row[0], len(chunks), groups=groups,
                                   previous_groups=before)
            version = (row[0] + 1) if row else 1
            meta_json = json.dumps(metadata or doc.metadata or {}, sort_keys=True, default=str)
            if row:
                db.execute("DELETE FROM chunks WHERE doc_id = ?", (doc.id,))
                db.execute(
                    "UPDATE documents SET source = ?, title = ?, collection = ?, version = ?, "
                    "content_hash = ?, chunks = ?, metadata = ?, updated_at = ? WHERE id = ?",
                    (doc.source, doc.title, collection, version, content_hash, len(chunks),
                     meta_json, now, doc.id),
                )
            else:
                db.execute(
                    f"INSERT INTO documents ({self._DOC_COLS}) VALUES (?,?,?,?,?,?,?,?,?,?)",
                    (doc.id, doc.source, doc.title, collection, version, content_hash,
                     len(chunks), meta_json, now, now),
                )
            self._set_groups(db, doc.id, groups)
            db.executemany(
                "INSERT INTO chunks (id, doc_id, ordinal, section, page, tokens, text, title, "
                "embedding, terms) VALUES (?,?,?,?,?,?,?,?,?,?)",
                [
                    (c.id, doc.id, c.ordinal, c.section, c.page, c.tokens, c.text, doc.title,
                     vectors[i].tobytes(), self._terms(doc.title, c.section, c.text))
                    for i, c in enumerate(chunks)
                ],
            )
            db.execute(
                "INSERT INTO versions (doc_id, version, content_hash, chunks, ingested_at) "
                "VALUES (?,?,?,?,?)", (doc.id, version, content_hash, len(chunks), now),
            )
        return WriteResult(doc.id, "updated" if row else "added", version, len(chunks),
                           groups=groups, previous_groups=before)

    @staticmethod
    def _set_groups(db: sqlite3.Connection, doc_id: str, groups: Sequence[str]) -> None:
        db.execute("DELETE FROM document_groups WHERE doc_id = ?", (doc_id,))
        db.executemany("INSERT INTO document_groups (doc_id, grp) VALUES (?, ?)",
                       [(doc_id, g) for g in groups])

    def delete_document(self, ref: str) -> bool:
        """Remove text, vectors, index entries, ACL and versions of one document, atomically,
        and its text from the trace log (ids kept: :func:`ragtune.store.base.redact_source`)."""
        with self._transaction() as db:
            row = db.execute("SELECT id, source FROM documents WHERE id = ? OR source = ?",
                             (ref, ref)).fetchone()
            if not row:
                return False
            doc_id = row[0]
            self._redact_traces(db, doc_id)
            db.execute("DELETE FROM chunks WHERE doc_id = ?", (doc_id,))
            db.execute("DELETE FROM document_groups WHERE doc_id = ?", (doc_id,))
            db.execute("DELETE FROM versions WHERE doc_id = ?", (doc_id,))
            db.execute("DELETE FROM documents WHERE id = ?", (doc_id,))
            # FTS5 records deletions as tombstones beside the old postings; merging the
            # segments drops the deleted terms for real (SQLite < 3.42 has no secure-delete).
            db.execute("INSERT INTO chunks_fts(chunks_fts) VALUES ('optimize')")
            if self.path != ":memory:":  # erased on disk only once the WAL is checkpointed
                db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)",
                           (_ERASE_KEY, str(time.time_ns())))
        self.finish_deletions(wait=0)
        return True

    @staticmethod
    def _redact_traces(db: sqlite3.Connection, doc_id: str) -> None:
        """Strip the document's text from the answer records that quote it (ids stay)."""
        source = db.execute("SELECT source FROM documents WHERE id = ?", (doc_id,)).fetchone()[0]
        rows = db.execute("SELECT t.id, t.record FROM trace_sources s JOIN traces t "
                          "ON t.id = s.trace_id WHERE s.source = ?", (source,)).fetchall()
        db.executemany("UPDATE traces SET record = ? WHERE id = ?", redacted(rows, source, doc_id))
        db.execute("DELETE FROM trace_sources WHERE source = ?", (source,))

    # ----------------------------------------------------------------- erasure
    def pending_deletions(self) -> bool:
        """True while deleted text may still be on disk (see :meth:`finish_deletions`)."""
        with self._lock:
            return self._db.execute("SELECT 1 FROM meta WHERE key = ?",
                                    (_ERASE_KEY,)).fetchone() is not None

    def finish_deletions(self, wait: float = 5.0) -> bool:
        """Erase deleted text from disk: checkpoint the WAL into the database file (whose
        freed pages ``secure_delete`` zeroes) and truncate the WAL, whose older frames still
        hold the text. A reader's open snapshot keeps those frames alive; this waits up to
        ``wait`` seconds for readers, then gives up and returns False. The pending mark lives
        in the store, so any later open, write or index reload of any process retries.
        """
        if self.path == ":memory:":
            return True
        with self._lock:
            row = self._db.execute("SELECT value FROM meta WHERE key = ?",
                                   (_ERASE_KEY,)).fetchone()
            if row is None:
                return True
            self._erase_tried = time.monotonic()
            self._db.execute(f"PRAGMA busy_timeout = {int(wait * 1000)}")
            try:
                busy, log, done = self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
                if busy or log != done:
                    return False
                try:  # clear the mark unless a newer deletion set it meanwhile
                    self._db.execute("DELETE FROM meta WHERE key = ? AND value = ?",
                                     (_ERASE_KEY, row[0]))
                    self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                except sqlite3.OperationalError:
                    pass  # another writer is busy: the text is gone, the mark clears next time
                return True
            finally:
                self._db.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout * 1000)}")

    def _retry_erasure(self) -> None:
        """A cheap, throttled retry of an unfinished erasure (after writes, reloads, opens)."""
        if self.path == ":memory:" or time.monotonic() - self._erase_tried < 1.0:
            return
        if self.pending_deletions():
            self.finish_deletions(wait=0)

    # ----------------------------------------------------------------- access control
    @staticmethod
    def _acl_sql(principal: Principal, filters: SearchFilter | None) -> tuple[str, list[Any]]:
        """SQL condition on alias ``d`` (documents) for what ``principal`` may read."""
        clauses: list[str] = []
        params: list[Any] = []
        if not principal.admin:
            groups = sorted(principal.groups)
            public = "NOT EXISTS (SELECT 1 FROM document_groups g WHERE g.doc_id = d.id)"
            if groups:
                marks = ",".join("?" * len(groups))
                clauses.append(
                    f"({public} OR EXISTS (SELECT 1 FROM document_groups g "
                    f"WHERE g.doc_id = d.id AND g.grp IN ({marks})))"
                )
                params.extend(groups)
            else:
                clauses.append(public)
        if filters:
            if filters.collections:
                clauses.append(f"d.collection IN ({','.join('?' * len(filters.collections))})")
                params.extend(filters.collections)
            if filters.documents:
                marks = ",".join("?" * len(filters.documents))
                clauses.append(f"(d.id IN ({marks}) OR d.source IN ({marks}))")
                params.extend(filters.documents)
                params.extend(filters.documents)
            if filters.since is not None:
                clauses.append("d.updated_at >= ?")
                params.append(filters.since)
            if filters.until is not None:
                clauses.append("d.updated_at <= ?")
                params.append(filters.until)
        return (" AND ".join(clauses) or "1"), params

    # ----------------------------------------------------------------- search
    @staticmethod
    def _scored(row: tuple, score: float) -> ScoredChunk:
        cid, doc_id, text, section, ordinal, tokens, page, source, title = row
        return ScoredChunk(Chunk(cid, doc_id, text, section, ordinal, tokens, page),
                           float(score), source, title)

    def get_chunks(self, chunk_ids: Sequence[str], principal: Principal) -> list[ScoredChunk]:
        where, params = self._acl_sql(principal, None)
        out: dict[str, ScoredChunk] = {}
        ids = list(chunk_ids)
        with self._lock:
            for i in range(0, len(ids), 500):
                part = ids[i:i + 500]
                rows = self._db.execute(
                    f"SELECT {_CHUNK_COLS} FROM chunks c JOIN documents d ON d.id = c.doc_id "
                    f"WHERE c.id IN ({','.join('?' * len(part))}) AND {where}", [*part, *params]
                ).fetchall()
                out.update((r[0], self._scored(r, 0.0)) for r in rows)
        return [out[c] for c in ids if c in out]

    def _generation(self) -> int:
        return int(self._db.execute("SELECT value FROM meta WHERE key = 'generation'").fetchone()[0])

    def _search_index(self) -> _SearchIndex:
        """The in-memory index, rebuilt from one consistent snapshot when the store changed."""
        generation = self._generation()
        if self._index is not None and self._index.generation == generation:
            return self._index
        self._retry_erasure()  # a long-lived reader (a server) finishes what it held up
        db = self._db
        db.execute("BEGIN")  # one read snapshot for the generation, chunks and documents
        try:
            generation = self._generation()
            check_analysis(self._stored_analysis(), self.bm25.analyzer, self.path)
            rows = db.execute(
                "SELECT rowid, doc_id, embedding, terms, id FROM chunks ORDER BY rowid").fetchall()
            docs = db.execute("SELECT id, source, collection, updated_at FROM documents").fetchall()
            groups: dict[str, set[str]] = {}
            for doc_id, grp in db.execute("SELECT doc_id, grp FROM document_groups"):
                groups.setdefault(doc_id, set()).add(grp)
        finally:
            db.execute("COMMIT")
        code_of = {d[0]: i for i, d in enumerate(docs)}
        codes = np.fromiter((code_of[r[1]] for r in rows), dtype=np.int32, count=len(rows))
        if rows:
            matrix = np.frombuffer(b"".join(r[2] for r in rows), dtype=np.float32)
            matrix = matrix.reshape(len(rows), -1)
        else:
            matrix = np.zeros((0, 0), dtype=np.float32)
        bm25 = BM25Index.from_terms([np.frombuffer(r[3], dtype=np.uint32) for r in rows],
                                    self.bm25)
        self._index = _SearchIndex(
            generation=generation,
            rowids=np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows)),
            chunk_ids=[r[4] for r in rows],
            doc_codes=codes, doc_ids=[d[0] for d in docs], doc_sources=[d[1] for d in docs],
            doc_collections=[d[2] for d in docs],
            doc_updated=np.array([d[3] for d in docs], dtype=np.float64),
            doc_groups=[frozenset(groups.get(d[0], ())) for d in docs],
            matrix=matrix, bm25=bm25)
        return self._index

    def _with_scores(self, ranking: list[tuple[str, float]],
                     principal: Principal) -> list[ScoredChunk]:
        score = dict(ranking)
        return [replace(c, score=score[c.chunk.id])
                for c in self.get_chunks([cid for cid, _ in ranking], principal)]

    def lexical_ranking(self, query: str, k: int, principal: Principal,
                        filters: SearchFilter | None = None) -> list[tuple[str, float]]:
        """BM25 over chunk text, section path and title, ACL-masked (store/bm25.py).

        Quoted phrases (found verbatim through the FTS5 index) either rank the rows that
        hold them first (``quoted_phrases = "boost"``) or keep only those (``"filter"``).
        """
        with self._lock:
            index = self._search_index()
            if len(index.rowids) == 0:
                return []
            holds = None
            phrases = phrase_query(query)
            if phrases:
                hits = np.array([r for (r,) in self._db.execute(
                    "SELECT rowid FROM chunks_fts WHERE chunks_fts MATCH ?", (phrases,))],
                    dtype=np.int64)
                holds = np.isin(index.rowids, hits)
            return index.lexical_top(query, k, principal, filters, phrase_rows=holds,
                                     quoted_phrases=self.quoted_phrases)

    def lexical_search(self, query: str, k: int, principal: Principal,
                       filters: SearchFilter | None = None) -> list[ScoredChunk]:
        """:meth:`lexical_ranking` with the chunks read."""
        return self._with_scores(self.lexical_ranking(query, k, principal, filters), principal)

    def dense_ranking(self, vector: np.ndarray, k: int, principal: Principal,
                      filters: SearchFilter | None = None) -> list[tuple[str, float]]:
        """Inner-product search over the chunks ``principal`` may read (exact, or int8 scan
        plus exact rescoring on large stores)."""
        with self._lock:
            index = self._search_index()
            if len(index.rowids) == 0:
                return []
            vector = np.asarray(vector, dtype=np.float32).reshape(-1)
            if vector.shape[0] != index.matrix.shape[1]:
                raise StoreError(
                    f"query vector has {vector.shape[0]} dimensions but the store holds "
                    f"{index.matrix.shape[1]}-dimensional vectors: the embedding model changed; "
                    "re-ingest with the original model or start a new workspace"
                )
            top, scores = index.dense_top(vector, k, index.allowed_rows(principal, filters))
            return [(index.chunk_ids[i], float(s)) for i, s in zip(top, scores)]

    def dense_search(self, vector: np.ndarray, k: int, principal: Principal,
                     filters: SearchFilter | None = None) -> list[ScoredChunk]:
        """:meth:`dense_ranking` with the chunks read."""
        return self._with_scores(self.dense_ranking(vector, k, principal, filters), principal)

    # ----------------------------------------------------------------- log, stats
    def log_ingest(self, source: str, status: str, message: str = "") -> None:
        with self._lock:
            self._db.execute("INSERT INTO ingest_log (ts, source, status, message) VALUES (?,?,?,?)",
                             (time.time(), source, status, message))

    def ingest_log(self, limit: int = 50) -> list[IngestLogEntry]:
        with self._lock:
            rows = self._db.execute(
                "SELECT ts, source, status, message FROM ingest_log ORDER BY id DESC LIMIT ?", (limit,)
            ).fetchall()
        return [IngestLogEntry(*r) for r in rows]

    # ----------------------------------------------------------------- traces
    _TRACE_COLS = "id, ts, principal, mode, adapter, origin, summary, vector"

    def append_trace(self, record: TraceRecord) -> None:
        """One small transaction without a generation bump, so search caches stay valid."""
        row = (record.id, record.ts, record.principal, record.mode, record.adapter,
               record.origin, json.dumps(record.answer, ensure_ascii=False),
               json.dumps(record.summary, ensure_ascii=False), vector_bytes(record.vector))
        sources = record_sources(record)
        with self._lock:
            self._db.execute("BEGIN")
            try:
                self._db.execute(
                    "INSERT INTO traces (id, ts, principal, mode, adapter, origin, record, "
                    "summary, vector) VALUES (?,?,?,?,?,?,?,?,?)", row)
                if sources:
                    self._db.executemany(
                        "INSERT OR IGNORE INTO trace_sources (trace_id, source) VALUES (?, ?)",
                        [(record.id, s) for s in sources])
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def traces(self, *, since: float | None = None, until: float | None = None,
               limit: int | None = None, principal: Principal | None = None,
               brief: bool = False) -> list[TraceRecord]:
        where, params = trace_where(since, until, principal, "?")
        record = "NULL" if brief else "record"
        with self._lock:
            rows = self._db.execute(
                f"SELECT {self._TRACE_COLS}, {record} FROM traces WHERE {where} "
                "ORDER BY ts DESC, rowid DESC LIMIT ?", [*params, -1 if limit is None else limit],
            ).fetchall()
        rows.reverse()
        return records_from_rows(rows)

    def trace(self, trace_id: str, principal: Principal | None = None) -> TraceRecord | None:
        with self._lock:
            row = self._db.execute(f"SELECT {self._TRACE_COLS}, record FROM traces WHERE id = ?",
                                   (trace_id,)).fetchone()
        if row is None or not may_read_trace(principal, row[2]):
            return None
        return records_from_rows([row])[0]

    def add_feedback(self, trace_id: str, principal: Principal, rating: int,
                     comment: str = "") -> FeedbackRecord:
        with self._lock:
            row = self._db.execute("SELECT principal FROM traces WHERE id = ?",
                                   (trace_id,)).fetchone()
            check_feedback(trace_id, row[0] if row else None, principal, rating)
            fb = FeedbackRecord(trace_id, time.time(), principal.user, rating, comment.strip())
            self._db.execute("INSERT INTO feedback (trace_id, ts, principal, rating, comment) "
                             "VALUES (?,?,?,?,?)",
                             (fb.trace_id, fb.ts, fb.principal, fb.rating, fb.comment))
        return fb

    def feedback(self, *, since: float | None = None, until: float | None = None,
                 principal: Principal | None = None) -> list[FeedbackRecord]:
        where, params = trace_where(since, until, principal, "?", alias="t.")
        with self._lock:
            rows = self._db.execute(
                "SELECT f.trace_id, f.ts, f.principal, f.rating, f.comment FROM feedback f "
                f"JOIN traces t ON t.id = f.trace_id WHERE {where} ORDER BY f.ts, f.id",
                params).fetchall()
        return [FeedbackRecord(*r) for r in rows]

    def purge_traces(self, before: float) -> int:
        """No generation bump (search caches stay); the text is erased from disk as a
        document deletion's is (:meth:`finish_deletions`)."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                n = self._db.execute("DELETE FROM traces WHERE ts < ?", (before,)).rowcount
                if n and self.path != ":memory:":
                    self._db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)",
                                     (_ERASE_KEY, str(time.time_ns())))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        if n:
            self.finish_deletions(wait=0)
        return n

    def iter_chunks(self) -> Iterator[Chunk]:
        with self._lock:
            rows = self._db.execute(
                "SELECT id, doc_id, text, section, ordinal, tokens, page FROM chunks "
                "ORDER BY doc_id, ordinal").fetchall()
        for r in rows:
            yield Chunk(*r)

    def stats(self) -> dict[str, Any]:
        with self._lock:
            q = self._db.execute
            size = os.path.getsize(self.path) if self.path != ":memory:" else 0
            return {
                "path": self.path,
                "schema_version": self.schema_version,
                "documents": q("SELECT count(*) FROM documents").fetchone()[0],
                "chunks": q("SELECT count(*) FROM chunks").fetchone()[0],
                "restricted_documents": q(
                    "SELECT count(DISTINCT doc_id) FROM document_groups").fetchone()[0],
                "collections": dict(q(
                    "SELECT collection, count(*) FROM documents GROUP BY collection").fetchall()),
                "size_bytes": size,
                "last_ingest": q("SELECT max(ts) FROM ingest_log").fetchone()[0],
                "erasure_pending": self.pending_deletions(),
                "traces": q("SELECT count(*) FROM traces").fetchone()[0],
            }

    def integrity_check(self) -> list[str]:
        """Problems found (empty when consistent): SQLite's own check plus ours."""
        with self._lock:
            q = self._db.execute
            problems = [r[0] for r in q("PRAGMA integrity_check").fetchall() if r[0] != "ok"]
            q("INSERT INTO chunks_fts(chunks_fts, rank) VALUES ('integrity-check', 1)")
            orphans = q("SELECT count(*) FROM chunks c LEFT JOIN documents d ON d.id = c.doc_id "
                        "WHERE d.id IS NULL").fetchone()[0]
            if orphans:
                problems.append(f"{orphans} chunks without a document")
            bad = q("SELECT d.source FROM documents d WHERE d.chunks != "
                    "(SELECT count(*) FROM chunks c WHERE c.doc_id = d.id)").fetchall()
            problems.extend(f"{s}: chunk count differs from its chunks" for (s,) in bad)
        return problems

    def close(self) -> None:
        with self._lock:
            self._db.close()
