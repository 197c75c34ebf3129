"""Golden tests for sentence splitting, marker parsing and citation checking."""

from __future__ import annotations

import pytest

from ragtune.errors import ConfigError
from ragtune.generate.citations import (
    check_answer,
    is_refusal,
    parse_markers,
    split_sentences,
    strip_markers,
)
from ragtune.generate.prompts import NOT_FOUND_TEXT
from ragtune.types import Chunk, Hit

RETURNS = ("Customers may return most items within 30 days of delivery. "
           "Gift cards, e.g. digital codes, are final sale and cannot be refunded. "
           "Refunds are issued to the original payment method within 5 business days.")
SHIPPING = ("Standard shipping takes 3 to 7 business days. Express shipping costs $14.99 "
            "and arrives the next day.\nOrders over $50 ship free.")
WARRANTY = "Electronics carry a 2-year limited warranty covering manufacturing defects."


def _hit(text: str, n: int, section: str, title: str) -> Hit:
    chunk = Chunk(id=f"ch_{n}", doc_id=f"doc_{n}", text=text, section=section, ordinal=0,
                  tokens=len(text.split()))
    return Hit(chunk=chunk, score=1.0 / n, document=f"policies/{title.lower()}.md", title=title,
               rank=n)


@pytest.fixture
def hits() -> list[Hit]:
    return [_hit(RETURNS, 1, "Returns > Window", "Returns"),
            _hit(SHIPPING, 2, "Shipping > Times", "Shipping"),
            _hit(WARRANTY, 3, "Warranty", "Warranty")]


# ---------------------------------------------------------------- split_sentences

@pytest.mark.parametrize("text, expected", [
    ("One. Two! Three?", ["One.", "Two!", "Three?"]),
    ("Use e.g. a cable. Done.", ["Use e.g. a cable.", "Done."]),
    ("Pay i.e. now, or later. Ok.", ["Pay i.e. now, or later.", "Ok."]),
    ("It weighs 3.5 kg. It costs $1,299.99 today.", ["It weighs 3.5 kg.", "It costs $1,299.99 today."]),
    ("Returns take 30 days [1]. Gift cards are final [2].",
     ["Returns take 30 days [1].", "Gift cards are final [2]."]),
    ("Returns take 30 days. [1] Gift cards are final. [2][3]",
     ["Returns take 30 days. [1]", "Gift cards are final. [2][3]"]),
    ("Returns take 30 days.[1, 2] Next.", ["Returns take 30 days.[1, 2]", "Next."]),
    ("Returns take 30 days [1] Gift cards are final [2]",
     ["Returns take 30 days [1]", "Gift cards are final [2]"]),
    ("Ask Dr. Smith or J. Doe in the U.S. office. Thanks.",
     ["Ask Dr. Smith or J. Doe in the U.S. office.", "Thanks."]),
    ("Bring pens, paper etc. Then sign.", ["Bring pens, paper etc.", "Then sign."]),
    ("Steps:\n1. Open the app.\n2. Tap Refund [1]\n- Wait", ["Steps:", "Open the app.", "Tap Refund [1]", "Wait"]),
    ("A line that wraps\nonto the next line. New para.\n\nSecond para",
     ["A line that wraps\nonto the next line.", "New para.", "Second para"]),
    ("", []),
    ("   \n\n  ", []),
    ("No terminal punctuation", ["No terminal punctuation"]),
])
def test_split_sentences(text: str, expected: list[str]) -> None:
    assert split_sentences(text) == expected


def test_split_sentences_pieces_are_substrings() -> None:
    text = "Intro:\n- First item is here.\n- Second item [2]. Third one!"
    for s in split_sentences(text):
        assert s in text


# ---------------------------------------------------------------- markers

@pytest.mark.parametrize("sentence, expected", [
    ("Plain sentence.", ()),
    ("Cited [1].", (1,)),
    ("Cited [1][2].", (1, 2)),
    ("Cited [1, 2].", (1, 2)),
    ("Cited [1,2] and again [2].", (1, 2)),
    ("Cited [ 3 ].", (3,)),
    ("Cited [2-4].", (2, 3, 4)),
    ("Cited [Source 2] and [source 1].", (2, 1)),
    ("Out of range [9].", (9,)),
    ("Not a marker [a] or (1).", ()),
])
def test_parse_markers(sentence: str, expected: tuple[int, ...]) -> None:
    assert parse_markers(sentence) == expected


def test_strip_markers() -> None:
    assert strip_markers("Thirty days [1][2]. Final. [3]") == "Thirty days. Final."
    assert strip_markers("Both [1, 2] apply.") == "Both apply."
    assert strip_markers("No markers.") == "No markers."


def test_is_refusal() -> None:
    assert is_refusal(NOT_FOUND_TEXT)
    assert is_refusal("Sorry, I don't know.")
    assert is_refusal("The sources do not mention parking.")
    assert not is_refusal("Returns take 30 days [1].")


# ---------------------------------------------------------------- check_answer: golden cases

