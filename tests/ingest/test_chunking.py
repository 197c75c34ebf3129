"""Chunking: token bounds, overlap, heading paths, stable and distinct ids."""

from __future__ import annotations

import itertools
import math
import random
import re

import pytest

from ragtune.ingest.chunking import (
    approx_tokens,
    chunk_document,
    chunk_embedding_text,
    split_text,
)
from ragtune.types import Chunk, Document, Section


def numbered_text(rng: random.Random, n_words: int) -> str:
    """Words w0 w1 w2 ... (unique, so a chunk's position is readable from its words), in
    sentences, lines and paragraphs of random lengths, with some punctuation."""
    out, k = [], 0
    while k < n_words:
        sentence = [f"w{k + j}" for j in range(min(rng.randint(1, 30), n_words - k))]
        k += len(sentence)
        out.append(" ".join(sentence) + rng.choice([".", "!", "?", ",", ";", ""]))
        out.append(rng.choice([" ", " ", " ", "\n", "\n\n", "\n\n\n"]))
    return "".join(out).strip()


def word_numbers(text: str) -> list[int]:
    return [int(w) for w in re.findall(r"w(\d+)", text)]


def chars_counter(text: str) -> int:
    """A deliberately non-additive counter: ceil(chars / 4) of the whole string."""
    return math.ceil(len(text) / 4)


def doc_of(*sections: Section, source: str = "kb/doc.md") -> Document:
    return Document(source=source, title="Doc", sections=sections)


