"""Citations: split an answer into sentences, read its [n] markers, check each against its source.

Source ``[n]`` is ``hits[n-1]`` (the numbering of :func:`ragtune.generate.prompts.build_rag_messages`).

>>> from ragtune.types import Chunk, Hit
>>> hit = Hit(chunk=Chunk(id="ch_1", doc_id="d", section="Returns", ordinal=0, tokens=12,
...           text="Returns are accepted within 30 days. Gift cards are final sale."),
...           score=1.0, document="policy.md", title="Policy")
>>> cites, checks = check_answer("You can return items within 30 days [1].", [hit])
>>> cites[0].quote, cites[0].supported
('Returns are accepted within 30 days.', True)
>>> check_answer("You can return items within 45 days [1].", [hit])[1][0].supported
False

Rules (what "supported" means):

* Content words are lowercased words minus stopwords, lightly stemmed (``returns`` and
  ``returned`` both become ``return``), plus numbers in canonical form (``1,000`` → ``1000``,
  ``3.50`` → ``3.5``, ``thirty`` → ``30``).
* A sentence's score against a source is the share of its content words found in the
  source's chunk text (not its title or section: echoing a header proves nothing). If the sentence states a number the source does not
  contain, the score is 0: "45 days" is never supported by a source saying "30 days".
* A cited sentence scores the best of its cited sources. A marker outside ``1..len(hits)``
  makes the sentence unsupported (it cites something that was never shown) but never raises.
* An uncited sentence that makes a claim is checked against every hit; it is returned with
  ``cited=()`` and is supported only if some hit reaches the threshold.
* Refusals ("I could not find this in the knowledge base."), sentences with no content
  word at all (a bare "[2]") and uncited sentences with fewer than 3 content words
  ("Sure!", "Here is the answer:") make no claim: they are not checked, not returned, and
  their markers create no citation.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from ragtune.errors import ConfigError
from ragtune.generate.prompts import NOT_FOUND_TEXT
from ragtune.types import Citation, Hit, SentenceCheck

# "[1]", "[1, 2]", "[1-3]", "[Source 2]"; a group of them may follow a sentence's period.
_MARKER = re.compile(r"\[\s*(?:sources?\s*)?(\d{1,3}(?:\s*(?:,|-|–)\s*\d{1,3})*)\s*\]", re.IGNORECASE)
_MARKERS_AFTER = r"(?:[ \t]*\[\s*(?:sources?\s*)?\d{1,3}(?:\s*(?:,|-|–)\s*\d{1,3})*\s*\])*"
# A sentence end: terminal punctuation, closing quotes/brackets, trailing markers, then space.
_END = re.compile(r"[.!?]+[\"'”’)]*" + _MARKERS_AFTER + r"(?=\s|$)")
# A marker followed by a capitalised word ends a sentence that has no period.
_CAPITAL_NEXT = re.compile(r"[ \t]+[A-Z]")
_LIST_PREFIX = re.compile(r"[ \t]*(?:[-*•+]|\d{1,3}[.)]|#{1,6})[ \t]+")

# Never a sentence end: "e.g. the", "Dr. Smith", "approx. 5".
_ABBREVIATIONS = {"e.g", "i.e", "eg", "ie", "vs", "cf", "approx", "incl", "fig", "mr", "mrs",
                  "ms", "dr", "prof", "st", "jr", "sr", "dept", "est", "al", "resp", "min",
                  "max", "ca", "p", "pp", "vol", "ch", "sec"}
# A sentence end only before a capital letter: "etc." / "No. 5".
_SOFT_ABBREVIATIONS = {"etc", "no", "nos", "inc", "ltd", "co", "corp"}

_STOPWORD_TEXT = """
a about above after again against all am an and any are aren't as at be because been before
being below between both but by can can't cannot could couldn't did didn't do does doesn't
doing don't down during each few for from further had hadn't has hasn't have haven't having
he he'd he'll he's her here here's hers herself him himself his how how's i i'd i'll i'm i've
if in into is isn't it it's its itself let's me more most mustn't my myself nor not of off on
once only or other ought our ours ourselves out over own same shan't she she'd she'll she's
should shouldn't so some such than that that's the their theirs them themselves then there
there's these they they'd they'll they're they've this those through to too under until up
very was wasn't we we'd we'll we're we've were weren't what what's when when's where where's
which while who who's whom why why's will with won't would wouldn't you you'd you'll you're
you've your yours yourself yourselves also may might must shall just yes according source
sources based however therefore thus
"""
_STOPWORDS = frozenset(_STOPWORD_TEXT.split())

_NUMBER_WORDS = {"two": "2", "three": "3", "four": "4", "five": "5", "six": "6", "seven": "7",
                 "eight": "8", "nine": "9", "ten": "10", "eleven": "11", "twelve": "12",
                 "fifteen": "15", "twenty": "20", "thirty": "30", "forty": "40", "fifty": "50",
                 "sixty": "60", "ninety": "90", "hundred": "100"}

_REFUSAL = re.compile(
    r"could ?n[o']t find|can ?n[o']t find|cannot find|unable to find|i do ?n[o']t know"
    r"|i don't know|not (?:found|mentioned|contained|provided|stated|covered) in the"
    r"|(?:sources|context) do(?:es)? not (?:contain|mention|say|provide)"
    r"|no information (?:about|on)",
    re.IGNORECASE,
)

_NUM = re.compile(r"\d+(?:[.,:]\d+)*")
_WORD = re.compile(r"[a-z]+(?:'[a-z]+)?")

_MIN_CLAIM_WORDS = 3


# ----------------------------------------------------------------------------- sentences

def _blocks(text: str) -> Iterable[tuple[int, int]]:
    """Spans of paragraphs and list items; a wrapped line that continues lowercase is joined."""
    lines = []
    pos = 0
    for line in text.splitlines(keepends=True):
        lines.append((pos, pos + len(line.rstrip("\r\n"))))
        pos += len(line)
    start: int | None = None
    end = 0
    for i, (s, e) in enumerate(lines):
        body = text[s:e]
        if not body.strip():
            if start is not None:
                yield start, end
                start = None
            continue
        if start is None:
            start, end = s, e
            continue
        stripped = body.lstrip()
        continues = (
            not _LIST_PREFIX.match(body)
            and stripped[:1] != "|"
            and (stripped[:1].islower() or stripped[:1] in "(")
            and not text[start:end].rstrip().endswith(":")
        )
        if continues:
            end = e
        else:
            yield start, end
            start, end = s, e
    if start is not None:
        yield start, end


def _is_boundary(block: str, match: re.Match[str]) -> bool:
    """Whether the terminator ``match`` really ends a sentence (not "e.g.", "Dr.", "J.")."""
    if not block[match.start():match.end()].startswith(".") or match.group().startswith(".."):
        return True
    before = re.search(r"(\S*)$", block[:match.start()])
    word = (before.group(1) if before else "").lstrip("([\"'“‘")
    prev = word.lower()
    nxt = block[match.end():].lstrip()[:1]
    if prev in _ABBREVIATIONS:
        return False
    if prev in _SOFT_ABBREVIATIONS:
        return nxt.isupper()
    # Initials and dotted acronyms: "J. Smith", "U.S. law".
    return not re.fullmatch(r"[A-Z]|(?:[A-Za-z]\.)+[A-Za-z]", word)


def _sentence_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) offsets of each sentence in ``text``; ``text[s:e]`` is the sentence."""
    spans: list[tuple[int, int]] = []
    for b_start, b_end in _blocks(text):
        block = text[b_start:b_end]
        prefix = _LIST_PREFIX.match(block)
        cut = prefix.end() if prefix else 0
        ends = [m.end() for m in _END.finditer(block, cut) if _is_boundary(block, m)]
        ends += [m.end() for m in _MARKER.finditer(block, cut)
                 if _CAPITAL_NEXT.match(block, m.end())]
        for end in sorted(set(ends)) + [len(block)]:
            piece = block[cut:end]
            if piece.strip():
                lead = len(piece) - len(piece.lstrip())
                spans.append((b_start + cut + lead, b_start + cut + len(piece.rstrip())))
            cut = max(cut, end)
    return spans


