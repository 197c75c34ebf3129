"""The audit log: who asked what, as whom, what was retrieved and cited, which model or
adapter answered, how long it took and how many tokens it used.

Built on the trace log (every finished answer is a :class:`~ragtune.store.base.TraceRecord`),
so nothing is recorded twice. Only admins read it (``ragtune audit``, ``GET /api/audit``).
An entry holds only what its own asker could read (retrieval is ACL-filtered before the
trace is written), and a deleted document's text is already gone from the records
(:func:`ragtune.store.base.redact_source`): entries show its ids, never its quotes.

>>> from ragtune.store.base import TraceRecord
>>> rec = TraceRecord("t1", 1700000000.0, "ana", "rag", None, "ask", {
...     "answer": "30 days [1].", "refused": False,
...     "citations": [{"n": 1, "document": "r.md", "chunk_id": "ch_1", "supported": True}],
...     "trace": {"question": "Return window?", "retrieved": [{"document": "r.md",
...               "chunk_id": "ch_1", "score": 0.8}], "model": "qwen", "timings": {"total_s": 1.5},
...               "tokens": {"prompt": 300, "completion": 9},
...               "caller": {"auth": "key", "subject": "k_1", "groups": ["hr"]}}})
>>> e = audit_entry(rec)
>>> e.user, e.via, e.groups, e.cited, e.latency_s, e.tokens
('ana', 'key:k_1', ['hr'], ['r.md'], 1.5, {'prompt': 300, 'completion': 9})
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from ragtune.store.base import Store, TraceRecord


@dataclass(frozen=True)
class AuditEntry:
    """One answered question, as an auditor reads it."""

    id: str
    ts: float
    user: str  # the principal the question ran as
    via: str  # how that principal was established: key:<id>, oidc:<sub>, proxy, anonymous, cli
    groups: list[str]  # the principal's groups at the time
    admin: bool
    question: str
    mode: str
    adapter: str | None
    model: str
    origin: str
    refused: bool
    retrieved: list[dict[str, Any]]  # document, chunk id, score (no text)
    cited: list[str]  # documents cited
    supported: bool  # every citation checked out
    latency_s: float | None
    first_token_s: float | None
    tokens: dict[str, int] = field(default_factory=dict)
    redacted: list[str] = field(default_factory=list)  # ids of deleted documents it used

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def audit_entry(record: TraceRecord) -> AuditEntry:
    """The audit view of one trace record."""
    answer = record.answer
    trace = answer.get("trace") or {}
    caller = trace.get("caller") or {}
    auth = caller.get("auth")
    via = f"{auth}:{caller['subject']}" if auth and caller.get("subject") else (auth or "cli")
    citations = answer.get("citations") or []
    timings = trace.get("timings") or {}
    return AuditEntry(
        id=record.id, ts=record.ts, user=record.principal, via=via,
        groups=list(caller.get("groups") or []), admin=bool(caller.get("admin", False)),
        question=str(trace.get("question", "")), mode=record.mode, adapter=record.adapter,
        model=str(trace.get("model", "")), origin=record.origin,
        refused=bool(answer.get("refused", False)),
        retrieved=[{"document": h.get("document"), "chunk_id": h.get("chunk_id"),
                    "score": h.get("score")} for h in trace.get("retrieved") or []],
        cited=sorted({str(c.get("document")) for c in citations}),
        supported=all(c.get("supported", False) for c in citations),
        latency_s=timings.get("total_s"), first_token_s=timings.get("first_token_s"),
        tokens=dict(trace.get("tokens") or {}), redacted=list(answer.get("redacted") or []))


def audit_log(store: Store, *, since: float | None = None, user: str | None = None,
              origin: str | None = None, limit: int = 100) -> list[AuditEntry]:
    """The newest ``limit`` entries (oldest first), optionally one user's or one origin's.

    Filtering by user or origin reads the log from ``since`` (all of it when None) and keeps
    the newest matches.
    """
    records = store.traces(since=since, limit=None if (user or origin) else limit)
    entries = [audit_entry(r) for r in records
               if (user is None or r.principal == user) and (origin is None or r.origin == origin)]
    return entries[-limit:] if limit else entries
