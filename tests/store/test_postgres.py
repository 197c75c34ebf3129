"""PostgresStore against a real PostgreSQL + pgvector: the shared contract, then what only a
shared database server has to prove (row-level security, filtered top-k, many writers,
kill -9 mid-ingest)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest

from ragtune.errors import StoreError
from ragtune.store.base import SearchFilter
from tests.contracts.store import ADMIN, ANON, HR, StoreContract, make_doc

pytest.importorskip("psycopg", reason="pip install 'ragtune[postgres]'")

from ragtune.store.postgres import PostgresStore, split_url
from ragtune.types import Principal

pytestmark = pytest.mark.integration


@pytest.fixture
def store(pg_url, pg_schema):
    s = PostgresStore(pg_url, schema=pg_schema)
    yield s
    s.close()


class TestPostgresContract(StoreContract):
    def reopen(self, store):
        return PostgresStore(store.url, schema=store.schema)


def _copy_answers_at_once(monkeypatch) -> None:
    """Make the in-memory postings copy load before it answers (normally the SQL answers
    while it reloads in the background), so every search below goes through it."""
    from ragtune.store.pg_postings import PostingsCopy

    real_at = PostingsCopy.at

    def at_once(self, generation):
        got = real_at(self, generation)
        if got is None:
            self.wait()
            got = real_at(self, generation)
        return got

    monkeypatch.setattr(PostingsCopy, "at", at_once)


class TestPostgresPostingsCopyContract(StoreContract):
    """The whole contract again with BM25 answered from the postings copy
    (``[store] postings_in_memory``)."""

    @pytest.fixture
    def store(self, pg_url, pg_schema, monkeypatch):
        _copy_answers_at_once(monkeypatch)
        s = PostgresStore(pg_url, schema=pg_schema, postings_in_memory=True)
        yield s
        assert s.postings.error is None
        s.close()

    def reopen(self, store):
        return PostgresStore(store.url, schema=store.schema, postings_in_memory=True)


def _bulk(store: PostgresStore, n_docs: int, per_doc: int, dim: int, seed: int,
          groups_of=lambda i: (), collection_of=lambda i: "default"):
    rng = np.random.default_rng(seed)
    vecs = {}
    for i in range(n_docs):
        doc, chunks, _ = make_doc(f"bulk/{i}.md", *[f"item {i} part {j}" for j in range(per_doc)])
        v = rng.normal(size=(per_doc, dim)).astype(np.float32)
        v /= np.linalg.norm(v, axis=1, keepdims=True)
        store.upsert_document(doc, chunks, v, groups=groups_of(i), collection=collection_of(i))
        vecs.update({c.id: (vec, groups_of(i), collection_of(i)) for c, vec in zip(chunks, v)})
    return vecs


def test_raw_select_in_a_users_session_sees_no_restricted_rows(store):
    pub, pc, pv = make_doc("pub.md", "canteen menu")
    sec, sc, sv = make_doc("sec.md", "salary bands", title="Pay")
    store.upsert_document(pub, pc, pv)
    store.upsert_document(sec, sc, sv, groups=["hr"])
    bob = Principal("bob", frozenset({"it"}))
    with store.session(bob) as cur:  # no ACL clause in these queries: the policies apply
        assert [r[0] for r in cur.execute("SELECT text FROM chunks").fetchall()] == ["canteen menu"]
        assert [r[0] for r in cur.execute("SELECT source FROM documents").fetchall()] == ["pub.md"]
        assert cur.execute("SELECT count(*) FROM chunks WHERE text LIKE '%salary%'").fetchone()[0] == 0
        with pytest.raises(Exception, match="permission denied|policy"):
            cur.execute("DELETE FROM chunks")
    with store.session(HR) as cur:
        assert sorted(r[0] for r in cur.execute("SELECT text FROM chunks")) == \
            ["canteen menu", "salary bands"]
    # the settings last one transaction: a later raw session starts with no groups
    with store.session(ANON) as cur:
        cur.execute("SELECT set_config('ragtune.groups', '{hr}', false)")  # session-wide attempt
        assert cur.execute("SELECT current_user").fetchone()[0] in {"ragtune_reader", "postgres"}
    with store.session(ANON) as cur:
        assert [r[0] for r in cur.execute("SELECT text FROM chunks")] == ["canteen menu"]


def test_filtered_top_k_holds_with_a_one_percent_acl_and_a_collection(store):
    """2,000 chunks; 'rare' may read 1% of them, collection 'c7' holds 2%: the HNSW walk
    alone would return a handful, the store returns exactly the exact top k."""
    dim = 16
    vecs = _bulk(store, 200, 10, dim, seed=1,
                 groups_of=lambda i: ("rare",) if i % 100 == 0 else ("staff",),
                 collection_of=lambda i: f"c{i % 50}")
    q = np.random.default_rng(9).normal(size=dim).astype(np.float32)
    rare = Principal("r", frozenset({"rare"}))

    def exact(ok):
        ids = [c for c, (_, g, col) in vecs.items() if ok(g, col)]
        return sorted(ids, key=lambda c: -float(vecs[c][0] @ q))[:10]

    got = [c for c, _ in store.dense_ranking(q, 10, rare)]
    assert got == exact(lambda g, col: "rare" in g)
    got = [c for c, _ in store.dense_ranking(q, 10, ADMIN, SearchFilter(collections=("c7",)))]
    assert got == exact(lambda g, col: col == "c7")
    staff = Principal("s", frozenset({"staff"}))
    got = [c for c, _ in store.dense_ranking(q, 10, staff, SearchFilter(collections=("c3",)))]
    assert got == exact(lambda g, col: col == "c3" and "staff" in g)
    assert store.dense_ranking(q, 10, ANON) == []


def test_exact_fallback_without_iterative_scans(store, monkeypatch):
    """pgvector < 0.8 has no iterative scan: the exact scan must still fill top k."""
    monkeypatch.setattr(store, "_iterative", False)
    monkeypatch.setattr(store, "ef_search", 10)
    dim = 16
    vecs = _bulk(store, 100, 10, dim, seed=2,
                 groups_of=lambda i: ("rare",) if i % 50 == 0 else ("staff",))
    q = np.random.default_rng(3).normal(size=dim).astype(np.float32)
    rare = [c for c, (_, g, _) in vecs.items() if "rare" in g]
    expected = sorted(rare, key=lambda c: -float(vecs[c][0] @ q))[:10]
    got = store.dense_ranking(q, 10, Principal("r", frozenset({"rare"})))
    assert [c for c, _ in got] == expected


def test_transactional_replace_is_atomic_for_readers(store, pg_url):
    """A reader ranking while a writer replaces a document sees all of the old version or
    all of the new one, never a mix or nothing."""
    reader = PostgresStore(store.url, schema=store.schema)
    versions = [make_doc("r.md", *[f"text {i} round {r}" for i in range(20)]) for r in range(6)]
    ids = [frozenset(c.id for c in v[1]) for v in versions]
    store.upsert_document(*versions[0])
    seen: list[frozenset[str]] = []
    stop = threading.Event()

    def read():
        while not stop.is_set():
            seen.append(frozenset(c for c, _ in reader.lexical_ranking("text", 50, ANON)))

    t = threading.Thread(target=read)
    t.start()
    for v in versions[1:]:
        store.upsert_document(*v)
        time.sleep(0.05)
    stop.set()
    t.join()
    reader.close()
    assert seen and all(s in ids for s in seen)
    assert store.integrity_check() == []


def test_two_ingests_and_searches_at_once(store):
    """Two writer connections and two reader threads on one database: nothing lost, no error."""
    others = [PostgresStore(store.url, schema=store.schema) for _ in range(3)]
    errors: list[BaseException] = []
    done = threading.Event()

    def ingest(s, prefix):
        try:
            with s.write_lock():
                for i in range(25):
                    s.upsert_document(*make_doc(f"{prefix}/{i}.md", f"{prefix} note {i} alpha",
                                                f"more {prefix} text {i}"), groups=["g"] if i % 2 else ())
        except Exception as e:  # noqa: BLE001 - any failure is the finding, reported below
            errors.append(e)

    def search(s):
        try:
            q = np.ones(8, dtype=np.float32) / np.sqrt(8)
            while not done.is_set():
                s.lexical_search("alpha", 10, ANON)
                s.dense_search(q, 10, Principal("x", frozenset({"g"})))
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    writers = [threading.Thread(target=ingest, args=a) for a in ((store, "a"), (others[0], "b"))]
    readers = [threading.Thread(target=search, args=(s,)) for s in others[1:]]
    for t in writers + readers:
        t.start()
    for t in writers:
        t.join(120)
    done.set()
    for t in readers:
        t.join(30)
    for s in others:
        s.close()
    assert errors == []
    assert store.count_documents() == 50 and store.integrity_check() == []
    assert len(store.lexical_search("alpha", 100, ANON)) == 26  # 13 public per writer


_INGEST_FOREVER = textwrap.dedent("""
    import sys, numpy as np
    from ragtune.store.postgres import PostgresStore
    from tests.contracts.store import make_doc
    s = PostgresStore(sys.argv[1], schema=sys.argv[2])
    i = 0
    while True:
        doc, chunks, vecs = make_doc(f"k/{i % 40}.md", *[f"chunk {j} of round {i}" for j in range(30)])
        s.upsert_document(doc, chunks, vecs, groups=["g"] if i % 3 else ())
        print(i, flush=True)
        i += 1
