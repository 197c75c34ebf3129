"""Trace sinks: where every finished answer goes, so monitoring and audit never recompute it.

The :class:`~ragtune.answer.modes.Answerer` hands each finished :class:`~ragtune.types.Answer`
to one sink. :class:`StoreTraceSink` appends it to the workspace's store (the ``traces``
table); :class:`MemoryTraceSink` keeps them in a list (tests, one-off scripts).

>>> from ragtune.types import Answer, Trace
>>> sink = MemoryTraceSink()
>>> sink.record(Answer("Thirty days [1].", [], False, Trace("Return window?", "ana")))
>>> sink.records[0].principal, sink.records[0].mode
('ana', 'rag')
"""

from __future__ import annotations

import time
from typing import Protocol, runtime_checkable

from ragtune.store.base import Store, TraceRecord
from ragtune.types import Answer


def trace_record(answer: Answer) -> TraceRecord:
    """The stored form of ``answer``: who, how, when, and the whole answer with its trace."""
    trace = answer.trace
    return TraceRecord(id=trace.id, ts=time.time(), principal=trace.principal,
                       mode=trace.mode, adapter=trace.adapter, origin=trace.origin,
                       answer=answer.to_dict())


@runtime_checkable
class TraceSink(Protocol):
    """Receives every finished answer. Must not raise for a well-formed answer."""

    def record(self, answer: Answer) -> None: ...


class StoreTraceSink:
    """Appends each answer's record to the store's trace log."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def record(self, answer: Answer) -> None:
        self.store.append_trace(trace_record(answer))


class MemoryTraceSink:
    """Keeps the records in memory, newest last."""

    def __init__(self) -> None:
        self.records: list[TraceRecord] = []

    def record(self, answer: Answer) -> None:
        self.records.append(trace_record(answer))
