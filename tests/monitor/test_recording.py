"""What each answer leaves for the monitor: the record's summary, vector, quoted sources and
id; ``keep_questions = false``; the retention period; records from before migration 3."""

from __future__ import annotations

import json
import sqlite3
import time

import numpy as np
import pytest

from ragtune.answer.traces import QUESTION_WITHHELD, StoreTraceSink
from ragtune.monitor.records import load_window
from ragtune.store.migrations import MIGRATIONS, _statements
from ragtune.store.sqlite import SQLiteStore
from ragtune.workspace import Workspace
from tests.conftest import FAKE, write

RETURNS = "# Returns\n\n## Window\n\nItems can be returned within 30 days of delivery.\n"


@pytest.fixture
def ws(fake_ws, tmp_path):
    fake_ws.ingest([write(tmp_path / "kb" / "returns.md", RETURNS)])
    return fake_ws


def test_a_record_holds_what_the_monitor_reads(ws) -> None:
    answer = ws.ask("Can items be returned within 30 days?", "ana")
    ws.ask("zzqx vorpal", "ana")
    (rec, low) = ws.store.traces()
    assert rec.id == answer.trace.id and len(rec.id) == 32
    s = rec.summary
    assert s["question"] == "Can items be returned within 30 days?"
    assert (s["retrieved"], s["refused"], s["not_found"]) == (True, False, False)
    assert (s["sentences"], s["supported_sentences"]) == (1, 1)
    assert (s["citations"], s["supported_citations"]) == (1, 1)
    assert s["top_document"] == str((ws.root.parent / "kb" / "returns.md").resolve())
    assert rec.answer["citations"][0]["document"] == s["top_document"]
    assert s["best_similarity"] == pytest.approx(answer.trace.best_similarity, abs=1e-6)
    assert {"embed_s", "retrieve_s", "generate_s", "first_token_s", "total_s"} <= set(s["timings"])
    assert s["tokens"]["prompt"] > 0
    assert rec.answer["sentences"][0]["supported"] is True
    assert rec.vector is not None and rec.vector == pytest.approx(
        ws.embedder.embed_query("Can items be returned within 30 days?"), abs=1e-3)
    assert low.summary["not_found"] and low.summary["refused"] and not low.summary["sentences"]
    assert low.answer["trace"]["not_found"] is True


def test_questions_are_not_kept_when_the_workspace_says_so(tmp_path) -> None:
    overrides = FAKE | {"monitor": {"keep_questions": False}}
    ws = Workspace.init(tmp_path / "ws", overrides=overrides)
    ws.ingest([write(tmp_path / "kb" / "returns.md", RETURNS)])
    ws.ask("Can my secret zebra items be returned within 30 days?")
    (rec,) = ws.store.traces()
    raw = json.dumps([rec.answer, rec.summary])
    assert "zebra" not in raw and rec.summary["question"] is None
    assert rec.answer["trace"]["question"] == QUESTION_WITHHELD and rec.answer["trace"]["prompt"] == ""
    assert rec.vector is not None  # still clustered and checked for drift, by meaning only
    report = load_window(ws.store, 0, time.time() + 1)
    assert report.questions() == [None]


def test_retention_deletes_old_records_when_answers_are_recorded(ws, monkeypatch) -> None:
    ws.ask("Can items be returned within 30 days?")
    old = ws.store.traces()[0]
    ws.store.purge_traces(time.time() + 1)
    ws.store.append_trace(old.__class__(**{**old.__dict__, "id": "old", "ts": time.time() - 100 * 86400}))
    sink = StoreTraceSink(ws.store, retention_s=90 * 86400)
    ws.traces = sink
    ws.ask("Can items be returned within 30 days?")
    assert [r.id for r in ws.store.traces()] != ["old"] and len(ws.store.traces()) == 1
    ws.store.append_trace(old.__class__(**{**old.__dict__, "id": "old2", "ts": time.time() - 100 * 86400}))
    ws.ask("Can items be returned within 30 days?")  # within the hour: no second purge
    assert "old2" in {r.id for r in ws.store.traces()}
    assert ws.settings.monitor.retention_s == 90 * 86400


def test_records_from_before_migration_3_are_summarised_when_read(tmp_path) -> None:
    path = tmp_path / "store.db"
    db = sqlite3.connect(path, isolation_level=None)
    for script in MIGRATIONS[:2]:
        for statement in _statements(script):
            db.execute(statement)
    db.execute("PRAGMA user_version = 2")
    answer = {"answer": "Thirty days [1].", "refused": False, "citations": [
        {"n": 1, "document": "r.md", "supported": True}], "unsupported_sentences": [],
        "trace": {"question": "Return window?", "retrieved": [{"document": "r.md"}],
                  "timings": {"total_s": 1.5}}}
    db.execute("INSERT INTO traces VALUES (?,?,?,?,?,?,?)",
               ("t1", 100.0, "ana", "rag", None, "ask", json.dumps(answer)))
    db.close()
    store = SQLiteStore(path)
    assert store.schema_version == len(MIGRATIONS)
    (brief,) = store.traces(brief=True)
    assert brief.summary == {} and brief.vector is None
    records = load_window(store, 0, 200)
    assert records.summaries[0]["question"] == "Return window?"
    assert records.summaries[0]["citations"] == 1 and records.summaries[0]["top_document"] == "r.md"
    assert records.total_s.tolist() == [1.5] and not records.has_vector.any()
    assert np.isnan(records.best).all()
