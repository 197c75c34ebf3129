"""Extractive fallback: the source sentence that answers a question, quoted verbatim.

When a model's answer has no sentence its sources support, showing nothing wastes a good
retrieval, and showing the answer shows an invention. A sentence *quoted* from a source is
supported by construction; :func:`best_quote` picks the one that shares most of the
question's content words (the source order breaks ties), and only if it shares enough of
them to be about the question at all.

>>> from ragtune.types import Chunk, Hit
>>> h = Hit(Chunk("c1", "d", "The museum opens at 9 am. Tickets cost $12 for adults.", "Visit", 0, 12),
...         1.0, "m.md", "Museum")
>>> best_quote("How much do adult tickets cost at the museum?", [h])
(1, 'Tickets cost $12 for adults.')
>>> best_quote("Who founded the museum?", [h]) is None
True
"""

from __future__ import annotations

from ragtune.generate.citations import split_sentences
from ragtune.generate.injection import Flag, scan_hits, support_text
from ragtune.generate.support import bag

# Question words that carry no topic ("how", "what" are already stopwords).
_ASKING = frozenset({"name", "tell", "explain", "describe", "list", "give", "know", "find",
                     "many", "much", "kind", "type", "year", "long", "far"})


def _topic(question: str) -> frozenset[str]:
    return frozenset(w for w in bag(question).words if w not in _ASKING)


def best_quote(question: str, hits: list, *, flags: list[list[Flag]] | None = None,
               min_overlap: float = 0.5, min_words: int = 2,
               top: int = 3) -> tuple[int, str] | None:
    """``(n, sentence)``: source ``[n]``'s sentence sharing the most of the question's topic
    words (at least ``min_overlap`` of them and ``min_words``), among the first ``top``
    sources; None when no sentence is about the question. Flagged (instruction-like)
    spans are never quoted.
    """
    topic = _topic(question)
    if not topic:
        return None
    flags = scan_hits([h.chunk.text for h in hits]) if flags is None else flags
    best: tuple[float, int, int, str] | None = None  # (overlap, -n, -length rank, sentence)
    for n, (hit, hit_flags) in enumerate(zip(hits[:top], flags[:top], strict=False), start=1):
        text = support_text(hit.chunk.text, hit_flags)
        for sentence in split_sentences(text):  # whole sentences: "app.command()" ends none
            sentence = sentence.strip()
            words = bag(sentence).words
            if len(sentence) < 12 or sentence.startswith(("#", "|", "```", "~~~")) or "\n" in sentence:
                continue
            shared = len(topic & words)
            if shared < min_words:
                continue
            overlap = shared / len(topic)
            key = (overlap, -n, -len(sentence), sentence)
            if overlap >= min_overlap and (best is None or key[:3] > best[:3]):
                best = key
    return None if best is None else (-best[1], best[3])
