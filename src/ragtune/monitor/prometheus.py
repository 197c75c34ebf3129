"""``/metrics`` in the Prometheus text format, for ``ragtune serve`` to mount.

:class:`AnswerMetrics` is a trace sink that wraps the workspace's sink: every answer the
server finishes passes through it (and on to the store), updating

- ``ragtune_answers_total{mode, outcome}`` (outcome: answered, refused, not_found),
- ``ragtune_answer_seconds{mode}`` and ``ragtune_stage_seconds{stage}`` histograms,
- ``ragtune_sentences_total{supported}``, ``ragtune_citations_total{supported}``,
- ``ragtune_queue_depth`` (the server sets it: questions waiting for the model),

and, read from the store at each scrape, ``ragtune_store_documents``, ``ragtune_store_chunks``,
``ragtune_store_bytes``, ``ragtune_answer_records`` and the rolling rates of the last hour
of live answers (``ragtune_refusal_rate``, ``ragtune_not_found_rate``,
``ragtune_groundedness``).

>>> from ragtune.store.sqlite import SQLiteStore
>>> metrics = AnswerMetrics(SQLiteStore(":memory:"))
>>> body, content_type = metrics.exposition()
>>> b"ragtune_store_documents 0.0" in body, content_type.startswith("text/plain")
(True, True)

A server mounts it as ``ws.traces = AnswerMetrics(ws.store, inner=ws.traces)`` and serves
``metrics.exposition()`` at ``GET /metrics``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from ragtune.answer.traces import TraceSink
from ragtune.monitor.health import live
from ragtune.monitor.quality import METRICS
from ragtune.monitor.records import load_window
from ragtune.store.base import Store
from ragtune.types import Answer

LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0)
STAGES = ("retrieve_s", "first_token_s", "generate_s")


class _StoreCollector:
    """Gauges read from the store when Prometheus scrapes."""

    def __init__(self, store: Store, window_s: float) -> None:
        self.store = store
        self.window_s = window_s

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import GaugeMetricFamily

        stats = self.store.stats()
        for key, help_text in (("documents", "documents in the store"),
                               ("chunks", "chunks in the store"),
                               ("size_bytes", "size of the store's file")):
            name = "ragtune_store_bytes" if key == "size_bytes" else f"ragtune_store_{key}"
            yield GaugeMetricFamily(name, help_text, value=float(stats.get(key) or 0))
        yield GaugeMetricFamily("ragtune_answer_records", "answer records kept in the store",
                                value=float(stats.get("traces") or 0))
        now = time.time()
        records = live(load_window(self.store, now - self.window_s, now + 1))
        rates = {m.name: m for m in METRICS}
        for name, metric in (("refusal_rate", "refusal_rate"),
                             ("not_found_rate", "not_found_rate"),
                             ("groundedness", "groundedness")):
            y, x = rates[metric].units(records)
            value = float(y.sum() / x.sum()) if x.sum() else float("nan")
            yield GaugeMetricFamily(f"ragtune_{name}", f"{rates[metric].definition} "
                                    f"(live answers of the last {self.window_s:g} s)", value=value)


class AnswerMetrics:
    """A trace sink that counts answers for Prometheus, then hands them to ``inner``."""

    def __init__(self, store: Store, inner: TraceSink | None = None, *,
                 window_s: float = 3600.0) -> None:
        import prometheus_client as pc

        self.inner = inner
        self.registry = pc.CollectorRegistry()
        self.answers = pc.Counter("ragtune_answers", "finished answers",
                                  ["mode", "outcome"], registry=self.registry)
        self.latency = pc.Histogram("ragtune_answer_seconds", "time from question to full "
                                    "answer", ["mode"], buckets=LATENCY_BUCKETS,
                                    registry=self.registry)
        self.stages = pc.Histogram("ragtune_stage_seconds", "time per answer stage", ["stage"],
                                   buckets=LATENCY_BUCKETS, registry=self.registry)
        self.sentences = pc.Counter("ragtune_sentences", "answer sentences checked against "
                                    "their sources", ["supported"], registry=self.registry)
        self.citations = pc.Counter("ragtune_citations", "citations checked against their "
                                    "sources", ["supported"], registry=self.registry)
        self.queue_depth = pc.Gauge("ragtune_queue_depth", "questions waiting for the model",
                                    registry=self.registry)
        self.registry.register(_StoreCollector(store, window_s))

    def record(self, answer: Answer) -> None:
        trace = answer.trace
        outcome = "not_found" if trace.not_found else "refused" if answer.refused else "answered"
        self.answers.labels(trace.mode, outcome).inc()
        if "total_s" in trace.timings:
            self.latency.labels(trace.mode).observe(trace.timings["total_s"])
        for stage in STAGES:
            if stage in trace.timings:
                self.stages.labels(stage).observe(trace.timings[stage])
        for s in answer.sentences:
            self.sentences.labels(str(s.supported).lower()).inc()
        if trace.removed:  # written by the model, not shown: no source supports them
            self.sentences.labels("false").inc(len(trace.removed))
        for c in answer.citations:
            self.citations.labels(str(c.supported).lower()).inc()
        if self.inner is not None:
            self.inner.record(answer)

    def exposition(self) -> tuple[bytes, str]:
        """The body and content type of a ``/metrics`` response."""
        import prometheus_client as pc

        return pc.generate_latest(self.registry), pc.CONTENT_TYPE_LATEST
