"""Does a source support a claim? Content words, numbers and code names, sentence by sentence.

:mod:`ragtune.generate.citations` splits an answer and reads its markers; this module scores
one claim against one source. The rules (also in the citations module doc):

* Content words are lowercased words minus stopwords, lightly stemmed, plus numbers in
  canonical form (``1,000`` → ``1000``, ``thirty`` → ``30``).
* A claim is scored against *windows* of a few consecutive source sentences (3 by default),
  not the whole chunk: words scattered over a long passage do not add up to support for a
  sentence that no part of the passage states.
* A number the window lacks makes the score 0 ("45 days" is never supported by "30 days"),
  and an amount needs the same currency or percent sign ("$1945" is not the year 1945).
* A *code name* the source lacks makes the score 0: names in inline code or fenced code,
  dotted names (``typer.Spinner``), calls (``launch(``), keyword arguments (``secret=``),
  decorators and ``--options`` must each occur verbatim in the source. An invented API
  never borrows support from a loosely related sentence.
* Polarity must agree, clause by clause: a claim without a negation is not supported by a
  window where one of its words occurs only in negated clauses ("can be refunded" vs
  "final sale and cannot be refunded"); a negated claim needs a negated clause that shares
  one of its words.
* Only the source's own text counts, minus its instruction-like and self-vouching spans
  (:func:`ragtune.generate.injection.support_text`).

>>> src = SourceText.of("Use typer.launch() to open a URL. It opens the default browser.")
>>> score(claim_bag("Call typer.launch to open a URL in the browser."), src) >= 0.5
True
>>> score(claim_bag("Call typer.open_url to open a URL."), src)
0.0
>>> score(claim_bag("Gift cards can be refunded."), SourceText.of("Gift cards cannot be refunded."))
0.0
>>> score(claim_bag("The film's budget was $1945."), SourceText.of("A 1945 film with a budget."))
0.0
"""

from __future__ import annotations

import builtins
import keyword
import re
from dataclasses import dataclass
from functools import lru_cache
from itertools import pairwise

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
STOPWORDS = frozenset(_STOPWORD_TEXT.split())

_NUMBER_WORDS = {"two": "2", "three": "3", "four": "4", "five": "5", "six": "6", "seven": "7",
                 "eight": "8", "nine": "9", "ten": "10", "eleven": "11", "twelve": "12",
                 "fifteen": "15", "twenty": "20", "thirty": "30", "forty": "40", "fifty": "50",
                 "sixty": "60", "ninety": "90", "hundred": "100"}

_NUM = re.compile(r"\d+(?:[.,:]\d+)*")
_CURRENCY = frozenset("$€£¥")
_NEGATION = re.compile(r"\b(?:not|no|never|cannot|nor|neither|none|without|nothing|non)\b|n't\b|n’t\b")
_WORD = re.compile(r"[a-z]+(?:'[a-z]+)?")

# Code names: what must be in the source verbatim.
_URL = re.compile(r"https?://\S+")
_INLINE = re.compile(r"`([^`\n]+)`")
_DOTTED = re.compile(r"(?<![\w.])([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+)")
_CALL = re.compile(r"(?<![\w.])([A-Za-z_]\w*)\(")  # "launch(", not "Derrickson (born"
_KWARG = re.compile(r"(?:^|[(,\s])([A-Za-z_]\w*)\s*=(?!=)")
_OPTION = re.compile(r"(?<![\w-])(--[a-z][\w-]+)")
_DECORATOR = re.compile(r"(?<![\w])@([A-Za-z_][\w.]*)")
_DEFINED = re.compile(r"\b(?:def|class)\s+([A-Za-z_]\w*)|\bfor\s+([A-Za-z_]\w*)\s+in\b"
                      r"|\bas\s+([A-Za-z_]\w*)|^\s*([A-Za-z_]\w*)\s*(?::[^=\n]*)?=(?!=)", re.MULTILINE)
_PARAMS = re.compile(r"\bdef\s+\w+\s*\(([^)]*)\)", re.DOTALL)
# Names any answer may use without a source naming them: Python's builtins and keywords,
# everyday methods, and placeholder words. Everything else must be in the source.
_EVERYDAY = """
self cls main args kwargs append extend items keys values get format join split strip lower
upper replace read write open close startswith endswith exists mkdir name stem suffix parent
is_file is_dir path python pip install run app cli example foo bar baz value text data file
py md txt json com org www http https localhost
"""
_COMMON = frozenset(dir(builtins)) | frozenset(keyword.kwlist) | frozenset(_EVERYDAY.split())
_MIN_NAME = 3


