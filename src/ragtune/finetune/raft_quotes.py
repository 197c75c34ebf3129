"""The RAFT answer format and its evidence: reasoning, a verbatim quote, the final answer.

A RAFT target (:func:`raft_target`) names the source that answers, quotes it between
``##begin_quote##`` and ``##end_quote##``, and ends with ``Answer: <answer> [n]``:

>>> reply = raft_target(2, "Returns Policy", "Returns are accepted within 30 days.", "30 days")
>>> final_answer(reply), quotes_in(reply)
('30 days [2]', ['Returns are accepted within 30 days.'])

A RAFT adapter answers in that format, so callers show and check :func:`final_answer` (the
text after the last ``Answer:``). :func:`rank_quote` chooses the quote: the run of chunk
sentences that best supports the answer, measured as the citation checker measures
support (:func:`support`), so a quote here is "supported" exactly when ``ragtune ask``
would say so.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from ragtune.types import Chunk, Hit

BEGIN_QUOTE, END_QUOTE = "##begin_quote##", "##end_quote##"
ANSWER_PREFIX = "Answer:"
MIN_QUOTE_RECALL = 0.5  # least support (share of the answer's content words) a quote needs
MIN_WHOLE_ANSWER_WORDS = 6  # a verbatim answer this long is quoted as is
MAX_QUOTE_SENTENCES = 3  # synth answers join sentences that a short one may separate
_QUOTES = re.compile(re.escape(BEGIN_QUOTE) + r"(.*?)" + re.escape(END_QUOTE), re.DOTALL)
_YES_NO = re.compile(r"^\s*(?:yes|no)\b[,.;:]?\s*", re.IGNORECASE)


def raft_target(n: int, title: str, quote: str, answer: str) -> str:
    """The assistant turn for an example whose source ``[n]`` is the oracle.

    >>> print(raft_target(2, "Returns Policy", "Returns are accepted within 30 days.", "30 days"))
    Reasoning: source [2] (Returns Policy) answers the question; the other sources do not. It says: ##begin_quote##Returns are accepted within 30 days.##end_quote##
    Answer: 30 days [2]
    """
    answer = answer.strip()
    cited = f"{answer[:-1]} [{n}]." if answer.endswith(".") else f"{answer} [{n}]"
    return (f"Reasoning: source [{n}] ({title}) answers the question; the other sources do "
            f"not. It says: {BEGIN_QUOTE}{quote}{END_QUOTE}\n{ANSWER_PREFIX} {cited}")


def is_raft_adapter(info: Any) -> bool:
    """Whether an adapter (:class:`~ragtune.finetune.adapters.AdapterInfo`) was trained on
    RAFT data: its replies reason and quote first, so show and check :func:`final_answer`."""
    return isinstance(info.lineage, dict) and info.lineage.get("kind") == "raft"


def final_answer(text: str) -> str:
    """What a RAFT-style reply concludes: the text after its last ``Answer:`` (all of it
    when there is none), for scoring and for showing the user.

    >>> final_answer("Reasoning: source [1] says ##begin_quote##x##end_quote##\\nAnswer: 30 days [1]")
    '30 days [1]'
    >>> final_answer("Returns take 30 days [1].")
    'Returns take 30 days [1].'
    """
    at = text.rfind(ANSWER_PREFIX)
    return text[at + len(ANSWER_PREFIX):].strip() if at >= 0 else text.strip()


def quotes_in(text: str) -> list[str]:
    """The spans between ``##begin_quote##`` and ``##end_quote##``.

    >>> quotes_in("a ##begin_quote##b c##end_quote## d ##begin_quote##e##end_quote##")
    ['b c', 'e']
    """
    return _QUOTES.findall(text)


def quotes_verbatim(target: str, oracle_text: str) -> bool:
    """True when ``target`` quotes at least once and every quote occurs verbatim in the oracle."""
    found = quotes_in(target)
    return bool(found) and all(q and q in oracle_text for q in found)


def support(claim: str, text: str) -> float:
    """Share of ``claim``'s content words found in ``text`` (0 when it states a number the
    text lacks): the measure the citation checker uses, so a quote "supports" an answer here
    exactly when ``ragtune ask`` would call it supported.

    >>> support("30 days", "Returns are accepted within 30 days."), support("45 days", "within 30 days")
    (1.0, 0.0)
    """
    from ragtune.generate.citations import check_answer

    hit = Hit(Chunk("quote", "quote", text, "", 0, 0), 1.0, "", "")
    _, checks = check_answer(claim.strip() + " [1]", [hit])
    return min((c.score for c in checks), default=0.0)


def _spans(text: str, sentences: list[str]) -> list[tuple[int, int]]:
    out, pos = [], 0
    for sentence in sentences:
        at = text.find(sentence, pos)
        if at >= 0:
            out.append((at, at + len(sentence)))
            pos = at + len(sentence)
    return out


QuoteRank = tuple[float, float, int, float, int]
"""How well a quote fits: (support of the best answer, of the first answer, -sentences,
support of the question, -characters); larger is better."""


def rank_quote(chunk_text: str, answers: Sequence[str], question: str = "") -> tuple[str, QuoteRank]:
    """The oracle span to quote for ``answers`` and its :data:`QuoteRank`.

    An answer of at least 6 words found verbatim in the chunk is quoted with the sentence
    around it (or as is, when it spans sentences), ranked above any other quote. Otherwise
    the candidates are runs of one to three consecutive chunk sentences (answers often join
    two), ranked by how well they support any answer (:func:`support`), then the first
    answer, then fewer sentences, then the question's words, then shortness. The rank is
    comparable across chunks, which is how :func:`build_raft` picks the oracle chunk in a
    document. Candidates are slices of the chunk text, so the quote is verbatim by
    construction; callers still verify it.
    """
    from ragtune.generate.citations import split_sentences

    sentences = split_sentences(chunk_text)
    for a in answers:
        a = a.strip()
        if len(a.split()) >= MIN_WHOLE_ANSWER_WORDS and a in chunk_text:
            around = [s for s in sentences if a in s]
            return (around[0] if around else a), (1.0, 1.0, 0, 1.0, 0)
    spans = _spans(chunk_text, sentences)
    windows = [(spans[i][0], spans[j][1], j - i + 1) for i in range(len(spans))
               for j in range(i, min(i + MAX_QUOTE_SENTENCES, len(spans)))]
    # "No, commercial use voids the warranty": the yes/no is the conclusion, not evidence
    # (an answer that is only "No." supports nothing to quote: it is left out unless alone)
    claims = [c for c in (_YES_NO.sub("", a).strip() for a in answers) if c] or list(answers)
    best, best_key = "", (0.0, 0.0, -MAX_QUOTE_SENTENCES - 1, 0.0, 0)
    for start, end, n_sentences in windows:
        quote = chunk_text[start:end]
        scores = [support(a, quote) for a in claims]
        if not max(scores):
            continue
        key = (max(scores), scores[0], -n_sentences,
               support(question, quote) if question else 0.0, -len(quote))
        if key > best_key:
            best, best_key = quote, key
    return best, best_key


def pick_quote(chunk_text: str, answers: Sequence[str], question: str = "") -> tuple[str, float]:
    """The oracle span to quote for ``answers`` and how well it supports them (0..1);
    see :func:`rank_quote`.

    >>> pick_quote("Shipping is free. Returns are accepted within 30 days of delivery.", ["30 days"])
    ('Returns are accepted within 30 days of delivery.', 1.0)
    >>> pick_quote("Free on orders of $75. Totals are after discounts. Hawaii pays $19.95.",
    ...            ["$75 after discounts", "$75"])
    ('Free on orders of $75. Totals are after discounts.', 1.0)
    """
    quote, rank = rank_quote(chunk_text, answers, question)
    return quote, rank[0]
