"""Copying a SQLite workspace store into PostgreSQL without re-embedding (store migrate)."""

from __future__ import annotations

import numpy as np
import pytest

from ragtune.store.base import TraceRecord
from ragtune.store.sqlite import SQLiteStore
from ragtune.store.transfer import copy_store, verify
from tests.contracts.store import ADMIN, ANON, HR, make_doc

pytest.importorskip("psycopg", reason="pip install 'ragtune[postgres]'")

from ragtune.store.postgres import PostgresStore

pytestmark = pytest.mark.integration


def ties_ordered(ranking):
    """A ranking with equal scores ordered by id (each backend breaks ties its own way)."""
    return sorted((-round(score, 4), cid) for cid, score in ranking)


def test_sqlite_to_postgres_keeps_ids_versions_acl_vectors_and_rankings(tmp_path, pg_url, pg_schema):
    src = SQLiteStore(tmp_path / "store.db")
    for i in range(12):
        doc, chunks, vecs = make_doc(f"kb/{i}.md", "tent guide" + " extra" * i + " waterproof",
                                     f"stove note {i}")
        src.upsert_document(doc, chunks, vecs, collection="gear" if i % 2 else "default",
                            groups=["hr"] if i % 3 == 0 else ())
    src.upsert_document(*make_doc("kb/1.md", "tent guide extra waterproof v2", "stove note 1"),
                        collection="gear")  # a second version
    src.log_ingest("kb/bad.pdf", "failed", "encrypted")
    src.append_trace(TraceRecord("t1", 1.0, "ana", "rag", None, "ask", {"answer": "x"}))
    dst = PostgresStore(pg_url, schema=pg_schema)
    report = copy_store(src, dst)
    assert report["problems"] == [] and report["copied"] == 12 and report["traces"] == 1
    assert [v["version"] for v in dst.document_versions(src.get_document("kb/1.md").id)] == [1, 2]
    assert dst.get_document("kb/3.md") == src.get_document("kb/3.md")
    assert dst.ingest_log(1)[0].message == "encrypted"
    q = np.random.default_rng(0).normal(size=8).astype(np.float32)
    for who in (ANON, HR, ADMIN):
        assert [c for c, _ in dst.dense_ranking(q, 5, who)] == [c for c, _ in src.dense_ranking(q, 5, who)]
        assert ties_ordered(dst.lexical_ranking("waterproof tent", 5, who)) == \
            ties_ordered(src.lexical_ranking("waterproof tent", 5, who))
    # again: nothing to copy; then a change in the source is carried over
    assert copy_store(src, dst)["copied"] == 0
    src.delete_document("kb/2.md")
    assert any("documents: 11" in p for p in verify(src, dst))
    dst.close()
    src.close()