@pytest.mark.parametrize("seed", range(12))
def test_random_texts_respect_bounds_keep_order_and_overlap(seed):
    rng = random.Random(seed)
    max_tokens = rng.choice([24, 50, 128, 400])
    overlap = rng.randint(0, max_tokens // 2 - 1)
    count = rng.choice([approx_tokens, chars_counter])
    text = numbered_text(rng, rng.randint(50, 3000))
    pieces = split_text(text, max_tokens, overlap, count)
    assert pieces
    prev_last = -1
    for k, (piece, tokens) in enumerate(pieces):
        assert tokens == count(piece) <= max_tokens
        assert piece in text and piece == piece.strip()  # a verbatim slice
        nums = word_numbers(piece)
        assert nums == list(range(nums[0], nums[-1] + 1))  # contiguous words, no gaps
        assert nums[0] <= prev_last + 1  # nothing skipped between chunks
        if k and overlap >= 8:  # enough room for at least a word of overlap
            assert nums[0] <= prev_last, "consecutive chunks should share a tail"
            shared = text[text.index(f"w{nums[0]}") :].split(f"w{prev_last}")[0] + f"w{prev_last}"
            assert count(shared) <= overlap + 2  # about `overlap` tokens
        if overlap == 0:
            assert nums[0] == prev_last + 1
        prev_last = nums[-1]
    assert prev_last == word_numbers(text)[-1]


def test_overlap_repeats_the_tail_of_the_previous_chunk():
    text = " ".join(f"Sentence number {i} says something short." for i in range(200))
    chunks = chunk_document(doc_of(Section(("A",), text)), max_tokens=128, overlap=20)
    assert len(chunks) > 5
    for a, b in itertools.pairwise(chunks):
        head = b.text.split(" ")[:3]
        assert " ".join(head) in a.text[-300:], "next chunk should start inside the previous"
        assert b.text.startswith("Sentence number"), "overlap snaps to a sentence start"


def test_never_merges_sections_and_keeps_labels_pages_ordinals():
    doc = doc_of(
        Section(("Returns",), "Within 30 days.", page=1),
        Section(("Returns", "Exceptions"), "No gift cards. " * 100, page=2),
        Section(("Shipping",), "Worldwide.", page=3),
        Section((), "Loose text."),
    )
    chunks = chunk_document(doc, max_tokens=64, overlap=8)
    assert [c.ordinal for c in chunks] == list(range(len(chunks)))
    labels = [c.section for c in chunks]
    assert labels[0] == "Returns (p. 1)" and labels[-2:] == ["Shipping (p. 3)", ""]
    assert set(labels[1:-2]) == {"Returns > Exceptions (p. 2)"} and len(labels) > 4
    for c in chunks:
        section = next(s for s in doc.sections if s.label == c.section)
        assert c.text in section.text and c.page == section.page and c.doc_id == doc.id


def test_ids_are_stable_and_follow_content():
    def build(exceptions: str) -> Document:
        return doc_of(
            Section(("Returns",), "Within 30 days. " * 60),
            Section(("Returns", "Exceptions"), exceptions),
            Section(("Shipping",), "Worldwide shipping. " * 60),
        )

    first = chunk_document(build("No gift cards."), max_tokens=64, overlap=8)
    again = chunk_document(build("No gift cards."), max_tokens=64, overlap=8)
    assert [c.id for c in first] == [c.id for c in again]
    assert first == again
    c = first[0]
    assert c.id == Chunk.make_id(c.doc_id, c.section, c.text)  # the documented recipe

    changed = chunk_document(build("Gift cards: 14 days."), max_tokens=64, overlap=8)
    old = {c.id for c in first if c.section == "Returns > Exceptions"}
    new = {c.id for c in changed if c.section == "Returns > Exceptions"}
    assert old and new and not old & new
    for label in ("Returns", "Shipping"):  # untouched sections keep their ids
        assert [c.id for c in first if c.section == label] == [
            c.id for c in changed if c.section == label
        ]
    elsewhere = chunk_document(
        Document("kb/other.md", "Doc", build("No gift cards.").sections), max_tokens=64, overlap=8
    )
    assert not {c.id for c in elsewhere} & {c.id for c in first}


def test_duplicate_chunks_get_distinct_deterministic_ids():
    doc = doc_of(
        Section(("FAQ",), "Call us."), Section(("FAQ",), "Call us."), Section(("FAQ",), "Call us.")
    )
    ids = [c.id for c in chunk_document(doc)]
    assert len(set(ids)) == 3
    assert ids[0] == Chunk.make_id(doc.id, "FAQ", "Call us.")
    assert ids == [c.id for c in chunk_document(doc)]


def test_paragraphs_and_lines_are_preferred_cut_points():
    para = "Alpha beta gamma delta epsilon zeta eta theta."
    text = "\n\n".join([para] * 12)
    pieces = [t for t, _ in split_text(text, 40, 0, approx_tokens)]
    assert all(p.startswith("Alpha") and p.endswith("theta.") for p in pieces)
    code = "\n".join(f"x_{i} = compute({i}, value)" for i in range(80))
    pieces = [t for t, _ in split_text(code, 60, 0, approx_tokens)]
    assert len(pieces) > 1
    assert all(
        line.startswith("x_") and line.endswith(")") for p in pieces for line in p.split("\n")
    )


def test_giant_word_and_cjk_are_hard_split_within_bounds():
    blob = "QUJD" * 3000  # 12,000 characters, no spaces
    pieces = split_text(blob, 50, 5, approx_tokens)
    assert "".join(t for t, _ in pieces) == blob
    assert all(approx_tokens(t) <= 50 for t, _ in pieces)
    cjk = "退货政策规定顾客可以在三十天内退货。" * 40
    pieces = split_text(cjk, 64, 0, approx_tokens)
    assert len(pieces) > 1 and all(n <= 64 for _, n in pieces)
    assert "".join(t for t, _ in pieces) == cjk


def test_empty_sections_give_no_chunks():
    doc = doc_of(Section(("A",), ""), Section(("B",), "   \n\n "), Section(("C",), "Text."))
    assert [c.section for c in chunk_document(doc)] == ["C"]


def test_bad_arguments():
    doc = doc_of(Section(("A",), "text"))
    with pytest.raises(ValueError, match="max_tokens"):
        chunk_document(doc, max_tokens=0)
    with pytest.raises(ValueError, match="overlap"):
        chunk_document(doc, max_tokens=100, overlap=50)
    with pytest.raises(ValueError, match="overlap"):
        chunk_document(doc, overlap=-1)
    with pytest.raises(ValueError, match="too small"):
        chunk_document(
            doc_of(Section(("A",), "xyz")),
            max_tokens=1,
            overlap=0,
            count_tokens=lambda s: 2 * len(s),
        )


def test_embedding_text_adds_title_and_section_once():
    c = Chunk("ch_1", "doc_1", "No gift cards.", "Returns > Exceptions (p. 2)", 0, 4, page=2)
    assert chunk_embedding_text(c, "Returns") == "Returns > Exceptions (p. 2)\n\nNo gift cards."
    assert chunk_embedding_text(c, "Policies") == (
        "Policies > Returns > Exceptions (p. 2)\n\nNo gift cards."
    )
    bare = Chunk("ch_2", "doc_1", "Loose.", "", 1, 2)
    assert chunk_embedding_text(bare, "Policies") == "Policies\n\nLoose."
    assert chunk_embedding_text(bare, "") == "Loose."


def test_approx_tokens_is_close_to_wordpiece_on_prose():
    # 17 WordPiece tokens with all-MiniLM-L6-v2's tokenizer (counted once, offline).
    assert approx_tokens(
        "Examples to learn from, not rules to enforce. Each line names where to look."
    ) in range(15, 23)
    assert approx_tokens("") == 0 and approx_tokens("   ") == 0
    assert approx_tokens("a" * 600) >= 100  # a blob is shredded by real tokenizers
    assert approx_tokens("退货政策") >= 4
