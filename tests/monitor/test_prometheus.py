"""``/metrics``: answers through :class:`AnswerMetrics` (wrapping the workspace's sink) give
Prometheus text that the client library's own parser reads back with the right values."""

from __future__ import annotations

import math

from prometheus_client.parser import text_string_to_metric_families

from ragtune.generate.fake import FakeGenerator
from ragtune.monitor.prometheus import AnswerMetrics
from tests.conftest import write

RETURNS = "# Returns\n\n## Window\n\nItems can be returned within 30 days of delivery.\n"


def samples(body: bytes) -> dict[tuple[str, tuple], float]:
    out = {}
    for family in text_string_to_metric_families(body.decode()):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_metrics_count_answers_and_read_the_store(fake_ws, tmp_path) -> None:
    fake_ws.ingest([write(tmp_path / "kb" / "returns.md", RETURNS)])
    metrics = AnswerMetrics(fake_ws.store, inner=fake_ws.traces)
    fake_ws.traces = metrics
    for q in ["Can items be returned within 30 days?", "When can items be returned?",
              "zzqx vorpal"]:
        fake_ws.ask(q, "ana")
    fake_ws.ask("Can items be returned?", "ana", mode="base")
    metrics.queue_depth.set(2)
    body, content_type = metrics.exposition()
    s = samples(body)
    assert content_type.startswith("text/plain")
    assert s[("ragtune_answers_total", (("mode", "rag"), ("outcome", "answered")))] == 2
    assert s[("ragtune_answers_total", (("mode", "rag"), ("outcome", "not_found")))] == 1
    assert s[("ragtune_answers_total", (("mode", "base"), ("outcome", "refused")))] == 1
    assert s[("ragtune_answer_seconds_count", (("mode", "rag"),))] == 3
    assert s[("ragtune_stage_seconds_count", (("stage", "retrieve_s"),))] == 3
    assert s[("ragtune_sentences_total", (("supported", "true"),))] == 2
    assert s[("ragtune_queue_depth", ())] == 2
    assert s[("ragtune_store_documents", ())] == 1 and s[("ragtune_store_chunks", ())] == 1
    assert s[("ragtune_answer_records", ())] == 4  # the inner sink stored every answer
    assert s[("ragtune_refusal_rate", ())] == 0.5
    assert s[("ragtune_not_found_rate", ())] == 1 / 3
    assert s[("ragtune_groundedness", ())] == 1.0
    assert s[("ragtune_store_bytes", ())] > 0


def test_an_empty_store_has_no_rates_yet(fake_ws) -> None:
    s = samples(AnswerMetrics(fake_ws.store).exposition()[0])
    assert math.isnan(s[("ragtune_refusal_rate", ())]) and s[("ragtune_answer_records", ())] == 0


def test_sentences_the_support_check_removed_count_as_unsupported(fake_ws, tmp_path) -> None:
    fake_ws.ingest([write(tmp_path / "kb" / "returns.md", RETURNS)])
    invented = "Returns are free on the moon every leap year [1]."
    fake_ws.generator = FakeGenerator(reply=lambda messages: invented)
    metrics = AnswerMetrics(fake_ws.store, inner=fake_ws.traces)
    fake_ws.traces = metrics
    answer = fake_ws.ask("Can items be returned within 30 days?", "ana")
    assert answer.trace.removed == [invented] and invented not in answer.text
    s = samples(metrics.exposition()[0])
    assert s[("ragtune_sentences_total", (("supported", "false"),))] == 1