def split_sentences(text: str) -> list[str]:
    """Sentences of ``text``, each with the [n] markers that follow it.

    >>> split_sentences("Use e.g. a 3.5 mm jack. It costs $4 [1]. See also [2][3]. Done")
    ['Use e.g. a 3.5 mm jack.', 'It costs $4 [1].', 'See also [2][3].', 'Done']
    >>> split_sentences("Returns take 30 days. [1] Gift cards are final. [2]")
    ['Returns take 30 days. [1]', 'Gift cards are final. [2]']
    >>> split_sentences("Steps:\\n1. Open the app.\\n2. Tap Refund [1]")
    ['Steps:', 'Open the app.', 'Tap Refund [1]']
    """
    return [text[s:e] for s, e in _sentence_spans(text)]


# ----------------------------------------------------------------------------- markers

def parse_markers(sentence: str) -> tuple[int, ...]:
    """Source numbers cited by ``sentence``, distinct, in order of appearance.

    >>> parse_markers("Yes [2][1], and [1, 3] or [4-5] [Source 6].")
    (2, 1, 3, 4, 5, 6)
    """
    found: list[int] = []
    for m in _MARKER.finditer(sentence):
        for item in re.split(r"\s*,\s*", m.group(1)):
            bounds = re.split(r"\s*[-–]\s*", item)
            lo, hi = int(bounds[0]), int(bounds[-1])
            numbers = range(lo, hi + 1) if 0 <= hi - lo <= 20 else (lo, hi)
            found.extend(n for n in numbers if n not in found)
    return tuple(found)


