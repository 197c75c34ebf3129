"""Numbered schema migrations of the PostgreSQL store, applied once each, in order.

The same discipline as the SQLite store (``store/migrations.py``): append a script, never
edit one that has shipped. The version lives in ``meta('schema_version')`` of the store's
schema; :func:`migrate` runs under a transaction-level advisory lock, so two processes
opening a fresh database at once apply each migration exactly once.

Tables (all in one PostgreSQL schema, ``ragtune`` unless the URL's ``schema=`` says
otherwise): ``documents``, ``document_groups`` (the ACL: no rows = public), ``versions``,
``chunks`` (text, ``vector`` column with an HNSW index, and copies of the document's
collection, ACL and update time so that a search filters in one index scan), ``postings``
+ ``lexicon`` + ``corpus`` (BM25 statistics every server process shares, per ACL, so a
reader's statistics are those of the rows they may read),
``ingest_log``, ``traces`` (+ ``trace_sources``, ``feedback``).

Row-level security on ``documents``, ``chunks``, ``lexicon`` and ``corpus``: a row is visible when it is public,
when its ACL shares a group with ``current_setting('ragtune.groups')`` or when
``ragtune.admin`` is on. Both settings are set per transaction by the store; a session that
sets nothing sees public rows only. Superusers bypass RLS, so the store runs principal
reads as the ``ragtune_reader`` role (``SET LOCAL ROLE``) when it connects as one.

The SQL stays within what Citus distributes (see docs/stores.md): every table that grows
with the corpus carries ``doc_id``, and no statement needs a cross-document foreign key.
"""

from __future__ import annotations

import psycopg
from psycopg import sql

from ragtune.errors import StoreError

READER_ROLE = "ragtune_reader"

_M001_INITIAL = """
CREATE TABLE meta (key text PRIMARY KEY, value text NOT NULL);

CREATE TABLE documents (
    id           text PRIMARY KEY,
    source       text NOT NULL UNIQUE,
    title        text NOT NULL,
    collection   text NOT NULL DEFAULT 'default',
    acl          text[] NOT NULL DEFAULT '{}',  -- copy of document_groups, for RLS
    version      integer NOT NULL,
    content_hash text NOT NULL,
    chunks       integer NOT NULL,
    metadata     jsonb NOT NULL DEFAULT '{}',
    created_at   double precision NOT NULL,
    updated_at   double precision NOT NULL
);
CREATE INDEX documents_collection ON documents (collection);

-- The ACL: a document with no rows here is public; members of any listed group may read it.
CREATE TABLE document_groups (
    doc_id text NOT NULL REFERENCES documents (id) ON DELETE CASCADE,
    grp    text NOT NULL,
    PRIMARY KEY (doc_id, grp)
);
CREATE INDEX document_groups_grp ON document_groups (grp);

CREATE TABLE versions (
    doc_id       text NOT NULL REFERENCES documents (id) ON DELETE CASCADE,
    version      integer NOT NULL,
    content_hash text NOT NULL,
    chunks       integer NOT NULL,
    ingested_at  double precision NOT NULL,
    PRIMARY KEY (doc_id, version)
);

CREATE TABLE chunks (
    n          bigint GENERATED ALWAYS AS IDENTITY UNIQUE,  -- compact key for postings
    id         text PRIMARY KEY,
    doc_id     text NOT NULL REFERENCES documents (id) ON DELETE CASCADE,
    ordinal    integer NOT NULL,
    section    text NOT NULL,
    page       integer,
    tokens     integer NOT NULL,
    text       text NOT NULL,
    title      text NOT NULL,
    collection text NOT NULL,            -- the document's, so one scan filters
    acl        text[] NOT NULL,          -- the document's groups (RLS and search filter)
    updated_at double precision NOT NULL,
    length     integer NOT NULL,         -- BM25 terms in title + section + text
    embedding  vector                    -- typed vector(N) by the first write (pg_schema.fix_dimension)
);
CREATE INDEX chunks_doc ON chunks (doc_id);

-- BM25 (store/bm25.py analysis, crc32 term hashes as int4): postings per chunk, document
-- frequencies per term and corpus totals, kept by the writers in the document's transaction.
CREATE TABLE postings (
    term  integer NOT NULL,
    chunk bigint NOT NULL REFERENCES chunks (n) ON DELETE CASCADE,
    tf    integer NOT NULL,
    PRIMARY KEY (term, chunk)
);
CREATE INDEX postings_chunk ON postings (chunk);
CREATE TABLE lexicon (term integer PRIMARY KEY, df integer NOT NULL);
CREATE TABLE corpus (
    id     integer PRIMARY KEY CHECK (id = 1),
    chunks bigint NOT NULL,
    terms  bigint NOT NULL
);
INSERT INTO corpus VALUES (1, 0, 0);

CREATE TABLE ingest_log (
    id      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    ts      double precision NOT NULL,
    source  text NOT NULL,
    status  text NOT NULL,
    message text NOT NULL DEFAULT ''
);

CREATE TABLE traces (
    n         bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
    id        text PRIMARY KEY,
    ts        double precision NOT NULL,
    principal text NOT NULL,
    mode      text NOT NULL,
    adapter   text,
    origin    text NOT NULL,
    record    jsonb NOT NULL
);
CREATE INDEX traces_ts ON traces (ts);

-- Who may read a row with this ACL in the current transaction (inlined by the planner).
CREATE FUNCTION may_read(acl text[]) RETURNS boolean LANGUAGE sql STABLE AS $$
    SELECT cardinality(acl) = 0
        OR coalesce(current_setting('ragtune.admin', true), '') = 'on'
        OR acl && coalesce(nullif(current_setting('ragtune.groups', true), ''), '{}')::text[]
$$;
CREATE FUNCTION is_admin() RETURNS boolean LANGUAGE sql STABLE AS $$
    SELECT coalesce(current_setting('ragtune.admin', true), '') = 'on'
$$;

ALTER TABLE documents ENABLE ROW LEVEL SECURITY;
ALTER TABLE documents FORCE ROW LEVEL SECURITY;
ALTER TABLE chunks ENABLE ROW LEVEL SECURITY;
ALTER TABLE chunks FORCE ROW LEVEL SECURITY;
CREATE POLICY readable ON documents FOR SELECT USING (may_read(acl));
CREATE POLICY admin_writes ON documents FOR ALL USING (is_admin()) WITH CHECK (is_admin());
CREATE POLICY readable ON chunks FOR SELECT USING (may_read(acl));
CREATE POLICY admin_writes ON chunks FOR ALL USING (is_admin()) WITH CHECK (is_admin());
"""

