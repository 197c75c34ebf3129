"""Numbered schema migrations for the SQLite store, applied once each, in order.

The schema version lives in ``PRAGMA user_version``. Add a migration by appending a
function; never edit one that has shipped.
"""

from __future__ import annotations

import sqlite3

from ragtune.errors import StoreError

# Each migration is one SQL script; ``migrate`` wraps it in a transaction with the version bump.
_M001_INITIAL = """
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        INSERT INTO meta VALUES ('generation', '0');

        CREATE TABLE documents (
            id           TEXT PRIMARY KEY,
            source       TEXT NOT NULL UNIQUE,
            title        TEXT NOT NULL,
            collection   TEXT NOT NULL DEFAULT 'default',
            version      INTEGER NOT NULL,
            content_hash TEXT NOT NULL,
            chunks       INTEGER NOT NULL,
            metadata     TEXT NOT NULL DEFAULT '{}',
            created_at   REAL NOT NULL,
            updated_at   REAL NOT NULL
        );
        CREATE INDEX documents_collection ON documents(collection);

        -- A document with no rows here is public; otherwise members of any listed group may read it.
        CREATE TABLE document_groups (
            doc_id TEXT NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
            grp    TEXT NOT NULL,
            PRIMARY KEY (doc_id, grp)
        );

        CREATE TABLE versions (
            doc_id       TEXT NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
            version      INTEGER NOT NULL,
            content_hash TEXT NOT NULL,
            chunks       INTEGER NOT NULL,
            ingested_at  REAL NOT NULL,
            PRIMARY KEY (doc_id, version)
        );

        CREATE TABLE chunks (
            rowid     INTEGER PRIMARY KEY,
            id        TEXT NOT NULL UNIQUE,
            doc_id    TEXT NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
            ordinal   INTEGER NOT NULL,
            section   TEXT NOT NULL,
            page      INTEGER,
            tokens    INTEGER NOT NULL,
            text      TEXT NOT NULL,
            title     TEXT NOT NULL,
            embedding BLOB NOT NULL,  -- float32 vector
            terms     BLOB NOT NULL   -- uint32 hashes of the BM25 terms (store/bm25.py)
        );
        CREATE INDEX chunks_doc ON chunks(doc_id);

        -- Full-text index over chunk text, section path and document title (external content).
        CREATE VIRTUAL TABLE chunks_fts USING fts5(
            text, section, title, content='chunks', content_rowid='rowid',
            tokenize='porter unicode61 remove_diacritics 2'
        );
        CREATE TRIGGER chunks_ai AFTER INSERT ON chunks BEGIN
            INSERT INTO chunks_fts(rowid, text, section, title)
            VALUES (new.rowid, new.text, new.section, new.title);
        END;
        CREATE TRIGGER chunks_ad AFTER DELETE ON chunks BEGIN
            INSERT INTO chunks_fts(chunks_fts, rowid, text, section, title)
            VALUES ('delete', old.rowid, old.text, old.section, old.title);
        END;

        CREATE TABLE ingest_log (
            id      INTEGER PRIMARY KEY,
            ts      REAL NOT NULL,
            source  TEXT NOT NULL,
            status  TEXT NOT NULL,
            message TEXT NOT NULL DEFAULT ''
        );
"""

# Every finished answer's record (ragtune.answer.traces.StoreTraceSink appends them; the
# monitor reads them). The answer and its trace are one JSON document; the columns beside it
# are what queries filter on.
_M002_TRACES = """
        CREATE TABLE traces (
            id        TEXT PRIMARY KEY,
            ts        REAL NOT NULL,
            principal TEXT NOT NULL,
            mode      TEXT NOT NULL,
            adapter   TEXT,
            origin    TEXT NOT NULL,
            record    TEXT NOT NULL
        );
        CREATE INDEX traces_ts ON traces(ts);
"""

# BM25 analysis became configurable (store/analysis.py): the store records which analysis
# its term hashes were made with. Stores from before were all hashed with the light
# stemmer and the short stopword list; the store re-analyses when settings differ.
_M003_BM25_ANALYZER = """
        INSERT OR IGNORE INTO meta VALUES ('bm25_analyzer', 'light/short/v1');
"""

MIGRATIONS: list[str] = [_M001_INITIAL, _M002_TRACES, _M003_BM25_ANALYZER]


def _statements(script: str) -> list[str]:
    """Split a migration script into statements (trigger bodies keep their inner ``;``)."""
    out, buf = [], ""
    for line in script.splitlines(keepends=True):
        buf += line
        if sqlite3.complete_statement(buf):
            out.append(buf.strip())
            buf = ""
    if buf.strip():
        out.append(buf.strip())
    return out


def _check_known(current: int, path: str) -> None:
    if current > len(MIGRATIONS):
        raise StoreError(
            f"{path}: schema version {current} is newer than this ragtune knows "
            f"({len(MIGRATIONS)}); upgrade ragtune"
        )


def migrate(db: sqlite3.Connection, path: str) -> int:
    """Bring ``db`` to the newest schema in one transaction; returns the version.

    The version is read again under the write lock (``BEGIN IMMEDIATE``): two processes
    opening a fresh store at once would otherwise both see version 0, and the second
    would fail on tables the first had just created.
    """
    current = db.execute("PRAGMA user_version").fetchone()[0]
    _check_known(current, path)
    if current == len(MIGRATIONS):
        return current  # the common case takes no lock
    db.execute("BEGIN IMMEDIATE")
    try:
        current = db.execute("PRAGMA user_version").fetchone()[0]
        _check_known(current, path)
        for number in range(current + 1, len(MIGRATIONS) + 1):
            for statement in _statements(MIGRATIONS[number - 1]):
                db.execute(statement)
            db.execute(f"PRAGMA user_version = {number}")
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise
    return len(MIGRATIONS)
