"""Trace sinks: where every finished answer goes, so monitoring and audit never recompute it.

The :class:`~ragtune.answer.modes.Answerer` hands each finished :class:`~ragtune.types.Answer`
to one sink. :class:`StoreTraceSink` appends it to the workspace's store (the ``traces``
table); :class:`MemoryTraceSink` keeps them in a list (tests, one-off scripts).

>>> from ragtune.types import Answer, Trace
>>> sink = MemoryTraceSink()
>>> sink.record(Answer("Thirty days [1].", [], False, Trace("Return window?", "ana")))
>>> sink.records[0].principal, sink.records[0].mode
('ana', 'rag')

Each record carries, beside the whole answer, a :func:`summarize` of it: the figures
``ragtune monitor`` reads (refused, below the relevance floor, sentences supported,
citations supported, the best retrieved document, the route, latency per stage, tokens), so
a report over a hundred thousand answers never parses the full records (which keep the
cited documents, quotes and per-sentence support). With ``keep_questions=False``
(``[monitor] keep_questions``) no question text is stored: not in the trace, not in the
prompt (which repeats it), not in the summary.
"""

from __future__ import annotations

import time
import uuid
from typing import Any, Protocol, runtime_checkable

from ragtune.store.base import Store, TraceRecord
from ragtune.store.trace_rows import quoted_sources
from ragtune.types import Answer

QUESTION_WITHHELD = "[question not kept: monitor.keep_questions = false]"


def summarize(answer: dict[str, Any]) -> dict[str, Any]:
    """The monitor's figures of one Answer dict (:meth:`ragtune.types.Answer.to_dict`).

    ``retrieved`` says whether the mode retrieved at all (base and finetuned do not: their
    groundedness is not applicable); ``not_found`` that the relevance floor refused it;
    ``removed_sentences`` how many sentences of the model's reply no source supported, so
    they were not shown (``[answer] unsupported = "remove"``): the monitor counts them as
    unsupported claims the model made.

    >>> from ragtune.types import Answer, Trace
    >>> s = summarize(Answer("Thirty days [1].", [], False, Trace("Return window?", "ana")).to_dict())
    >>> s["question"], s["refused"], s["sentences"], s["retrieved"]
    ('Return window?', False, 0, False)
    """
    trace = answer.get("trace") or {}
    retrieved = trace.get("retrieved") or []
    sentences = answer.get("sentences") or []
    citations = answer.get("citations") or []
    route = trace.get("route") or {}
    return {
        "question": trace.get("question") or None,
        "retrieved": (bool(retrieved) or trace.get("best_similarity") is not None
                      or bool(trace.get("not_found"))),
        "best_similarity": trace.get("best_similarity"),
        "not_found": bool(trace.get("not_found")),
        "refused": bool(answer.get("refused")),
        "sentences": len(sentences),
        "supported_sentences": sum(bool(s.get("supported")) for s in sentences),
        "removed_sentences": len(trace.get("removed") or []),
        "citations": len(citations),
        "supported_citations": sum(bool(c.get("supported")) for c in citations),
        "top_document": retrieved[0].get("document") if retrieved else None,
        "route": route.get("label"),
        "timings": dict(trace.get("timings") or {}),
        "tokens": dict(trace.get("tokens") or {}),
    }


def trace_record(answer: Answer, *, keep_questions: bool = True) -> TraceRecord:
    """The stored form of ``answer``: who, how, when, the whole answer with its trace, its
    summary, the question's embedding and the documents it quotes."""
    trace = answer.trace
    data = answer.to_dict()
    if not keep_questions:
        data["trace"]["question"] = QUESTION_WITHHELD
        data["trace"]["prompt"] = ""
    summary = summarize(data)
    if not keep_questions:
        summary["question"] = None
    return TraceRecord(id=trace.id or uuid.uuid4().hex, ts=time.time(),
                       principal=trace.principal, mode=trace.mode, adapter=trace.adapter,
                       origin=trace.origin, answer=data, summary=summary, vector=trace.vector,
                       sources=quoted_sources(data))


@runtime_checkable
class TraceSink(Protocol):
    """Receives every finished answer. Must not raise for a well-formed answer."""

    def record(self, answer: Answer) -> None: ...


class StoreTraceSink:
    """Appends each answer's record to the store's trace log.

    ``retention_s`` (``[monitor] retention``): records older than that are deleted when the
    first answer is recorded and then at most once an hour, so a long-running server keeps
    to the retention period without a cron job.
    """

    PURGE_EVERY_S = 3600.0

    def __init__(self, store: Store, *, keep_questions: bool = True,
                 retention_s: float | None = None) -> None:
        self.store = store
        self.keep_questions = keep_questions
        self.retention_s = retention_s
        self._purged_at: float | None = None

    def record(self, answer: Answer) -> None:
        self.store.append_trace(trace_record(answer, keep_questions=self.keep_questions))
        now = time.time()
        if self.retention_s is not None and (self._purged_at is None
                                             or now - self._purged_at > self.PURGE_EVERY_S):
            self._purged_at = now
            self.store.purge_traces(now - self.retention_s)


class MemoryTraceSink:
    """Keeps the records in memory, newest last."""

    def __init__(self, *, keep_questions: bool = True) -> None:
        self.keep_questions = keep_questions
        self.records: list[TraceRecord] = []

    def record(self, answer: Answer) -> None:
        self.records.append(trace_record(answer, keep_questions=self.keep_questions))