# BM25 statistics per ACL (issue 17 item 6): a reader's document frequencies, N and average
# length are sums over the ACLs they may read, so a restricted document moves nobody
# else's scores; the rows carry their ACL, so row-level security hides them as well. The
# analysis the stored terms were made with is recorded (store/analysis.py): stores from
# before were hashed with the light stemmer and the short stopword list; the store
# re-analyses its chunks when its settings differ.
_M002_STATS_PER_ACL = """
CREATE TABLE lexicon_acl (
    term integer NOT NULL,
    acl  text[] NOT NULL,
    df   integer NOT NULL,
    CONSTRAINT lexicon_acl_key PRIMARY KEY (term, acl)
);
INSERT INTO lexicon_acl SELECT p.term, ch.acl, count(*) FROM postings p
    JOIN chunks ch ON ch.n = p.chunk GROUP BY p.term, ch.acl;
DROP TABLE lexicon;
ALTER TABLE lexicon_acl RENAME TO lexicon;

CREATE TABLE corpus_acl (
    acl    text[] NOT NULL CONSTRAINT corpus_acl_key PRIMARY KEY,
    chunks bigint NOT NULL,
    terms  bigint NOT NULL
);
INSERT INTO corpus_acl SELECT acl, count(*), coalesce(sum(length), 0) FROM chunks GROUP BY acl;
DROP TABLE corpus;
ALTER TABLE corpus_acl RENAME TO corpus;

ALTER TABLE lexicon ENABLE ROW LEVEL SECURITY;
ALTER TABLE lexicon FORCE ROW LEVEL SECURITY;
ALTER TABLE corpus ENABLE ROW LEVEL SECURITY;
ALTER TABLE corpus FORCE ROW LEVEL SECURITY;
CREATE POLICY readable ON lexicon FOR SELECT USING (may_read(acl));
CREATE POLICY admin_writes ON lexicon FOR ALL USING (is_admin()) WITH CHECK (is_admin());
CREATE POLICY readable ON corpus FOR SELECT USING (may_read(acl));
CREATE POLICY admin_writes ON corpus FOR ALL USING (is_admin()) WITH CHECK (is_admin());

INSERT INTO meta VALUES ('bm25_analyzer', 'light/short/v1') ON CONFLICT (key) DO NOTHING;
"""