def test_supported_single_citation(hits: list[Hit]) -> None:
    cites, checks = check_answer("You can return items within 30 days of delivery [1].", hits)
    assert [c.n for c in cites] == [1]
    c = cites[0]
    assert (c.document, c.section, c.chunk_id) == ("policies/returns.md", "Returns > Window", "ch_1")
    assert c.quote == "Customers may return most items within 30 days of delivery."
    assert c.supported
    assert len(checks) == 1 and checks[0].cited == (1,) and checks[0].supported
    assert checks[0].score >= 0.5


def test_wrong_number_is_unsupported(hits: list[Hit]) -> None:
    cites, checks = check_answer("You can return items within 45 days of delivery [1].", hits)
    assert not checks[0].supported and checks[0].score == 0.0
    assert cites[0].n == 1 and not cites[0].supported


def test_number_formats_match(hits: list[Hit]) -> None:
    _, checks = check_answer("Express shipping costs $14.99 [2]. Orders above 50 dollars ship free [2].",
                             hits)
    assert [s.supported for s in checks] == [True, True]
    _, checks = check_answer("Refunds arrive within five business days [1].", hits)
    assert checks[0].supported  # "five" == "5"


def test_wrong_source_is_unsupported(hits: list[Hit]) -> None:
    cites, checks = check_answer("Gift cards are final sale [2].", hits)
    assert not checks[0].supported
    assert cites[0].n == 2 and not cites[0].supported


def test_out_of_range_marker_flagged_not_crash(hits: list[Hit]) -> None:
    cites, checks = check_answer("Gift cards are final sale [7]. Returns take 30 days [0].", hits)
    assert cites == []
    assert [s.cited for s in checks] == [(7,), (0,)]
    assert not any(s.supported for s in checks)
    # A valid marker next to an invalid one: the sentence still cites something never shown.
    cites, checks = check_answer("Gift cards are final sale [1][4].", hits)
    assert [c.n for c in cites] == [1] and not checks[0].supported
    cites, checks = check_answer("Anything at all goes here [1].", [])
    assert cites == [] and checks[0].cited == (1,) and not checks[0].supported


def test_multi_cite_takes_best_source(hits: list[Hit]) -> None:
    cites, checks = check_answer(
        "Electronics have a 2-year warranty [2][3]. Express shipping arrives the next day [1, 2].",
        hits)
    assert [c.n for c in cites] == [2, 3, 1]
    assert all(s.supported for s in checks)
    by_n = {c.n: c for c in cites}
    assert by_n[3].quote == WARRANTY
    assert by_n[2].quote == "Express shipping costs $14.99 and arrives the next day."


def test_citation_supported_only_if_all_citing_sentences_are(hits: list[Hit]) -> None:
    cites, checks = check_answer(
        "Gift cards are final sale [1]. Gift cards can be returned within 90 days [1].", hits)
    assert [s.supported for s in checks] == [True, False]
    assert len(cites) == 1 and not cites[0].supported


def test_quote_is_verbatim_substring(hits: list[Hit]) -> None:
    cites, _ = check_answer(
        "Refunds go to the original payment method [1]. Orders over $50 ship free [2]. "
        "Standard shipping takes 3 to 7 business days [2].", hits)
    assert len(cites) == 2
    for c in cites:
        assert c.quote and c.quote in hits[c.n - 1].chunk.text
    assert cites[0].quote.startswith("Refunds are issued")


def test_uncited_claims_checked_against_all_hits(hits: list[Hit]) -> None:
    cites, checks = check_answer(
        "Sure! Electronics carry a limited warranty covering defects. "
        "Pets are welcome in every store lobby.", hits)
    assert cites == []
    assert [(s.cited, s.supported) for s in checks] == [((), True), ((), False)]


def test_refusal_and_chatter_are_not_claims(hits: list[Hit]) -> None:
    assert check_answer(NOT_FOUND_TEXT, hits) == ([], [])
    assert check_answer("Here is the answer:", hits) == ([], [])
    assert check_answer("[2]", hits) == ([], [])  # a bare marker (seen from the 0.5B model)


def test_echoed_header_is_not_support() -> None:
    hit = _hit("Bring the receipt and the item.", 1, "Store credit > Exchanges", "Exchanges")
    _, checks = check_answer("[1] Exchanges — Store credit [1].", [hit])
    assert not checks[0].supported and checks[0].score == 0.0


def test_threshold(hits: list[Hit]) -> None:
    text = "Gift cards and vouchers are final sale forever [1]."
    _, strict = check_answer(text, hits, threshold=0.9)
    _, loose = check_answer(text, hits, threshold=0.3)
    assert not strict[0].supported and loose[0].supported
    with pytest.raises(ConfigError, match="threshold"):
        check_answer(text, hits, threshold=1.5)


def test_markers_numbers_do_not_count_as_claims(hits: list[Hit]) -> None:
    # "[3]" must not be read as the number 3 stated by the sentence.
    _, checks = check_answer("Electronics carry a limited warranty [3].", hits)
    assert checks[0].supported
