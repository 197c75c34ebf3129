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
    progress: Callable[[float], None] | None = None,
) -> list[Chunk]:
    """Chunks of ``doc`` in document order, ``ordinal`` 0..n-1, each ≤ ``max_tokens``.

    ``count_tokens`` defaults to :func:`approx_tokens`; pass the embedding model's own
    counter (e.g. ``lambda s: len(tok.encode(s, add_special_tokens=False))``) for exact
    bounds. Same document in, same chunks and ids out. ``progress`` is called with the
    share of the document's text chunked so far (0..1), after each chunk.
    """
    if max_tokens < 1:
        raise ValueError(f"max_tokens must be >= 1, got {max_tokens}")
    if not 0 <= overlap or overlap * 2 >= max_tokens:
        raise ValueError(f"overlap must be 0..{(max_tokens - 1) // 2}, got {overlap}")
    count = count_tokens or approx_tokens
    seen: Counter[tuple[str, str]] = Counter()
    chunks: list[Chunk] = []
    total, before = sum(len(s.text) for s in doc.sections) or 1, 0
    for section in doc.sections:
        label = section.label
        on_chunk = None if progress is None else (
            lambda end, base=before: progress((base + end) / total))
        before += len(section.text)
        for text, tokens in split_text(section.text, max_tokens, overlap, count, on_chunk):
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
    text: str, max_tokens: int, overlap: int, count: TokenCounter,
    on_chunk: Callable[[int], None] | None = None,
) -> list[tuple[str, int]]:
    """Cut one section's text into ``(chunk_text, tokens)`` pairs (rules 2 and 3 above);
    ``on_chunk`` gets the end offset of each chunk as it is cut.

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
        if on_chunk is not None:
            on_chunk(atoms[j][1])
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
    if level == len(_LEVELS) - 1:  # words: count runs of words, not every word
        pieces = _word_runs(text, pieces, budget)
    for piece in pieces:
        _atomize(text, piece, level + 1, budget, count, out, sizes)


def _word_runs(text: str, words: list[Span], budget: int) -> list[Span]:
    """Consecutive words joined into runs of about ``budget / 8`` estimated tokens.

    A sentence longer than the budget (a run-on line, a 5 MB file of words without a full
    stop) would otherwise cost a tokenizer call per word; a run is counted once and kept
    whole when it fits, and the chunks built from runs still fill 7/8 of the budget or more.
    """
    runs: list[Span] = []
    target, start, tokens = max(1, budget // 8), None, 0.0
    for ws, we in words:
        if start is None:
            start = ws
        tokens += 1.3 + we - ws - len(text[ws:we].translate(_PUNCT))
        if tokens >= target:
            runs.append((start, we))
            start, tokens = None, 0.0
    if start is not None:
        runs.append((start, words[-1][1]))
    return runs


def _boundary(n: int, ok: Callable[[int], bool], guess: int) -> int:
    """The first k in 0..n with ``ok(k)``, for ``ok`` false then true as k grows (``ok(n)``
    is taken as true and not called). Gallops out from ``guess``, then bisects: a few calls
    when the guess is good, where counting is what costs.

    >>> _boundary(100, lambda k: k >= 37, 40), _boundary(100, lambda k: False, 0)
    (37, 100)
    """
    guess = min(max(guess, 0), n - 1) if n else 0
    if n == 0:
        return 0
    if ok(guess):  # the boundary is at or before the guess: gallop left
        hi, step = guess, 1
        while hi - step >= 0 and ok(hi - step):
            hi, step = hi - step, step * 2
        lo = max(hi - step, -1)
    else:  # gallop right
        lo, step = guess, 1
        while lo + step < n and not ok(lo + step):
            lo, step = lo + step, step * 2
        hi = min(lo + step, n)
    while hi - lo > 1:  # invariant: lo is not ok (or -1), hi is ok (or n)
        mid = (lo + hi) // 2
        if ok(mid):
            hi = mid
        else:
            lo = mid
    return hi


def _hard_split(
    text: str, span: Span, budget: int, count: TokenCounter, out: list[Span], sizes: list[int]
) -> None:
    """Cut a span with no separator (a base64 blob, a URL) into prefixes that fit.

    Each cut is found by interpolation (tokens grow about linearly with characters): a
    probe of about one chunk gives the characters per token, two or three counts land on a
    prefix holding 95-100% of the budget. Only when that fails does it bisect for the
    longest prefix that fits.
    """
    s, e = span
    chars_per_token = 0.0  # learnt from the previous cut: the next one needs no probe
    while s < e:
        hi = min(e - s, budget * _MAX_CHARS_PER_TOKEN)
        if not chars_per_token:
            tokens = count(text[s : s + min(hi, budget * 4)])
            if hi <= budget * 4 and tokens <= budget:
                out.append((s, s + hi))
                sizes.append(tokens)
                s += hi
                continue
            chars_per_token = min(hi, budget * 4) / max(tokens, 1)
        best, best_tokens, too_long = 0, 0, hi + 1
        length = min(hi, max(1, int(chars_per_token * budget * 0.98)))
        for _ in range(6):
            tokens = count(text[s : s + length])
            if tokens <= budget:
                best, best_tokens = length, tokens
                if tokens >= budget * 0.95 or length == hi:
                    break
            else:
                too_long = length
            step = int(length * budget * 0.98 / max(tokens, 1))
            length = min(max(step, best + 1), too_long - 1, hi)
            if length <= best:
                break
        if best == 0:  # interpolation found nothing that fits: bisect
            k = _boundary(hi, lambda k, s=s, hi=hi: count(text[s : s + hi - k]) <= budget,
                          hi - 1)
            best = hi - k
            if best < 1 or (best_tokens := count(text[s : s + best])) > budget:
                raise ValueError(
                    f"max_tokens is too small: one character counts more than {budget}")
        out.append((s, s + best))
        sizes.append(best_tokens)
        chars_per_token = best / max(best_tokens, 1)
        s += best


def _first_fitting_tail(text: str, starts: list[int], end: int, overlap: int,
                        count: TokenCounter) -> int:
    """The first index k whose tail ``text[starts[k]:end]`` has at most ``overlap`` tokens
    (tails shrink as k grows), or ``len(starts)``; the search starts at a guess from
    :func:`approx_tokens`' rule (see :func:`_boundary`). Same answer as a bisection."""
    n = len(starts)
    guess, tokens = n, 0.0  # walk back over words while the estimate fits
    while guess > 0:
        word = text[starts[guess - 1] : starts[guess] if guess < n else end]
        tokens += 1.3 + len(word) - len(word.translate(_PUNCT))  # approx_tokens' rule
        if tokens > overlap:
            break
        guess -= 1
    return _boundary(n, lambda k: count(text[starts[k] : end]) <= overlap, guess)


def _overlap_start(text: str, prev: Span, overlap: int, count: TokenCounter) -> int:
    """Where the next chunk starts: the earliest word start in ``prev``'s tail whose text
    up to ``prev``'s end has at most ``overlap`` tokens (a sentence start if one is near)."""
    ps, pe = prev
    window = max(ps, pe - overlap * 24)
    starts = [m.start() for m in re.finditer(r"(?<!\S)\S", text[window:pe])]
    starts = [window + k for k in starts if window + k > ps]
    if not starts:
        return pe
    lo = _first_fitting_tail(text, starts, pe, overlap, count)
    if lo == len(starts):
        return pe
    start = starts[lo]
    # Prefer to begin at a sentence start when that keeps at least half the overlap.
    m = _SENTENCE_START.search(text, start, pe)
    if m and m.end() < pe and count(text[m.end() : pe]) * 2 >= overlap:
        return m.end()
    return start