""")


def _kill_9_after(script: str, store: PostgresStore, rounds: int, wait: float) -> None:
    """Run ``script`` (it prints each round it wrote) on ``store``; SIGKILL it after ``rounds``."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([os.path.join(root, "src"), root])}
    proc = subprocess.Popen([sys.executable, "-c", script, store.url, store.schema],
                            stdout=subprocess.PIPE, env=env, cwd=root)
    seen = 0
    deadline = time.monotonic() + wait
    while seen < rounds and time.monotonic() < deadline:
        line = proc.stdout.readline()
        assert line, "the ingesting process died on its own"
        seen = int(line) + 1
    proc.send_signal(signal.SIGKILL)
    proc.wait()


def _round_of_each_document(store: PostgresStore) -> dict[str, int]:
    """Which round each document's chunks come from, checking it is one whole version."""
    out = {}
    for info in store.list_documents():
        texts = {h.chunk.text for h in store.get_chunks(
            [c.id for c in store.iter_chunks() if c.doc_id == info.id], ADMIN)}
        rounds = {int(t.rsplit(" ", 1)[1]) for t in texts}
        assert len(texts) == info.chunks == 30 and len(rounds) == 1  # never half a version
        out[info.source] = rounds.pop()
    return out


@pytest.mark.slow
def test_kill_9_mid_ingest_leaves_a_consistent_store(store, pg_url):
    _kill_9_after(_INGEST_FOREVER, store, 50, 60)  # replaces as well as adds by then
    assert store.integrity_check() == []
    assert _round_of_each_document(store)
    assert len(store.lexical_search("chunk", 50, ADMIN)) == 50


