"""BM25 statistics follow the reader, and the stored analysis follows the settings.

Issue 17 item 6: a user's lexical scores must depend only on documents that user can
read. Before, document frequencies, N and the average length were computed over the
whole store, so adding a restricted document with the query's words changed a public
reader's scores (a measurable side channel on restricted text).
"""

from __future__ import annotations

import sqlite3

import pytest

from ragtune.store.analysis import LEGACY, Analyzer
from ragtune.store.bm25 import BM25Params
from ragtune.store.sqlite import SQLiteStore
from ragtune.types import Principal
from tests.store.test_store_contract import ADMIN, ANON, HR, make_doc

BOB = Principal("bob", frozenset({"it"}))


def _scores(store: SQLiteStore, query: str, who: Principal) -> dict[str, float]:
    return {h.document: h.score for h in store.lexical_search(query, 10, who)}


@pytest.mark.parametrize("kind", ["memory", "file"])
def test_a_restricted_document_does_not_move_a_readers_scores(tmp_path, kind) -> None:
    store = SQLiteStore(":memory:" if kind == "memory" else tmp_path / "s.db")
    for source, text in (("a.md", "quarterly salary review schedule"),
                         ("b.md", "holiday calendar and review dates"),
                         ("c.md", "office plants watering rota")):
        store.upsert_document(*make_doc(source, text))
    query = "salary review"
    before = {who.user: _scores(store, query, who) for who in (ANON, BOB, HR)}
    assert before["anonymous"]["a.md"] > before["anonymous"]["b.md"] > 0

    # A restricted document full of the query's words, longer than the rest.
    store.upsert_document(*make_doc("hr/salaries.md", "salary salary review salary bands review "
                                    "for every grade and salary review board minutes"),
                          groups=["hr"])
    for who in (ANON, BOB):
        assert _scores(store, query, who) == before[who.user]  # exactly equal: no leak
    # Those who may read it see it, with statistics that now include it.
    assert "hr/salaries.md" in _scores(store, query, HR)
    assert _scores(store, query, HR)["a.md"] != before[HR.user]["a.md"]
    assert _scores(store, query, ADMIN).keys() == _scores(store, query, HR).keys()


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


def test_a_store_from_schema_1_is_marked_legacy_and_reanalysed(tmp_path) -> None:
    path = tmp_path / "v1.db"
    v1 = SQLiteStore(path, bm25=BM25Params(LEGACY))
    v1.upsert_document(*make_doc("run.md", "the runner was running"))
    v1.close()
    db = sqlite3.connect(path)  # as a store written by ragtune before migration 2
    db.execute("DELETE FROM meta WHERE key = 'bm25_analyzer'")
    db.execute("PRAGMA user_version = 1")
    db.commit()
    db.close()
    store = SQLiteStore(path)  # default analysis: snowball / english
    assert store.schema_version == 2 and store.reanalyzed == 1
    assert set(_scores(store, "runs", ANON)) == {"run.md"}
