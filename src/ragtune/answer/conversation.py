"""Multi-turn questions: the last user message is the question, earlier turns condition it.

A follow-up such as "and for in-store purchases?" names no topic, so retrieving with it
alone finds the wrong passages; but a new question in the same chat ("How do I reset my
VPN password?") must not be dragged back to the old topic. :func:`conversation_search`
retrieves twice, with the follow-up alone and with the recent earlier user questions put
in front of it (:func:`retrieval_query`; assistant replies are left out: they repeat the
sources already cited), and fuses the two rankings (reciprocal ranks). Measured on the
sample knowledge base with ``bench/multiturn_retrieval.py`` (26 conversations, 8 of them
changing the topic), the passage that answers is in the top 3 for 25/26 (follow-up alone:
16/26; earlier questions + follow-up only: 23/26, and 7/8 topic changes instead of 8/8).

>>> history = [Turn("user", "How long is the return window for online orders?"),
...            Turn("assistant", "30 days from delivery [1].")]
>>> retrieval_query("and for in-store purchases?", history)
'How long is the return window for online orders? and for in-store purchases?'
>>> retrieval_query("Hi?", [])
'Hi?'
>>> prompt_question("and for in-store purchases?", history)
'and for in-store purchases? (earlier in this conversation: How long is the return window for online orders?)'
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from ragtune.retrieve.search import RetrievalResult, Retriever, rrf_fuse
from ragtune.store.base import SearchFilter
from ragtune.types import Principal

EARLIER_QUESTIONS = 2
"""How many earlier user questions condition retrieval (the latest ones)."""


@dataclass(frozen=True)
class Turn:
    """One earlier message of a conversation: ``role`` is user or assistant."""

    role: str
    content: str

    def to_message(self) -> dict[str, str]:
        return {"role": self.role, "content": self.content}


def earlier_questions(history: Sequence[Turn], n: int = EARLIER_QUESTIONS) -> list[str]:
    """The last ``n`` non-empty user messages of ``history``, oldest first."""
    asked = [t.content.strip() for t in history if t.role == "user" and t.content.strip()]
    return asked[-n:] if n > 0 else []


def retrieval_query(question: str, history: Sequence[Turn]) -> str:
    """What to retrieve with: the recent earlier questions, then ``question``."""
    return " ".join([*earlier_questions(history), question.strip()])


def prompt_question(question: str, history: Sequence[Turn]) -> str:
    """The question as the model reads it beside the sources: the follow-up, with the
    earlier questions it refers to in brackets (a 0.5B model loses a topic named only in
    an earlier chat message)."""
    earlier = earlier_questions(history)
    if not earlier:
        return question.strip()
    return f"{question.strip()} (earlier in this conversation: {' / '.join(earlier)})"


def conversation_search(retriever: Retriever, question: str, history: Sequence[Turn],
                        principal: Principal, *, k: int | None = None,
                        filters: SearchFilter | None = None) -> RetrievalResult:
    """Retrieve for ``question`` in the light of ``history`` (see the module doc).

    Without earlier questions this is one plain search. The relevance floor passes when
    either search passes it; ``best_similarity`` is the better of the two.
    """
    query = retrieval_query(question, history)
    if query == question.strip():
        return retriever.search(question, principal, k=k, filters=filters)
    keep = k or retriever.settings.top_k
    deep = max(2 * keep, 10)  # fuse deeper lists than are kept: a passage second in both wins
    alone = retriever.search(question, principal, k=deep, filters=filters)
    joint = retriever.search(query, principal, k=deep, filters=filters)
    by_id = {h.chunk.id: h for h in (*joint.hits, *alone.hits)}
    fused = rrf_fuse([[h.chunk.id for h in alone.hits], [h.chunk.id for h in joint.hits]])
    top = fused[:keep]
    hits = [replace(by_id[cid], score=score, rank=i) for i, (cid, score) in enumerate(top, 1)]
    sims = [s for s in (alone.best_similarity, joint.best_similarity) if s is not None]
    timings = {key: alone.timings.get(key, 0.0) + joint.timings.get(key, 0.0)
               for key in {*alone.timings, *joint.timings}}
    return RetrievalResult(hits, alone.mode, max(sims) if sims else None,
                           alone.found or joint.found, timings, vector=alone.vector)
