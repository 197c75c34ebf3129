"""Show an answer only as far as its sources support it: the claim gate.

A model's reply streams in; :class:`ClaimGate` releases it sentence by sentence, each only
after its check (:func:`ragtune.generate.citations.check_answer`). With ``unsupported =
"remove"`` (the default) a sentence no source supports is never shown; with ``"flag"`` it is
shown and listed in ``Answer.unsupported``. Filler ("Here is how:") waits for the next
supported claim and is dropped if none comes. An uncited but supported sentence gets the
marker of the source that supports it; a code block is shown whole, never marked.

When the reply is over (:meth:`ClaimGate.finish`):

* a last sentence cut off by the token limit (``finish_reason == "length"``) is not shown;
* if no claim survived but the model tried to answer, the extractive fallback quotes the
  source sentence that answers the question (:func:`ragtune.generate.extract.best_quote`),
  else the answer is the refusal sentence.

Both edges (CLI and server) stream through ``on_token``, so both show checked text only.

>>> from ragtune.types import Chunk, Hit
>>> h = Hit(Chunk("c1", "d", "Returns are accepted within 30 days.", "Returns", 0, 6), 1.0, "r.md", "R")
>>> shown = []
>>> gate = ClaimGate("How long do returns take?", [h], emit=shown.append)
>>> for piece in ["Returns are accepted ", "within 30 days. ", "Shipping is free worldwide."]:
...     gate.feed(piece)
>>> result = gate.finish()
>>> "".join(shown), result.removed
('Returns are accepted within 30 days [1].', ['Shipping is free worldwide.'])
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from ragtune.generate.citations import (
    add_marker,
    attribute_uncited,
    check_answer,
    is_code,
    is_refusal,
    sentence_spans,
)
from ragtune.generate.extract import best_quote
from ragtune.generate.injection import Flag, scan_hits
from ragtune.generate.prompts import NOT_FOUND_TEXT
from ragtune.types import Hit

UNSUPPORTED_POLICIES = ("remove", "flag")
FALLBACKS = ("quote", "refuse")
_ENDS = (".", "!", "?", "]", ")", "```", "~~~", ":", '"', "'", "”", "’")


@dataclass
class GateResult:
    """What the gate showed and why: the text, and the trace's account of the rest."""

    text: str
    refused: bool
    removed: list[str] = field(default_factory=list)
    attributed: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    fallback: str | None = None  # the quoted sentence, when the extractive fallback answered


class ClaimGate:
    """Releases a streamed reply sentence by sentence, each after its check (module doc)."""

    def __init__(self, question: str, hits: list[Hit], *, emit: Callable[[str], None] | None = None,
                 flags: list[list[Flag]] | None = None, threshold: float = 0.5,
                 window: int | None = 3, unsupported: str = "remove",
                 fallback: str = "quote", max_sentences: int = 0) -> None:
        if unsupported not in UNSUPPORTED_POLICIES:
            raise ValueError(f"unsupported must be one of {UNSUPPORTED_POLICIES}, got {unsupported!r}")
        if fallback not in FALLBACKS:
            raise ValueError(f"fallback must be one of {FALLBACKS}, got {fallback!r}")
        self.question = question
        self.hits = hits
        self.flags = scan_hits([h.chunk.text for h in hits]) if flags is None else flags
        self.emit = emit
        self.threshold = threshold
        self.window = window
        self.unsupported = unsupported
        self.fallback = fallback
        self.max_sentences = max_sentences  # 0: no limit
        self._buffer = ""
        self._done = 0  # buffer offset up to which sentences were decided
        self._shown: list[str] = []
        self._pending: list[str] = []  # filler and hedges waiting for a shown claim
        self._claims = 0  # claims shown
        self._tried = 0  # claims made (shown or not)
        self._refusal = False
        self.result = GateResult("", False)

    # ------------------------------------------------------------------ streaming
    @property
    def enough(self) -> bool:
        """The answer has ``max_sentences`` shown claims: the rest of the reply is not needed
        (the caller may stop generating: brief answers, and no time spent on rambling)."""
        return bool(self.max_sentences) and self._claims >= self.max_sentences

    def feed(self, piece: str) -> None:
        """Add streamed text; decide every sentence that is now complete."""
        self._buffer += piece
        spans = [s for s in sentence_spans(self._buffer) if s[0] >= self._done]
        for span in spans[:-1]:  # the last one may still grow
            if self.enough:
                return
            self._decide(*span)

    def finish(self, *, truncated: bool = False) -> GateResult:
        """Decide the rest; ``truncated``: generation stopped at the token limit."""
        spans = [s for s in sentence_spans(self._buffer) if s[0] >= self._done]
        if self.enough:
            if spans:
                self.result.notes.append(f"stopped after {self.max_sentences} supported sentences "
                                         "(answer.max_sentences): the rest of the reply was not used")
            spans = []
        for i, (start, end) in enumerate(spans):
            last = i == len(spans) - 1
            sentence = self._buffer[start:end]
            if last and truncated and not self._complete(sentence):
                self.result.notes.append(
                    "the answer reached generation.max_tokens mid-sentence; the unfinished "
                    f"sentence was not shown: {sentence.strip()[:200]!r}")
                self._done = end
                continue
            self._decide(start, end)
        if self._claims == 0:
            self._conclude_without_claims()
        self.result.text = "".join(self._shown).strip()
        return self.result

    # ------------------------------------------------------------------ decisions
    @staticmethod
    def _complete(sentence: str) -> bool:
        s = sentence.rstrip()
        if is_code(s):
            lines = s.splitlines()
            return len(lines) > 1 and lines[-1].strip().startswith(("```", "~~~"))
        return s.endswith(_ENDS)

    def _show(self, piece: str) -> None:
        if not self._shown:
            piece = piece.lstrip()
        self._shown.append(piece)
        if self.emit is not None and piece:
            self.emit(piece)

    def _decide(self, start: int, end: int) -> None:
        sep, sentence = self._buffer[self._done:start], self._buffer[start:end]
        self._done = end
        if not is_code(sentence) and is_refusal(sentence):
            self._refusal = True
            self._pending.append(sep + sentence)
            return
        _, checks = check_answer(sentence, self.hits, threshold=self.threshold,
                                 window=self.window, flags=self.flags)
        if not checks:  # filler: shown with the next supported claim, if one comes
            self._pending.append(sep + sentence)
            return
        self._tried += 1
        check = checks[0]
        if check.supported and not check.cited and not is_code(sentence):
            marked, attributed = attribute_uncited(sentence, self.hits, threshold=self.threshold,
                                                   window=self.window, flags=self.flags)
            if attributed:
                self.result.attributed.append(sentence.strip())
                sentence = marked
        if not check.supported and self.unsupported == "remove":
            self.result.removed.append(sentence.strip())
            return
        for held in self._pending:
            self._show(held)
        self._pending.clear()
        self._show(sep + sentence)
        self._claims += 1

    def _conclude_without_claims(self) -> None:
        self._pending.clear()
        quote = None
        if self._tried and self.fallback == "quote":
            quote = best_quote(self.question, self.hits, flags=self.flags)
        if quote is not None:
            n, sentence = quote
            self.result.fallback = sentence
            self.result.notes.append(
                f"extractive fallback: no sentence of the model's answer was supported by the "
                f"sources; quoted source [{n}] instead")
            self._show(add_marker(sentence, n))
            return
        self.result.refused = True
        if self._tried:
            self.result.notes.append("refused: no sentence of the model's answer was supported "
                                     "by the sources, and no source sentence answers the question")
        self._show(NOT_FOUND_TEXT)
