"""PostgresStore: one PostgreSQL database (with pgvector) shared by any number of ragtune processes.

Documents, versions, chunks with their vectors (HNSW index), BM25 statistics, ACLs, the
ingest log and answer traces live in one schema (:mod:`ragtune.store.pg_schema`). Every
write is one transaction: a replaced document's old chunks, postings and statistics go
and the new ones arrive atomically, and a writer killed half-way leaves nothing behind.
Writers serialise per document on a transaction-level advisory lock (the BM25 totals are
shared), so two ingests run at once; readers never wait for them.

Access control is enforced by the database: principal reads set ``ragtune.groups`` for
their transaction only and run under row-level security, so even a query without an ACL
clause cannot return another group's rows (:meth:`PostgresStore.session` gives such a raw
session). Searches are in :mod:`ragtune.store.pg_query`.

>>> # store = PostgresStore("postgresql://ragtune@db.internal/ragtune")
>>> # store.upsert_document(doc, chunks, vectors, groups=["hr"])
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import numpy as np

from ragtune.config import StoreSettings
from ragtune.errors import MissingDependency, StoreError
from ragtune.store import pg_query
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
    read_ranked,
)
from ragtune.store.bm25 import BM25Params
from ragtune.store.pg_bulk import (
    DEFER_INDEX_CHUNKS,
    POSTINGS_COPY,
    PendingStats,
    WriteBatch,
    postings_copy_data,
)
from ragtune.store.pg_postings import Postings, PostingsCopy
from ragtune.store.pg_query import (
    STATS_SQL,
    ReaderStats,
    dense_sql,
    filter_sql,
    lexical_sql,
    prune_common_terms,
    query_terms,
    reader_stats,
    signed_terms,
)
from ragtune.store.trace_rows import (
    check_feedback,
    record_sources,
    records_from_rows,
    redacted,
    trace_where,
    vector_bytes,
)
from ragtune.types import Chunk, Document, DocumentInfo, Principal

try:
    import psycopg
    from pgvector.psycopg import register_vector
    from psycopg import sql
    from psycopg_pool import ConnectionPool
except ImportError as e:  # pragma: no cover - depends on the installed extras
    raise MissingDependency(f"the postgres store needs psycopg, psycopg-pool and pgvector ({e}): "
                            "pip install 'ragtune[postgres]'") from None

from ragtune.store.pg_schema import READER_ROLE, create_vector_index, fix_dimension, migrate

_WRITE_KEY = 0x7261_6777  # advisory lock of document writes ('ragw')
_BATCH_KEY = 0x7261_6762  # advisory lock of write batches ('ragb')
_DOC_COLS = ("id, source, title, collection, acl, version, content_hash, chunks, metadata, "
             "created_at, updated_at")
_CHUNK_COLS = "ch.id, ch.doc_id, ch.text, ch.section, ch.ordinal, ch.tokens, ch.page, d.source, d.title"
_COPY_CHUNKS = ("COPY chunks (n, id, doc_id, ordinal, section, page, tokens, text, title, "
                "collection, acl, updated_at, length, embedding) FROM STDIN (FORMAT BINARY)")
_COPY_TYPES = ["int8", "text", "text", "int4", "text", "int4", "int4", "text", "text", "text",
               "text[]", "float8", "int4", "vector"]
_STORE = Principal("ragtune-store", admin=True)  # the store reading committed rows (not a batch's)
DEFAULT_EF_SEARCH = 400
"""HNSW candidate list per search (pgvector's default is 40). bench/store_scale.py, 10k
chunks, recall@10 against exact search at ef_search 40/100/200/400: 0.62/0.86/0.96/1.00 on
clustered synthetic vectors, 0.33/0.59/0.80/0.93 on uniformly random ones (the worst case).
Real MiniLM vectors, 100k chunks (``--vectors minilm``), ef_search 40/64/100/200/400: admin
0.978/0.984/0.993/0.997/0.997, a reader who sees 10%: 0.951/0.967/0.983/0.993/0.999
(docs/stores.md). Searches asking for more than 400 candidates raise it to ``k``."""


def split_url(url: str) -> tuple[str, str]:
    """(libpq URL, schema): ``?schema=name`` selects the PostgreSQL schema (default ragtune).

    >>> split_url("postgresql://u@h/db?schema=team_a&sslmode=require")
    ('postgresql://u@h/db?sslmode=require', 'team_a')
    """
    parts = urlsplit(url)
    query = parse_qsl(parts.query)
    schema = next((v for k, v in query if k == "schema"), "ragtune")
    rest = urlencode([(k, v) for k, v in query if k != "schema"])
    return urlunsplit(parts._replace(query=rest)), schema


class PostgresStore:
    """The store on a PostgreSQL server with pgvector (``[store] backend = "postgres"``)."""

    def __init__(self, url: str, *, schema: str | None = None, pool_size: int = 4,
                 ef_search: int = DEFAULT_EF_SEARCH, bm25: BM25Params | None = None,
                 quoted_phrases: str = "boost", postings_in_memory: bool = False) -> None:
        conninfo, url_schema = split_url(url)
        self.schema = schema or url_schema
        self.url = url
        self.ef_search = ef_search
        self.bm25 = bm25 or BM25Params()
        self.quoted_phrases = quoted_phrases
        parts = urlsplit(conninfo)  # named in errors without user or password
        self._where = f"postgres://{parts.hostname or 'localhost'}{parts.path} (schema {self.schema})"
        self.location = self._where  # for messages: no user or password
        try:
            with psycopg.connect(conninfo, autocommit=True, connect_timeout=10) as conn:
                self.schema_version = migrate(conn, self.schema, self._where)
                self._bypass_rls = bool(conn.execute(
                    "SELECT rolsuper OR rolbypassrls FROM pg_roles WHERE rolname = current_user"
                ).fetchone()[0])
                self._iterative = tuple(int(x) for x in conn.execute(
                    "SELECT extversion FROM pg_extension WHERE extname = 'vector'"
                ).fetchone()[0].split(".")[:2]) >= (0, 8)
        except psycopg.OperationalError as e:
            raise StoreError(f"{self._where}: cannot connect: {str(e).strip()}") from None
        self._dim: int | None = None  # fixed by the first write, then never changes
        self._local = threading.local()  # this thread's write batch and document write
        self.lexical_pruned = 0  # lexical searches answered without the common terms' postings
        self._pool = ConnectionPool(conninfo, min_size=1, max_size=pool_size, open=True,
                                    kwargs={"autocommit": True}, configure=self._configure,
                                    name=f"ragtune-{self.schema}")
        self.reanalyzed = self._ensure_analysis()
        # [store] postings_in_memory: BM25 over a copy of the postings (pg_postings)
        self.postings = PostingsCopy(self._load_postings) if postings_in_memory else None
        self.lexical_from_copy = 0  # lexical searches the copy answered

    def _configure(self, conn: psycopg.Connection) -> None:
        conn.execute(sql.SQL("SET search_path TO {}, public").format(sql.Identifier(self.schema)))
        register_vector(conn)

    # ----------------------------------------------------------------- transactions
    @contextmanager
    def _tx(self, principal: Principal | None = None,
            settings: dict[str, str] | None = None) -> Iterator[psycopg.Cursor]:
        """One transaction; ``principal`` None: as the store itself (admin), else under RLS.
        ``settings`` are set for the transaction too (one round trip for all)."""
        admin = principal is None or principal.admin
        values = {"ragtune.admin": "on" if admin else "off",
                  "ragtune.groups": "{}" if admin else _pg_array(sorted(principal.groups)),
                  **(settings or {})}
        batch = self._batch()
        # the store's own statements in a write batch: a savepoint in its transaction
        in_batch = batch is not None and principal is None
        if batch is not None and not in_batch and getattr(self._local, "step", None) is None:
            # another connection reads: let it see (and not wait for the locks of) what
            # this thread's batch wrote
            batch.commit()
        try:
            if in_batch:
                batch.begin(values)
                with batch.conn.transaction(), batch.conn.cursor() as cur:
                    yield cur
            else:
                with self._pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
                    if not admin and self._bypass_rls:
                        cur.execute(sql.SQL("SET LOCAL ROLE {}").format(
                            sql.Identifier(READER_ROLE)))
                    cur.execute("SELECT " + ", ".join(["set_config(%s, %s, true)"] * len(values)),
                                [x for kv in values.items() for x in kv])
                    yield cur
        except (psycopg.errors.DataException, psycopg.OperationalError) as e:
            raise StoreError(f"{self._where}: {str(e).strip()}") from None

    @contextmanager
    def session(self, principal: Principal) -> Iterator[psycopg.Cursor]:
        """A raw SQL cursor as ``principal`` sees the database: row-level security applies to
        any query, with or without an ACL clause (``SELECT text FROM chunks``)."""
        with self._tx(principal) as cur:
            yield cur

    def _batch(self) -> WriteBatch | None:
        return getattr(self._local, "batch", None)

    @contextmanager
    def _write(self) -> Iterator[psycopg.Cursor]:
        """One document's write: its own transaction, or a savepoint of this thread's write
        batch. The BM25 statistics of the chunks it adds (``self._local.step``) go into the
        tables at its commit, or at the batch's."""
        batch = self._batch()
        if batch is not None:
            self._before_batch_write(batch)
        with self._tx() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(%s)", (_WRITE_KEY,))
            self._local.step = step = PendingStats()
            try:
                yield cur
            finally:
                self._local.step = None
            if batch is None:
                step.flush(cur)
            else:
                batch.stats.merge(step)

    def _wrote(self, chunks: int) -> None:
        batch = self._batch()
        if batch is not None:
            batch.wrote(chunks)

    def _before_batch_write(self, batch: WriteBatch) -> None:
        """Commit the batch when due, before its next document (so what a caller did after
        a document, such as its ingest log entry, commits with it); drop the HNSW index
        once the batch has outgrown the store (pg_bulk: built once at the batch's end)."""
        if batch.defer_index():
            batch.commit()
            batch.index_dropped = True
            try:
                batch.conn.execute("SET lock_timeout = '5s'")
                batch.conn.execute("DROP INDEX IF EXISTS chunks_embedding")
            except psycopg.errors.LockNotAvailable:
                batch.index_dropped = False  # readers kept it busy: insert into it instead
                batch.rows_at_start = 2**62
            finally:
                batch.conn.execute("SET lock_timeout = 0")
        elif batch.due():
            batch.commit()

    @contextmanager
    def write_lock(self, timeout: float = 30.0, *, exclusive: bool = False) -> Iterator[None]:
        """A write batch (``ragtune ingest`` writes its documents in one). Batches share the
        database, so the lock is shared; whole-store operations (``ragtune store migrate``
        into this store) take it ``exclusive``. Either waits up to ``timeout`` for the other
        kind. This thread's writes in the batch share transactions (pg_bulk.WriteBatch):
        committed every few seconds and at the end, each document wholly or not at all."""
        if self._batch() is not None:  # nested in this thread's batch
            yield
            return
        kind = "" if exclusive else "_shared"
        with self._pool.connection() as conn:
            try:
                conn.execute(f"SET lock_timeout = {int(timeout * 1000)}")
                conn.execute(f"SELECT pg_advisory_lock{kind}(%s)", (_BATCH_KEY,))
            except psycopg.errors.LockNotAvailable:
                busy = "ingesting" if exclusive else "being migrated into"
                raise StoreError(f"{self._where}: the store is {busy}; waited {timeout:.0f} s "
                                 "— try again when it finishes") from None
            finally:
                conn.execute("SET lock_timeout = 0")
            try:
                batch = WriteBatch(conn, self._chunk_rows(conn))
                batch.index_dropped = self._index_missing(conn)  # a bulk load died: rebuild
                self._local.batch = batch
                try:
                    yield
                except BaseException:
                    # what was written stays written (as with a transaction per document),
                    # unless the transaction itself failed
                    if conn.info.transaction_status == psycopg.pq.TransactionStatus.INTRANS:
                        batch.commit()
                    else:
                        batch.rollback()
                    raise
                finally:
                    self._local.batch = None
                batch.commit()
                # also when another process's batch left it missing (it died before building)
                if batch.index_dropped or self._index_missing(conn):
                    self._build_vector_index()
                if batch.written >= DEFER_INDEX_CHUNKS:
                    # a large load: mark the new pages all-visible now, not at some later
                    # autovacuum, so the BM25 arm reads postings by index-only scans
                    conn.execute("VACUUM (ANALYZE) postings")
            finally:
                if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
                    conn.execute("ROLLBACK")
                conn.execute(f"SELECT pg_advisory_unlock{kind}(%s)", (_BATCH_KEY,))

    @staticmethod
    def _chunk_rows(conn: psycopg.Connection) -> int:
        """About how many chunks the store holds (the planner's estimate when large)."""
        with conn.transaction():
            conn.execute("SELECT set_config('ragtune.admin', 'on', true)")
            estimate = conn.execute("SELECT reltuples::int8 FROM pg_class "
                                    "WHERE oid = 'chunks'::regclass").fetchone()[0]
            if estimate > 100_000:
                return estimate
            return conn.execute("SELECT count(*) FROM chunks").fetchone()[0]

    @staticmethod
    def _index_missing(conn: psycopg.Connection) -> bool:
        """The vectors' type is fixed (a first write happened) but the HNSW index is gone."""
        with conn.transaction():
            conn.execute("SELECT set_config('ragtune.admin', 'on', true)")
            return (conn.execute("SELECT 1 FROM meta WHERE key = 'dimension'").fetchone()
                    is not None and conn.execute(
                        "SELECT to_regclass('chunks_embedding')").fetchone()[0] is None)

    def _build_vector_index(self) -> None:
        """Build the HNSW index over every stored vector (after a bulk load), holding the
        writers' lock: readers scan exactly until it is there."""
        with self._tx() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(%s)", (_WRITE_KEY,))
            create_vector_index(cur)

    # ----------------------------------------------------------------- BM25 analysis
    def _ensure_analysis(self) -> int:
        """Re-analyse every chunk's BM25 terms from its stored text when the store was
        analysed otherwise than ``self.bm25.analyzer`` says (a settings change, or a store
        from before analysis was configurable), in one transaction. Returns the chunks
        re-analysed."""
        want = self.bm25.analyzer.key
        with self._tx() as cur:
            if cur.execute(STATS_SQL).fetchone()[0] == want:
                return 0
        with self._write() as cur:
            if cur.execute(STATS_SQL).fetchone()[0] == want:  # another process did it meanwhile
                return 0
            rows = cur.execute("SELECT n, title, section, text, acl FROM chunks "
                               "ORDER BY n").fetchall()
            cur.execute("DELETE FROM postings")
            self._local.step.touched = True
            ids: dict[tuple[str, ...], int] = {}  # ACL ids, one lookup per ACL in this transaction
            cur.execute("DELETE FROM lexicon")
            cur.execute("DELETE FROM corpus")
            for i in range(0, len(rows), 2000):
                part = rows[i:i + 2000]
                terms = [self._terms(title, section, text) for _, title, section, text, _ in part]
                ns = [r[0] for r in part]
                cur.execute("UPDATE chunks SET length = u.length FROM unnest(%s::int8[], "
                            "%s::int4[]) AS u (n, length) WHERE chunks.n = u.n",
                            (ns, [len(t) for t in terms]))
                acls = [ids.get(tuple(r[4])) or ids.setdefault(tuple(r[4]), self._acl_id(cur, r[4]))
                        for r in part]
                data, _ = postings_copy_data(ns, terms, acls)
                with cur.copy(POSTINGS_COPY) as copy:
                    copy.write(data)
            cur.execute("INSERT INTO lexicon SELECT p.term, ch.acl, count(*) FROM postings p "
                        "JOIN chunks ch ON ch.n = p.chunk GROUP BY p.term, ch.acl")
            cur.execute("INSERT INTO corpus SELECT acl, count(*), sum(length) FROM chunks "
                        "GROUP BY acl")
            cur.execute("INSERT INTO meta VALUES ('bm25_analyzer', %s) ON CONFLICT (key) "
                        "DO UPDATE SET value = excluded.value", (want,))
        return len(rows)

    def _check_analysis(self, stored: str | None) -> None:
        check_analysis(stored, self.bm25.analyzer, self._where)

    def _terms(self, title: str, section: str, text: str) -> np.ndarray:
        """The BM25 terms of a chunk (int4): its document title, section path and text."""
        return signed_terms(self.bm25.analyzer.term_hashes(f"{title}\n{section}\n{text}"))

    # ----------------------------------------------------------------- documents
    @staticmethod
    def _doc_info(row: tuple) -> DocumentInfo:
        (doc_id, source, title, collection, acl, version, content_hash, chunks, metadata,
         created, updated) = row
        return DocumentInfo(doc_id, source, title, collection, tuple(sorted(acl)), version,
                            content_hash, chunks, created, updated, metadata)

    def get_document(self, ref: str) -> DocumentInfo | None:
        with self._tx() as cur:
            row = cur.execute(f"SELECT {_DOC_COLS} FROM documents WHERE id = %s OR source = %s",
                              (ref, ref)).fetchone()
        return self._doc_info(row) if row else None

    def list_documents(self, principal: Principal | None = None) -> list[DocumentInfo]:
        with self._tx(principal) as cur:
            rows = cur.execute(f"SELECT {_DOC_COLS} FROM documents d WHERE may_read(d.acl) "
                               "ORDER BY source").fetchall()
        return [self._doc_info(r) for r in rows]

    def count_documents(self) -> int:
        with self._tx() as cur:
            return cur.execute("SELECT count(*) FROM documents").fetchone()[0]

    def document_versions(self, doc_id: str) -> list[dict[str, Any]]:
        with self._tx() as cur:
            rows = cur.execute("SELECT version, content_hash, chunks, ingested_at FROM versions "
                               "WHERE doc_id = %s ORDER BY version", (doc_id,)).fetchall()
        return [dict(zip(("version", "content_hash", "chunks", "ingested_at"), r)) for r in rows]

    def sources_under(self, prefix: str) -> list[str]:
        with self._tx() as cur:
            rows = cur.execute("SELECT source FROM documents WHERE left(source, %s) = %s",
                               (len(prefix), prefix)).fetchall()
        return [r[0] for r in rows]

    def existing_embeddings(self, chunk_ids: Sequence[str]) -> dict[str, np.ndarray]:
        with self._tx() as cur:
            rows = cur.execute("SELECT id, embedding FROM chunks WHERE id = ANY(%s)",
                               (list(chunk_ids),)).fetchall()
        return {cid: _as_array(v) for cid, v in rows}

    def dimension(self) -> int | None:
        with self._tx() as cur:
            row = cur.execute("SELECT value FROM meta WHERE key = 'dimension'").fetchone()
        return int(row[0]) if row else None

    def replace_vectors(self, vectors: Mapping[str, np.ndarray]) -> int:
        """New vectors for stored chunks in one transaction (see the Store protocol)."""
        rows = [(np.ascontiguousarray(v, dtype=np.float32).reshape(-1), cid)
                for cid, v in vectors.items()]
        if not rows:
            return 0
        with self._write() as cur:
            self._check_dimension(cur, len(rows[0][0]), self._where)
            have = {r[0] for r in cur.execute("SELECT id FROM chunks WHERE id = ANY(%s)",
                                              ([cid for _, cid in rows],)).fetchall()}
            rows = [r for r in rows if r[1] in have]
            cur.executemany("UPDATE chunks SET embedding = %b WHERE id = %s", rows)
        return len(rows)

    def upsert_document(self, doc: Document, chunks: Sequence[Chunk], vectors: np.ndarray, *,
                        collection: str = "default", groups: Sequence[str] | None = None,
                        metadata: dict[str, Any] | None = None) -> WriteResult:
        """Add ``doc``, or replace its chunks if its content changed, in one transaction (a
        savepoint of the batch's inside ``write_lock()``).
        ``groups=None`` keeps a stored document's groups (see the Store protocol)."""
        result = self._upsert(doc, chunks, vectors, collection, groups, metadata)
        if result.status != "unchanged":
            self._wrote(len(chunks))
        return result

    def _upsert(self, doc: Document, chunks: Sequence[Chunk], vectors: np.ndarray,
                collection: str, groups: Sequence[str] | None,
                metadata: dict[str, Any] | None) -> WriteResult:
        vectors = chunk_vectors(vectors, len(chunks), doc.source)
        now = time.time()
        with self._write() as cur:
            self._check_dimension(cur, vectors.shape[1] if len(chunks) else None, doc.source)
            self._check_stored_analysis(cur)
            row = cur.execute("SELECT version, content_hash, collection, acl FROM documents "
                              "WHERE id = %s", (doc.id,)).fetchone()
            before = tuple(sorted(row[3])) if row else None
            acl = list(before or ()) if groups is None else sorted(set(groups))
            done = {"groups": tuple(acl), "previous_groups": before}
            if row and row[1] == doc.content_hash and row[2] == collection and sorted(row[3]) == acl:
                return WriteResult(doc.id, "unchanged", row[0], len(chunks), **done)
            if row and row[1] == doc.content_hash:  # same content, new collection or ACL
                self._count_terms(cur, doc.id, -1)  # the statistics follow the ACL
                cur.execute("UPDATE documents SET collection = %s, acl = %s, updated_at = %s "
                            "WHERE id = %s", (collection, acl, now, doc.id))
                cur.execute("UPDATE chunks SET collection = %s, acl = %s, updated_at = %s "
                            "WHERE doc_id = %s", (collection, acl, now, doc.id))
                cur.execute("UPDATE postings SET acl = %s WHERE chunk IN "
                            "(SELECT n FROM chunks WHERE doc_id = %s)",
                            (self._acl_id(cur, acl), doc.id))
                self._count_terms(cur, doc.id, +1)
                self._set_groups(cur, doc.id, acl)
                return WriteResult(doc.id, "retagged", row[0], len(chunks), **done)
            version = row[0] + 1 if row else 1
            meta = json.dumps(metadata or doc.metadata or {}, sort_keys=True, default=str)
            if row:
                self._remove_chunks(cur, doc.id)
                cur.execute("UPDATE documents SET source = %s, title = %s, collection = %s, acl = %s, "
                            "version = %s, content_hash = %s, chunks = %s, metadata = %s, "
                            "updated_at = %s WHERE id = %s",
                            (doc.source, doc.title, collection, acl, version, doc.content_hash,
                             len(chunks), meta, now, doc.id))
            else:
                cur.execute(f"INSERT INTO documents ({_DOC_COLS}) VALUES "
                            "(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                            (doc.id, doc.source, doc.title, collection, acl, version,
                             doc.content_hash, len(chunks), meta, now, now))
            self._set_groups(cur, doc.id, acl)
            self._insert_chunks(cur, doc, chunks, vectors, collection, acl, now)
            cur.execute("INSERT INTO versions VALUES (%s, %s, %s, %s, %s)",
                        (doc.id, version, doc.content_hash, len(chunks), now))
        return WriteResult(doc.id, "updated" if row else "added", version, len(chunks), **done)

    def _check_dimension(self, cur: psycopg.Cursor, dim: int | None, source: str) -> None:
        row = cur.execute("SELECT value FROM meta WHERE key = 'dimension'").fetchone()
        if dim is None:
            return
        if row is None:
            batch = self._batch()
            # a batch that starts on an empty store builds the index once, at its end
            fix_dimension(cur, dim, index=batch is None or batch.rows_at_start > 0)
            if batch is not None and batch.rows_at_start == 0:
                batch.index_dropped = True
        elif int(row[0]) != dim:
            raise StoreError(f"{source}: {dim}-dimensional vectors but the store holds "
                             f"{row[0]}-dimensional ones: the embedding model changed; re-ingest "
                             "with the original model or start a new store")

    @staticmethod
    def _set_groups(cur: psycopg.Cursor, doc_id: str, acl: list[str]) -> None:
        cur.execute("DELETE FROM document_groups WHERE doc_id = %s", (doc_id,))
        if acl:
            cur.execute("INSERT INTO document_groups SELECT %s, unnest(%s::text[])", (doc_id, acl))

    def _insert_chunks(self, cur: psycopg.Cursor, doc: Document, chunks: Sequence[Chunk],
                       vectors: np.ndarray, collection: str, acl: list[str], now: float) -> None:
        """COPY the chunks (numbers reserved from the identity sequence first) and their
        postings; their BM25 statistics are added when the write commits (pg_bulk)."""
        if not chunks:
            return
        terms = [self._terms(doc.title, c.section, c.text) for c in chunks]
        ns = [r[0] for r in cur.execute(
            "SELECT nextval(pg_get_serial_sequence('chunks', 'n')) FROM generate_series(1, %s)",
            (len(chunks),)).fetchall()]
        with cur.copy(_COPY_CHUNKS) as copy:
            copy.set_types(_COPY_TYPES)
            for n, c, t, v in zip(ns, chunks, terms, vectors, strict=True):
                copy.write_row((n, c.id, doc.id, c.ordinal, c.section, c.page, c.tokens, c.text,
                                doc.title, collection, acl, now, len(t), v))
        data, unique_terms = postings_copy_data(ns, terms, [self._acl_id(cur, acl)] * len(ns))
        with cur.copy(POSTINGS_COPY) as copy:
            copy.write(data)
        self._local.step.add(acl, unique_terms, len(chunks), sum(len(t) for t in terms))

    @staticmethod
    def _acl_id(cur: psycopg.Cursor, acl: Sequence[str]) -> int:
        """The id of ``acl`` in the ``acls`` dictionary, added when new (one round trip;
        not cached in the process: an id from a rolled-back transaction would not exist)."""
        return cur.execute(
            "WITH added AS (INSERT INTO acls (acl) VALUES (%(acl)s) ON CONFLICT (acl) DO NOTHING "
            "RETURNING id) SELECT id FROM added UNION ALL SELECT id FROM acls WHERE acl = %(acl)s",
            {"acl": list(acl)}).fetchone()[0]

    def _count_terms(self, cur: psycopg.Cursor, doc_id: str, sign: int) -> None:
        """Add (+1) or take out (-1) a document's stored chunks in the BM25 statistics of
        their ACL. Rows taken to 0 are deleted when the write's pending additions are in."""
        changed = cur.execute(
            "INSERT INTO lexicon AS l (term, acl, df) SELECT p.term, ch.acl, %s * count(*) "
            "FROM postings p JOIN chunks ch ON ch.n = p.chunk WHERE ch.doc_id = %s "
            "GROUP BY p.term, ch.acl ON CONFLICT (term, acl) DO UPDATE SET df = l.df + excluded.df "
            "RETURNING term, df", (sign, doc_id)).fetchall()
        self._local.step.touched = True
        cur.execute(
            "INSERT INTO corpus AS c (acl, chunks, terms) SELECT acl, %s * count(*), "
            "%s * coalesce(sum(length), 0) FROM chunks WHERE doc_id = %s GROUP BY acl "
            "ON CONFLICT (acl) DO UPDATE SET chunks = c.chunks + excluded.chunks, "
            "terms = c.terms + excluded.terms", (sign, sign, doc_id))
        if sign < 0:
            self._local.step.emptied.update(t for t, df in changed if df <= 0)
            self._local.step.shrunk = True

    def _remove_chunks(self, cur: psycopg.Cursor, doc_id: str) -> None:
        """Delete a document's chunks and their postings and take them out of the BM25
        statistics."""
        self._count_terms(cur, doc_id, -1)
        cur.execute("DELETE FROM postings WHERE chunk IN (SELECT n FROM chunks WHERE doc_id = %s)",
                    (doc_id,))
        cur.execute("DELETE FROM chunks WHERE doc_id = %s", (doc_id,))

    def _check_stored_analysis(self, cur: psycopg.Cursor) -> None:
        row = cur.execute("SELECT value FROM meta WHERE key = 'bm25_analyzer'").fetchone()
        self._check_analysis(row[0] if row else None)

    def import_document(self, info: DocumentInfo, chunks: Sequence[Chunk], vectors: np.ndarray,
                        versions: Sequence[dict[str, Any]]) -> bool:
        """Write a document exactly as another store holds it (``ragtune store migrate``): same
        id, version history, times, ACL and vectors. False when it is already here as is."""
        if Document(info.source, info.title, ()).id != info.id:
            raise StoreError(f"{info.source}: document id {info.id} does not match its source")
        vectors = chunk_vectors(vectors, len(chunks), info.source)
        acl = sorted(info.groups)
        with self._write() as cur:
            self._check_dimension(cur, vectors.shape[1] if len(chunks) else None, info.source)
            self._check_stored_analysis(cur)
            row = cur.execute("SELECT version, content_hash FROM documents WHERE id = %s",
                              (info.id,)).fetchone()
            if row == (info.version, info.content_hash):
                return False
            if row:
                self._remove_chunks(cur, info.id)
                cur.execute("DELETE FROM documents WHERE id = %s", (info.id,))
            cur.execute(f"INSERT INTO documents ({_DOC_COLS}) VALUES "
                        "(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                        (info.id, info.source, info.title, info.collection, acl, info.version,
                         info.content_hash, len(chunks), json.dumps(info.metadata, default=str),
                         info.created_at, info.updated_at))
            self._set_groups(cur, info.id, acl)
            self._insert_chunks(cur, Document(info.source, info.title, ()), chunks, vectors,
                                info.collection, acl, info.updated_at)
            for v in versions:
                cur.execute("INSERT INTO versions VALUES (%s, %s, %s, %s, %s)",
                            (info.id, v["version"], v["content_hash"], v["chunks"], v["ingested_at"]))
        self._wrote(len(chunks))
        return True

    def import_log(self, entries: Sequence[IngestLogEntry]) -> None:
        """Append ingest log entries with their original times, oldest first."""
        with self._tx() as cur:
            cur.executemany("INSERT INTO ingest_log (ts, source, status, message) VALUES (%s, %s, %s, %s)",
                            [(e.ts, e.source, e.status, e.message) for e in sorted(entries, key=lambda e: e.ts)])

    def delete_document(self, ref: str) -> bool:
        """Remove text, vectors, postings, ACL and versions of one document, atomically,
        and its text from the trace log (ids kept: :func:`ragtune.store.base.redact_source`).

        The rows are gone for every reader at commit; PostgreSQL reclaims their space at the
        next (auto)vacuum (see docs/stores.md for physical erasure)."""
        with self._write() as cur:
            row = cur.execute("SELECT id, source FROM documents WHERE id = %s OR source = %s",
                              (ref, ref)).fetchone()
            if not row:
                return False
            quoting = cur.execute("SELECT t.id, t.record::text FROM trace_sources s JOIN traces t "
                                  "ON t.id = s.trace_id WHERE s.source = %s", (row[1],)).fetchall()
            cur.executemany("UPDATE traces SET record = %s::jsonb WHERE id = %s",
                            redacted(quoting, row[1], row[0]))
            cur.execute("DELETE FROM trace_sources WHERE source = %s", (row[1],))
            self._remove_chunks(cur, row[0])
            cur.execute("DELETE FROM documents WHERE id = %s", (row[0],))  # groups, versions cascade
        self._wrote(0)
        return True

    def finish_deletions(self, wait: float = 5.0) -> bool:
        """VACUUM the tables that hold text and vectors, so deleted rows leave their pages
        and indexes (WAL segments and backups are the operator's: docs/stores.md)."""
        with self._pool.connection() as conn:
            conn.execute(f"SET lock_timeout = {int(wait * 1000)}")
            try:
                for table in ("chunks", "postings", "documents", "versions", "document_groups",
                              "traces", "feedback"):
                    conn.execute(f"VACUUM {table}")
            except psycopg.errors.LockNotAvailable:
                return False
            finally:
                conn.execute("SET lock_timeout = 0")
        return True

    def pending_deletions(self) -> bool:
        """False: a delete removes the rows at commit; ``finish_deletions`` vacuums them."""
        return False

    # ----------------------------------------------------------------- search
    def get_chunks(self, chunk_ids: Sequence[str], principal: Principal) -> list[ScoredChunk]:
        ids = list(chunk_ids)
        with self._tx(principal) as cur:
            rows = cur.execute(f"SELECT {_CHUNK_COLS} FROM chunks ch JOIN documents d "
                               "ON d.id = ch.doc_id WHERE ch.id = ANY(%s) AND may_read(ch.acl)",
                               (ids,)).fetchall()
        found = {r[0]: ScoredChunk(Chunk(*r[:7]), 0.0, r[7], r[8]) for r in rows}
        return [found[c] for c in ids if c in found]

    def dense_ranking(self, vector: np.ndarray, k: int, principal: Principal,
                      filters: SearchFilter | None = None) -> list[tuple[str, float]]:
        """Top ``k`` by inner product over what ``principal`` may read: HNSW (iterative scan on
        pgvector >= 0.8), falling back to an exact scan when a filter left fewer than ``k``."""
        vector = np.asarray(vector, dtype=np.float32).reshape(-1)
        if self._dim is None:
            self._dim = self.dimension()
            if self._dim is None:
                return []
        if self._dim != len(vector):
            raise StoreError(
                f"query vector has {len(vector)} dimensions but the store holds "
                f"{self._dim}-dimensional vectors: the embedding model changed; re-ingest with "
                "the original model or start a new store")
        # The planner underestimates how many rows pass the ACL and would rather sort a full
        # scan: the walk is asked for explicitly (the exact fallback below scans anyway).
        search = {"hnsw.ef_search": str(max(self.ef_search, min(k, 1000))),
                  "enable_seqscan": "off"}
        if self._iterative:
            search["hnsw.iterative_scan"] = "strict_order"
        with self._tx(principal, search) as cur:
            exact_first = bool(filters and filters.documents)
            query, params = dense_sql(filters, k, exact=exact_first, admin=principal.admin)
            rows = cur.execute(query, params | {"q": vector}, binary=True).fetchall()
            if len(rows) < k and not exact_first and not self._iterative:
                # No iterative scan (pgvector < 0.8): walk once more with the largest list.
                cur.execute("SET LOCAL hnsw.ef_search = 1000")
                rows = cur.execute(query, params | {"q": vector}, binary=True).fetchall()
            if len(rows) < k and not exact_first:  # a filter cut the walk short, or a small store
                cur.execute("SET LOCAL enable_seqscan = on")
                query, params = dense_sql(filters, k, exact=True, admin=principal.admin)
                rows = cur.execute(query, params | {"q": vector}, binary=True).fetchall()
        return [(cid, float(s)) for cid, s in rows]

    def dense_search(self, vector: np.ndarray, k: int, principal: Principal,
                     filters: SearchFilter | None = None) -> list[ScoredChunk]:
        return read_ranked(self, self.dense_ranking(vector, k, principal, filters), principal)

    def lexical_ranking(self, query: str, k: int, principal: Principal,
                        filters: SearchFilter | None = None) -> list[tuple[str, float]]:
        """BM25 over title, section path and text (pg_query.lexical_sql), under RLS, with the
        statistics of the rows ``principal`` may read; quoted phrases rank first (or filter:
        ``[store] quoted_phrases``)."""
        qtf = query_terms(query, self.bm25.analyzer)
        if not qtf:
            return []
        with self._tx(principal) as cur:
            stored, stats = reader_stats(cur, qtf, admin=principal.admin)
            self._check_analysis(stored)
            copy = (self.postings.at(stats.generation) if self.postings is not None
                    and not quoted_phrases(query) and filter_sql(filters, admin=True)[0] == "true"
                    else None)
            if copy is not None:
                return self._lexical_from(copy, cur, stats, qtf, k)

            def sql(candidates_from: list[int] | None = None):
                return lexical_sql(query, filters, k, self.bm25, stats,
                                   quoted=self.quoted_phrases, candidates_from=candidates_from)

            built = sql()
            if built is None:
                return []
            if stats.n >= pg_query.PRUNE_MIN_CHUNKS and not quoted_phrases(query):
                pruned = prune_common_terms(stats.dfs, stats.n, qtf, self.bm25)
                if pruned is not None:  # exact when the k-th candidate beats any non-candidate
                    rows = cur.execute(*sql(pruned[0])).fetchall()
                    if len(rows) == k and rows[-1][1] >= pruned[1]:
                        self.lexical_pruned += 1
                        return [(cid, float(s)) for cid, s in rows]
            rows = cur.execute(*built).fetchall()
        return [(cid, float(s)) for cid, s in rows]

    def _lexical_from(self, copy: Postings, cur: psycopg.Cursor, stats: ReaderStats,
                      qtf: dict[int, int], k: int) -> list[tuple[str, float]]:
        """The BM25 top ``k`` from the in-memory postings (same scores as the SQL); the
        chunks' ids are read under the reader's row-level security."""
        weights = stats.weights(qtf, self.bm25)
        c1, c2 = stats.norm(self.bm25)
        top = copy.top(weights, stats.acls, c1=c1, c2=c2, k=k) if weights else []
        ids = dict(cur.execute("SELECT n, id FROM chunks WHERE n = ANY(%s)",
                               ([n for n, _ in top],)).fetchall()) if top else {}
        self.lexical_from_copy += 1
        return [(ids[n], s) for n, s in top if n in ids]

    def _load_postings(self) -> Postings:
        """Read the postings for the in-memory copy: one snapshot, as the store."""
        with self._pool.connection() as conn:
            conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            try:
                conn.execute("SELECT set_config('ragtune.admin', 'on', true)")
                with conn.cursor() as cur:
                    return Postings.load(cur)
            finally:
                conn.execute("ROLLBACK")

    def lexical_search(self, query: str, k: int, principal: Principal,
                       filters: SearchFilter | None = None) -> list[ScoredChunk]:
        return read_ranked(self, self.lexical_ranking(query, k, principal, filters), principal)

    # ----------------------------------------------------------------- log, traces, stats
    def log_ingest(self, source: str, status: str, message: str = "") -> None:
        with self._tx() as cur:
            cur.execute("INSERT INTO ingest_log (ts, source, status, message) VALUES (%s, %s, %s, %s)",
                        (time.time(), source, status, message))

    def ingest_log(self, limit: int = 50) -> list[IngestLogEntry]:
        with self._tx() as cur:
            rows = cur.execute("SELECT ts, source, status, message FROM ingest_log "
                               "ORDER BY id DESC LIMIT %s", (limit,)).fetchall()
        return [IngestLogEntry(*r) for r in rows]

    def append_trace(self, record: TraceRecord) -> None:
        sources = record_sources(record)
        with self._tx() as cur:
            cur.execute("INSERT INTO traces (id, ts, principal, mode, adapter, origin, record, "
                        "summary, vector) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
                        (record.id, record.ts, record.principal, record.mode, record.adapter,
                         record.origin, json.dumps(record.answer, ensure_ascii=False),
                         json.dumps(record.summary, ensure_ascii=False),
                         vector_bytes(record.vector)))
            if sources:
                cur.executemany("INSERT INTO trace_sources VALUES (%s, %s) ON CONFLICT DO NOTHING",
                                [(record.id, s) for s in sources])

    _TRACE_COLS = "id, ts, principal, mode, adapter, origin, summary, vector"

    def traces(self, *, since: float | None = None, until: float | None = None,
               limit: int | None = None, principal: Principal | None = None,
               brief: bool = False) -> list[TraceRecord]:
        where, params = trace_where(since, until, principal, "%s")
        record = "NULL" if brief else "record::text"
        with self._tx() as cur:
            rows = cur.execute(f"SELECT {self._TRACE_COLS}, {record} FROM traces WHERE {where} "
                               "ORDER BY ts DESC, n DESC LIMIT %s", [*params, limit]).fetchall()
        rows.reverse()
        return records_from_rows(rows)

    def trace(self, trace_id: str, principal: Principal | None = None) -> TraceRecord | None:
        with self._tx() as cur:
            row = cur.execute(f"SELECT {self._TRACE_COLS}, record::text FROM traces "
                              "WHERE id = %s", (trace_id,)).fetchone()
        if row is None or not may_read_trace(principal, row[2]):
            return None
        return records_from_rows([row])[0]

    def add_feedback(self, trace_id: str, principal: Principal, rating: int,
                     comment: str = "") -> FeedbackRecord:
        with self._tx() as cur:
            row = cur.execute("SELECT principal FROM traces WHERE id = %s", (trace_id,)).fetchone()
            check_feedback(trace_id, row[0] if row else None, principal, rating)
            fb = FeedbackRecord(trace_id, time.time(), principal.user, rating, comment.strip())
            self._insert_feedback(cur, [fb])
        return fb

    @staticmethod
    def _insert_feedback(cur: psycopg.Cursor, records: Sequence[FeedbackRecord]) -> None:
        cur.executemany("INSERT INTO feedback (trace_id, ts, principal, rating, comment) "
                        "VALUES (%s, %s, %s, %s, %s)",
                        [(f.trace_id, f.ts, f.principal, f.rating, f.comment) for f in records])

    def import_feedback(self, records: Sequence[FeedbackRecord]) -> None:
        """Feedback exactly as another store holds it (``ragtune store migrate``)."""
        with self._tx() as cur:
            self._insert_feedback(cur, records)

    def feedback(self, *, since: float | None = None, until: float | None = None,
                 principal: Principal | None = None) -> list[FeedbackRecord]:
        where, params = trace_where(since, until, principal, "%s", alias="t.")
        with self._tx() as cur:
            rows = cur.execute("SELECT f.trace_id, f.ts, f.principal, f.rating, f.comment "
                               f"FROM feedback f JOIN traces t ON t.id = f.trace_id WHERE {where} "
                               "ORDER BY f.ts, f.id", params).fetchall()
        return [FeedbackRecord(*r) for r in rows]

    def purge_traces(self, before: float) -> int:
        """Rows go at commit (their feedback and links cascade); ``finish_deletions``
        vacuums their pages."""
        with self._tx() as cur:
            return cur.execute("DELETE FROM traces WHERE ts < %s", (before,)).rowcount

    def iter_chunks(self) -> Iterator[Chunk]:
        with self._tx() as cur:
            rows = cur.execute("SELECT id, doc_id, text, section, ordinal, tokens, page FROM chunks "
                               "ORDER BY doc_id, ordinal").fetchall()
        for r in rows:
            yield Chunk(*r)

    def stats(self) -> dict[str, Any]:
        with self._tx() as cur:
            q = cur.execute
            return {
                "backend": "postgres",
                "url": self._where,
                "schema_version": self.schema_version,
                "documents": q("SELECT count(*) FROM documents").fetchone()[0],
                "chunks": q("SELECT count(*) FROM chunks").fetchone()[0],
                "restricted_documents": q(
                    "SELECT count(DISTINCT doc_id) FROM document_groups").fetchone()[0],
                "collections": dict(q("SELECT collection, count(*) FROM documents "
                                      "GROUP BY collection").fetchall()),
                "size_bytes": q("SELECT sum(pg_total_relation_size(c.oid)) FROM pg_class c "
                                "JOIN pg_namespace s ON s.oid = c.relnamespace "
                                "WHERE s.nspname = %s AND c.relkind = 'r'",
                                (self.schema,)).fetchone()[0] or 0,
                "last_ingest": q("SELECT max(ts) FROM ingest_log").fetchone()[0],
                "traces": q("SELECT count(*) FROM traces").fetchone()[0],
            }

    def integrity_check(self) -> list[str]:
        """Problems found (empty when consistent): counts, ACL copies and BM25 statistics."""
        checks = [
            (("SELECT source FROM documents d WHERE chunks != "
             "(SELECT count(*) FROM chunks c WHERE c.doc_id = d.id)"),
             "{}: chunk count differs from its chunks"),
            (("SELECT d.source FROM documents d WHERE d.acl::text[] IS DISTINCT FROM coalesce(("
             "SELECT array_agg(grp ORDER BY grp) FROM document_groups g WHERE g.doc_id = d.id), '{}')"),
             "{}: ACL differs from its group rows"),
            (("SELECT DISTINCT d.source FROM chunks c JOIN documents d ON d.id = c.doc_id "
             "WHERE c.acl IS DISTINCT FROM d.acl OR c.collection != d.collection"),
             "{}: chunks carry another ACL or collection than their document"),
            (("SELECT d.source FROM documents d WHERE NOT EXISTS (SELECT 1 FROM versions v "
             "WHERE v.doc_id = d.id AND v.version = d.version)"),
             "{}: current version not recorded"),
            (("SELECT count(*) FROM chunks WHERE embedding IS NULL HAVING count(*) > 0"),
             "{} chunks without a vector"),
            (("SELECT count(*) FROM corpus c FULL JOIN (SELECT acl, count(*) AS n, "
              "sum(length) AS t FROM chunks GROUP BY acl) a USING (acl) "
              "WHERE (c.chunks, c.terms) IS DISTINCT FROM (a.n, a.t) HAVING count(*) > 0"),
             "{} ACLs' BM25 corpus totals differ from the chunks"),
            (("SELECT count(*) FROM (SELECT p.term, ch.acl, count(*) AS df FROM postings p "
              "JOIN chunks ch ON ch.n = p.chunk GROUP BY p.term, ch.acl) p "
              "FULL JOIN lexicon l USING (term, acl) WHERE p.df IS DISTINCT FROM l.df "
              "HAVING count(*) > 0"),
             "{} BM25 document frequencies differ from the postings"),
            (("SELECT count(*) FROM postings p WHERE NOT EXISTS (SELECT 1 FROM chunks c "
              "WHERE c.n = p.chunk) HAVING count(*) > 0"),
             "{} postings of chunks that are gone"),
            (("SELECT count(*) FROM postings p JOIN chunks c ON c.n = p.chunk "
              "LEFT JOIN acls a ON a.id = p.acl WHERE p.length != c.length "
              "OR a.acl IS DISTINCT FROM c.acl HAVING count(*) > 0"),
             "{} postings carry another length or ACL than their chunk"),
        ]
        batch = self._batch()
        if batch is None or not batch.index_dropped:  # else this batch builds it at its end
            checks.append((
                ("SELECT 'chunks.embedding' FROM meta WHERE key = 'dimension' "
                 "AND to_regclass('chunks_embedding') IS NULL"),
                ("{} has no HNSW index (a bulk load stopped before building it): searches "
                 "scan every vector; the next ingest builds it")))
        problems: list[str] = []
        with self._tx(_STORE) as cur:  # inside a write batch: after committing it
            for query, message in checks:
                problems += [message.format(r[0]) for r in cur.execute(query).fetchall()]
        return problems

    def close(self) -> None:
        self._pool.close()


def _pg_array(items: Sequence[str]) -> str:
    """A text[] literal: ``{"a","b"}`` (quotes and backslashes escaped)."""
    quoted = ('"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"' for s in items)
    return "{" + ",".join(quoted) + "}"


def _as_array(value: Any) -> np.ndarray:
    return np.asarray(value.to_numpy() if hasattr(value, "to_numpy") else value, dtype=np.float32)


def open_postgres(settings: StoreSettings, workspace_root: Path) -> PostgresStore:
    """Registry factory (``[store] backend = "postgres"``, ``url = "postgresql://..."``)."""
    if not settings.url:
        raise StoreError("store.backend 'postgres' needs store.url = \"postgresql://user@host/db\"")
    return PostgresStore(settings.url, bm25=BM25Params.from_settings(settings),
                         quoted_phrases=settings.quoted_phrases,
                         postings_in_memory=settings.postings_in_memory)
