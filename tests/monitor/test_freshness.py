"""Freshness on its own: file checks, age limits, idle collections, adapters a viewer may
see, and when an adapter went stale."""

from __future__ import annotations

import os
import time

import pytest

from ragtune.config import MonitorSettings
from ragtune.monitor.freshness import (
    collection_freshness,
    document_freshness,
    stale_since,
    status_of_file,
)
from ragtune.monitor.health import monitor_report
from tests.conftest import write
from tests.evaluate.conftest import add_adapter

DAY = 86400.0


def test_file_status(fake_ws, tmp_path) -> None:
    path = write(tmp_path / "kb" / "a.md", "# A\n\nTents are waterproof.\n")
    fake_ws.ingest([path])
    (doc,) = fake_ws.store.list_documents(None)
    assert status_of_file(doc.metadata, doc.content_hash, doc.updated_at) == "ok"
    later = doc.updated_at + 10
    path.write_text("# A\n\nTents are waterproof.\n\n")  # other bytes, same loaded content
    os.utime(path, (later, later))
    assert status_of_file(doc.metadata, doc.content_hash, doc.updated_at) == "ok"
    path.write_text("# A\n\nTents leak.\n")
    os.utime(path, (later, later))
    assert status_of_file(doc.metadata, doc.content_hash, doc.updated_at) == "changed"
    path.unlink()
    assert status_of_file(doc.metadata, doc.content_hash, doc.updated_at) == "vanished"
    assert status_of_file({}, doc.content_hash, doc.updated_at) == "untracked"


def test_age_limits_and_idle_collections(fake_ws, tmp_path) -> None:
    for name in ("a", "b"):
        fake_ws.ingest([write(tmp_path / name / f"{name}.md", f"# {name}\n\ntext {name}\n")],
                       collection=name)
    docs = fake_ws.store.list_documents(None)
    now = max(d.updated_at for d in docs) + 10 * DAY
    settings = MonitorSettings(max_age={"a": "5d", "*": "30d"}, idle_after="7d")
    problems = {d["collection"]: d["problems"] for d in document_freshness(docs, settings, now)}
    assert problems == {"a": ["too_old"]}  # b's limit ("*") is 30 days
    idle = {c["collection"]: c["idle"] for c in collection_freshness(docs, settings, now)}
    assert idle == {"a": True, "b": True}
    assert not any(c["idle"] for c in collection_freshness(docs, settings, now - 5 * DAY))


def test_a_viewer_sees_only_adapters_they_may_use(fake_ws, tmp_path) -> None:
    public = write(tmp_path / "kb" / "returns.md", "# Returns\n\nThirty days.\n")
    secret = write(tmp_path / "hr" / "pay.md", "# Pay\n\nBands are secret.\n")
    fake_ws.ingest([public.parent])
    fake_ws.ingest([secret.parent], groups=["hr"])
    add_adapter(fake_ws, "open", trained_on=(str(public.resolve()),))
    add_adapter(fake_ws, "hr-only", trained_on=(str(secret.resolve()),))
    now = time.time()

    def adapters(user):
        principal = None if user is None else fake_ws.principal(user)
        report, _, _ = monitor_report(fake_ws, since=now - DAY, principal=principal)
        return [a["adapter"] for a in report["freshness"]["adapters"]]

    assert adapters(None) == ["hr-only", "open"] and adapters("root") == ["hr-only", "open"]
    assert adapters("ana") == ["hr-only", "open"]  # ana is in hr
    assert adapters("bob") == ["open"]


def test_stale_since_is_the_first_newer_version(fake_ws, tmp_path) -> None:
    from ragtune.finetune.freshness import ChangedDocument, Freshness

    path = write(tmp_path / "kb" / "a.md", "# A\n\nv1\n")
    fake_ws.ingest([path])
    for text in ("v2", "v3"):
        path.write_text(f"# A\n\n{text}\n")
        fake_ws.ingest([path])
    (doc,) = fake_ws.store.list_documents(None)
    versions = fake_ws.store.document_versions(doc.id)
    f = Freshness("x", True, 1, (ChangedDocument(doc.source, 1, 3, "default"),))
    assert stale_since(f, fake_ws.store) == pytest.approx(versions[1]["ingested_at"])
    unknown = Freshness("x", True, 1, (ChangedDocument(doc.source, None, 3, "default"),))
    assert stale_since(unknown, fake_ws.store) == pytest.approx(versions[2]["ingested_at"])
    assert stale_since(Freshness("x", True, 1, (), ("gone.md",)), fake_ws.store) is None