# Monitoring (ragtune.monitor), as in the SQLite store's migration 4: each answer record's
# summary (JSON text: a report parses 100k of them at once) and question vector (float16),
# the documents it quotes (a deletion strips their text from it), and user feedback.
_M003_MONITOR = """
ALTER TABLE traces ADD COLUMN summary text NOT NULL DEFAULT '{}';
ALTER TABLE traces ADD COLUMN vector bytea;
CREATE INDEX traces_principal ON traces (principal, ts);

CREATE TABLE trace_sources (
    trace_id text NOT NULL REFERENCES traces (id) ON DELETE CASCADE,
    source   text NOT NULL,
    PRIMARY KEY (trace_id, source)
);
CREATE INDEX trace_sources_source ON trace_sources (source);

CREATE TABLE feedback (
    id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    trace_id  text NOT NULL REFERENCES traces (id) ON DELETE CASCADE,
    ts        double precision NOT NULL,
    principal text NOT NULL,
    rating    integer NOT NULL CHECK (rating IN (-1, 1)),
    comment   text NOT NULL DEFAULT ''
);
CREATE INDEX feedback_trace ON feedback (trace_id);
"""

# Bulk ingest (store/pg_bulk.py): the foreign key from each posting to its chunk ran a
# trigger and took a row lock on the chunk for every posting (~80 per chunk): 45% of a
# bulk load's time. The writers delete a document's postings with its chunks, in the same
# transaction (PostgresStore._remove_chunks); integrity_check looks for orphans.
_M004_POSTINGS_WITHOUT_FK = """
ALTER TABLE postings DROP CONSTRAINT IF EXISTS postings_chunk_fkey;
"""

# Narrow postings (issue 13: hybrid search at 1M chunks). The BM25 arm joined every
# posting of the query's terms to its chunk row for the chunk's length and ACL: a random
# read of a wide row (text, a 1.5 KB vector) per posting, 20 s per query at 1M chunks.
# Each posting now carries its chunk's length and ACL (as the id of a row in ``acls``, a
# dictionary of the ACLs in use: a few rows), and the primary key index covers them, so a
# query's postings come from an index-only scan and only the top k rows touch ``chunks``
# (under row-level security). The key orders a term's postings by ACL first, so a reader's
# scan reads only the postings of the ACLs they may read (10% of them when an ACL hides
# 90%). ``acls`` rows are never deleted: an id keeps its meaning.
_M005_NARROW_POSTINGS = """
CREATE TABLE acls (
    id  integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    acl text[] NOT NULL UNIQUE
);
INSERT INTO acls (acl) SELECT DISTINCT acl FROM chunks ORDER BY acl;
ALTER TABLE acls ENABLE ROW LEVEL SECURITY;
ALTER TABLE acls FORCE ROW LEVEL SECURITY;
CREATE POLICY readable ON acls FOR SELECT USING (may_read(acl));
CREATE POLICY admin_writes ON acls FOR ALL USING (is_admin()) WITH CHECK (is_admin());

ALTER TABLE postings ADD COLUMN length integer, ADD COLUMN acl integer;
UPDATE postings p SET length = ch.length, acl = a.id
    FROM chunks ch JOIN acls a ON a.acl = ch.acl WHERE ch.n = p.chunk;
DELETE FROM postings WHERE acl IS NULL;  -- orphans (store check reported them)
ALTER TABLE postings ALTER COLUMN length SET NOT NULL, ALTER COLUMN acl SET NOT NULL;
ALTER TABLE postings DROP CONSTRAINT postings_pkey,
    ADD CONSTRAINT postings_pkey PRIMARY KEY (term, acl, chunk) INCLUDE (tf, length);
-- every write that changes postings adds 1 (pg_bulk.PendingStats): copies of the postings
-- in server processes (store/pg_postings.py) know when they are out of date
INSERT INTO meta VALUES ('postings_generation', '0') ON CONFLICT (key) DO NOTHING;
"""

