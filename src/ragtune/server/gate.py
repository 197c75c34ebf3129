"""Many users, one model: admission, fair generation slots, cancellation.

A local llama.cpp model generates one answer at a time (on 2 cores, two at once would
only halve each one's speed). The :class:`GenerationGate` admits a question when it
arrives, or refuses it at once with Retry-After: 429 when this user already has
``per_user`` questions in progress, 503 when everyone together has ``max_waiting``. An
admitted question retrieves right away (search never waits for the model) and queues for
a generation slot only when it reaches the model: refusals below the relevance floor and
out-of-scope questions never queue. Slots go round-robin across users, first come first
served within a user, so one user's burst does not starve the others.

:class:`GatedGenerator` wraps each generator an answer uses: it takes the slot when
generation starts, stops the model as soon as the admission is cancelled (the client went
away), and keeps its own token counts (a generator shared by concurrent requests must not
report another request's counts).

>>> gate = GenerationGate(slots=1, max_waiting=2, per_user=1)
>>> a = gate.admit("ana")
>>> gate.admit("ana")
Traceback (most recent call last):
...
ragtune.errors.Busy: you already have 1 question(s) in progress; retry after 3 s
>>> a.close(); gate.stats()["admitted"]
0
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Iterator

from ragtune.errors import Busy, Cancelled
from ragtune.generate.base import Completion, Generator

_POLL_S = 0.2  # how often a waiting thread looks at its cancel flag


class Admission:
    """One admitted question: its place in the fair queue and its cancel flag."""

    def __init__(self, gate: GenerationGate, user: str) -> None:
        self.gate = gate
        self.user = user
        self.cancelled = threading.Event()
        self.holding = False
        self.closed = False
        self.waited_s = 0.0
        self.held_since = 0.0

    def cancel(self) -> None:
        """The client went away: stop waiting or generating."""
        self.cancelled.set()

    def acquire(self) -> None:
        """Block until a generation slot is ours (fair order); Cancelled if cancelled first."""
        self.gate._acquire(self)

    def release(self) -> None:
        self.gate._release(self)

    def close(self) -> None:
        """The question is finished (answered, failed or cancelled): free its place."""
        self.gate._close(self)


class GenerationGate:
    """Admission control and fair generation slots (thread-safe)."""

    def __init__(self, slots: int, max_waiting: int, per_user: int) -> None:
        if slots < 1:
            raise ValueError("slots must be >= 1")
        self.slots = slots
        self.max_waiting = max_waiting
        self.per_user = per_user
        self._cond = threading.Condition()
        self._free = slots
        self._admitted: dict[str, int] = {}
        self._queues: dict[str, deque[Admission]] = {}
        self._turns: deque[str] = deque()  # users with someone waiting, next first
        self._service_s = 3.0  # moving average of a slot's hold time (Retry-After)

    # ------------------------------------------------------------------ admission
    def retry_after(self) -> int:
        """Seconds until a place is likely to free up."""
        waiting = sum(len(q) for q in self._queues.values())
        return max(1, min(300, math.ceil(self._service_s * (waiting + 1) / self.slots)))

    def admit(self, user: str) -> Admission:
        """Admit a question from ``user`` or raise :class:`Busy` (429 or 503)."""
        with self._cond:
            mine = self._admitted.get(user, 0)
            if mine >= self.per_user:
                raise Busy(f"you already have {mine} question(s) in progress; retry after "
                           f"{self.retry_after()} s", self.retry_after(), http_status=429)
            if sum(self._admitted.values()) >= self.max_waiting:
                raise Busy(f"the server is answering {self.max_waiting} questions; retry "
                           f"after {self.retry_after()} s", self.retry_after(), http_status=503)
            self._admitted[user] = mine + 1
            return Admission(self, user)

    def stats(self) -> dict[str, int]:
        """Questions admitted, waiting for a slot, and generating now."""
        with self._cond:
            return {"admitted": sum(self._admitted.values()),
                    "waiting": sum(len(q) for q in self._queues.values()),
                    "generating": self.slots - self._free, "slots": self.slots}

    # ------------------------------------------------------------------ slots
    def _next(self) -> Admission | None:
        while self._turns:
            queue = self._queues.get(self._turns[0])
            if queue:
                return queue[0]
            self._turns.popleft()
        return None

    def _acquire(self, a: Admission) -> None:
        started = time.monotonic()
        with self._cond:
            queue = self._queues.setdefault(a.user, deque())
            if not queue and a.user not in self._turns:
                self._turns.append(a.user)
            queue.append(a)
            try:
                while not (self._free > 0 and self._next() is a):
                    if a.cancelled.is_set():
                        raise Cancelled("the client went away while waiting for the model")
                    self._cond.wait(_POLL_S)
            finally:
                queue.remove(a)
                if not queue:
                    self._queues.pop(a.user, None)
                    if a.user in self._turns:
                        self._turns.remove(a.user)
                self._cond.notify_all()
            # Granted: this user goes to the back of the line for the next slot.
            self._free -= 1
            a.holding = True
            if a.user in self._turns:
                self._turns.remove(a.user)
                self._turns.append(a.user)
        a.held_since = time.monotonic()
        a.waited_s = a.held_since - started

    def _release(self, a: Admission) -> None:
        with self._cond:
            if not a.holding:
                return
            a.holding = False
            self._free += 1
            held = time.monotonic() - a.held_since
            self._service_s = 0.8 * self._service_s + 0.2 * held
            self._cond.notify_all()

    def _close(self, a: Admission) -> None:
        self._release(a)
        with self._cond:
            if a.closed:
                return
            a.closed = True
            left = self._admitted.get(a.user, 0) - 1
            if left > 0:
                self._admitted[a.user] = left
            else:
                self._admitted.pop(a.user, None)
            self._cond.notify_all()


class GatedGenerator:
    """A Generator that generates only while holding ``admission``'s slot.

    ``max_tokens``/``temperature`` override the wrapped generator's defaults for this
    request (an OpenAI client's ``max_tokens``).
    """

    def __init__(self, inner: Generator, admission: Admission, *,
                 max_tokens: int | None = None, temperature: float | None = None) -> None:
        self.inner = inner
        self.admission = admission
        self.max_tokens = max_tokens
        self.temperature = temperature
        self.name = inner.name
        self.last_completion: Completion | None = None

    def complete(self, messages: list[dict[str, str]], *, max_tokens: int | None = None,
                 temperature: float | None = None) -> Completion:
        text = "".join(self.stream(messages, max_tokens=max_tokens, temperature=temperature))
        return self.last_completion or Completion(text)

    def stream(self, messages: list[dict[str, str]], *, max_tokens: int | None = None,
               temperature: float | None = None) -> Iterator[str]:
        a = self.admission
        a.acquire()
        try:
            pieces = self.inner.stream(
                messages, max_tokens=self.max_tokens if max_tokens is None else max_tokens,
                temperature=self.temperature if temperature is None else temperature)
            try:
                for piece in pieces:
                    if a.cancelled.is_set():
                        raise Cancelled("the client went away; generation stopped")
                    yield piece
                # read while the slot is held: nobody else has used the generator since
                self.last_completion = self.inner.last_completion
            finally:
                close = getattr(pieces, "close", None)
                if close is not None:
                    close()  # stops the model now, not when garbage collected
        finally:
            a.release()