def test_bad_url_and_wrong_dimension_are_clear_errors(store, pg_url):
    with pytest.raises(StoreError, match="cannot connect"):
        PostgresStore("postgresql://nobody@127.0.0.1:1/none")
    doc, chunks, vecs = make_doc("a.md", "x")
    store.upsert_document(doc, chunks, vecs)
    other, oc, _ = make_doc("b.md", "y")
    with pytest.raises(StoreError, match="embedding model changed"):
        store.upsert_document(other, oc, np.ones((1, 5), dtype=np.float32))


def test_newer_schema_is_refused(store, pg_url):
    with store.session(ADMIN) as cur:
        cur.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    with pytest.raises(StoreError, match="newer than this ragtune knows"):
        PostgresStore(store.url, schema=store.schema)


def test_integrity_check_finds_tampering(store):
    doc, chunks, vecs = make_doc("a.md", "alpha beta", "gamma")
    store.upsert_document(doc, chunks, vecs, groups=["hr"])
    with store.session(ADMIN) as cur:
        cur.execute("UPDATE lexicon SET df = df + 1 WHERE term = (SELECT min(term) FROM lexicon)")
        cur.execute("UPDATE chunks SET acl = '{}' WHERE ordinal = 0")
    problems = store.integrity_check()
    assert any("document frequencies" in p for p in problems)
    assert any("a.md: chunks carry another ACL" in p for p in problems)


