"""The Store contract: every backend (``ragtune.store.factory.STORES``) passes these tests.

Subclass :class:`StoreContract` and define a ``store`` fixture yielding a fresh, empty store;
override :meth:`StoreContract.reopen` when the backend can open a second connection on the
same data (concurrent writers, cross-process visibility) and :meth:`leftover_bytes` when
deleted text could linger in files.
"""

from __future__ import annotations

import json
import threading
import time

import numpy as np
import pytest

from ragtune.errors import InputError, NotFound, StoreError
from ragtune.store.base import REMOVED, SearchFilter, Store, TraceRecord
from ragtune.types import Chunk, Document, Principal, Section

ANON = Principal.anonymous()
HR = Principal("ana", frozenset({"hr"}))
ADMIN = Principal("root", admin=True)
DIM = 8


def make_doc(source: str, *texts: str, title: str = "T") -> tuple[Document, list[Chunk], np.ndarray]:
    """A document with one section per text, its chunks and unit vectors (seeded by source)."""
    sections = tuple(Section((title, f"S{i}"), t) for i, t in enumerate(texts))
    doc = Document(source, title, sections)
    chunks = [Chunk(Chunk.make_id(doc.id, s.label, s.text), doc.id, s.text, s.label, i,
                    len(s.text.split())) for i, s in enumerate(sections)]
    rng = np.random.default_rng(abs(hash(source)) % 2**32)
    vecs = rng.normal(size=(len(chunks), DIM)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    return doc, chunks, vecs


class StoreContract:
    """Tests every Store backend must pass."""

    def reopen(self, store: Store) -> Store | None:
        """A second, independent connection to ``store``'s data (None: not possible)."""
        return None

    def leftover_bytes(self, store: Store) -> bytes | None:
        """Everything the backend keeps on disk (None: not checkable)."""
        return None

    def test_is_a_store(self, store: Store) -> None:
        assert isinstance(store, Store)
        assert store.count_documents() == 0 and store.list_documents(ADMIN) == []

    def test_add_get_replace_and_versions(self, store: Store) -> None:
        doc, chunks, vecs = make_doc("a.md", "tents are waterproof", "stoves need gas")
        r = store.upsert_document(doc, chunks, vecs, collection="gear")
        assert (r.status, r.version, r.chunks) == ("added", 1, 2)
        info = store.get_document("a.md")
        assert info is not None and info.id == doc.id and info.collection == "gear"
        assert info.chunks == 2
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
        assert store.count_documents() == 1
        assert sorted(c.text for c in store.iter_chunks()) == ["stoves need butane",
                                                                "tents are waterproof"]
        assert store.integrity_check() == []

    def test_delete_leaves_nothing(self, store: Store) -> None:
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
        assert store.get_chunks([chunks[0].id], ADMIN) == []
        assert store.document_versions(doc.id) == []
        assert all(c.doc_id != doc.id for c in store.iter_chunks())
        assert store.integrity_check() == []
        raw = self.leftover_bytes(store)
        if raw is not None:
            assert b"zanzibarquux" not in raw

    def test_groups_change_only_when_asked(self, store: Store) -> None:
        doc, chunks, vecs = make_doc("pay.md", "zanzibarquux payroll figures", title="Pay")
        r = store.upsert_document(doc, chunks, vecs, groups=["hr"])
        assert (r.previous_groups, r.groups) == (None, ("hr",))
        new, nchunks, nvecs = make_doc("pay.md", "zanzibarquux payroll figures revised",
                                       title="Pay")
        r = store.upsert_document(new, nchunks, nvecs)  # groups=None: keep them
        assert r.status == "updated" and r.previous_groups == r.groups == ("hr",)
        assert store.lexical_search("zanzibarquux", 5, ANON) == []
        r = store.upsert_document(new, nchunks, nvecs, groups=())  # public, said so
        assert (r.status, r.previous_groups, r.groups) == ("retagged", ("hr",), ())
        assert store.lexical_search("zanzibarquux", 5, ANON)

    def test_deletion_is_erased_or_reported_pending(self, store: Store) -> None:
        doc, chunks, vecs = make_doc("gone.md", "zanzibarquux to erase")
        store.upsert_document(doc, chunks, vecs)
        store.delete_document("gone.md")
        assert store.finish_deletions(wait=1.0) is True  # no reader holds it here
        assert store.pending_deletions() is False

    def test_acl_is_enforced_in_every_read(self, store: Store) -> None:
        pub, pc, pv = make_doc("pub.md", "holiday calendar for everyone")
        sec, sc, sv = make_doc("sec.md", "salary bands holiday bonus", title="Salaries")
        store.upsert_document(pub, pc, pv)
        store.upsert_document(sec, sc, sv, groups=["hr"])
        for who, visible in ((ANON, {"pub.md"}), (HR, {"pub.md", "sec.md"}),
                             (ADMIN, {"pub.md", "sec.md"}),
                             (Principal("bob", frozenset({"it"})), {"pub.md"})):
            assert {h.document for h in store.lexical_search("holiday", 10, who)} == visible
            assert {h.document for h in store.dense_search(sv[0], 10, who)} == visible
            assert {d.source for d in store.list_documents(who)} == visible
            assert {h.document for h in store.get_chunks([sc[0].id, pc[0].id], who)} == visible
        assert store.get_document("sec.md").groups == ("hr",)

    def test_filters(self, store: Store) -> None:
        a, ac, av = make_doc("a.md", "widget manual", title="A")
        b, bc, bv = make_doc("b.md", "widget policy", title="B")
        store.upsert_document(a, ac, av, collection="manuals")
        time.sleep(0.01)
        cut = time.time()
        store.upsert_document(b, bc, bv, collection="policies")

        def only(f: SearchFilter) -> set[str]:
            return {h.document for h in store.lexical_search("widget", 10, ANON, f)}

        assert only(SearchFilter(collections=("manuals",))) == {"a.md"}
        assert only(SearchFilter(documents=("b.md",))) == {"b.md"}
        assert only(SearchFilter(documents=(a.id,))) == {"a.md"}
        assert only(SearchFilter(since=cut)) == {"b.md"}
        assert {h.document for h in store.dense_search(
            av[0], 10, ANON, SearchFilter(collections=("policies",)))} == {"b.md"}

    def test_dense_ranking_is_exact_on_a_small_store(self, store: Store) -> None:
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

    def test_replace_vectors_changes_only_the_vectors(self, store: Store) -> None:
        doc, chunks, vecs = make_doc("rv.md", "alpha text", "beta text")
        other, other_chunks, other_vecs = make_doc("other.md", "gamma text")
        store.upsert_document(doc, chunks, vecs)
        store.upsert_document(other, other_chunks, other_vecs)
        flipped = -vecs
        assert store.replace_vectors({chunks[0].id: flipped[0], chunks[1].id: flipped[1],
                                      "no-such-chunk": flipped[0]}) == 2
        got = store.existing_embeddings([c.id for c in chunks + other_chunks])
        assert np.allclose(got[chunks[0].id], flipped[0], atol=1e-6)
        assert np.allclose(got[other_chunks[0].id], other_vecs[0], atol=1e-6)
        assert store.dense_ranking(flipped[1], 1, ANON)[0][0] == chunks[1].id  # search sees it
        info = store.get_document("rv.md")
        assert info is not None and info.version == 1 and len(store.document_versions(info.id)) == 1
        with pytest.raises(StoreError):
            store.replace_vectors({chunks[0].id: np.ones(DIM + 1, dtype=np.float32)})
        assert store.replace_vectors({}) == 0

    def test_lexical_ranking_prefers_rarer_and_repeated_terms(self, store: Store) -> None:
        for i, text in enumerate(["the router manual covers the router reset",
                                  "the printer manual", "the router", "nothing to see"]):
            d, c, v = make_doc(f"l{i}.md", text)
            store.upsert_document(d, c, v)
        ranked = [store.get_chunks([cid], ANON)[0].document
                  for cid, _ in store.lexical_ranking("router reset", 10, ANON)]
        assert ranked[:2] == ["l0.md", "l2.md"] and "l3.md" not in ranked
        scores = [s for _, s in store.lexical_ranking("router reset", 10, ANON)]
        assert scores == sorted(scores, reverse=True) and all(s > 0 for s in scores)

    def test_a_restricted_document_does_not_move_a_readers_lexical_scores(
            self, store: Store) -> None:
        # Issue 17: BM25 statistics (df, N, average length) over what the reader may read,
        # so the words of restricted text leave no trace in their scores.
        for source, text in (("a.md", "quarterly salary review schedule"),
                             ("b.md", "holiday calendar and review dates"),
                             ("c.md", "office plants watering rota")):
            store.upsert_document(*make_doc(source, text))
        bob = Principal("bob", frozenset({"it"}))

        def scores(who: Principal) -> dict[str, float]:
            return {h.document: h.score for h in store.lexical_search("salary review", 10, who)}

        before = {who.user: scores(who) for who in (ANON, bob, HR)}
        assert before[ANON.user]["a.md"] > before[ANON.user]["b.md"] > 0
        store.upsert_document(*make_doc("hr/salaries.md", "salary salary review salary bands "
                                        "review for every grade and salary review board"),
                              groups=["hr"])
        for who in (ANON, bob):
            assert scores(who) == before[who.user]  # exactly equal: no side channel
        assert "hr/salaries.md" in scores(HR)
        assert scores(HR)["a.md"] != before[HR.user]["a.md"]  # readers' statistics include it

    def test_quoted_phrase_ranks_first(self, store: Store) -> None:
        a, ac, av = make_doc("a.md", "error E-4012 means the VPN token expired", "other text")
        b, bc, bv = make_doc("b.md", "error 4012 E is unrelated to tokens, error error")
        store.upsert_document(a, ac, av)
        store.upsert_document(b, bc, bv)
        plain = [h.document for h in store.lexical_search("error 4012", 5, ANON)]
        assert plain[0] == "b.md" and set(plain) == {"a.md", "b.md"}
        # The row holding the quoted phrase verbatim comes first; the others still follow
        # (store.quoted_phrases = "filter" keeps only it: tests/store/).
        assert [h.document for h in store.lexical_search('"E-4012" error', 5, ANON)] == [
            "a.md", "b.md"]

    def test_a_document_without_chunks_is_stored(self, store: Store) -> None:
        """An empty file (no text to chunk) is a document with no chunks: stored, listed,
        found by nothing (the vectors array has shape (0, dim), or (0,))."""
        for i, vecs in enumerate((np.zeros((0, DIM), dtype=np.float32), np.zeros(0))):
            doc = Document(f"empty{i}.md", "Empty", ())
            assert store.upsert_document(doc, [], vecs).status == "added"
            assert store.get_document(doc.source).chunks == 0
        full, chunks, vecs = make_doc("a.md", "some text")
        store.upsert_document(full, chunks, vecs)
        assert [h.document for h in store.lexical_search("text", 5, ANON)] == ["a.md"]
        assert len(store.dense_search(vecs[0], 5, ANON)) == 1

    def test_wrong_dimension_is_a_clear_error(self, store: Store) -> None:
        doc, chunks, vecs = make_doc("a.md", "x")
        store.upsert_document(doc, chunks, vecs)
        with pytest.raises(StoreError, match="embedding model changed"):
            store.dense_search(np.ones(DIM + 1, dtype=np.float32), 3, ANON)

    def test_sources_log_and_stats(self, store: Store) -> None:
        for src in ("/kb/a.md", "/kb/sub/b.md", "/other/c.md"):
            d, c, v = make_doc(src, f"text of {src}")
            store.upsert_document(d, c, v)
        assert sorted(store.sources_under("/kb/")) == ["/kb/a.md", "/kb/sub/b.md"]
        store.log_ingest("/kb/x.pdf", "failed", "broken PDF")
        entry = store.ingest_log(5)[0]
        assert (entry.source, entry.status, entry.message) == ("/kb/x.pdf", "failed", "broken PDF")
        stats = store.stats()
        assert stats["documents"] == 3 and stats["chunks"] == 3

    def test_traces_round_trip_in_order(self, store: Store) -> None:
        for i in range(3):
            store.append_trace(TraceRecord(id=f"t{i}", ts=100.0 + i, principal="ana", mode="rag",
                                           adapter=None if i else "style", origin="ask",
                                           answer={"answer": f"reply {i}", "n": i}))
        assert [t.id for t in store.traces()] == ["t0", "t1", "t2"]
        assert [t.id for t in store.traces(since=101.0)] == ["t1", "t2"]
        assert [t.id for t in store.traces(limit=2)] == ["t1", "t2"]
        first = store.traces()[0]
        assert first.answer == {"answer": "reply 0", "n": 0} and first.adapter == "style"
        # recording answers does not disturb the documents
        assert store.count_documents() == 0

    def test_trace_summaries_vectors_and_time_windows(self, store: Store) -> None:
        vec = np.linspace(-1, 1, DIM).astype(np.float32)
        store.append_trace(TraceRecord("t0", 100.0, "ana", "rag", None, "ask", {"answer": "x"},
                                       summary={"refused": True, "cited": ["a.md"]}, vector=vec))
        store.append_trace(TraceRecord("t1", 200.0, "ana", "rag", None, "ask", {"answer": "y"}))
        brief = store.traces(brief=True)
        assert [t.id for t in brief] == ["t0", "t1"] and brief[0].answer == {}
        assert brief[0].summary == {"refused": True, "cited": ["a.md"]} and brief[1].summary == {}
        assert brief[0].vector == pytest.approx(vec, abs=1e-3) and brief[1].vector is None
        assert [t.id for t in store.traces(since=100.0, until=200.0)] == ["t0"]
        full = store.trace("t0")
        assert full is not None and full.answer == {"answer": "x"} and full.summary["refused"]
        assert store.trace("nope") is None

    def test_a_record_is_readable_by_its_asker_and_admins_only(self, store: Store) -> None:
        for i, who in enumerate(["ana", "bob", "anonymous"]):
            store.append_trace(TraceRecord(f"t{i}", 100.0 + i, who, "rag", None, "ask", {"n": i}))
        bob = Principal("bob", frozenset({"it"}))
        assert [t.id for t in store.traces(principal=HR)] == ["t0"]
        assert [t.id for t in store.traces(principal=bob, brief=True)] == ["t1"]
        assert [t.id for t in store.traces(principal=ADMIN)] == ["t0", "t1", "t2"]
        assert store.traces(principal=ANON) == []  # anonymous askers cannot be told apart
        assert [t.id for t in store.traces()] == ["t0", "t1", "t2"]  # the operator
        assert store.trace("t0", HR) is not None and store.trace("t0", bob) is None
        assert store.trace("t0", ADMIN) is not None and store.trace("t2", ANON) is None

    def test_feedback_is_linked_to_a_readable_record(self, store: Store) -> None:
        store.append_trace(TraceRecord("t0", 100.0, "ana", "rag", None, "ask", {}))
        store.append_trace(TraceRecord("t1", 300.0, "bob", "rag", None, "ask", {}))
        fb = store.add_feedback("t0", HR, -1, " wrong date ")
        assert (fb.trace_id, fb.principal, fb.rating, fb.comment) == ("t0", "ana", -1, "wrong date")
        store.add_feedback("t1", ADMIN, 1)
        with pytest.raises(NotFound):
            store.add_feedback("t0", Principal("bob"), 1)  # not bob's answer
        with pytest.raises(NotFound):
            store.add_feedback("missing", ADMIN, 1)
        with pytest.raises(InputError, match="rating"):
            store.add_feedback("t0", HR, 0)
        assert [(f.trace_id, f.rating) for f in store.feedback()] == [("t0", -1), ("t1", 1)]
        assert [f.trace_id for f in store.feedback(principal=HR)] == ["t0"]
        assert [f.trace_id for f in store.feedback(since=200.0)] == ["t1"]  # by the answer's time
        assert [f.trace_id for f in store.feedback(until=200.0)] == ["t0"]

    def test_purge_deletes_old_records_and_their_feedback(self, store: Store) -> None:
        for i in range(3):
            store.append_trace(TraceRecord(f"t{i}", 100.0 * (i + 1), "ana", "rag", None, "ask",
                                           {"secret": "zanzibarquux"}, sources=("a.md",)))
        store.add_feedback("t0", HR, -1, "old")
        store.add_feedback("t2", HR, 1)
        assert store.purge_traces(250.0) == 2
        assert [t.id for t in store.traces()] == ["t2"]
        assert [f.trace_id for f in store.feedback()] == ["t2"]
        assert store.purge_traces(250.0) == 0

    def test_deleting_a_document_strips_its_quotes_from_records(self, store: Store) -> None:
        doc, chunks, vecs = make_doc("secret.md", "zanzibarquux payroll figures", title="Payroll")
        store.upsert_document(doc, chunks, vecs, groups=["hr"])
        keep, kchunks, kvecs = make_doc("keep.md", "public holiday notes")
        store.upsert_document(keep, kchunks, kvecs)

        def answer(*docs: tuple[str, Chunk]) -> dict:
            return {"answer": f"{docs[0][1].text} [1]. Other.",
                    "sentences": [{"text": f"{docs[0][1].text} [1].", "cited": [1],
                                   "supported": True, "score": 1.0}],
                    "citations": [
                {"n": i + 1, "document": d, "chunk_id": c.id, "quote": c.text, "supported": True}
                for i, (d, c) in enumerate(docs)],
                "trace": {"prompt": "\n\n".join(f"[{i + 1}] T\n{c.text}" for i, (_, c) in enumerate(docs)),
                          "retrieved": [{"document": d, "chunk_id": c.id, "text": c.text,
                                         "score": 0.9} for d, c in docs],
                          "notes": [("reasoning before the answer, not shown or cited: "
                                     f"##begin_quote##{docs[0][1].text}##end_quote##"),
                                    ("1 sentence(s) no source supports were not shown: "
                                     f"{docs[0][1].text} on Mars.")],
                          # the model's whole reply, and what the support check removed
                          "reply": f"{docs[0][1].text} [1]. {docs[0][1].text} on Mars.",
                          "removed": [f"{docs[0][1].text} on Mars."],
                          "flags": [{"source": 1, "document": docs[0][0], "kind": "override",
                                     "excerpt": docs[0][1].text, "matched": docs[0][1].text}]}}

        store.append_trace(TraceRecord("both", 1.0, "ana", "rag", None, "ask",
                                       answer(("secret.md", chunks[0]), ("keep.md", kchunks[0])),
                                       sources=("keep.md", "secret.md")))
        store.append_trace(TraceRecord("other", 2.0, "ana", "rag", None, "ask",
                                       answer(("keep.md", kchunks[0])), sources=("keep.md",)))
        assert store.delete_document("secret.md")
        both = store.trace("both")
        assert both is not None and "zanzibarquux" not in json.dumps(both.answer)
        secret_hit, kept_hit = both.answer["trace"]["retrieved"]
        assert secret_hit["chunk_id"] == chunks[0].id and secret_hit["document"] == "secret.md"
        assert secret_hit["text"] == "" and kept_hit["text"] == "public holiday notes"
        assert both.answer["citations"][0]["quote"] == "" and both.answer["citations"][0]["chunk_id"]
        assert both.answer["citations"][1]["quote"] == "public holiday notes"
        assert REMOVED in both.answer["trace"]["prompt"]
        assert both.answer["answer"] == f"{REMOVED} Other." and both.answer["sentences"][0]["supported"]
        assert "public holiday notes" in both.answer["trace"]["prompt"]
        assert both.answer["trace"]["removed"] == [REMOVED]  # the count stays: the monitor's
        assert both.answer["redacted"] == [doc.id]  # the audit log names what was deleted
        other = store.trace("other")
        assert other is not None and "reasoning before" in other.answer["trace"]["notes"][0]
        assert "redacted" not in other.answer
        assert other.answer["trace"]["reply"].startswith("public holiday notes")
        raw = self.leftover_bytes(store)
        if raw is not None:
            assert b"zanzibarquux" not in raw

    def test_a_second_connection_sees_writes_and_deletes(self, store: Store) -> None:
        other = self.reopen(store)
        if other is None:
            pytest.skip("this backend has no second connection (in-memory)")
        doc, chunks, vecs = make_doc("a.md", "first")
        store.upsert_document(doc, chunks, vecs)
        assert [h.document for h in other.dense_search(vecs[0], 3, ANON)] == ["a.md"]
        doc2, chunks2, vecs2 = make_doc("b.md", "second")
        store.upsert_document(doc2, chunks2, vecs2)
        assert {h.document for h in other.dense_search(vecs2[0], 3, ANON)} == {"a.md", "b.md"}
        store.delete_document("a.md")
        assert {h.document for h in other.dense_search(vecs2[0], 3, ANON)} == {"b.md"}
        other.close()

    def test_concurrent_writers_lose_nothing(self, store: Store) -> None:
        other = self.reopen(store)
        writers = [store, other] if other is not None else [store, store]
        errors: list[BaseException] = []

        def write(w: Store, prefix: str) -> None:
            try:
                for i in range(10):
                    d, c, v = make_doc(f"{prefix}{i}.md", f"{prefix} document {i}")
                    with w.write_lock():
                        w.upsert_document(d, c, v)
            except Exception as e:  # noqa: BLE001 — any failure is the finding, reported below
                errors.append(e)

        threads = [threading.Thread(target=write, args=(w, p)) for w, p in zip(writers, "xy")]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert errors == []
        assert store.count_documents() == 20 and store.integrity_check() == []
        assert len(store.lexical_search("document", 50, ANON)) == 20
        if other is not None:
            other.close()
