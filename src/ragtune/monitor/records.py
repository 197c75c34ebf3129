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
from dataclasses import dataclass, field, fields, replace
from datetime import datetime
from operator import itemgetter
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
        iso = lambda t: datetime.fromtimestamp(t).isoformat(timespec="seconds")
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


def window_bounds(since: str | None, until: str | None, period: str) -> tuple[float, float]:
    """(start, end) Unix times of a report window: ``until`` (an ISO date; None: now) and
    ``since`` before it (a duration back from ``until`` or an ISO date; None: ``period``,
    the workspace's ``monitor.period``). The CLI and the server read windows alike.

    >>> window_bounds("1d", "1970-01-02T00:00:00+00:00", "7d")
    (0.0, 86400.0)
    """
    end = time.time() if until is None else parse_since(until)
    return parse_since(since or period, now=end), end


STAGES = ("embed_s", "dense_s", "lexical_s", "retrieve_s", "first_token_s", "generate_s",
          "total_s")  # the answer's timings, in pipeline order
_NAN = float("nan")


def _row(s: dict[str, Any]) -> tuple[float, ...]:
    """The numbers of one summary, in :func:`Records.of`'s column order (one pass: a report
    reads 100k summaries)."""
    t = s.get("timings") or {}
    k = s.get("tokens") or {}
    best = s.get("best_similarity")
    return (s.get("refused") or 0, s.get("not_found") or 0, s.get("retrieved") or 0,
            s.get("sentences") or 0, s.get("supported_sentences") or 0, s.get("citations") or 0,
            s.get("supported_citations") or 0, _NAN if best is None else best,
            t.get("embed_s", _NAN), t.get("dense_s", _NAN), t.get("lexical_s", _NAN),
            t.get("retrieve_s", _NAN), t.get("first_token_s", _NAN), t.get("generate_s", _NAN),
            t.get("total_s", _NAN), k.get("prompt", _NAN), k.get("completion", _NAN),
            s.get("removed_sentences") or 0)


@dataclass
class Records:
    """One window's answer records as columns (row i is record i, oldest first).

    Build with :meth:`of`; :meth:`select` keeps rows without recomputing anything.
    """

    ids: list[str]
    ts: np.ndarray
    principals: list[str]
    modes: list[str]  # "rag", "hybrid:support-style"... (mode, and the adapter that answered)
    adapters: list[str | None]
    origins: list[str]
    summaries: list[dict[str, Any]]
    vectors: np.ndarray  # (n, dim) float32, rows without a vector are zero
    has_vector: np.ndarray  # bool
    refused: np.ndarray
    not_found: np.ndarray
    retrieved: np.ndarray
    sentences: np.ndarray
    supported_sentences: np.ndarray
    citations: np.ndarray
    supported_citations: np.ndarray
    best: np.ndarray  # best dense similarity, NaN without retrieval
    rated: np.ndarray  # has a rating
    down: np.ndarray  # latest rating is thumbs down
    unsupported: np.ndarray  # wrote a sentence its sources do not support (shown or removed)
    claimed: np.ndarray  # made claims: not refused, or refused after its claims were removed
    timings: np.ndarray  # (n, len(STAGES)) seconds, NaN where a stage did not run
    tokens: np.ndarray  # (n, 2) prompt and completion tokens, NaN when not counted
    comments: dict[str, str] = field(default_factory=dict)  # trace id -> latest comment

    @classmethod
    def of(cls, ids: list[str], ts: np.ndarray, principals: list[str], modes: list[str],
           adapters: list[str | None], origins: list[str], summaries: list[dict[str, Any]],
           vectors: np.ndarray, has_vector: np.ndarray, ratings: dict[str, int] | None = None,
           comments: dict[str, str] | None = None) -> Records:
        """Columns from the records' summaries; ``ratings``: trace id -> latest rating."""
        ratings = ratings or {}
        rating = np.fromiter((ratings.get(i, 0) for i in ids), dtype=np.int8, count=len(ids))
        table = np.array([_row(s) for s in summaries], dtype=np.float64).reshape(len(ids), 18)
        refused, supported, removed = table[:, 0] > 0, table[:, 4], table[:, 17]
        # The sentences the model wrote: those shown, and those the support check removed
        # (no source supports them; [answer] unsupported = "remove"). An answer refused
        # after its every claim was removed still made unsupported claims.
        sentences = table[:, 3] + removed
        claimed = ~refused | (removed > 0)
        return cls(ids, np.asarray(ts, dtype=np.float64), principals, modes, adapters, origins,
                   summaries, vectors, has_vector, refused=refused, not_found=table[:, 1] > 0,
                   retrieved=table[:, 2] > 0, sentences=sentences.astype(np.int64),
                   supported_sentences=supported.astype(np.int64),
                   citations=table[:, 5].astype(np.int64),
                   supported_citations=table[:, 6].astype(np.int64), best=table[:, 7],
                   rated=rating != 0, down=rating < 0,
                   unsupported=(sentences > supported) & claimed, claimed=claimed,
                   timings=table[:, 8:15], tokens=table[:, 15:17], comments=comments or {})

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def total_s(self) -> np.ndarray:
        return self.timings[:, STAGES.index("total_s")]

    def questions(self) -> list[str | None]:
        return [s.get("question") for s in self.summaries]

    def select(self, mask: np.ndarray) -> Records:
        """The rows where ``mask`` is true."""
        idx = np.flatnonzero(np.asarray(mask, dtype=bool))
        pick = (lambda xs: list(itemgetter(*idx)(xs)) if len(idx) > 1
                else [xs[i] for i in idx])
        changes: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, np.ndarray):
                changes[f.name] = value[idx]
            elif isinstance(value, list):
                changes[f.name] = pick(value)
        return replace(self, **changes)


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
    has = np.fromiter((t.vector is not None and len(t.vector) == dim for t in traces),
                      dtype=bool, count=len(traces))
    vectors = np.zeros((len(traces), dim), dtype=np.float32)
    if has.any():
        vectors[has] = np.stack([t.vector for t, ok in zip(traces, has) if ok])
    latest: dict[str, int] = {}
    comments: dict[str, str] = {}
    for f in feedback:  # oldest first: the last word counts
        latest[f.trace_id] = f.rating
        if f.comment:
            comments[f.trace_id] = f.comment
    return Records.of([t.id for t in traces], np.array([t.ts for t in traces], dtype=np.float64),
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
