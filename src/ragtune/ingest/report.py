"""What an ingest run did, file by file, and the progress it reports while it runs.

>>> r = IngestReport(added=["a.md"], regrouped=[("a.md", ("hr",), ())])
>>> r.to_dict()["groups_changed"]
[{'path': 'a.md', 'from': ['hr'], 'to': []}]
>>> r.group_changes()
['a.md: hr -> public']
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from ragtune.types import ProgressFn


@dataclass
class IngestReport:
    """What an ingest run did, file by file.

    ``regrouped`` lists documents whose readers changed: (source, groups before, groups
    after), ``()`` meaning public. ``warnings`` holds what a library said about a file that
    still went in (pypdf's "incorrect startxref pointer"...).
    """

    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)  # (path, problem)
    regrouped: list[tuple[str, tuple[str, ...], tuple[str, ...]]] = field(default_factory=list)
    warnings: list[tuple[str, str]] = field(default_factory=list)  # (path, what was said)
    chunks_written: int = 0
    chunks_embedded: int = 0
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.failed

    def group_changes(self) -> list[str]:
        """One line per document whose groups changed: ``path: hr -> public``."""
        return [f"{source}: {_groups(before)} -> {_groups(after)}"
                for source, before, after in self.regrouped]

    def to_dict(self) -> dict[str, object]:
        return {
            "added": self.added, "updated": self.updated, "unchanged": self.unchanged,
            "removed": self.removed,
            "failed": [{"path": p, "error": e} for p, e in self.failed],
            "groups_changed": [{"path": s, "from": list(b), "to": list(a)}
                               for s, b, a in self.regrouped],
            "warnings": [{"path": p, "warning": w} for p, w in self.warnings],
            "chunks_written": self.chunks_written, "chunks_embedded": self.chunks_embedded,
            "seconds": round(self.seconds, 3),
        }


def _groups(groups: tuple[str, ...]) -> str:
    return ",".join(groups) or "public"


class Progress:
    """Counts input bytes done and calls the caller's :data:`~ragtune.types.ProgressFn`
    with (bytes done, bytes total, current file), at most every 0.1 s: bytes, so that one
    40 MB file moves the bar (and its ETA) while it is chunked and embedded.

    A file's bytes are counted as it is chunked (:meth:`advance_file`, the share done so
    far) and as its chunks are embedded (:meth:`advance`); :meth:`settle` completes a file
    that went no further (unchanged or failed).
    """

    def __init__(self, fn: ProgressFn | None, total: int) -> None:
        self.fn, self.total, self.done, self.current = fn, total, 0.0, ""
        self._file_start, self._file_done, self._last = 0.0, 0.0, 0.0

    def start(self, current: str) -> None:
        """A new file: report its name now."""
        self.current, self._file_start, self._file_done = current, self.done, 0.0
        self._emit(force=True)

    def advance_file(self, done_in_file: float) -> None:
        """The current file is ``done_in_file`` bytes along (monotone)."""
        if done_in_file > self._file_done:
            self.advance(done_in_file - self._file_done)
            self._file_done = done_in_file

    def settle(self, size: int) -> None:
        """The current file is finished with nothing left to embed."""
        self.advance_file(size)

    def advance(self, amount: float) -> None:
        self.done = min(self.total, self.done + amount)
        self._emit()

    def finish(self) -> None:
        self.done, self.current = self.total, ""
        self._emit(force=True)

    def _emit(self, force: bool = False) -> None:
        now = time.monotonic()
        if self.fn and (force or now - self._last >= 0.1):
            self._last = now
            self.fn(int(self.done), self.total, self.current)
