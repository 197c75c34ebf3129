"""The grounded-answer pipeline: retrieve → fenced sources → generate → check → show.

Below the relevance floor the model is not called at all: the answer is "not found in the
knowledge base", which is cheaper and cannot invent anything. Retrieved text is scanned for
instruction-like spans (:mod:`ragtune.generate.injection`): they are marked (or dropped) in
the prompt, listed in ``trace.flags`` and never count as support. The reply is shown
sentence by sentence, each after its check (:class:`ragtune.answer.claims.ClaimGate`):
``on_token`` receives only checked text, so every edge that streams shows the same checked
answer. Every answer carries a :class:`~ragtune.types.Trace` with what was retrieved, the
prompt, what was flagged or removed, timings and tokens.

>>> # pipeline = AnswerPipeline(retriever, generator)
>>> # answer = pipeline.ask("How long is the return window?", principal)
>>> # answer.citations[0].document
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import replace

from ragtune.answer.claims import ClaimGate
from ragtune.answer.conversation import (
    Turn,
    conversation_search,
    prompt_question,
    retrieval_query,
)
from ragtune.generate.base import Completion, Generator
from ragtune.generate.citations import check_answer, is_refusal, sentence_spans
from ragtune.generate.injection import scan_hits
from ragtune.generate.prompts import NOT_FOUND_TEXT, build_plain_messages, build_rag_messages
from ragtune.generate.support import bag
from ragtune.retrieve.search import Retriever
from ragtune.store.base import SearchFilter
from ragtune.types import Answer, Hit, Principal, Trace

TokenFn = Callable[[str], None]


def within_budget(hits: list[Hit], budget: int | None, question: str | None = None) -> list[Hit]:
    """The best hits whose chunks fit in ``budget`` tokens together (always the first).

    With the ``question``, a hit that no longer fits whole is cut to its sentences that
    share most words with the question (kept in their order) in the tokens that are left:
    more of the retrieved evidence reaches the prompt for the same prompt length, which is
    what prompt processing time on a CPU is proportional to.

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
        if not kept or used + h.chunk.tokens <= budget:
            kept.append(h)
            used += h.chunk.tokens
            continue
        if question is None:
            break
        cut = trim_to(h, question, budget - used)
        if cut is None:
            break
        kept.append(cut)
        used += cut.chunk.tokens
    return kept


_MIN_TRIM_TOKENS = 30


def trim_to(hit: Hit, question: str, tokens: int) -> Hit | None:
    """``hit`` with only its sentences most about ``question`` that fit in ``tokens``
    (estimated from the chunk's token count), or None when nothing useful fits."""
    if tokens < _MIN_TRIM_TOKENS:
        return None
    text = hit.chunk.text
    spans = sentence_spans(text)
    if len(spans) < 2:
        return None
    per_char = hit.chunk.tokens / max(1, len(text))
    topic = bag(question).words
    ranked = sorted(range(len(spans)), key=lambda i: (-len(topic & bag(text[spans[i][0]:spans[i][1]]).words), i))
    chosen, cost = [], 0.0
    for i in ranked:
        s, e = spans[i]
        if not topic & bag(text[s:e]).words:
            break
        need = (e - s) * per_char
        if cost + need > tokens:
            continue
        chosen.append(i)
        cost += need
    if not chosen:
        return None
    body = " … ".join(text[spans[i][0]:spans[i][1]] for i in sorted(chosen))
    chunk = replace(hit.chunk, text=body, tokens=max(1, round(cost)))
    return replace(hit, chunk=chunk)


def _render_prompt(messages: list[dict[str, str]]) -> str:
    return "\n\n".join(f"<{m['role']}>\n{m['content']}" for m in messages)


