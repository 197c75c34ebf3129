"""Prompt construction: numbered sources, the rules, the plain (no retrieval) variant."""

from __future__ import annotations

from ragtune.generate.prompts import (
    NOT_FOUND_TEXT,
    RAG_SYSTEM_PROMPT,
    build_plain_messages,
    build_rag_messages,
)
from ragtune.types import Chunk, Hit


def _hit(n: int, text: str, section: str = "Sec", title: str = "Doc", page: int | None = None) -> Hit:
    chunk = Chunk(id=f"ch_{n}", doc_id="d", text=text, section=section, ordinal=n, tokens=5, page=page)
    return Hit(chunk=chunk, score=1.0, document=f"doc{n}.md", title=title)


def test_sources_are_numbered_in_hit_order() -> None:
    msgs = build_rag_messages("  Why?  ", [_hit(1, "Alpha text.", "A"), _hit(2, " Beta text.\n", "B")])
    assert msgs[0] == {"role": "system", "content": RAG_SYSTEM_PROMPT}
    user = msgs[1]["content"]
    assert user == ("Sources:\n\n[1] Doc — A\nAlpha text.\n\n[2] Doc — B\nBeta text.\n\n"
                    "Question: Why?")


def test_rules_name_refusal_and_markers() -> None:
    assert f'"{NOT_FOUND_TEXT}"' in RAG_SYSTEM_PROMPT
    assert "ONLY" in RAG_SYSTEM_PROMPT and RAG_SYSTEM_PROMPT.endswith("building [2].")


def test_header_variants() -> None:
    user = build_rag_messages("q", [_hit(1, "t", section="", title="Doc", page=3),
                                    _hit(2, "u", section="Doc", title="Doc")])[1]["content"]
    assert "[1] Doc (p. 3)\nt" in user
    assert "[2] Doc\nu" in user  # a section equal to the title is not repeated


def test_custom_system_and_no_hits() -> None:
    msgs = build_rag_messages("q", [], system="Be terse.")
    assert msgs[0]["content"] == "Be terse."
    assert msgs[1]["content"].endswith("Question: q")


def test_plain_messages() -> None:
    msgs = build_plain_messages(" What is RAG? ")
    assert [m["role"] for m in msgs] == ["system", "user"]
    assert msgs[1]["content"] == "What is RAG?"
    assert "[" not in msgs[0]["content"]
