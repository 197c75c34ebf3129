"""Answering in the server: each question runs on a worker thread, through the generation
gate, as the caller, with its trace recorded as the caller.

The event loop never blocks on a model: :meth:`AnswerRunner.answer` (one JSON reply) and
:meth:`AnswerRunner.stream` (tokens as they come) run the workspace's answerer on a worker
thread and watch for the client going away; when it does, the admission is cancelled and
the model stops at its next token (or the question leaves the queue).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from ragtune.answer.conversation import Turn
from ragtune.answer.traces import TraceSink
from ragtune.errors import NotFound
from ragtune.finetune.adapters import AdapterInfo
from ragtune.server.auth import Identity
from ragtune.server.gate import Admission, GatedGenerator, GenerationGate
from ragtune.store.base import SearchFilter
from ragtune.types import Answer, Principal
from ragtune.workspace import Workspace


def usable_adapters(ws: Workspace, principal: Principal) -> list[AdapterInfo]:
    """The finished adapters ``principal`` may answer with (only principals who may read
    every document an adapter was trained on: :mod:`ragtune.finetune.access`)."""
    return [i for i in ws.registry.list() if ws.adapters.usable(i.name, principal)]


def usable_adapter(ws: Workspace, principal: Principal, name: str) -> AdapterInfo:
    """Adapter ``name`` if ``principal`` may use it; otherwise NotFound, the same as for an
    adapter that does not exist (naming only the ones this caller may use)."""
    usable = usable_adapters(ws, principal)
    for info in usable:
        if info.name == name:
            return info
    known = ", ".join(i.name for i in usable) or "none"
    raise NotFound(f"no adapter named {name!r} (available to you: {known})")


class CallerSink:
    """Records each answer with how its principal was established (the audit's "as whom")."""

    def __init__(self, inner: TraceSink, identity: Identity) -> None:
        self.inner = inner
        self.identity = identity

    def record(self, answer: Answer) -> None:
        answer.trace.caller = self.identity.caller()
        self.inner.record(answer)


@dataclass(frozen=True)
class Question:
    """One question as the edges hand it over."""

    text: str
    history: Sequence[Turn] = ()
    mode: str | None = None
    adapter: str | None = None
    filters: SearchFilter | None = None
    k: int | None = None
    max_tokens: int | None = None
    temperature: float | None = None


class AnswerRunner:
    """Runs questions for the server: admission, worker threads, cancellation."""

    def __init__(self, ws: Workspace, gate: GenerationGate,
                 metrics: TraceSink | None = None) -> None:
        self.ws = ws
        self.gate = gate
        self.metrics = metrics  # counts every finished answer (the server's /metrics)
        # One thread per admitted question at most: waiting for a slot blocks a thread,
        # never the event loop or the pool that serves search.
        self.executor = ThreadPoolExecutor(gate.max_waiting + gate.slots,
                                           thread_name_prefix="ragtune-answer")
        self._warm_lock = threading.Lock()
        self._warm: set[str] = set()

    def admit(self, identity: Identity) -> Admission:
        """Admit a question now, or raise Busy (429/503 with Retry-After)."""
        return self.gate.admit(identity.user)

    def _warm_once(self, key: str, load: Callable[[], object]) -> None:
        """Load a lazily built model once, not once per concurrent first question."""
        if key in self._warm:
            return
        with self._warm_lock:
            if key not in self._warm:
                load()
                self._warm.add(key)

    def _run(self, identity: Identity, q: Question, admission: Admission,
             on_token: Callable[[str], None] | None) -> Answer:
        try:
            if q.adapter:
                self._warm_once(f"adapter:{q.adapter}",
                                lambda: self.ws.adapters.generator(q.adapter or ""))
            if q.mode == "hybrid":
                self._warm_once("router", lambda: self.ws.routing)
            answerer = self.ws.answerer_for(
                sink=CallerSink(self.ws.traces, identity),
                wrap=lambda g: GatedGenerator(g, admission, max_tokens=q.max_tokens,
                                              temperature=q.temperature))
            answer = answerer.ask(q.text, identity.principal, mode=q.mode, adapter=q.adapter,
                                  filters=q.filters, k=q.k, on_token=on_token,
                                  history=q.history)
            if self.metrics is not None:
                self.metrics.record(answer)
            return answer
        finally:
            admission.close()

    async def answer(self, identity: Identity, q: Question, admission: Admission,
                     is_disconnected: Callable[[], Awaitable[bool]]) -> Answer:
        """The whole answer; cancelled when ``is_disconnected`` says the client left."""
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(self.executor, self._run, identity, q, admission, None)
        try:
            while True:
                done, _ = await asyncio.wait({future}, timeout=0.25)
                if done:
                    return future.result()
                if await is_disconnected():
                    admission.cancel()
        finally:
            if not future.done():
                admission.cancel()

    async def stream(self, identity: Identity, q: Question,
                     admission: Admission) -> AsyncIterator[tuple[str, Any]]:
        """Events ``("token", str)``... then ``("answer", Answer)`` or ``("error", exc)``.

        Closing the iterator early (the client disconnected) cancels the question.
        """
        loop = asyncio.get_running_loop()
        events: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()

        def put(kind: str, value: Any) -> None:
            try:
                loop.call_soon_threadsafe(events.put_nowait, (kind, value))
            except RuntimeError:  # the loop is closed: the server is shutting down
                admission.cancel()

        def run() -> None:
            try:
                put("answer", self._run(identity, q, admission, lambda t: put("token", t)))
            except Exception as e:  # noqa: BLE001 — handed to the event loop, which reports it
                put("error", e)

        loop.run_in_executor(self.executor, run)
        finished = False
        try:
            while True:
                kind, value = await events.get()
                finished = kind != "token"
                yield kind, value
                if finished:
                    return
        finally:
            if not finished:
                admission.cancel()

    def close(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)
