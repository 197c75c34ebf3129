"""SQLite's BM25: filters narrow results but not statistics, and the stored analysis
follows the settings (re-analysis on open, migration of older stores).

That a restricted document never moves a reader's scores (issue 17 item 6) is a contract
every store passes: tests/contracts/store.py.
"""

from __future__ import annotations

import sqlite3

from ragtune.store.analysis import LEGACY, Analyzer
from ragtune.store.bm25 import BM25Params
from ragtune.store.sqlite import SQLiteStore
from tests.contracts.store import ANON, make_doc


def _scores(store: SQLiteStore, query: str, who=ANON) -> dict[str, float]:
    return {h.document: h.score for h in store.lexical_search(query, 10, who)}


def test_a_filter_narrows_results_but_not_the_statistics() -> None:
    store = SQLiteStore(":memory:")
    store.upsert_document(*make_doc("a.md", "vpn reset steps"), collection="it")
    store.upsert_document(*make_doc("b.md", "vpn vpn outage notes"), collection="ops")
    from ragtune.store.base import SearchFilter

    all_scores = _scores(store, "vpn reset", ANON)
    only_it = {h.document: h.score for h in store.lexical_search(
        "vpn reset", 10, ANON, SearchFilter(collections=("it",)))}
    assert only_it == {"a.md": all_scores["a.md"]}


def test_a_store_is_reanalysed_when_the_analysis_changes(tmp_path) -> None:
    path = tmp_path / "s.db"
    old = SQLiteStore(path, bm25=BM25Params(LEGACY))
    old.upsert_document(*make_doc("run.md", "the runner was running"))
    # The light stemmer keeps "running" -> "runn" apart from "runs" -> "run".
    assert _scores(old, "runs", ANON) == {}
    old.close()

    new = SQLiteStore(path, bm25=BM25Params(Analyzer("snowball", "english")))
    assert new.reanalyzed == 1
    assert set(_scores(new, "runs", ANON)) == {"run.md"}  # snowball: runs, running -> run
    new.upsert_document(*make_doc("walk.md", "walking walks"))
    assert set(_scores(new, "walked", ANON)) == {"walk.md"}
    new.close()
    assert SQLiteStore(path, bm25=BM25Params(Analyzer("snowball", "english"))).reanalyzed == 0


def test_a_store_from_before_migration_3_is_marked_legacy_and_reanalysed(tmp_path) -> None:
    path = tmp_path / "v1.db"
    v1 = SQLiteStore(path, bm25=BM25Params(LEGACY))
    v1.upsert_document(*make_doc("run.md", "the runner was running"))
    v1.close()
    db = sqlite3.connect(path)  # as a store written by ragtune before migration 2
    db.execute("DELETE FROM meta WHERE key = 'bm25_analyzer'")
    db.execute("DROP TABLE traces")
    db.execute("PRAGMA user_version = 1")
    db.commit()
    db.close()
    store = SQLiteStore(path)  # default analysis: snowball / english
    assert store.schema_version == 3 and store.reanalyzed == 1
    assert set(_scores(store, "runs", ANON)) == {"run.md"}


def test_quoted_phrases_can_filter(tmp_path) -> None:
    store = SQLiteStore(":memory:", quoted_phrases="filter")
    store.upsert_document(*make_doc("a.md", "error E-4012 means the VPN token expired"))
    store.upsert_document(*make_doc("b.md", "error 4012 E is unrelated to tokens"))
    assert set(_scores(store, "error 4012")) == {"a.md", "b.md"}
    assert list(_scores(store, '"E-4012" error')) == ["a.md"]
    hidden = SQLiteStore(":memory:")  # boost never lifts a row the reader may not see
    hidden.upsert_document(*make_doc("s.md", "E-4012 salary"), groups=["hr"])
    assert _scores(hidden, '"E-4012"') == {}