def stem(word: str) -> str:
    """Tiny, consistent suffix stripping: what matters is that both sides stem alike.

    >>> stem("returns"), stem("returned"), stem("policies")
    ('return', 'return', 'policy')
    """
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


def canonical_number(raw: str) -> str:
    """``1,000`` → ``1000``; ``3.50`` → ``3.5``; ``007`` → ``7``."""
    if re.fullmatch(r"\d{1,3}(?:,\d{3})+(?:\.\d+)?", raw):
        raw = raw.replace(",", "")
    if re.fullmatch(r"\d+", raw):
        return str(int(raw))
    if re.fullmatch(r"\d+\.\d+", raw):
        whole, frac = raw.split(".")
        frac = frac.rstrip("0")
        return f"{int(whole)}.{frac}" if frac else str(int(whole))
    return raw


def code_names(text: str, *, code: bool = False) -> frozenset[str]:
    """Names of code a text relies on: in inline code everywhere, and (``code=True``, a
    fenced block) in the whole text, minus names the snippet defines itself. A dotted name
    stays whole (``typer.Exit``): :meth:`SourceText.has_name` matches its last two parts.

    >>> sorted(code_names("Use `typer.Option(prompt=True)` or run `app --help`."))
    ['--help', 'prompt', 'typer.Option']
    >>> sorted(code_names("def main(name: str):\\n    typer.echo(name)", code=True))
    ['typer.echo']
    """
    pieces = [text] if code else _INLINE.findall(text)
    if not code:  # calls and dotted names in prose count too ("call typer.launch()")
        prose = _URL.sub(" ", _INLINE.sub(" ", text))
        pieces += [m.group() for m in _DOTTED.finditer(prose)]
        pieces += [m.group() for m in _CALL.finditer(prose)]
        pieces += _OPTION.findall(prose)
    defined: set[str] = set()
    if code:
        for m in _DEFINED.finditer(text):
            defined.update(g for g in m.groups() if g)
        for params in _PARAMS.findall(text):
            defined.update(re.findall(r"([A-Za-z_]\w*)\s*(?::|=|,|$)", params))
    names: set[str] = set()
    for piece in pieces:
        piece = _URL.sub(" ", piece)
        for m in _DOTTED.finditer(piece):
            parts = m.group().split(".")
            if parts[0] in defined or parts[0] in _COMMON:
                parts = parts[1:]  # "app.command" with a local app: "command" must be known
            if len(parts) > 1:
                names.add(".".join(parts))
            elif parts:
                names.add(parts[0])
        names.update(_CALL.findall(piece))
        names.update(_KWARG.findall(piece))
        names.update(_OPTION.findall(piece))
        for dec in _DECORATOR.findall(piece):
            names.add(dec)
        bare = piece.strip()
        if not code and re.fullmatch(r"[A-Za-z_]\w*", bare):
            # A bare `name` in backticks: an identifier must be shown as code, a plain word
            # (`password`) only needs to be in the source (prefix "~": matched loosely).
            names.add(bare if _IDENTIFIER_LIKE.search(bare) else "~" + bare)
    return frozenset(n for n in names if (n.startswith("--") or "." in n or len(n.lstrip("~")) >= _MIN_NAME)
                     and n.lstrip("~") not in _COMMON and n.lstrip("~") not in defined)


def _source_names(text: str) -> tuple[frozenset[str], frozenset[str]]:
    """Code names a source shows (anywhere in its text, code or inline) and the pairs of
    consecutive parts of its dotted names (``typer.Exit``, ``ctx.args``)."""
    names: set[str] = set()
    pairs: set[str] = set()
    for m in _DOTTED.finditer(_URL.sub(" ", text)):
        parts = m.group().split(".")
        names.update(parts)
        pairs.update(f"{a}.{b}" for a, b in pairwise(parts))
    names.update(_CALL.findall(text))
    names.update(_KWARG.findall(text))
    names.update(re.findall(r"\b(?:def|class)\s+([A-Za-z_]\w*)", text))
    for piece in _INLINE.findall(text):
        names.update(re.findall(r"[A-Za-z_]\w*", piece))
    return frozenset(names), frozenset(pairs)


_IDENTIFIER_LIKE = re.compile(r"^--|_|\d|[a-z][A-Z]")  # hide_input, utf8, camelCase, --force


@dataclass(frozen=True)
class Bag:
    """What a claim (or a source window) states: content words, numbers, code names."""

    words: frozenset[str]  # stemmed content words, numbers included
    numbers: frozenset[str]
    names: frozenset[str] = frozenset()
    negated: bool = False


