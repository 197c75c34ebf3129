"""Cut a Document into token-bounded, heading-aware chunks with stable ids.

Rules, in order of importance:

1. A chunk never spans two sections, so its ``section`` label (``"Returns > Exceptions"``)
   says exactly where its text came from.
2. Every chunk has at most ``max_tokens`` tokens by ``count_tokens``. Long sections are cut
   at paragraph breaks, then line breaks, then sentence ends, then spaces, and only as a
   last resort inside a word (base64 blobs, URLs).
3. Consecutive chunks of one section share about ``overlap`` tokens: the next chunk starts
   with the previous chunk's tail, cut at a word start. The chunk text is always a verbatim
   slice of the section text.
4. Ids are ``Chunk.make_id(doc.id, section_label, text)``, so a chunk whose section and text
   did not change keeps its id (and its embedding) when other parts of the document change.
   The k-th repeat (k >= 1) of an identical (section, text) pair in one document hashes
   ``text + "\\x00#k"`` instead, so duplicates get distinct, deterministic ids.

The title is not put into ``chunk.text`` (the store keeps it); :func:`chunk_embedding_text`
adds title and section when a chunk is embedded.

>>> from ragtune.types import Document, Section
>>> doc = Document("faq.md", "FAQ", (Section(("FAQ", "Refunds"), "Refunds take 5 days."),))
>>> [c.text for c in chunk_document(doc)]
['Refunds take 5 days.']
>>> chunk_embedding_text(chunk_document(doc)[0], "FAQ")
'FAQ > Refunds\\n\\nRefunds take 5 days.'
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable

from ragtune.types import Chunk, Document

__all__ = ["TokenCounter", "approx_tokens", "chunk_document", "chunk_embedding_text", "split_text"]

TokenCounter = Callable[[str], int]

_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af]")
# Punctuation is deleted by str.translate and counted by the length difference: on these
# CPUs that is several times faster than a regex findall, and counting runs on every chunk.
_PUNCT = {ord(c): None for c in "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~«»“”‘’–—…·•¿¡。、，！？：；（）"}


def approx_tokens(text: str) -> int:
    """Fast estimate of subword tokens (WordPiece/BPE) without loading a tokenizer.

    1.3 per whitespace-separated word (common words are one piece, rarer ones two or
    three), 1 per punctuation mark, 1 per CJK character, plus one per 6 characters of words
    longer than 24 (ids, URLs, base64), which real tokenizers shred. Pass a real
    tokenizer's counter to :func:`chunk_document` when exact bounds matter.

    >>> approx_tokens("Refunds take five days.")
    6
    >>> approx_tokens("")
    0
    """
    words = text.split()
    if not words:
        return 0
    extra = len(text) - len(text.translate(_PUNCT))
    if max(map(len, words)) > 24:  # rare: skip the Python-level loop in the common case
        extra += sum(len(w) // 6 for w in words if len(w) > 24)
    if not text.isascii():
        extra += len(_CJK.findall(text))
    return max(1, round(len(words) * 1.3 + extra))


# Split levels, coarsest first: each regex matches the separators between pieces.
_LEVELS = (
    re.compile(r"\n[ \t]*\n\s*"),  # paragraphs
    re.compile(r"\n\s*"),  # lines (keeps code and tables line-whole)
    re.compile(r"(?<=[.!?])\s+|(?<=[.!?][\"')\]])\s+|(?<=[。！？])"),  # sentences
    re.compile(r"\s+"),  # words
)
_SENTENCE_START = re.compile(r"(?<=[.!?])\s+(?=\S)")
# No token of any tokenizer we bound chunks with covers more characters than this (WordPiece
# gives up on words over 100 characters, but such words are rare in text worth chunking).
# A span longer than ``budget * _MAX_CHARS_PER_TOKEN`` is therefore cut without being
# counted: counting is what costs (a tokenizer asked to count a whole 40 MB section holds
# every token of it in memory), and no call then sees more than a few chunks' worth of text,
# so chunking stays linear in the input. Where the guess is wrong the only cost is a cut at
# a finer level than needed; every chunk is still counted before it is emitted.
_MAX_CHARS_PER_TOKEN = 32

Span = tuple[int, int]


def chunk_document(
    doc: Document,
    *,
    max_tokens: int = 400,
    overlap: int = 40,
    count_tokens: TokenCounter | None = None,
) -> list[Chunk]:
    """Chunks of ``doc`` in document order, ``ordinal`` 0..n-1, each ≤ ``max_tokens``.

    ``count_tokens`` defaults to :func:`approx_tokens`; pass the embedding model's own
    counter (e.g. ``lambda s: len(tok.encode(s, add_special_tokens=False))``) for exact
    bounds. Same document in, same chunks and ids out.
    """
    if max_tokens < 1:
        raise ValueError(f"max_tokens must be >= 1, got {max_tokens}")
    if not 0 <= overlap or overlap * 2 >= max_tokens:
        raise ValueError(f"overlap must be 0..{(max_tokens - 1) // 2}, got {overlap}")
    count = count_tokens or approx_tokens
    seen: Counter[tuple[str, str]] = Counter()
    chunks: list[Chunk] = []
    for section in doc.sections:
        label = section.label
        for text, tokens in split_text(section.text, max_tokens, overlap, count):
            repeat = seen[(label, text)]
            seen[(label, text)] += 1
            id_text = text if repeat == 0 else f"{text}\x00#{repeat}"
            chunks.append(
                Chunk(
                    id=Chunk.make_id(doc.id, label, id_text),
                    doc_id=doc.id,
                    text=text,
                    section=label,
                    ordinal=len(chunks),
                    tokens=tokens,
                    page=section.page,
                )
            )
    return chunks


def chunk_embedding_text(chunk: Chunk, title: str) -> str:
    """The string to embed for a chunk: ``"title > section\\n\\ntext"``.

    Title and heading path give a short chunk the context its words lack ("Exceptions" is
    about returns). The title is not repeated when the section path already starts with it.

    >>> c = Chunk("ch_1", "doc_1", "No gift cards.", "Returns > Exceptions", 0, 4)
    >>> chunk_embedding_text(c, "Returns")
    'Returns > Exceptions\\n\\nNo gift cards.'
    >>> chunk_embedding_text(c, "Policies")
    'Policies > Returns > Exceptions\\n\\nNo gift cards.'
    """
    section, title = chunk.section.strip(), title.strip()
    if title and (section == title or section.startswith((title + " > ", title + " (p."))):
        head = section
    else:
        head = " > ".join(p for p in (title, section) if p)
    return f"{head}\n\n{chunk.text}" if head else chunk.text


def split_text(
    text: str, max_tokens: int, overlap: int, count: TokenCounter
) -> list[tuple[str, int]]:
    """Cut one section's text into ``(chunk_text, tokens)`` pairs (rules 2 and 3 above).

    >>> split_text("Alpha beta gamma. Delta epsilon zeta.", 8, 3, approx_tokens)
    [('Alpha beta gamma.', 5), ('gamma. Delta epsilon zeta.', 7)]
    """
    # Atoms leave room for the overlap so that every chunk after the first can carry it.
    budget = max_tokens - overlap
    atoms: list[Span] = []
    sizes: list[int] = []
    _atomize(text, _strip(text, 0, len(text)), 0, budget, count, atoms, sizes)
    out: list[tuple[str, int]] = []
    prev: Span | None = None
    i = 0
    while i < len(atoms):
        start = atoms[i][0]
        lead = 0
        if prev is not None and overlap:
            start = _overlap_start(text, prev, overlap, count)
            if start < prev[1]:
                lead = count(text[start : prev[1]])
            else:
                start = atoms[i][0]
        j, est = i, lead + sizes[i]
        while j + 1 < len(atoms) and est + sizes[j + 1] <= max_tokens:
            j += 1
            est += sizes[j]
        # Estimates add per-piece counts; a real tokenizer may count the joined text
        # differently, so check the actual chunk and give back atoms until it fits (the
        # longest fitting run is found by bisection: a chunk may hold hundreds of atoms).
        if j == i and start == atoms[i][0]:
            tokens = sizes[i]
        else:
            j, fit = _longest_fit(text, start, atoms, i, j, max_tokens, count)
            if fit is None:  # overlap + one atom is too big: drop the overlap
                j, start, fit = i, atoms[i][0], sizes[i]
            tokens = fit
        out.append((text[start : atoms[j][1]], tokens))
        prev = (atoms[i][0], atoms[j][1])
        i = j + 1
    return out


def _longest_fit(text: str, start: int, atoms: list[Span], i: int, j: int, max_tokens: int,
                 count: TokenCounter) -> tuple[int, int | None]:
    """The last atom index in ``i..j`` whose chunk ``text[start:atoms[k][1]]`` fits, with its
    count; ``(i, None)`` when even atom ``i`` alone (from ``start``) does not fit."""
    if (tokens := count(text[start : atoms[j][1]])) <= max_tokens:
        return j, tokens
    lo, hi, best = i, j - 1, None  # atoms[j] is known not to fit
    while lo <= hi:
        mid = (lo + hi) // 2
        if (n := count(text[start : atoms[mid][1]])) <= max_tokens:
            lo, best = mid + 1, (mid, n)
        else:
            hi = mid - 1
    return best if best is not None else (i, None)


def _strip(text: str, s: int, e: int) -> Span:
    while s < e and text[s].isspace():
        s += 1
    while e > s and text[e - 1].isspace():
        e -= 1
    return s, e


def _atomize(
    text: str,
    span: Span,
    level: int,
    budget: int,
    count: TokenCounter,
    out: list[Span],
    sizes: list[int],
) -> None:
    """Append spans of ``span`` that each fit ``budget``, cutting as coarsely as possible."""
    s, e = span
    if s >= e:
        return
    if e - s <= budget * _MAX_CHARS_PER_TOKEN and (tokens := count(text[s:e])) <= budget:
        out.append(span)
        sizes.append(tokens)
        return
    if level == len(_LEVELS):
        _hard_split(text, span, budget, count, out, sizes)
        return
    pieces, pos = [], s
    for m in _LEVELS[level].finditer(text, s, e):
        pieces.append(_strip(text, pos, m.start()))
        pos = m.end()
    pieces.append(_strip(text, pos, e))
    if len(pieces) == 1:  # no separator at this level: try the next one
        _atomize(text, span, level + 1, budget, count, out, sizes)
        return
    for piece in pieces:
        _atomize(text, piece, level + 1, budget, count, out, sizes)


def _hard_split(
    text: str, span: Span, budget: int, count: TokenCounter, out: list[Span], sizes: list[int]
) -> None:
    s, e = span
    while s < e:
        lo, hi = 1, min(e - s, budget * _MAX_CHARS_PER_TOKEN)  # longest prefix that fits
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if count(text[s : s + mid]) <= budget:
                lo = mid
            else:
                hi = mid - 1
        if (tokens := count(text[s : s + lo])) > budget:
            raise ValueError(f"max_tokens is too small: one character counts more than {budget}")
        out.append((s, s + lo))
        sizes.append(tokens)
        s += lo


def _overlap_start(text: str, prev: Span, overlap: int, count: TokenCounter) -> int:
    """Where the next chunk starts: the earliest word start in ``prev``'s tail whose text
    up to ``prev``'s end has at most ``overlap`` tokens (a sentence start if one is near)."""
    ps, pe = prev
    window = max(ps, pe - overlap * 24)
    starts = [m.start() for m in re.finditer(r"(?<!\S)\S", text[window:pe])]
    starts = [window + k for k in starts if window + k > ps]
    if not starts:
        return pe
    lo, hi = 0, len(starts)  # first index whose tail fits (tails shrink as k grows)
    while lo < hi:
        mid = (lo + hi) // 2
        if count(text[starts[mid] : pe]) <= overlap:
            hi = mid
        else:
            lo = mid + 1
    if lo == len(starts):
        return pe
    start = starts[lo]
    # Prefer to begin at a sentence start when that keeps at least half the overlap.
    m = _SENTENCE_START.search(text, start, pe)
    if m and m.end() < pe and count(text[m.end() : pe]) * 2 >= overlap:
        return m.end()
    return start