def test_postings_follow_their_chunks_acl_through_a_retag(store):
    """A posting carries its chunk's ACL (migration 5, the BM25 arm reads no chunk rows):
    a new ACL on unchanged content moves the postings too, and store check notices a
    posting whose ACL or length differs from its chunk."""
    doc, chunks, vecs = make_doc("a.md", "quarterly salary bands", "canteen menu")
    store.upsert_document(doc, chunks, vecs)
    assert [h.document for h in store.lexical_search("salary", 5, ANON)] == ["a.md"]
    assert store.upsert_document(doc, chunks, vecs, groups=["hr"]).status == "retagged"
    assert store.lexical_search("salary", 5, ANON) == []
    assert [h.document for h in store.lexical_search("salary", 5, HR)] == ["a.md"]
    assert store.integrity_check() == []
    with store.session(ADMIN) as cur:
        assert cur.execute("SELECT DISTINCT a.acl FROM postings p JOIN acls a ON a.id = p.acl"
                           ).fetchall() == [(["hr"],)]
        cur.execute("UPDATE postings SET acl = (SELECT id FROM acls WHERE acl = '{}'), "
                    "length = length + 1 WHERE chunk = (SELECT min(chunk) FROM postings)")
    assert any("postings carry another length or ACL" in p for p in store.integrity_check())


def test_schema_in_the_url():
    assert split_url("postgresql://h/db")[1] == "ragtune"
    assert split_url("postgresql://h/db?schema=x") == ("postgresql://h/db", "x")


def test_ci_runs_the_iterative_scan_path(store):
    """make test builds pgvector 0.8 (scripts/build_pgvector.sh) into the local server, so CI
    exercises iterative index scans; the fallback path is tested above with them off."""
    if os.environ.get("CI") and not os.environ.get("RAGTUNE_TEST_POSTGRES_URL"):
        assert store._iterative


def test_a_migration_lock_holds_off_ingests(store):
    other = PostgresStore(store.url, schema=store.schema)
    with (store.write_lock(exclusive=True), pytest.raises(StoreError, match="being migrated into"),
          other.write_lock(timeout=0.3)):
        pass
    with store.write_lock(), other.write_lock(timeout=1):  # two ingests share it
        pass
    other.close()


def test_skipping_common_terms_returns_the_exact_bm25_top_k(store, monkeypatch):
    """MaxScore pruning (pg_query.prune_common_terms) against the full BM25 query."""
    import ragtune.store.pg_query as pq

    monkeypatch.setattr(pq, "PRUNE_MIN_CHUNKS", 50)
    monkeypatch.setattr(pq, "PRUNE_SHARE", 0.2)  # a small corpus: 'common' = in 20% of chunks
    rng = np.random.default_rng(4)
    vocab = [f"w{i}" for i in range(300)]
    p = 1.0 / np.arange(1, 301)
    p /= p.sum()
    for d in range(30):
        texts = [" ".join(rng.choice(vocab, size=30, p=p)) for _ in range(8)]
        store.upsert_document(*make_doc(f"z/{d}.md", *texts), groups=["g"] if d % 4 == 0 else ())
    used = []
    real = pq.prune_common_terms
    monkeypatch.setattr("ragtune.store.postgres.prune_common_terms",
                        lambda *a: used.append(real(*a)) or used[-1])
    g = Principal("x", frozenset({"g"}))
    for q in ["w0 w25", "w1 w2 w12", "w0 w1 w17 w29", "w3 w18", "w0 w5 w9", "w0 w250", "w2 w40",
              "w0 w0 w25 w25 w25"]:  # repeated words count in the bound too
        for who in (ADMIN, ANON, g):
            with store.session(who) as cur:
                _, stats = pq.reader_stats(cur, pq.query_terms(q, store.bm25.analyzer),
                                           admin=who.admin)
                sql_, params = pq.lexical_sql(q, None, 10, store.bm25, stats)
                full = [(c, round(s, 6)) for c, s in cur.execute(sql_, params).fetchall()]
            got = [(c, round(s, 6)) for c, s in store.lexical_ranking(q, 10, who)]
            assert got == full, q
    assert any(u is not None for u in used) and store.lexical_pruned > 0  # some took the short way


