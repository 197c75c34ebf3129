"""bench/store_scale.py's real-vector corpus (bench/real_chunks.py) and its ef_search switch."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))

import real_chunks as rc


def test_pieces_are_sentences_cut_into_bounded_runs():
    text = ("A short one. " + " ".join(f"w{i}" for i in range(30)) + "; a b. "
            "flow past a cylinder at high mach number is studied")
    got = rc.pieces(text, max_words=12, min_words=3)
    assert got[0] == "A short one."
    assert all(3 <= len(p.split()) <= 12 for p in got[1:])
    assert " ".join(got[1:4]).split() == [f"w{i}" for i in range(29)] + ["w29;"]  # 30 words: 3 runs of 10
    assert "a b." not in got  # under min_words
    assert got[-1] == "flow past a cylinder at high mach number is studied"


def test_corpus_texts_are_distinct_and_laid_out_like_the_synthetic_one():
    raw = [(f"s/{d}", f"T{d}", " ".join(f"Sentence {d} part {i} of it." for i in range(7))
            + " Shared boilerplate text here.") for d in range(40)]
    docs = rc.take(rc.distinct_docs(iter(raw)), 200, seed=3)
    texts = [t for d in docs for t in d.texts]
    assert len(texts) == 200 and len(set(texts)) == 200
    assert sum("Shared boilerplate" in t for t in texts) == 1  # kept once, where first seen
    rows = list(rc.as_store_rows(docs, per_doc=10))
    assert [len(chunks) for _, chunks, _ in rows] == [10] * 20
    assert [g for _, _, g in rows][:11] == [rc.PUBLIC] + [rc.RESTRICTED] * 9 + [rc.PUBLIC]
    assert [c.text for _, chunks, _ in rows for c in chunks] == texts  # order kept
    ids = [c.id for _, chunks, _ in rows for c in chunks]
    assert len(set(ids)) == 200
    assert rows[0][1][0].section == f"{docs[0].source} > {docs[0].title}"
    with pytest.raises(SystemExit, match="fewer than --chunks 10000"):
        rc.take(rc.distinct_docs(iter(raw)), 10_000)


def test_corpus_rows_carry_each_texts_vector():
    docs = [rc.RealDoc("a/1", "A", ("one two three", "four five six")),
            rc.RealDoc("a/2", "B", ("seven eight nine",))]
    vectors = np.eye(3, dtype=np.float32)
    corpus = rc.RealCorpus(docs, vectors, ["q"], vectors[:1], 1.0, "m", {"a": 2})
    rows = list(corpus.rows(per_doc=2))
    assert [v.tolist() for _, _, v, _ in rows] == [vectors[:2].tolist(), vectors[2:].tolist()]
    assert corpus.chunks_per_set() == {"a": 3}


@pytest.mark.slow
def test_set_ef_changes_what_a_chroma_search_walks(tmp_path):
    """Chroma keeps the candidate list its index loaded with; set_ef reopens the store so a
    new one takes effect (a tiny list loses neighbours an exact scan finds; 400 finds them)."""
    import store_scale

    from ragtune.store.chroma import ChromaStore
    from ragtune.types import Chunk, Document, Principal, Section

    rng = np.random.default_rng(0)
    n, dim = 3000, 32
    vecs = rng.normal(size=(n, dim)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    doc = Document("d.md", "D", tuple(Section(("D", f"{i}"), f"text {i}") for i in range(n)))
    chunks = [Chunk(Chunk.make_id(doc.id, s.label, s.text), doc.id, s.text, s.label, i, 2)
              for i, s in enumerate(doc.sections)]
    store = ChromaStore(tmp_path / "c")
    store.upsert_document(doc, chunks, vecs)
    queries = rng.normal(size=(30, dim)).astype(np.float32)
    admin = Principal("a", admin=True)

    def recall(s) -> float:
        hits = 0
        for q in queries:
            want = {chunks[i].id for i in np.argsort(-(vecs @ q))[:10]}
            hits += len(want & {c for c, _ in s.dense_ranking(q, 10, admin)})
        return hits / (10 * len(queries))

    assert store_scale.set_ef(store, None)[1] == 400
    full = recall(store)
    store, before = store_scale.set_ef(store, 2)
    assert before == 400 and store_scale.set_ef(store, None)[1] == 2
    assert recall(store) < full - 0.1
    store, _ = store_scale.set_ef(store, 400)
    assert recall(store) == full
    store.close()


def test_real_chunks_doctests():
    """bench/ is outside pytest's doctest paths: its examples run here."""
    import doctest

    assert doctest.testmod(rc).failed == 0
