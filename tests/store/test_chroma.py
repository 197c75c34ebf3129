"""ChromaStore against an embedded Chroma and a real ``chroma run`` server: the shared
contract, then filtered top-k, readers during a replace and a writer that died half-way."""

from __future__ import annotations

import uuid

import numpy as np
import pytest

from ragtune.store.base import SearchFilter
from tests.contracts.store import ADMIN, ANON, StoreContract, make_doc

pytest.importorskip("chromadb", reason="pip install 'ragtune[chroma]'")

from ragtune.store.chroma import ChromaStore
from ragtune.types import Principal

pytestmark = pytest.mark.integration


class ChromaContract(StoreContract):
    def test_deletion_is_erased_or_reported_pending(self, store) -> None:
        """Chroma's own write log keeps deleted records until it purges: reported, not hidden."""
        doc, chunks, vecs = make_doc("gone.md", "zanzibarquux to erase")
        store.upsert_document(doc, chunks, vecs)
        store.delete_document("gone.md")
        assert store.lexical_search("zanzibarquux", 5, ADMIN) == []
        assert store.finish_deletions(wait=1.0) is False and store.pending_deletions() is True


class TestEmbeddedChromaContract(ChromaContract):
    @pytest.fixture
    def store(self, tmp_path):
        s = ChromaStore(tmp_path / "chroma")
        yield s
        s.close()

    def reopen(self, store):
        return ChromaStore(store.path)


class TestChromaServerContract(ChromaContract):
    @pytest.fixture
    def store(self, chroma_server):
        s = ChromaStore(url=f"{chroma_server}?prefix=t{uuid.uuid4().hex[:10]}")
        yield s
        s.close()

    def reopen(self, store):
        return ChromaStore(url=store.url)


@pytest.fixture
def store(tmp_path):
    s = ChromaStore(tmp_path / "chroma")
    yield s
    s.close()


@pytest.mark.slow
def test_filtered_top_k_holds_with_a_one_percent_acl(store, monkeypatch):
    monkeypatch.setattr("ragtune.store.chroma._EXACT_MAX", 5)  # exercise Chroma's own walk too
    dim, rng = 16, np.random.default_rng(1)
    vecs = {}
    for i in range(100):  # 1,000 chunks, 'rare' reads 10 of them
        doc, chunks, _ = make_doc(f"b/{i}.md", *[f"item {i} part {j}" for j in range(10)])
        v = rng.normal(size=(10, dim)).astype(np.float32)
        v /= np.linalg.norm(v, axis=1, keepdims=True)
        grp = ("rare",) if i % 100 == 0 else ("staff",)
        store.upsert_document(doc, chunks, v, groups=grp, collection=f"c{i % 50}")
        vecs.update({c.id: (x, grp, f"c{i % 50}") for c, x in zip(chunks, v)})
    q = rng.normal(size=dim).astype(np.float32)

    def exact(ok):
        ids = [c for c, (_, g, col) in vecs.items() if ok(g, col)]
        return sorted(ids, key=lambda c: -float(vecs[c][0] @ q))[:10]

    rare = Principal("r", frozenset({"rare"}))
    assert [c for c, _ in store.dense_ranking(q, 10, rare)] == exact(lambda g, c: "rare" in g)
    got = store.dense_ranking(q, 10, ADMIN, SearchFilter(collections=("c7",)))
    assert [c for c, _ in got] == exact(lambda g, c: c == "c7")
    assert store.dense_ranking(q, 10, ANON) == []


def test_a_writer_that_died_mid_replace_is_invisible_and_reported(store):
    old = make_doc("r.md", "alpha one", "alpha two")
    store.upsert_document(*old)
    new_doc, new_chunks, new_vecs = make_doc("r.md", "alpha three", "alpha four")
    # what a replace writes first, before the document record moves to version 2
    store._chunks.upsert(ids=[c.id for c in new_chunks], embeddings=new_vecs,
                         documents=[c.text for c in new_chunks],
                         metadatas=[{"doc_id": new_doc.id, "source": "r.md", "title": "T",
                                     "collection": "default", "updated_at": 0.0, "version": 2,
                                     "public": True, "section": c.section, "ordinal": c.ordinal,
                                     "tokens": c.tokens} for c in new_chunks])
    store._bump()
    texts = {h.chunk.text for h in store.lexical_search("alpha", 10, ANON)}
    assert texts == {"alpha one", "alpha two"}
    assert any("left over" in p for p in store.integrity_check())
    store.upsert_document(new_doc, new_chunks, new_vecs)  # the next ingest repairs it
    assert store.integrity_check() == []
    assert {h.chunk.text for h in store.lexical_search("alpha", 10, ANON)} == {"alpha three", "alpha four"}


def test_retag_to_public_drops_the_groups(store):
    doc, chunks, vecs = make_doc("a.md", "notes")
    store.upsert_document(doc, chunks, vecs, groups=["hr"])
    assert store.upsert_document(doc, chunks, vecs, groups=()).status == "retagged"
    assert store.get_document("a.md").groups == ()
    assert [h.document for h in store.lexical_search("notes", 5, ANON)] == ["a.md"]
    assert store.integrity_check() == []


def test_no_telemetry_and_no_embedding_function(store):
    """Chroma never phones home and never embeds (its default model would be downloaded)."""
    assert store._client.get_settings().anonymized_telemetry is False
    with pytest.raises(Exception, match="(?i)embedding"):
        store._chunks.add(ids=["x"], documents=["text without a vector"])
