"""The answer records of a time window, as columns the monitor computes on.

A report compares two windows: the current one (``--since 7d``: the last seven days) and the
one of the same length before it. :func:`load_window` reads each window's records once, in
brief (the summary and the question vector, never the full answer), with their feedback,
and turns them into numpy columns, so every figure over 100k records is a few vectorised
sums.

>>> w = Window.last(7 * 86400, now=1_000_000.0)
>>> w.since, w.previous_since, w.days
(395200.0, -209600.0, 7.0)
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np

from ragtune.answer.traces import summarize
from ragtune.config import parse_duration
from ragtune.errors import ConfigError, InputError
from ragtune.store.base import FeedbackRecord, Store, TraceRecord
from ragtune.types import Principal


@dataclass(frozen=True)
class Window:
    """``[since, until)`` and the window of the same length just before it."""

    since: float
    until: float

    @classmethod
    def last(cls, seconds: float, now: float | None = None) -> Window:
        now = time.time() if now is None else now
        return cls(now - seconds, now)

    @property
    def previous_since(self) -> float:
        return self.since - (self.until - self.since)

    @property
    def days(self) -> float:
        return (self.until - self.since) / 86400

    def to_dict(self) -> dict[str, Any]:
        iso = lambda t: datetime.fromtimestamp(t).isoformat(timespec="seconds")  # noqa: E731
        return {"since": iso(self.since), "until": iso(self.until),
                "previous_since": iso(self.previous_since), "days": round(self.days, 3)}


def parse_since(text: str, now: float | None = None) -> float:
    """Unix time of ``--since``: a duration back from now (``7d``, ``12h``) or an ISO date.

    >>> parse_since("1d", now=100_000.0)
    13600.0
    >>> parse_since("last week")
    Traceback (most recent call last):
    ...
    ragtune.errors.InputError: --since: expected a duration like 7d or 12h, or an ISO date like 2026-01-31, got 'last week'
    """
    now = time.time() if now is None else now
    try:
        return now - parse_duration(text)
    except ConfigError:  # not a duration: a date?
        pass
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        raise InputError("--since", "expected a duration like 7d or 12h, or an ISO date like "
                                    f"2026-01-31, got {text!r}") from None


@dataclass
class Records:
    """One window's answer records as columns (row i is record i, oldest first)."""

    ids: list[str]
    ts: np.ndarray
    principals: list[str]
    modes: list[str]  # "rag", "hybrid:support-style"... (mode, and the adapter that answered)
    adapters: list[str | None]
    origins: list[str]
    summaries: list[dict[str, Any]]
    vectors: np.ndarray  # (n, dim) float32, rows without a vector are zero
    has_vector: np.ndarray  # bool
    feedback: dict[str, int] = field(default_factory=dict)  # trace id -> latest rating
    comments: dict[str, str] = field(default_factory=dict)  # trace id -> latest comment

    def __len__(self) -> int:
        return len(self.ids)

    def _column(self, key: str, dtype: Any, default: Any = 0) -> np.ndarray:
        return np.fromiter(((s.get(key) if s.get(key) is not None else default)
                            for s in self.summaries), dtype=dtype, count=len(self))

    def __post_init__(self) -> None:
        self.refused = self._column("refused", bool, False)
        self.not_found = self._column("not_found", bool, False)
        self.retrieved = self._column("retrieved", bool, False)
        self.sentences = self._column("sentences", np.int64)
        self.supported_sentences = self._column("supported_sentences", np.int64)
        self.citations = self._column("citations", np.int64)
        self.supported_citations = self._column("supported_citations", np.int64)
        self.best = self._column("best_similarity", np.float64, np.nan)
        self.total_s = np.fromiter(((s.get("timings") or {}).get("total_s", np.nan)
                                    for s in self.summaries), dtype=np.float64, count=len(self))
        rating = np.fromiter((self.feedback.get(i, 0) for i in self.ids), dtype=np.int8,
                             count=len(self))
        self.rated = rating != 0
        self.down = rating < 0
        self.unsupported = (self.sentences > self.supported_sentences) & ~self.refused

    def questions(self) -> list[str | None]:
        return [s.get("question") for s in self.summaries]

    def select(self, mask: np.ndarray) -> Records:
        """The rows where ``mask`` is true."""
        idx = np.flatnonzero(mask)
        pick = lambda xs: [xs[i] for i in idx]  # noqa: E731
        return Records(pick(self.ids), self.ts[idx], pick(self.principals), pick(self.modes),
                       pick(self.adapters), pick(self.origins), pick(self.summaries),
                       self.vectors[idx], self.has_vector[idx], self.feedback, self.comments)


def mode_label(mode: str, adapter: str | None) -> str:
    """How a record's system is named in reports: the mode, and the adapter that answered.

    >>> mode_label("hybrid", "support"), mode_label("rag", None)
    ('hybrid:support', 'rag')
    """
    return f"{mode}:{adapter}" if adapter else mode


def _summary(store: Store, record: TraceRecord) -> dict[str, Any]:
    """The record's summary; records written before summaries existed are summarised now."""
    if record.summary:
        return record.summary
    full = store.trace(record.id)
    return summarize(full.answer) if full is not None else {}


def to_records(store: Store, traces: list[TraceRecord],
               feedback: list[FeedbackRecord] = ()) -> Records:
    """Columns of ``traces`` (brief records) with the latest rating of each."""
    dim = next((len(t.vector) for t in traces if t.vector is not None), 0)
    vectors = np.zeros((len(traces), dim), dtype=np.float32)
    has = np.zeros(len(traces), dtype=bool)
    for i, t in enumerate(traces):
        if t.vector is not None and len(t.vector) == dim:
            vectors[i] = t.vector
            has[i] = True
    latest: dict[str, int] = {}
    comments: dict[str, str] = {}
    for f in feedback:  # oldest first: the last word counts
        latest[f.trace_id] = f.rating
        if f.comment:
            comments[f.trace_id] = f.comment
    return Records([t.id for t in traces], np.array([t.ts for t in traces], dtype=np.float64),
                   [t.principal for t in traces],
                   [mode_label(t.mode, t.adapter) for t in traces],
                   [t.adapter for t in traces], [t.origin for t in traces],
                   [_summary(store, t) for t in traces], vectors, has, latest, comments)


def load_window(store: Store, since: float, until: float,
                principal: Principal | None = None) -> Records:
    """All records of ``[since, until)`` that ``principal`` may read (None: the operator)."""
    traces = store.traces(since=since, until=until, principal=principal, brief=True)
    feedback = store.feedback(since=since, until=until, principal=principal)
    return to_records(store, traces, feedback)