class AnswerPipeline:
    """Answers questions as a principal, with citations checked against their sources."""

    def __init__(self, retriever: Retriever, generator: Generator, *,
                 support_threshold: float = 0.7, source_tokens: int | None = None,
                 direct_system: str | None = None,
                 conclusion: Callable[[str], str] | None = None,
                 unsupported: str = "remove", fallback: str = "quote",
                 injections: str = "mark", max_sentences: int = 3) -> None:
        # support_threshold: share of a sentence's content words its source must hold (see
        # ragtune.generate.support; answer.min_support sets it for a workspace).
        self.retriever = retriever
        # What of a reply is the answer (a RAFT adapter reasons and quotes first); the
        # whole reply stays in the trace.
        self.conclusion = conclusion
        self.direct_system = direct_system  # system prompt without retrieval (an adapter's own)
        self.generator = generator
        self.support_threshold = support_threshold
        self.source_tokens = source_tokens
        self.unsupported = unsupported  # answer.unsupported: remove | flag
        self.fallback = fallback  # answer.fallback: quote | refuse
        self.injections = injections  # answer.injections: mark | drop | off
        self.max_sentences = max_sentences  # answer.max_sentences: stop after this many (0: no limit)

    def _generate(self, messages: list[dict[str, str]], on_token: TokenFn | None,
                  trace: Trace, stop: Callable[[], bool] | None = None) -> str:
        t = time.perf_counter()
        first: float | None = None
        parts: list[str] = []
        self.generator.last_completion = None
        stream = self.generator.stream(messages)
        try:
            for piece in stream:
                if first is None:
                    first = time.perf_counter() - t
                parts.append(piece)
                if on_token:
                    on_token(piece)
                if stop is not None and stop():
                    break  # the answer is complete: stop generating
        finally:
            # Closed at once also when on_token raises (a client went away): the model
            # stops and a locked generator is free for the next question.
            close = getattr(stream, "close", None)
            if close is not None:
                close()
        trace.timings["generate_s"] = time.perf_counter() - t
        trace.timings["first_token_s"] = first if first is not None else trace.timings["generate_s"]
        done: Completion | None = self.generator.last_completion
        if done is not None:
            trace.tokens = {"prompt": done.prompt_tokens, "completion": done.completion_tokens}
        else:  # stopped early: the backend did not finish its count
            trace.tokens = {"completion": len(parts)}
        return "".join(parts).strip()

    def _truncated(self) -> bool:
        done = self.generator.last_completion
        return done is not None and done.finish_reason == "length"

    def ask(self, question: str, principal: Principal, *, filters: SearchFilter | None = None,
            k: int | None = None, on_token: TokenFn | None = None, mode: str = "rag",
            history: Sequence[Turn] = ()) -> Answer:
        """Retrieve, generate from fenced sources, show only what the sources support.

        ``history`` (earlier turns of a conversation) conditions retrieval, the prompt and
        what the sources are checked against (:mod:`ragtune.answer.conversation`); the
        trace keeps ``question`` as asked.
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
        trace.best_similarity, trace.vector = result.best_similarity, result.vector
        hits = within_budget(result.hits, self.source_tokens, query)
        trace.retrieved = [h.to_dict() for h in hits]
        cut = sum(h.chunk.text != o.chunk.text for h, o in zip(hits, result.hits, strict=False))
        if len(hits) < len(result.hits) or cut:
            trace.notes.append(f"generation.source_tokens = {self.source_tokens}: "
                               f"{cut} hit(s) cut to their sentences about the question, "
                               f"{len(result.hits) - len(hits)} lower-ranked hit(s) left out")
        if not result.found:
            best = "none" if result.best_similarity is None else f"{result.best_similarity:.3f}"
            trace.notes.append(
                f"refused without generation: best similarity {best} is below the relevance "
                f"floor {self.retriever.settings.min_similarity}")
            trace.not_found = True
            if on_token:
                on_token(NOT_FOUND_TEXT)
            trace.timings["total_s"] = time.perf_counter() - started
            return Answer(NOT_FOUND_TEXT, [], True, trace)
        flags = scan_hits([h.chunk.text for h in hits]) if self.injections != "off" \
            else [[] for _ in hits]
        self._record_flags(trace, flags)
        messages = build_rag_messages(prompt_question(question, history), hits, flags=flags,
                                      injections=self.injections)
        trace.prompt = _render_prompt(messages)
        gate = ClaimGate(query, hits, emit=on_token, flags=flags,
                         threshold=self.support_threshold, unsupported=self.unsupported,
                         fallback=self.fallback, max_sentences=self.max_sentences)
        if self.conclusion is None:
            text = self._generate(messages, gate.feed, trace, stop=lambda: gate.enough)
        else:  # a RAFT adapter reasons and quotes first: only its conclusion is checked and shown
            reply = self._generate(messages, None, trace)
            text = self.conclusion(reply)
            if text != reply:
                trace.notes.append("reasoning before the answer, not shown or cited: "
                                   + reply[: len(reply) - len(text)].strip()[:1000])
            gate.feed(text)
        shown = gate.finish(truncated=self._truncated())
        trace.reply = text
        trace.removed = list(shown.removed)
        trace.notes.extend(shown.notes)
        if shown.attributed:
            trace.notes.append(f"{len(shown.attributed)} uncited sentence(s) attributed to the "
                               "source that supports them: " + " | ".join(shown.attributed))
        if shown.removed:
            trace.notes.append(f"{len(shown.removed)} sentence(s) no source supports were not "
                               "shown: " + " | ".join(shown.removed)[:1000])
        citations, sentences = ([], []) if shown.refused else check_answer(
            shown.text, hits, threshold=self.support_threshold, flags=flags)
        trace.timings["total_s"] = time.perf_counter() - started
        return Answer(shown.text, citations, shown.refused, trace, sentences)

    @staticmethod
    def _record_flags(trace: Trace, flags: list[list]) -> None:
        for n, (hit, found) in enumerate(zip(trace.retrieved, flags, strict=True), start=1):
            if not found:
                continue
            hit["flags"] = [f.to_dict() for f in found]
            trace.flags.extend({"source": n, "document": hit["document"], **f.to_dict()} for f in found)
            kinds = sorted({f.kind for f in found})
            trace.notes.append(f"source [{n}] ({hit['document']}): {len(found)} instruction-like "
                               f"span(s) ({', '.join(kinds)}) treated as data: marked in the "
                               "prompt, never counted as support")

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
