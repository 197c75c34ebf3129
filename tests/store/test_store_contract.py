"""Contract tests every Store backend must pass (SQLite file and in-memory today)."""

from __future__ import annotations

import sqlite3
import threading
import time

import numpy as np
import pytest

from ragtune.errors import StoreError
from ragtune.store.base import SearchFilter
from ragtune.store.sqlite import SQLiteStore
from ragtune.types import Chunk, Document, Principal, Section

ANON = Principal.anonymous()
HR = Principal("ana", frozenset({"hr"}))
ADMIN = Principal("root", admin=True)
DIM = 8


def make_doc(source: str, *texts: str, title: str = "T") -> tuple[Document, list[Chunk], np.ndarray]:
    sections = tuple(Section((title, f"S{i}"), t) for i, t in enumerate(texts))
    doc = Document(source, title, sections)
    chunks = [Chunk(Chunk.make_id(doc.id, s.label, s.text), doc.id, s.text, s.label, i, len(s.text.split()))
              for i, s in enumerate(sections)]
    rng = np.random.default_rng(abs(hash(source)) % 2**32)
    vecs = rng.normal(size=(len(chunks), DIM)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    return doc, chunks, vecs


@pytest.fixture(params=["memory", "file", "int8-scan"])
def store(request, tmp_path, monkeypatch):
    if request.param == "int8-scan":  # large-store dense path (store/vector_scan.py) on a small store
        monkeypatch.setattr("ragtune.store.sqlite.MIN_ROWS", 0)
    s = SQLiteStore(":memory:" if request.param == "memory" else tmp_path / "store.db")
    yield s
    s.close()


def test_add_get_and_versions(store):
    doc, chunks, vecs = make_doc("a.md", "tents are waterproof", "stoves need gas")
    r = store.upsert_document(doc, chunks, vecs, collection="gear")
    assert (r.status, r.version, r.chunks) == ("added", 1, 2)
    info = store.get_document("a.md")
    assert info is not None and info.id == doc.id and info.collection == "gear" and info.chunks == 2
    assert store.get_document(doc.id) == info
    assert store.upsert_document(doc, chunks, vecs, collection="gear").status == "unchanged"
    doc2, chunks2, vecs2 = make_doc("a.md", "tents are waterproof", "stoves need butane")
    r2 = store.upsert_document(doc2, chunks2, vecs2, collection="gear")
    assert (r2.status, r2.version) == ("updated", 2)
    assert [v["version"] for v in store.document_versions(doc.id)] == [1, 2]
    assert store.lexical_search("gas", 5, ANON) == []
    assert [h.chunk.text for h in store.lexical_search("butane", 5, ANON)] == ["stoves need butane"]
    assert [(h.chunk.id, h.score) for h in store.lexical_search("butane", 5, ANON)] == \
        store.lexical_ranking("butane", 5, ANON)
    # the unchanged chunk kept its id and its vector
    assert store.existing_embeddings([chunks[0].id])[chunks[0].id] == pytest.approx(vecs[0])
    assert store.integrity_check() == []


def test_delete_removes_everything(store, tmp_path):
    doc, chunks, vecs = make_doc("secret.md", "zanzibarquux payroll figures", title="Payroll")
    store.upsert_document(doc, chunks, vecs, groups=["hr"])
    keep, kchunks, kvecs = make_doc("keep.md", "public notes")
    store.upsert_document(keep, kchunks, kvecs)
    assert store.delete_document("secret.md") is True
    assert store.delete_document("secret.md") is False
    assert store.get_document(doc.id) is None
    assert store.lexical_search("zanzibarquux", 5, ADMIN) == []
    assert all(h.document != "secret.md" for h in store.dense_search(vecs[0], 10, ADMIN))
    assert store.existing_embeddings([chunks[0].id]) == {}
    assert store.document_versions(doc.id) == []
    assert store.integrity_check() == []
    if store.path != ":memory:":
        raw = b"".join(p.read_bytes() for p in tmp_path.glob("store.db*") if p.is_file())
        assert b"zanzibarquux" not in raw  # secure_delete + WAL checkpoint: no copy lingers


def test_acl_is_enforced_in_every_read(store):
    pub, pc, pv = make_doc("pub.md", "holiday calendar for everyone")
    sec, sc, sv = make_doc("sec.md", "salary bands holiday bonus", title="Salaries")
    store.upsert_document(pub, pc, pv)
    store.upsert_document(sec, sc, sv, groups=["hr"])
    for who, visible in ((ANON, {"pub.md"}), (HR, {"pub.md", "sec.md"}), (ADMIN, {"pub.md", "sec.md"}),
                         (Principal("bob", frozenset({"it"})), {"pub.md"})):
        assert {h.document for h in store.lexical_search("holiday", 10, who)} == visible
        assert {h.document for h in store.dense_search(sv[0], 10, who)} == visible
        assert {d.source for d in store.list_documents(who)} == visible
        assert {h.document for h in store.get_chunks([sc[0].id, pc[0].id], who)} == visible
    assert store.get_document("sec.md").groups == ("hr",)


def test_filters(store):
    a, ac, av = make_doc("a.md", "widget manual", title="A")
    b, bc, bv = make_doc("b.md", "widget policy", title="B")
    store.upsert_document(a, ac, av, collection="manuals")
    time.sleep(0.01)
    cut = time.time()
    store.upsert_document(b, bc, bv, collection="policies")
    only = lambda f: {h.document for h in store.lexical_search("widget", 10, ANON, f)}  # noqa: E731
    assert only(SearchFilter(collections=("manuals",))) == {"a.md"}
    assert only(SearchFilter(documents=("b.md",))) == {"b.md"}
    assert only(SearchFilter(documents=(a.id,))) == {"a.md"}
    assert only(SearchFilter(since=cut)) == {"b.md"}
    assert {h.document for h in store.dense_search(av[0], 10, ANON, SearchFilter(collections=("policies",)))} == {"b.md"}


def test_dense_search_is_exact(store):
    rng = np.random.default_rng(0)
    all_vecs = {}
    for i in range(30):
        doc, chunks, _ = make_doc(f"d{i}.md", f"text {i} one", f"text {i} two")
        vecs = rng.normal(size=(2, DIM)).astype(np.float32)
        vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
        store.upsert_document(doc, chunks, vecs)
        all_vecs.update({c.id: v for c, v in zip(chunks, vecs)})
    q = rng.normal(size=DIM).astype(np.float32)
    expected = sorted(all_vecs, key=lambda cid: -float(all_vecs[cid] @ q))[:7]
    got = store.dense_search(q, 7, ANON)
    assert [h.chunk.id for h in got] == expected
    assert store.dense_ranking(q, 7, ANON) == [(h.chunk.id, h.score) for h in got]
    assert got[0].score == pytest.approx(float(all_vecs[expected[0]] @ q), abs=1e-5)


def test_wrong_dimension_is_a_clear_error(store):
    doc, chunks, vecs = make_doc("a.md", "x")
    store.upsert_document(doc, chunks, vecs)
    with pytest.raises(StoreError, match="embedding model changed"):
        store.dense_search(np.ones(DIM + 1, dtype=np.float32), 3, ANON)


def test_second_connection_sees_writes(tmp_path):
    one, two = SQLiteStore(tmp_path / "s.db"), SQLiteStore(tmp_path / "s.db")
    doc, chunks, vecs = make_doc("a.md", "first")
    one.upsert_document(doc, chunks, vecs)
    assert [h.document for h in two.dense_search(vecs[0], 3, ANON)] == ["a.md"]
    doc2, chunks2, vecs2 = make_doc("b.md", "second")
    one.upsert_document(doc2, chunks2, vecs2)
    assert {h.document for h in two.dense_search(vecs2[0], 3, ANON)} == {"a.md", "b.md"}
    one.delete_document("a.md")
    assert {h.document for h in two.dense_search(vecs2[0], 3, ANON)} == {"b.md"}


def test_second_writer_waits_then_fails_clearly(tmp_path):
    one, two = SQLiteStore(tmp_path / "s.db"), SQLiteStore(tmp_path / "s.db")
    entered = threading.Event()
    release = threading.Event()

    def hold() -> None:
        with one.write_lock():
            entered.set()
            release.wait(5)

    t = threading.Thread(target=hold)
    t.start()
    entered.wait(5)
    with pytest.raises(StoreError, match=r"another ragtune process \(pid \d+\) is writing"):
        with two.write_lock(timeout=0.3):
            pass
    release.set()
    t.join()
    with two.write_lock(timeout=1):  # free again: the waiter gets it
        pass


def test_newer_schema_is_refused(tmp_path):
    SQLiteStore(tmp_path / "s.db").close()
    db = sqlite3.connect(tmp_path / "s.db")
    db.execute("PRAGMA user_version = 99")
    db.commit()
    db.close()
    with pytest.raises(StoreError, match="newer than this ragtune knows"):
        SQLiteStore(tmp_path / "s.db")


def test_not_a_database_is_a_clear_error(tmp_path):
    bad = tmp_path / "s.db"
    bad.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError, match="cannot open the store"):
        SQLiteStore(bad)


def test_quoted_phrase_must_occur(store):
    a, ac, av = make_doc("a.md", "error E-4012 means the VPN token expired", "other text")
    b, bc, bv = make_doc("b.md", "error 4012 E is unrelated to tokens")
    store.upsert_document(a, ac, av)
    store.upsert_document(b, bc, bv)
    assert {h.document for h in store.lexical_search("error 4012", 5, ANON)} == {"a.md", "b.md"}
    assert [h.document for h in store.lexical_search('"E-4012" error', 5, ANON)] == ["a.md"]
