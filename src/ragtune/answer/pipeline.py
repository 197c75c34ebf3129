"""The grounded-answer pipeline: retrieve → prompt with numbered sources → generate → cite.

Below the relevance floor the model is not called at all: the answer is "not found in the
knowledge base", which is cheaper and cannot invent anything. Every answer carries a
:class:`~ragtune.types.Trace` with what was retrieved, the prompt, timings and tokens.

>>> # pipeline = AnswerPipeline(retriever, generator)
>>> # answer = pipeline.ask("How long is the return window?", principal)
>>> # answer.citations[0].document
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from contextlib import closing

from ragtune.answer.conversation import (
    Turn,
    conversation_search,
    prompt_question,
    retrieval_query,
)
from ragtune.generate.base import Completion, Generator
from ragtune.generate.citations import attribute_uncited, check_answer, is_refusal
from ragtune.generate.prompts import NOT_FOUND_TEXT, build_plain_messages, build_rag_messages
from ragtune.retrieve.search import Retriever
from ragtune.store.base import SearchFilter
from ragtune.types import Answer, Hit, Principal, Trace

TokenFn = Callable[[str], None]


def within_budget(hits: list[Hit], budget: int | None) -> list[Hit]:
    """The best hits whose chunks fit in ``budget`` tokens together (always the first).

    >>> from ragtune.types import Chunk
    >>> h = [Hit(Chunk(str(i), "d", "t", "s", i, 200), 1.0, "d", "t") for i in range(3)]
    >>> len(within_budget(h, 450)), len(within_budget(h, 10)), len(within_budget(h, None))
    (2, 1, 3)
    """
    if budget is None:
        return hits
    kept: list[Hit] = []
    used = 0
    for h in hits:
        if kept and used + h.chunk.tokens > budget:
            break
        kept.append(h)
        used += h.chunk.tokens
    return kept


def _render_prompt(messages: list[dict[str, str]]) -> str:
    return "\n\n".join(f"<{m['role']}>\n{m['content']}" for m in messages)


class AnswerPipeline:
    """Answers questions as a principal, with citations checked against their sources."""

    def __init__(self, retriever: Retriever, generator: Generator, *,
                 support_threshold: float = 0.5, source_tokens: int | None = None,
                 direct_system: str | None = None,
                 conclusion: Callable[[str], str] | None = None) -> None:
        self.retriever = retriever
        # What of a reply is the answer (a RAFT adapter reasons and quotes first); the
        # whole reply stays in the trace.
        self.conclusion = conclusion
        self.direct_system = direct_system  # system prompt without retrieval (an adapter's own)
        self.generator = generator
        self.support_threshold = support_threshold
        self.source_tokens = source_tokens

    def _generate(self, messages: list[dict[str, str]], on_token: TokenFn | None,
                  trace: Trace) -> str:
        t = time.perf_counter()
        first: float | None = None
        parts: list[str] = []
        # Closed at once when on_token raises (a client went away): the model stops and a
        # locked generator is free for the next question.
        with closing(self.generator.stream(messages)) as pieces:
            for piece in pieces:
                if first is None:
                    first = time.perf_counter() - t
                parts.append(piece)
                if on_token:
                    on_token(piece)
        trace.timings["generate_s"] = time.perf_counter() - t
        trace.timings["first_token_s"] = first if first is not None else trace.timings["generate_s"]
        done: Completion | None = self.generator.last_completion
        if done is not None:
            trace.tokens = {"prompt": done.prompt_tokens, "completion": done.completion_tokens}
        return "".join(parts).strip()

    def ask(self, question: str, principal: Principal, *, filters: SearchFilter | None = None,
            k: int | None = None, on_token: TokenFn | None = None, mode: str = "rag",
            history: Sequence[Turn] = ()) -> Answer:
        """Retrieve, generate with numbered sources and check citations.

        ``history`` (earlier turns of a conversation) conditions retrieval and the prompt
        (:mod:`ragtune.answer.conversation`); the trace keeps ``question`` as asked.
        """
        started = time.perf_counter()
        trace = Trace(question=question, principal=principal.user, mode=mode,
                      model=self.generator.name)
        query = retrieval_query(question, history)
        if query != question.strip():
            trace.notes.append(f"retrieved with and without the earlier questions: {query}")
        result = conversation_search(self.retriever, question, history, principal, k=k,
                                     filters=filters)
        trace.timings.update(result.timings)
        trace.timings["retrieve_s"] = time.perf_counter() - started
        hits = within_budget(result.hits, self.source_tokens)
        trace.retrieved = [h.to_dict() for h in hits]
        if len(hits) < len(result.hits):
            trace.notes.append(f"{len(result.hits) - len(hits)} lower-ranked hit(s) left out of "
                               f"the prompt (generation.source_tokens = {self.source_tokens})")
        if not result.found:
            best = "none" if result.best_similarity is None else f"{result.best_similarity:.3f}"
            trace.notes.append(
                f"refused without generation: best similarity {best} is below the relevance "
                f"floor {self.retriever.settings.min_similarity}")
            if on_token:
                on_token(NOT_FOUND_TEXT)
            trace.timings["total_s"] = time.perf_counter() - started
            return Answer(NOT_FOUND_TEXT, [], True, trace)
        messages = build_rag_messages(prompt_question(question, history), hits)
        trace.prompt = _render_prompt(messages)
        text = self._generate(messages, on_token, trace)
        if self.conclusion is not None:
            reply, text = text, self.conclusion(text)
            if text != reply:
                trace.notes.append("reasoning before the answer, not shown or cited: "
                                   + reply[: len(reply) - len(text)].strip()[:1000])
        refused = not text or is_refusal(text)
        citations, sentences = [], []
        if not refused:
            text, attributed = attribute_uncited(text, hits, threshold=self.support_threshold)
            if attributed:
                trace.notes.append(f"{len(attributed)} uncited sentence(s) attributed to the "
                                   "source that supports them: " + " | ".join(attributed))
            citations, sentences = check_answer(text, hits, threshold=self.support_threshold)
        trace.timings["total_s"] = time.perf_counter() - started
        return Answer(text, citations, refused, trace, sentences)

    def ask_direct(self, question: str, principal: Principal, *,
                   on_token: TokenFn | None = None, mode: str = "base",
                   history: Sequence[Turn] = ()) -> Answer:
        """The model alone, no retrieval (the 'base' and 'finetuned' systems); ``history``
        goes to the model as the earlier chat turns."""
        started = time.perf_counter()
        trace = Trace(question=question, principal=principal.user, mode=mode,
                      model=self.generator.name)
        messages = build_plain_messages(question, system=self.direct_system)
        messages[-1:-1] = [t.to_message() for t in history]
        trace.prompt = _render_prompt(messages)
        text = self._generate(messages, on_token, trace)
        trace.timings["total_s"] = time.perf_counter() - started
        return Answer(text, [], not text or is_refusal(text), trace)
