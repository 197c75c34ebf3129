"""BM25 analysis settings in every store backend: the stored terms follow ``[store]
bm25_*`` (re-analysed on open when they change; a process left with the old analysis is
refused, not silently wrong), and ``quoted_phrases`` boosts or filters alike.

SQLite on a file, PostgreSQL (the session's local server) and embedded Chroma; the
contract suite (tests/contracts/store.py) covers the default settings.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest

from ragtune.errors import StoreError
from ragtune.store.analysis import LEGACY, Analyzer
from ragtune.store.base import Store
from ragtune.store.bm25 import BM25Params
from ragtune.store.sqlite import SQLiteStore
from tests.contracts.store import ANON, HR, make_doc

SNOWBALL = BM25Params(Analyzer("snowball", "english"))
Opener = Callable[..., Store]


@pytest.fixture(params=["sqlite", "postgres", "chroma"])
def opener(request, tmp_path) -> Opener:
    """``opener(bm25=..., quoted_phrases=...)`` opens one store's data again each call."""
    if request.param == "sqlite":
        return lambda **kw: SQLiteStore(tmp_path / "store.db", **kw)
    if request.param == "postgres":
        pytest.importorskip("psycopg", reason="pip install 'ragtune[postgres]'")
        from ragtune.store.postgres import PostgresStore

        url = request.getfixturevalue("pg_url")
        schema = request.getfixturevalue("pg_schema")
        return lambda **kw: PostgresStore(url, schema=schema, **kw)
    pytest.importorskip("chromadb", reason="pip install 'ragtune[chroma]'")
    from ragtune.store.chroma import ChromaStore

    prefix = f"t{uuid.uuid4().hex[:8]}"
    return lambda **kw: ChromaStore(tmp_path / "chroma", prefix=prefix, **kw)


def found(store: Store, query: str, who=ANON) -> list[str]:
    return [h.document for h in store.lexical_search(query, 10, who)]


@pytest.mark.integration
def test_a_store_is_reanalysed_when_the_analysis_changes(opener: Opener) -> None:
    old = opener(bm25=BM25Params(LEGACY))
    old.upsert_document(*make_doc("run.md", "the runner was running"))
    assert found(old, "runs") == []  # light stemming: running -> runn, runs -> run

    new = opener(bm25=SNOWBALL)
    assert new.reanalyzed == 1
    assert found(new, "runs") == ["run.md"]  # snowball: runs, running -> run
    new.upsert_document(*make_doc("walk.md", "walking walks"))
    assert found(new, "walked") == ["walk.md"]
    assert new.integrity_check() == []
    # The process still on the old settings would hash queries and chunks otherwise than
    # the stored terms: it is told so instead of ranking wrongly.
    with pytest.raises(StoreError, match="re-analysed the store"):
        old.lexical_search("walks", 5, ANON)
    with pytest.raises(StoreError, match="re-analysed the store"):
        old.upsert_document(*make_doc("x.md", "more text"))
    old.close()
    new.close()
    again = opener(bm25=SNOWBALL)
    assert again.reanalyzed == 0 and found(again, "running") == ["run.md"]
    again.close()


@pytest.mark.integration
def test_quoted_phrases_boost_or_filter_and_never_lift_a_hidden_row(opener: Opener) -> None:
    boost = opener()
    boost.upsert_document(*make_doc("a.md", "error E-4012 means the VPN token expired"))
    boost.upsert_document(*make_doc("b.md", "error 4012 E is unrelated to tokens, error error"))
    boost.upsert_document(*make_doc("t.md", "see the manual, error code list",
                                    title="VPN client errors"))  # the phrase only in its title
    boost.upsert_document(*make_doc("s.md", "E-4012 error salary"), groups=["hr"])
    assert found(boost, '"E-4012" error') == ["a.md", "b.md", "t.md"]
    assert found(boost, '"E-4012" error', HR)[:2] in (["a.md", "s.md"], ["s.md", "a.md"])
    assert found(boost, 'error "vpn client"')[0] == "t.md"
    boost.close()
    only = opener(quoted_phrases="filter")
    assert found(only, '"E-4012" error') == ["a.md"]
    assert found(only, '"E-4012" "token expired"') == ["a.md"]
    assert found(only, '"E-4012" "token error"') == []
    assert found(only, "error 4012")[0] == "b.md"  # no quotes: plain BM25
    only.close()