def test_the_postings_copy_answers_as_the_sql_and_follows_every_write(pg_url, pg_schema):
    """``postings_in_memory``: the copy's BM25 top k equals the SQL's for every reader; a
    write makes the next search answer from SQL (the change shows at once) while the copy
    reloads; an unchanged re-ingest does not move the generation."""
    sql_store = PostgresStore(pg_url, schema=pg_schema)
    mem = PostgresStore(pg_url, schema=pg_schema, postings_in_memory=True)
    rng = np.random.default_rng(5)
    vocab = [f"w{i}" for i in range(200)]
    p = 1.0 / np.arange(1, 201)
    p /= p.sum()
    docs = []
    for d in range(24):
        docs.append(make_doc(f"m/{d}.md", *[" ".join(rng.choice(vocab, size=25, p=p))
                                            for _ in range(6)]))
        sql_store.upsert_document(*docs[-1], groups=["g"] if d % 3 == 0 else ())
    g = Principal("x", frozenset({"g"}))
    queries = ["w0 w7", "w1 w2 w12 w12", "w3 w150", "w5 w9 w44", "w60"]

    def same(expect_copy: bool) -> None:
        before = mem.lexical_from_copy
        for q in queries:
            for who in (ADMIN, ANON, g):
                want = [(c, round(s_, 9)) for c, s_ in sql_store.lexical_ranking(q, 10, who)]
                got = [(c, round(s_, 9)) for c, s_ in mem.lexical_ranking(q, 10, who)]
                assert got == want, (q, who.user)
        assert (mem.lexical_from_copy - before == len(queries) * 3) is expect_copy

    def generation() -> int:
        with mem.session(ADMIN) as cur:
            return int(cur.execute("SELECT value FROM meta WHERE key = 'postings_generation'"
                                   ).fetchone()[0])

    same(expect_copy=False)  # the first search starts the load; SQL answers meanwhile
    mem.postings.wait()
    same(expect_copy=True)
    gen = generation()
    sql_store.upsert_document(*docs[1])  # unchanged: no new generation, the copy stays
    assert generation() == gen
    same(expect_copy=True)
    for write in (lambda: sql_store.upsert_document(*make_doc("m/new.md", "w150 w150 w60")),
                  lambda: sql_store.upsert_document(*docs[2], groups=["g"]),  # retag
                  lambda: sql_store.delete_document("m/4.md"),
                  lambda: sql_store.upsert_document(*make_doc("m/5.md", "w3 replaced"))):
        write()
        assert generation() > gen
        gen = generation()
        same(expect_copy=False)
        mem.postings.wait()
        same(expect_copy=True)
    assert mem.postings.loads == 5 and mem.postings.error is None  # the first + one per write
    assert mem.lexical_search("w150", 3, ANON)[0].document == "m/new.md"
    mem.close()
    sql_store.close()


def test_a_reader_sees_only_the_bm25_statistics_of_what_they_may_read(store):
    """The statistics are kept per ACL and row-level security covers them too: a raw
    session cannot count the words of documents it may not read."""
    store.upsert_document(*make_doc("pub.md", "canteen menu"))
    store.upsert_document(*make_doc("sec.md", "salary bands", title="Pay"), groups=["hr"])
    with store.session(Principal("bob", frozenset({"it"}))) as cur:
        assert cur.execute("SELECT acl, chunks FROM corpus").fetchall() == [([], 1)]
        assert {tuple(r[0]) for r in cur.execute("SELECT DISTINCT acl FROM lexicon")} == {()}
    with store.session(HR) as cur:
        assert sorted(cur.execute("SELECT acl, chunks FROM corpus").fetchall()) == \
            [([], 1), (["hr"], 1)]


