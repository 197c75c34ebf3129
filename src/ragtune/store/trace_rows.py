"""What every store backend shares about answer records (``traces``): which documents a
record quotes, how its question vector is stored, the time window and reader clause of a
SQL query, and turning fetched rows back into :class:`TraceRecord` s quickly.

>>> where, params = trace_where(10.0, 20.0, Principal("ana"), "?")
>>> where, params
('ts >= ? AND ts < ? AND principal = ?', [10.0, 20.0, 'ana'])
>>> quoted_sources({"citations": [{"document": "b.md"}],
...                 "trace": {"retrieved": [{"document": "a.md"}, {"document": "b.md"}]}})
('a.md', 'b.md')
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import numpy as np

from ragtune.errors import InputError, NotFound
from ragtune.store.base import TraceRecord, may_read_trace, redact_source
from ragtune.types import Principal


def quoted_sources(answer: dict[str, Any]) -> tuple[str, ...]:
    """The documents whose text an Answer dict holds: retrieved or cited."""
    trace = answer.get("trace") or {}
    found = {h.get("document") for h in trace.get("retrieved") or []}
    found |= {c.get("document") for c in answer.get("citations") or []}
    return tuple(sorted(s for s in found if s))


def record_sources(record: TraceRecord) -> tuple[str, ...]:
    """``record.sources``, or (a record read back from another store) those of its answer."""
    return record.sources or quoted_sources(record.answer)


def vector_bytes(vector: np.ndarray | None) -> bytes | None:
    """The stored form of a question vector: float16 (half the bytes, ~1e-3 precision)."""
    return None if vector is None else np.asarray(vector, dtype=np.float16).tobytes()


def trace_where(since: float | None, until: float | None, principal: Principal | None,
                mark: str, alias: str = "") -> tuple[str, list[Any]]:
    """SQL condition and parameters for records in ``[since, until)`` that ``principal`` may
    read (:func:`ragtune.store.base.may_read_trace`); ``mark`` is the placeholder."""
    clauses, params = [f"{alias}ts >= {mark}"], [since if since is not None else float("-inf")]
    if until is not None:
        clauses.append(f"{alias}ts < {mark}")
        params.append(until)
    if principal is not None and not principal.admin:
        if principal.user == Principal.anonymous().user:
            clauses.append("1 = 0")
        else:
            clauses.append(f"{alias}principal = {mark}")
            params.append(principal.user)
    return " AND ".join(clauses), params


def records_from_rows(rows: Sequence[Sequence[Any]]) -> list[TraceRecord]:
    """Records from ``(id, ts, principal, mode, adapter, origin, summary, vector, answer)``
    rows (summary and answer as JSON text, answer None when not read).

    The summaries are parsed as one JSON array and the vectors converted as one matrix: a
    report reads 100k of them, and per-row calls were most of its time.
    """
    summaries = json.loads("[" + ",".join(r[6] or "{}" for r in rows) + "]")
    blobs = [None if r[7] is None else bytes(r[7]) for r in rows]
    sizes = {len(b) for b in blobs if b is not None}
    matrix = None
    if len(sizes) == 1:  # one embedding model: one conversion
        size = sizes.pop()
        matrix = np.frombuffer(b"".join(b for b in blobs if b is not None),
                               dtype=np.float16).reshape(-1, size // 2).astype(np.float32)
    out, at = [], 0
    for r, summary, blob in zip(rows, summaries, blobs):
        if blob is None:
            vector = None
        elif matrix is not None:
            vector = matrix[at]
            at += 1
        else:
            vector = np.frombuffer(blob, dtype=np.float16).astype(np.float32)
        answer = r[8]
        out.append(TraceRecord(r[0], r[1], r[2], r[3], r[4], r[5],
                               json.loads(answer) if isinstance(answer, str) else (answer or {}),
                               summary, vector))
    return out


def redacted(rows: Sequence[Sequence[Any]], source: str, doc_id: str | None = None,
             ) -> list[tuple[str, Any]]:
    """``(answer JSON, id)`` of ``(id, answer JSON)`` rows with document ``source``'s text
    stripped (:func:`ragtune.store.base.redact_source`), ready for an UPDATE."""
    return [(json.dumps(redact_source(json.loads(answer) if isinstance(answer, str) else answer,
                                      source, doc_id), ensure_ascii=False), tid)
            for tid, answer in rows]


def check_feedback(trace_id: str, asker: str | None, principal: Principal, rating: int) -> None:
    """Raise unless ``principal`` may rate record ``trace_id`` asked by ``asker`` (None: no
    such record) with ``rating``; the error does not tell a hidden record from a missing one."""
    if rating not in (-1, 1):
        raise InputError("rating", f"must be 1 (thumbs up) or -1 (thumbs down), got {rating!r}")
    if asker is None or not may_read_trace(principal, asker):
        raise NotFound(f"no answer record '{trace_id}' that {principal.user} may rate")