def strip_markers(text: str) -> str:
    """``text`` without its [n] markers (and the space before them).

    >>> strip_markers("Returns take 30 days [1][2]. Gift cards are final. [3]")
    'Returns take 30 days. Gift cards are final.'
    """
    return _MARKER.sub("", re.sub(r"[ \t]+(?=" + _MARKER.pattern + ")", "", text, flags=re.IGNORECASE))


def is_refusal(text: str) -> bool:
    """Whether ``text`` says the answer is not in the sources.

    >>> is_refusal("I could not find this in the knowledge base."), is_refusal("Yes [1].")
    (True, False)
    """
    return NOT_FOUND_TEXT.lower() in text.lower() or bool(_REFUSAL.search(text))


# ----------------------------------------------------------------------------- support

def _stem(word: str) -> str:
    """Tiny, consistent suffix stripping: what matters is that both sides stem alike."""
    word = word.removesuffix("'s")
    if len(word) > 4 and word.endswith("ies"):
        word = word[:-3] + "y"
    elif len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        word = word[:-1]
    if len(word) > 5 and word.endswith("ing"):
        word = word[:-3]
    elif len(word) > 4 and word.endswith("ed"):
        word = word[:-2]
    if len(word) > 3 and word.endswith("e"):
        word = word[:-1]
    return word


def _canonical_number(raw: str) -> str:
    if re.fullmatch(r"\d{1,3}(?:,\d{3})+(?:\.\d+)?", raw):
        raw = raw.replace(",", "")
    if re.fullmatch(r"\d+", raw):
        return str(int(raw))
    if re.fullmatch(r"\d+\.\d+", raw):
        whole, frac = raw.split(".")
        frac = frac.rstrip("0")
        return f"{int(whole)}.{frac}" if frac else str(int(whole))
    return raw


@dataclass(frozen=True)
class _Bag:
    words: frozenset[str]  # stemmed content words, numbers included
    numbers: frozenset[str]


def _bag(text: str) -> _Bag:
    text = strip_markers(text).lower()
    numbers = {_canonical_number(m.group()) for m in _NUM.finditer(text)}
    words: set[str] = set()
    for w in _WORD.findall(_NUM.sub(" ", text)):
        if w in _NUMBER_WORDS:
            numbers.add(_NUMBER_WORDS[w])
        elif w not in _STOPWORDS and len(w) > 1:
            words.add(_stem(w))
    return _Bag(frozenset(words | numbers), frozenset(numbers))


def _score(claim: _Bag, source: _Bag) -> float:
    if claim.numbers - source.numbers:
        return 0.0
    if not claim.words:
        return 1.0
    return len(claim.words & source.words) / len(claim.words)


def _source_bag(hit: Hit) -> _Bag:
    # Only the chunk text supports a claim: an answer that merely echoes the source header
    # ("[1] Shipping — Delivery times", seen from the 0.5B model) must not count as supported.
    return _bag(hit.chunk.text)