def test_a_store_of_schema_1_is_upgraded_and_reanalysed(pg_url, pg_schema, monkeypatch):
    """Schema 1 kept one global BM25 total and terms of the first analysis (light stemming,
    short stopwords, single letters kept): migration 2 splits the statistics per ACL, and
    the first open re-analyses the chunks with the configured analysis."""
    import psycopg

    from ragtune.store import pg_schema as ps
    from ragtune.store.analysis import LEGACY
    from ragtune.store.pg_query import signed_terms

    monkeypatch.setattr(ps, "MIGRATIONS", ps.MIGRATIONS[:1])
    rows = [("pub.md", "the runner was running", []), ("pay.md", "salary runs", ["hr"])]
    with psycopg.connect(pg_url, autocommit=True) as conn, conn.transaction():
        assert ps.migrate(conn, pg_schema, "test") == 1
        conn.execute(f'SET LOCAL search_path TO "{pg_schema}", public')
        conn.execute("SELECT set_config('ragtune.admin', 'on', true)")
        ps.fix_dimension(conn.cursor(), 3)
        for i, (source, text, acl) in enumerate(rows):
            doc, chunks, _ = make_doc(source, text)
            terms = signed_terms(LEGACY.term_hashes(f"T\n{chunks[0].section}\n{text}")).tolist()
            conn.execute("INSERT INTO documents VALUES (%s, %s, 'T', 'default', %s, 1, %s, 1, "
                         "'{}', 0, 0)", (doc.id, source, acl, doc.content_hash))
            conn.execute("INSERT INTO document_groups SELECT %s, unnest(%s::text[])", (doc.id, acl))
            conn.execute("INSERT INTO versions VALUES (%s, 1, %s, 1, 0)", (doc.id, doc.content_hash))
            n = conn.execute("INSERT INTO chunks (id, doc_id, ordinal, section, tokens, text, "
                             "title, collection, acl, updated_at, length, embedding) VALUES "
                             "(%s, %s, 0, %s, 3, %s, 'T', 'default', %s, 0, %s, '[1,0,0]') "
                             "RETURNING n", (chunks[0].id, doc.id, chunks[0].section, text, acl,
                                             len(terms))).fetchone()[0]
            conn.execute("INSERT INTO postings SELECT t, %s, count(*) FROM unnest(%s::int4[]) t "
                         "GROUP BY t", (n, terms))
            conn.execute("INSERT INTO lexicon SELECT t, 1 FROM unnest(%s::int4[]) t GROUP BY t "
                         "ON CONFLICT (term) DO UPDATE SET df = lexicon.df + 1", (terms,))
            conn.execute("UPDATE corpus SET chunks = chunks + 1, terms = terms + %s", (len(terms),))
    monkeypatch.undo()
    with psycopg.connect(pg_url, autocommit=True) as conn:
        assert ps.migrate(conn, pg_schema, "test") == len(ps.MIGRATIONS)  # up to the newest
        conn.execute(f'SET search_path TO "{pg_schema}", public')
        conn.execute("SELECT set_config('ragtune.admin', 'on', false)")
        assert sorted(conn.execute("SELECT acl, chunks FROM corpus").fetchall()) == \
            [([], 1), (["hr"], 1)]
        assert conn.execute("SELECT value FROM meta WHERE key = 'bm25_analyzer'").fetchone() == \
            ("light/short/v1",)
    upgraded = PostgresStore(pg_url, schema=pg_schema)
    assert upgraded.schema_version == len(ps.MIGRATIONS) and upgraded.reanalyzed == 2
    assert upgraded.integrity_check() == []
    assert [h.document for h in upgraded.lexical_search("run", 5, ANON)] == ["pub.md"]
    assert {h.document for h in upgraded.lexical_search("run", 5, HR)} == {"pub.md", "pay.md"}
    upgraded.close()


# ----------------------------------------------------------------- write batches (pg_bulk)
def _batch_scenario(s: PostgresStore) -> list[str]:
    """Adds, a replace, a retag, a delete, a document that fails (wrong dimension) and the
    ingest log: the same calls whether or not they run inside ``write_lock()``."""
    errors = []
    for i in range(30):
        words = " ".join(f"w{(i * 7 + j) % 23}" for j in range(12))
        s.upsert_document(*make_doc(f"b/{i}.md", f"alpha {i} {words}", f"beta {words}",
                                    f"gamma {i % 5}"), groups=["hr"] if i % 3 == 0 else ())
        s.log_ingest(f"b/{i}.md", "added")
        if i == 12:
            bad, bc, _ = make_doc("bad.md", "wrong dimension")
            try:
                s.upsert_document(bad, bc, np.ones((1, 5), dtype=np.float32))
            except StoreError as e:
                errors.append(str(e))
    s.upsert_document(*make_doc("b/4.md", "alpha replaced", "delta new text"))  # replace
    s.upsert_document(*make_doc("b/5.md", *[f"alpha {5} " + " ".join(
        f"w{(5 * 7 + j) % 23}" for j in range(12)), "beta " + " ".join(
        f"w{(5 * 7 + j) % 23}" for j in range(12)), "gamma 0"]), groups=["it"])  # retag
    s.delete_document("b/7.md")
    s.log_ingest("b/7.md", "removed")
    return errors


