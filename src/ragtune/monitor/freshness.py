"""Freshness: is what the system answers from still what is on disk, and still current?

- **documents** whose source file changed (its bytes *and* its loaded content differ from
  what was ingested) or vanished since ingest, and documents older than their collection's
  maximum age (``[monitor.max_age] policies = "90d"``; ``"*"`` for any other collection);
- **collections** with no document updated for ``[monitor] idle_after``;
- **adapters** whose lineage documents changed or went
  (:mod:`ragtune.finetune.freshness`), with how many live questions each answered while
  stale.

>>> status_of_file({"path": "/nonexistent/x.md", "file_sha256": "ab"}, "x", 0.0)
'vanished'
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ragtune.config import MonitorSettings
from ragtune.errors import RagtuneError
from ragtune.finetune.access import can_use, required_groups
from ragtune.finetune.adapters import AdapterRegistry
from ragtune.finetune.freshness import Freshness, registry_freshness
from ragtune.monitor.records import Records
from ragtune.store.base import Store
from ragtune.types import DocumentInfo, Principal, file_sha256

DAY = 86400.0


def status_of_file(metadata: dict[str, Any], content_hash: str, updated_at: float) -> str:
    """``ok``, ``changed``, ``vanished`` or ``untracked`` (not ingested from a file).

    A file modified after its ingest is hashed; if its bytes differ it is loaded again, and
    only a different *content* counts as changed (a PDF whose metadata changed is not).
    """
    path = metadata.get("path")
    if not path or not metadata.get("file_sha256"):
        return "untracked"
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return "vanished"
    except OSError:
        return "untracked"
    if st.st_mtime <= updated_at:
        return "ok"
    try:
        if file_sha256(path) == metadata["file_sha256"]:
            return "ok"
        from ragtune.ingest.loaders import load_file

        return "ok" if load_file(Path(path)).content_hash == content_hash else "changed"
    except (OSError, RagtuneError):
        return "changed"  # it was readable at ingest; now it is not what was ingested


def document_freshness(docs: Sequence[DocumentInfo], settings: MonitorSettings,
                       now: float) -> list[dict[str, Any]]:
    """The documents with a problem: changed or vanished on disk, or past their max age."""
    out = []
    for d in docs:
        problems = []
        status = status_of_file(d.metadata, d.content_hash, d.updated_at)
        if status in {"changed", "vanished"}:
            problems.append(status)
        limit = settings.max_age_s(d.collection)
        age = now - d.updated_at
        if limit is not None and age > limit:
            problems.append("too_old")
        if problems:
            out.append({"source": d.source, "title": d.title, "collection": d.collection,
                        "problems": problems, "file": status, "age_days": round(age / DAY, 1),
                        "max_age_days": None if limit is None else round(limit / DAY, 1),
                        "version": d.version})
    return sorted(out, key=lambda x: (x["collection"], x["source"]))


def collection_freshness(docs: Sequence[DocumentInfo], settings: MonitorSettings,
                         now: float) -> list[dict[str, Any]]:
    """Per collection: documents, newest update, whether it is idle."""
    from ragtune.config import parse_duration

    idle_s = parse_duration(settings.idle_after, "monitor.idle_after")
    newest: dict[str, float] = {}
    count: dict[str, int] = {}
    for d in docs:
        newest[d.collection] = max(newest.get(d.collection, 0.0), d.updated_at)
        count[d.collection] = count.get(d.collection, 0) + 1
    return [{"collection": c, "documents": count[c], "last_update": newest[c],
             "days_since_update": round((now - newest[c]) / DAY, 1),
             "idle": now - newest[c] > idle_s} for c in sorted(newest)]


def stale_since(f: Freshness, store: Store) -> float | None:
    """When the adapter went stale: the first ingest of a newer version of a lineage
    document (None when only deletions are known: their time is not recorded)."""
    times = []
    for c in f.changed:
        info = store.get_document(c.source)
        if info is None:
            continue
        versions = store.document_versions(info.id)
        newer = (versions[-1:] if c.trained_version is None
                 else [v for v in versions if v["version"] > c.trained_version])
        if newer:
            times.append(newer[0]["ingested_at"])
    return min(times) if times else None


def adapter_freshness(adapters_root: Path, store: Store, live: Records,
                      principal: Principal | None = None) -> list[dict[str, Any]]:
    """Every adapter's freshness and the live questions it answered (while stale); for a
    ``principal``, only the adapters it may use (a lineage names the documents trained on)."""
    out = []
    adapters = np.array([a or "" for a in live.adapters], dtype=object)
    registry = AdapterRegistry(adapters_root)
    for name, f in sorted(registry_freshness(adapters_root, store).items()):
        if principal is not None and not can_use(required_groups(registry.get(name), store),
                                                 principal):
            continue
        answered = adapters == name
        since = stale_since(f, store) if f.stale else None
        while_stale = int((answered & (live.ts >= since)).sum()) if since is not None else (
            int(answered.sum()) if f.stale else 0)
        out.append(f.to_dict() | {"live_answers": int(answered.sum()), "stale_since": since,
                                  "live_answers_while_stale": while_stale})
    return out


def freshness_report(store: Store, settings: MonitorSettings, adapters_root: Path,
                     live: Records, docs: Sequence[DocumentInfo], now: float | None = None,
                     principal: Principal | None = None) -> dict[str, Any]:
    """The freshness section of a monitor report (``docs``: those the viewer may read)."""
    now = time.time() if now is None else now
    documents = document_freshness(docs, settings, now)
    adapters = adapter_freshness(adapters_root, store, live, principal)
    return {
        "documents": documents,
        "checked_documents": len(docs),
        "changed": sum("changed" in d["problems"] for d in documents),
        "vanished": sum("vanished" in d["problems"] for d in documents),
        "too_old": sum("too_old" in d["problems"] for d in documents),
        "stale_documents": len(documents),
        "collections": collection_freshness(docs, settings, now),
        "adapters": adapters,
        "stale_adapter_answers": sum(a["live_answers_while_stale"] for a in adapters),
    }