def _best_quote(chunk_text: str, claim_words: frozenset[str]) -> str:
    """The chunk sentence sharing most words with the claim (verbatim; first on ties)."""
    best, best_key = "", (-1, -1.0)
    for s, e in _sentence_spans(chunk_text):
        words = _bag(chunk_text[s:e]).words
        common = len(words & claim_words)
        key = (common, common / (len(words) or 1))
        if key > best_key:
            best, best_key = chunk_text[s:e], key
    return best


def check_answer(text: str, hits: list[Hit], *,
                 threshold: float = 0.5) -> tuple[list[Citation], list[SentenceCheck]]:
    """Map the answer's [n] markers to ``hits`` and check each sentence (rules: module doc).

    Returns one :class:`Citation` per distinct in-range ``n`` in order of first appearance
    (``supported`` = every sentence citing it was supported) and one :class:`SentenceCheck`
    per claim-making sentence.
    """
    if not 0.0 <= threshold <= 1.0:
        raise ConfigError(f"citation threshold must be 0..1, got {threshold}")
    sources = [_source_bag(h) for h in hits]
    checks: list[SentenceCheck] = []
    claims_by_n: dict[int, list[tuple[_Bag, bool]]] = {}
    for sentence in split_sentences(text):
        if is_refusal(sentence):
            continue
        claim = _bag(sentence)
        cited = parse_markers(sentence)
        if not claim.words:
            continue  # "[2]" alone or "Yes [1]." states nothing that a source could support
        if cited:
            valid = [n for n in cited if 1 <= n <= len(hits)]
            score = max((_score(claim, sources[n - 1]) for n in valid), default=0.0)
            supported = len(valid) == len(cited) and score >= threshold
            for n in valid:
                claims_by_n.setdefault(n, []).append((claim, supported))
        else:
            if len(claim.words) < _MIN_CLAIM_WORDS:
                continue
            score = max((_score(claim, s) for s in sources), default=0.0)
            supported = score >= threshold
        checks.append(SentenceCheck(text=sentence, cited=cited, supported=supported,
                                    score=round(score, 4)))
    citations = []
    for n, claims in claims_by_n.items():
        hit = hits[n - 1]
        words = frozenset().union(*(c.words for c, _ in claims))
        citations.append(Citation(
            n=n, document=hit.document, section=hit.chunk.section, chunk_id=hit.chunk.id,
            quote=_best_quote(hit.chunk.text, words),
            supported=all(ok for _, ok in claims),
        ))
    return citations, checks


def attribute_uncited(text: str, hits: list[Hit], *, threshold: float = 0.5) -> tuple[str, list[str]]:
    """Add a ``[n]`` marker to each uncited claim that one retrieved source supports.

    Small models often answer from the sources but forget the markers. Rather than show an
    answer without citations, each uncited sentence is attributed to the source that
    supports it best, if that support reaches ``threshold`` (the same test as
    :func:`check_answer`); sentences no source supports stay uncited and are flagged by
    it. Returns the new text and the sentences that were attributed (for the trace).

    >>> from ragtune.types import Chunk, Hit
    >>> h = Hit(Chunk("c1", "d", "Returns are accepted within 30 days.", "Returns", 0, 6), 1.0, "r.md", "R")
    >>> attribute_uncited("Returns are accepted within 30 days.", [h])[0]
    'Returns are accepted within 30 days [1].'
    """
    sources = [_source_bag(h) for h in hits]
    attributed: list[str] = []
    out = text
    for sentence in split_sentences(text):
        if parse_markers(sentence) or is_refusal(sentence):
            continue
        claim = _bag(sentence)
        if len(claim.words) < _MIN_CLAIM_WORDS or not sources:
            continue
        scores = [_score(claim, s) for s in sources]
        best = max(range(len(scores)), key=lambda i: scores[i])
        if scores[best] < threshold:
            continue
        stripped = sentence.rstrip()
        end = len(stripped.rstrip(".!?"))
        marked = f"{stripped[:end]} [{best + 1}]{stripped[end:]}"
        out = out.replace(sentence.rstrip(), marked, 1)
        attributed.append(sentence.strip())
    return out, attributed