def bag(text: str, *, code: bool = False) -> Bag:
    """The :class:`Bag` of ``text`` (markers already stripped)."""
    names = code_names(text, code=code)
    lower = text.lower()
    numbers = set()
    for m in _NUM.finditer(lower):
        value = canonical_number(m.group())
        numbers.add(value)
        # An amount keeps its currency or percent: "$1945" is not the year "1945".
        before, after = lower[max(0, m.start() - 1):m.start()], lower[m.end():m.end() + 1]
        if before in _CURRENCY:
            numbers.add(before + value)
        if after == "%":
            numbers.add(value + "%")
    words: set[str] = set()
    for w in _WORD.findall(_NUM.sub(" ", lower)):
        if w in _NUMBER_WORDS:
            numbers.add(_NUMBER_WORDS[w])
        elif w not in STOPWORDS and len(w) > 1:
            words.add(stem(w))
    return Bag(frozenset(words | numbers), frozenset(numbers), names, bool(_NEGATION.search(lower)))


def claim_bag(text: str, *, code: bool = False) -> Bag:
    """Alias of :func:`bag` that reads better at call sites checking an answer sentence."""
    return bag(text, code=code)


# Clause breaks: a comma, semicolon or colon before a space ("87,360" and "8:30" stay whole).
_CLAUSE = re.compile(r"[,;:](?=\s)|\b(?:and|but|while|whereas|although|though|or)\b", re.IGNORECASE)
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n\s*\n|\n(?=\s*[-*#|>]|\s*\d+[.)]\s)")


@dataclass(frozen=True)
class SourceText:
    """One source prepared for scoring: its text and the bags of its sentence windows."""

    text: str
    windows: tuple[tuple[Bag, ...], ...]  # the sentence bags of each window
    whole: Bag
    names: frozenset[str] = frozenset()
    pairs: frozenset[str] = frozenset()

    @classmethod
    def of(cls, text: str, window: int | None = 3) -> SourceText:
        return _source(text, window)

    def has_name(self, name: str) -> bool:
        """Whether the source shows the code name: a dotted name by its last two parts
        (``runner.invoke``, not just ``invoke`` somewhere in prose), another name as a code
        name of the source, or verbatim when it cannot be an English word (``hide_input``,
        ``--force``). "terminate" in a sentence does not make ``typer.terminate()`` real."""
        if name.startswith("~"):
            return name[1:] in self.names or _has_name(self.text, name[1:])
        if "." in name:
            return ".".join(name.split(".")[-2:]) in self.pairs
        if name in self.names:
            return True
        return bool(_IDENTIFIER_LIKE.search(name)) and _has_name(self.text, name)


@lru_cache(maxsize=8192)
def _has_name(text: str, name: str) -> bool:
    return re.search(r"(?<![\w-])" + re.escape(name) + r"(?![\w])", text) is not None


@lru_cache(maxsize=2048)
def _source(text: str, window: int | None) -> SourceText:
    whole = bag(text)
    sentences = [s for s in _SENTENCE_END.split(text) if s and s.strip()]
    # One bag per clause: negation is judged where it is, not anywhere in the sentence.
    bags = tuple(bag(c) for s in sentences for c in _CLAUSE.split(s) if c and c.strip()) or (whole,)
    names, pairs = _source_names(text)
    if window is None:
        return SourceText(text, (bags,), whole, names, pairs)
    # A window of `window` sentences, as clause bags: consecutive sentences' clauses.
    starts = [0]
    for sent in sentences:
        starts.append(starts[-1] + sum(1 for c in _CLAUSE.split(sent) if c and c.strip()))
    if len(starts) < 2 or starts[-1] != len(bags):
        starts = [0, len(bags)]
    n = len(starts) - 1
    windows = tuple(bags[starts[i]:starts[min(n, i + window)]] for i in range(max(1, n - window + 1)))
    return SourceText(text, windows, whole, names, pairs)


def score(claim: Bag, source: SourceText) -> float:
    """Share of the claim's content words found in the best window of ``source``; 0 when
    a number of the claim is in no window with the words, or a code name is not in the
    source at all (rules: module doc)."""
    if any(not source.has_name(n) for n in claim.names):
        return 0.0
    best = 0.0
    for sentences in source.windows:
        words = frozenset().union(*(b.words for b in sentences))
        if claim.numbers - frozenset().union(*(b.numbers for b in sentences)):
            continue
        if not claim.words:
            return 1.0
        negated = frozenset().union(*(b.words for b in sentences if b.negated))
        plain = frozenset().union(*(b.words for b in sentences if not b.negated))
        if not claim.negated and claim.words & (negated - plain):
            continue  # "can be refunded" is not what "cannot be refunded" says
        if claim.negated and not claim.words & negated:
            continue
        best = max(best, len(claim.words & words) / len(claim.words))
    return best

