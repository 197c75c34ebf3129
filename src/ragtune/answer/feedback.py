"""Feedback on answers: thumbs up or down and a comment, kept for monitoring.

One JSON line per vote in ``<workspace>/feedback.jsonl`` (``trace_id`` joins it to the
answer's trace record; ``user`` is who voted). Appends are single ``write`` calls under an
exclusive ``flock``, so several server processes on one workspace never interleave lines.

>>> import tempfile, pathlib
>>> log = FeedbackLog(pathlib.Path(tempfile.mkdtemp()) / "feedback.jsonl")
>>> _ = log.add(Feedback("0123abcd", "ana", "down", "missed the holiday rule"))
>>> [(f.user, f.rating) for f in log.read()]
[('ana', 'down')]
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ragtune.errors import InputError
from ragtune.jsonl import read_jsonl

RATINGS = ("up", "down")


@dataclass(frozen=True)
class Feedback:
    """One vote on one answer."""

    trace_id: str
    user: str
    rating: str  # up | down
    comment: str = ""
    ts: float = field(default_factory=time.time)

    def __post_init__(self) -> None:
        if self.rating not in RATINGS:
            raise InputError("rating", f"must be 'up' or 'down', got {self.rating!r}")


class FeedbackLog:
    """Append-only feedback file."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def add(self, feedback: Feedback) -> Feedback:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        line = (json.dumps(asdict(feedback), ensure_ascii=False) + "\n").encode("utf-8")
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            os.write(fd, line)
        finally:
            os.close(fd)  # closing releases the lock
        return feedback

    def read(self) -> list[Feedback]:
        if not self.path.exists():
            return []
        return [Feedback(**row) for _, row in read_jsonl(self.path)]
