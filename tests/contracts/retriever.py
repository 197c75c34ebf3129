"""The Retriever contract: every mode, the ACL inside every mode, filters, k, the floor.

Subclass :class:`RetrieverContract` and define a ``make_retriever`` fixture: a function that
takes documents ``(source, text, groups, collection)`` and returns a retriever over them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pytest

from ragtune.errors import InputError
from ragtune.retrieve.search import Retriever
from ragtune.store.base import SearchFilter
from ragtune.types import Principal

Docs = Sequence[tuple[str, str, tuple[str, ...], str]]
MakeRetriever = Callable[[Docs], Retriever]

ANON = Principal.anonymous()
HR = Principal("ana", frozenset({"hr"}))

DOCS: Docs = (
    ("returns.md", "Customers may return unused tents within 30 days for a full refund.", (), "policies"),
    ("shipping.md", "Standard shipping takes five working days; express ships overnight.", (), "policies"),
    ("stoves.md", "Camping stoves need butane cartridges; never use them inside a tent.", (), "manuals"),
    ("salary.md", "The salary band for senior engineers is confidential; refund of relocation.", ("hr",), "hr"),
)


class RetrieverContract:
    """Tests every Retriever must pass."""

    @pytest.fixture
    def retriever(self, make_retriever: MakeRetriever) -> Retriever:
        return make_retriever(DOCS)

    def test_is_a_retriever(self, retriever: Retriever) -> None:
        assert isinstance(retriever, Retriever)

    @pytest.mark.parametrize("mode", ["fused", "dense", "lexical", "hybrid"])
    def test_every_mode_finds_the_matching_document(self, retriever: Retriever, mode: str) -> None:
        result = retriever.search("return unused tents refund", ANON, k=2, mode=mode)
        assert result.mode == ("fused" if mode == "hybrid" else mode)
        assert result.hits and result.hits[0].document == "returns.md"
        assert len(result.hits) <= 2 and [h.rank for h in result.hits] == list(
            range(1, len(result.hits) + 1))

    @pytest.mark.parametrize("mode", ["fused", "dense", "lexical"])
    def test_restricted_text_never_reaches_an_outsider(self, retriever: Retriever, mode: str) -> None:
        outsider = {h.document for h in retriever.search("salary band refund", ANON, k=10, mode=mode).hits}
        member = {h.document for h in retriever.search("salary band refund", HR, k=10, mode=mode).hits}
        assert "salary.md" not in outsider and "salary.md" in member

    def test_filters_narrow_every_mode(self, retriever: Retriever) -> None:
        only = SearchFilter(collections=("manuals",))
        for mode in ("fused", "dense", "lexical"):
            hits = retriever.search("tent", ANON, k=10, mode=mode, filters=only).hits
            assert {h.document for h in hits} <= {"stoves.md"}

    def test_bad_queries_are_clear_errors(self, retriever: Retriever) -> None:
        with pytest.raises(InputError, match="empty"):
            retriever.search("   ", ANON)
        with pytest.raises(InputError, match="unknown retrieval mode"):
            retriever.search("tents", ANON, mode="psychic")

    def test_the_relevance_floor_flags_unrelated_questions(self, make_retriever: MakeRetriever) -> None:
        retriever = make_retriever(DOCS)
        related = retriever.search("return unused tents refund", ANON)
        unrelated = retriever.search("quantum chromodynamics lecture notes", ANON)
        floor = retriever.settings.min_similarity
        assert related.found and related.best_similarity is not None
        assert related.best_similarity >= floor
        assert not unrelated.found
        assert unrelated.best_similarity is None or unrelated.best_similarity < floor