MIGRATIONS: list[str] = [_M001_INITIAL, _M002_STATS_PER_ACL, _M003_MONITOR,
                         _M004_POSTINGS_WITHOUT_FK, _M005_NARROW_POSTINGS]

_LOCK_KEY = 0x7261_6774  # 'ragt': the migration lock (per database)


def _version(cur: psycopg.Cursor, schema: str) -> int:
    exists = cur.execute("SELECT to_regclass(%s)", (f"{schema}.meta",)).fetchone()
    if exists is None or exists[0] is None:
        return 0
    row = cur.execute(sql.SQL("SELECT value FROM {}.meta WHERE key = 'schema_version'").format(
        sql.Identifier(schema))).fetchone()
    return int(row[0]) if row else 0


def _check_known(current: int, where: str) -> None:
    if current > len(MIGRATIONS):
        raise StoreError(f"{where}: schema version {current} is newer than this ragtune knows "
                         f"({len(MIGRATIONS)}); upgrade ragtune")


def _ensure_reader_role(cur: psycopg.Cursor, schema: str) -> None:
    """The role principal reads run as when the store connects as a superuser; best effort
    where the login may not create roles (it then must not bypass RLS itself)."""
    ident = sql.Identifier(schema)
    role = sql.Identifier(READER_ROLE)
    cur.execute("SAVEPOINT reader_role")
    try:
        cur.execute(sql.SQL(
            "DO $$ BEGIN CREATE ROLE {} NOLOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$"
        ).format(role))
        cur.execute(sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(ident, role))
        cur.execute(sql.SQL("GRANT SELECT ON ALL TABLES IN SCHEMA {} TO {}").format(ident, role))
        cur.execute(sql.SQL("GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA {} TO {}").format(ident, role))
        cur.execute("RELEASE SAVEPOINT reader_role")
    except psycopg.errors.InsufficientPrivilege:
        cur.execute("ROLLBACK TO SAVEPOINT reader_role")


def migrate(conn: psycopg.Connection, schema: str, where: str) -> int:
    """Bring ``schema`` to the newest version in one transaction; returns the version."""
    with conn.transaction(), conn.cursor() as cur:
        current = _version(cur, schema)
        _check_known(current, where)
        if current == len(MIGRATIONS):
            return current
        cur.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
        try:
            cur.execute("CREATE EXTENSION IF NOT EXISTS vector")
        except psycopg.errors.InsufficientPrivilege:
            raise StoreError(f"{where}: the pgvector extension is not installed in this database "
                             "and this login may not install it; run CREATE EXTENSION vector "
                             "as a database owner or superuser") from None
        cur.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
        cur.execute(sql.SQL("SET LOCAL search_path TO {}, public").format(sql.Identifier(schema)))
        # A migration reads every row: row-level security binds a table's owner too (FORCE).
        cur.execute("SELECT set_config('ragtune.admin', 'on', true)")
        current = _version(cur, schema)
        _check_known(current, where)
        for number in range(current + 1, len(MIGRATIONS) + 1):
            cur.execute(MIGRATIONS[number - 1])
            cur.execute("INSERT INTO meta VALUES ('schema_version', %s) ON CONFLICT (key) "
                        "DO UPDATE SET value = excluded.value", (str(number),))
        _ensure_reader_role(cur, schema)
    return len(MIGRATIONS)


HNSW_M = 16
HNSW_EF_CONSTRUCTION = 64


def fix_dimension(cur: psycopg.Cursor, dim: int, *, index: bool = True) -> None:
    """Type the embedding column ``vector(dim)`` and build its HNSW index (inner product;
    ``index=False``: a write batch builds it when it ends).

    Runs in the first write's transaction (under the writers' lock): the model's dimension
    is not known before. Later writes with another dimension fail with a clear error.
    """
    cur.execute(f"ALTER TABLE chunks ALTER COLUMN embedding TYPE vector({int(dim)})")
    if index:
        create_vector_index(cur)
    cur.execute("INSERT INTO meta VALUES ('dimension', %s)", (str(dim),))


def create_vector_index(cur: psycopg.Cursor) -> None:
    cur.execute(f"CREATE INDEX IF NOT EXISTS chunks_embedding ON chunks USING hnsw "
                f"(embedding vector_ip_ops) WITH (m = {HNSW_M}, "
                f"ef_construction = {HNSW_EF_CONSTRUCTION})")
