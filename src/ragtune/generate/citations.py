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
* A sentence's score against a source is the share of its content words found in a window
  of 3 consecutive sentences of the source's chunk text (not its title or section: echoing a
  header proves nothing; not its instruction-like or self-vouching spans: a source's claim
  about itself is no support). If the sentence states a number the window does not contain,
  the score is 0: "45 days" is never supported by a source saying "30 days". If it names
  code (inline code, ``typer.Spinner``, ``launch(``, ``--force``) that the source does not
  contain verbatim, the score is 0: an invented API is never supported
  (:mod:`ragtune.generate.support`).
* A cited sentence scores the best of its cited sources. A marker outside ``1..len(hits)``
  makes the sentence unsupported (it cites something that was never shown) but never raises.
* An uncited sentence that makes a claim is checked against every hit; it is returned with
  ``cited=()`` and is supported only if some hit reaches the threshold. (Support by two
  hits together, a "bridge" for multi-hop answers, was tried and dropped: on HotpotQA it let
  through restatements that did not answer, and lowered contains-answer from 0.25 to 0.15
  against the extractive fallback it displaced.)
* A fenced code block is one "sentence": it never gets a marker, and it is supported only
  if every code name it uses (minus the names it defines) occurs in some source.
* Refusals ("I could not find this in the knowledge base."), sentences with no content
  word at all (a bare "[2]") and uncited sentences with fewer than 3 content words and no
  code name ("Sure!", "Here is the answer:") make no claim: they are not checked, not
  returned, and their markers create no citation.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from ragtune.errors import ConfigError
from ragtune.generate.injection import Flag, scan_hits, support_text
from ragtune.generate.prompts import NOT_FOUND_TEXT
from ragtune.generate.support import Bag, SourceText, bag, score
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

_REFUSAL = re.compile(
    r"could ?n[o']t find|can ?n[o']t find|cannot find|unable to find|i do ?n[o']t know"
    r"|i don't know|not (?:found|mentioned|contained|provided|stated|covered) in the"
    r"|(?:sources|context) do(?:es)? not (?:contain|mention|say|provide)"
    r"|no information (?:about|on)",
    re.IGNORECASE,
)

_MIN_CLAIM_WORDS = 3


# ----------------------------------------------------------------------------- sentences

_FENCE = re.compile(r"[ \t]*(```+|~~~+)")


def _code_regions(text: str) -> list[tuple[int, int]]:
    """(start, end) of each fenced code block (an unclosed fence runs to the end)."""
    regions: list[tuple[int, int]] = []
    pos, start, fence = 0, None, ""
    for line in text.splitlines(keepends=True):
        m = _FENCE.match(line)
        if m and start is None:
            start, fence = pos, m.group(1)
        elif m and start is not None and m.group(1).startswith(fence[0]) and len(m.group(1)) >= len(fence) \
                and not line[m.end():].strip():
            regions.append((start, pos + len(line.rstrip("\r\n"))))
            start = None
        pos += len(line)
    if start is not None:
        regions.append((start, len(text.rstrip())))
    return regions


def is_code(sentence: str) -> bool:
    """Whether a piece of :func:`split_sentences` is a fenced code block.

    >>> is_code("```python\\nprint(1)\\n```"), is_code("Run print(1).")
    (True, False)
    """
    return bool(_FENCE.match(sentence))


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
    """(start, end) offsets of each sentence in ``text``; ``text[s:e]`` is the sentence.

    A fenced code block is one span, never split (its periods end no sentence).
    """
    spans: list[tuple[int, int]] = []
    pos = 0
    for c_start, c_end in _code_regions(text):
        spans.extend((pos + s, pos + e) for s, e in _prose_spans(text[pos:c_start]))
        spans.append((c_start + len(text[c_start:c_end]) - len(text[c_start:c_end].lstrip()), c_end))
        pos = c_end
    spans.extend((pos + s, pos + e) for s, e in _prose_spans(text[pos:]))
    return spans


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) of each sentence of ``text`` (code blocks whole), as :func:`split_sentences`."""
    return _sentence_spans(text)


def _prose_spans(text: str) -> list[tuple[int, int]]:
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

def _claim(sentence: str) -> Bag:
    return bag(strip_markers(sentence), code=is_code(sentence))


def _sources(hits: list[Hit], flags: list[list[Flag]] | None, window: int | None) -> list[SourceText]:
    # Only the chunk text supports a claim: an answer that merely echoes the source header
    # ("[1] Shipping — Delivery times", seen from the 0.5B model) must not count as
    # supported; nor may the source's instruction-like or self-vouching spans.
    flags = scan_hits([h.chunk.text for h in hits]) if flags is None else flags
    return [SourceText.of(support_text(h.chunk.text, f), window) for h, f in zip(hits, flags, strict=True)]


def _best_quote(chunk_text: str, claim_words: frozenset[str]) -> str:
    """The chunk sentence sharing most words with the claim (verbatim; first on ties)."""
    best, best_key = "", (-1, -1.0)
    for s, e in _sentence_spans(chunk_text):
        words = bag(strip_markers(chunk_text[s:e])).words
        common = len(words & claim_words)
        key = (common, common / (len(words) or 1))
        if key > best_key:
            best, best_key = chunk_text[s:e], key
    return best


def _makes_claim(claim: Bag, cited: bool, code: bool = False) -> bool:
    """"[2]" alone or "Yes [1]." states nothing; uncited filler ("Sure!") is not checked,
    but any sentence naming code is (an invented API is a claim however short). A code
    block without a name to check ("pip install pytest") is filler: shown only beside a
    supported claim."""
    if claim.names:
        return True
    if code:
        return False
    if not claim.words:
        return False
    return cited or len(claim.words) >= _MIN_CLAIM_WORDS


def check_answer(text: str, hits: list[Hit], *, threshold: float = 0.5, window: int | None = 3,
                 flags: list[list[Flag]] | None = None) -> tuple[list[Citation], list[SentenceCheck]]:
    """Map the answer's [n] markers to ``hits`` and check each sentence (rules: module doc).

    Returns one :class:`Citation` per distinct in-range ``n`` in order of first appearance
    (``supported`` = every sentence citing it was supported) and one :class:`SentenceCheck`
    per claim-making sentence. ``flags`` are :func:`ragtune.generate.injection.scan_hits`
    of the hits (computed when not given); ``window`` is how many consecutive source
    sentences one claim may draw on (None: the whole chunk).
    """
    if not 0.0 <= threshold <= 1.0:
        raise ConfigError(f"citation threshold must be 0..1, got {threshold}")
    sources = _sources(hits, flags, window)
    checks: list[SentenceCheck] = []
    claims_by_n: dict[int, list[tuple[Bag, bool]]] = {}
    for sentence in split_sentences(text):
        if is_refusal(sentence) and not is_code(sentence):
            continue
        claim = _claim(sentence)
        cited = () if is_code(sentence) else parse_markers(sentence)
        if not _makes_claim(claim, bool(cited), is_code(sentence)):
            continue
        if cited:
            valid = [n for n in cited if 1 <= n <= len(hits)]
            value = max((score(claim, sources[n - 1]) for n in valid), default=0.0)
            supported = len(valid) == len(cited) and value >= threshold
            for n in valid:
                claims_by_n.setdefault(n, []).append((claim, supported))
        elif is_code(sentence):
            # A code block is checked for its names only: each must be in some source.
            value = 1.0 if all(any(s.has_name(n) for s in sources) for n in claim.names) else 0.0
            supported = value == 1.0
        else:
            value = max((score(claim, s) for s in sources), default=0.0)
            supported = value >= threshold
        checks.append(SentenceCheck(text=sentence, cited=cited, supported=supported,
                                    score=round(value, 4)))
    citations = []
    for n, claims in claims_by_n.items():
        hit = hits[n - 1]
        words = frozenset().union(*(c.words for c, _ in claims))
        citations.append(Citation(
            n=n, document=hit.document, section=hit.chunk.section, chunk_id=hit.chunk.id,
            quote=_best_quote(sources[n - 1].text, words),
            supported=all(ok for _, ok in claims),
        ))
    return citations, checks


def attribute_uncited(text: str, hits: list[Hit], *, threshold: float = 0.5, window: int | None = 3,
                      flags: list[list[Flag]] | None = None) -> tuple[str, list[str]]:
    """Add a ``[n]`` marker to each uncited claim that one retrieved source supports.

    Small models often answer from the sources but forget the markers. Rather than show an
    answer without citations, each uncited sentence is attributed to the source that
    supports it best, if that support reaches ``threshold`` (the same test as
    :func:`check_answer`); sentences no source supports stay uncited and are flagged by
    it. Code blocks never get a marker (it would break the code). Returns the new text and
    the sentences that were attributed (for the trace).

    >>> from ragtune.types import Chunk, Hit
    >>> h = Hit(Chunk("c1", "d", "Returns are accepted within 30 days.", "Returns", 0, 6), 1.0, "r.md", "R")
    >>> attribute_uncited("Returns are accepted within 30 days.", [h])[0]
    'Returns are accepted within 30 days [1].'
    """
    sources = _sources(hits, flags, window)
    attributed: list[str] = []
    out = text
    for sentence in split_sentences(text):
        if is_code(sentence) or parse_markers(sentence) or is_refusal(sentence):
            continue
        claim = _claim(sentence)
        if not _makes_claim(claim, False) or not sources:
            continue
        scores = [score(claim, s) for s in sources]
        best = max(range(len(scores)), key=lambda i: scores[i])
        if scores[best] < threshold:
            continue
        marked = add_marker(sentence, best + 1)
        out = out.replace(sentence.rstrip(), marked, 1)
        attributed.append(sentence.strip())
    return out, attributed


def add_marker(sentence: str, n: int) -> str:
    """``sentence`` with `` [n]`` before its final punctuation.

    >>> add_marker("Returns take 30 days.", 2), add_marker("See `app()`", 1)
    ('Returns take 30 days [2].', 'See `app()` [1]')
    """
    stripped = sentence.rstrip()
    end = len(stripped.rstrip(".!?"))
    return f"{stripped[:end]} [{n}]{stripped[end:]}"
