"""Progress with an ETA for long runs (``compare``, ``eval qa``), in every output mode.

Progress always goes to stderr, so stdout stays clean for ``--json`` and for pipes:

- stderr is a terminal: a live bar with done/total, the current item, elapsed time and ETA;
- stderr is a file or a pipe (CI logs, ``2> log``, ``| tee``): one plain line when the first
  answer is in, then one every ``interval`` seconds, then a last line with the total time.

The ETA counts only work done in this run: answers resumed from an earlier run arrive all
at once and would make the rate look far higher than it is.

>>> import io
>>> from rich.console import Console
>>> out = io.StringIO()
>>> clock = iter([0.0, 0.0, 10.0, 20.0, 30.0]).__next__
>>> with Progress("compare", 4, console=Console(file=out), clock=clock, interval=0) as p:
...     p.update(1, "rag q1", fresh=False)     # resumed from an earlier run
...     p.update(2, "rag q2")
...     p.update(3, "rag q3")
>>> print(out.getvalue().strip())
compare: 2/4 (50%) rag q2, elapsed 0:10, ETA 0:20
compare: 3/4 (75%) rag q3, elapsed 0:20, ETA 0:10
compare: 3/4 done in 0:30
"""

from __future__ import annotations

import time
from collections.abc import Callable
from types import TracebackType
from typing import Self

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
from rich.progress import Progress as RichProgress

__all__ = ["Progress", "duration"]


def duration(seconds: float | None) -> str:
    """``h:mm:ss`` or ``m:ss``; ``?`` when unknown.

    >>> duration(75), duration(3725), duration(None)
    ('1:15', '1:02:05', '?')
    """
    if seconds is None:
        return "?"
    s = max(0, round(seconds))
    h, rest = divmod(s, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


class Progress:
    """``with Progress("compare", total, console=err) as p: p.update(done, "rag q12")``."""

    def __init__(self, label: str, total: int, *, console: Console,
                 interval: float = 10.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.label, self.total, self.console = label, total, console
        self.interval, self.clock = interval, clock
        self.done = 0
        self._fresh = 0  # answers made in this run
        self._fresh_since: float | None = None  # when the first of them started
        self._last_line: float | None = None
        self._bar: RichProgress | None = None
        self._task = None

    # ------------------------------------------------------------------ context
    def __enter__(self) -> Self:
        self._started = self.clock()
        self._fresh_since = self._started
        if self.console.is_terminal:
            self._bar = RichProgress(
                TextColumn(f"[bold]{self.label}"), BarColumn(), MofNCompleteColumn(),
                TimeElapsedColumn(), TextColumn("ETA {task.fields[eta]}"),
                TextColumn("{task.description}"), console=self.console)
            self._bar.__enter__()
            self._task = self._bar.add_task("", total=self.total, eta="?")
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._bar is not None:
            self._bar.__exit__(exc_type, exc, tb)
        elif exc_type is None:
            self.console.print(f"{self.label}: {self.done}/{self.total} done in "
                               f"{duration(self.clock() - self._started)}",
                               highlight=False, markup=False, soft_wrap=True)

    # ------------------------------------------------------------------ updates
    def eta(self, now: float) -> float | None:
        """Seconds left at this run's rate so far (None before the first answer)."""
        if not self._fresh or self._fresh_since is None:
            return None
        rate = (now - self._fresh_since) / self._fresh
        return rate * max(0, self.total - self.done)

    def update(self, done: int, current: str = "", *, fresh: bool = True) -> None:
        """``done`` items of ``total`` are finished; ``fresh=False``: they were resumed."""
        now = self.clock()
        step = max(0, done - self.done)
        self.done = done
        if not fresh:
            if not self._fresh:
                self._fresh_since = now  # resumed work cost no time: measure from here
            if self._bar is not None and self._task is not None:
                self._bar.update(self._task, completed=done, description=current)
            return
        self._fresh += step
        eta = self.eta(now)
        if self._bar is not None and self._task is not None:
            self._bar.update(self._task, completed=done, description=current, eta=duration(eta))
            return
        if self._last_line is None or now - self._last_line >= self.interval:
            self._last_line = now
            pct = f"{done / self.total:.0%}" if self.total else "-"
            self.console.print(
                f"{self.label}: {done}/{self.total} ({pct}) {current}, elapsed "
                f"{duration(now - self._started)}, ETA {duration(eta)}",
                highlight=False, markup=False, soft_wrap=True)