def _answers(s: PostgresStore):
    rng = np.random.default_rng(3)
    queries = rng.normal(size=(5, 8)).astype(np.float32)
    who = [ADMIN, HR, ANON, Principal("i", frozenset({"it"}))]
    dense = [[c for c, _ in s.dense_ranking(q, 10, p)] for q in queries for p in who]
    lexical = [s.lexical_ranking(q, 10, p) for q in ("alpha w3", "beta gamma", "delta", "w11")
               for p in who]
    with s.session(ADMIN) as cur:
        tables = [sorted(cur.execute(f"SELECT {cols} FROM {t}").fetchall()) for t, cols in (
            ("lexicon", "term, acl, df"), ("corpus", "acl, chunks, terms"),
            ("chunks", "id, doc_id, acl, length"), ("documents", "id, version, acl, chunks"))]
        postings = cur.execute("SELECT count(*) FROM postings").fetchone()[0]
    log = [(e.source, e.status) for e in s.ingest_log(100)]
    return dense, lexical, tables, postings, log


def test_a_write_batch_answers_as_documents_written_one_by_one(pg_url, monkeypatch):
    """The bulk path (COPY, statistics summed per transaction, shared transactions, the
    HNSW index dropped and rebuilt) leaves exactly the store the per-document path does."""
    from ragtune.store import pg_bulk
    from tests.store.conftest import drop_schema

    one, many = (PostgresStore(pg_url, schema=f"t_{os.getpid()}_{name}") for name in ("one", "many"))
    try:
        for s in (one, many):  # not empty: the batch drops the index it finds
            s.upsert_document(*make_doc("seed.md", "alpha seed", "w3 seed"))
        errors_one = _batch_scenario(one)
        monkeypatch.setattr(pg_bulk, "DEFER_INDEX_CHUNKS", 20)  # drop the index mid-batch
        monkeypatch.setattr(pg_bulk, "COMMIT_CHUNKS", 7)  # and commit several times
        monkeypatch.setattr(pg_bulk, "COMMIT_SECONDS", 600)
        with many.write_lock():
            errors_many = _batch_scenario(many)
            assert many._batch().rows_at_start == 2 and many._batch().index_dropped
            # the batch's thread reads its own writes; others, what is committed (the
            # delete is not yet: it wrote no chunks since the last commit)
            assert many.get_document("b/7.md") is None
            outside = PostgresStore(pg_url, schema=many.schema)
            assert outside.get_document("b/7.md") is not None
            assert outside.ingest_log(1)[0].status == "added"
            outside.close()
        assert errors_one == errors_many and len(errors_one) == 1
        assert _answers(many) == _answers(one)
        assert one.integrity_check() == [] and many.integrity_check() == []
        with many.session(ADMIN) as cur:  # rebuilt at the batch's end
            assert cur.execute("SELECT to_regclass('chunks_embedding')").fetchone()[0] is not None
    finally:
        for s in (one, many):
            s.close()
            drop_schema(pg_url, s.schema)


_BATCH_FOREVER = textwrap.dedent("""
    import sys
    from ragtune.store import pg_bulk
    from ragtune.store.postgres import PostgresStore
    from tests.contracts.store import make_doc
    pg_bulk.DEFER_INDEX_CHUNKS, pg_bulk.COMMIT_SECONDS = 200, 0.02
    s = PostgresStore(sys.argv[1], schema=sys.argv[2])
    with s.write_lock():
        i = 0
        while True:
            doc, chunks, vecs = make_doc(f"k/{i % 40}.md", *[f"chunk {j} of round {i}" for j in range(30)])
            s.upsert_document(doc, chunks, vecs, groups=["g"] if i % 3 else ())
            s.log_ingest(doc.source, "round", str(i))
            print(i, flush=True)
            i += 1
""")


@pytest.mark.slow
def test_kill_9_mid_write_batch_leaves_a_consistent_store(store):
    """A batch killed after its index was dropped and several commits: every document is
    one whole version, the ingest log names only committed versions, the missing index is
    reported, and the next batch builds it."""
    _kill_9_after(_BATCH_FOREVER, store, 60, 90)  # past the index drop, replacing by then
    assert [p for p in store.integrity_check() if "HNSW" not in p] == []
    assert any("has no HNSW index" in p for p in store.integrity_check())
    rounds_logged = {e.source: int(e.message) for e in reversed(store.ingest_log(1000))}
    assert rounds_logged  # some batches committed
    assert _round_of_each_document(store) == rounds_logged  # the log committed with them
    with store.write_lock():
        pass
    assert store.integrity_check() == []
    q = np.ones(8, dtype=np.float32) / np.sqrt(8)
    assert len(store.dense_ranking(q, 10, ADMIN)) == 10
