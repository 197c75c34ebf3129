"""The four answer modes behind one call: ``Answerer.ask(question, principal, mode=...)``.

``base``       the model alone
``rag``        retrieve, then the base model answers with numbered sources (or an adapter,
               when one is given: how a RAFT adapter is served)
``finetuned``  a LoRA adapter alone, with the system prompt it was trained with
``hybrid``     the intent router picks out-of-scope / direct / a knowledge route; knowledge
               routes retrieve in the routed collections and the adapter answers with that
               context (the base model when the adapter is stale on the topic)

Every finished answer, whatever the mode, goes to the trace sink.

>>> from ragtune.config import AnswerSettings, RetrievalSettings
>>> from ragtune.embed.fake import FakeEmbedder
>>> from ragtune.generate.fake import FakeGenerator
>>> from ragtune.retrieve.search import StoreRetriever
>>> from ragtune.store.sqlite import SQLiteStore
>>> from ragtune.types import Principal
>>> retriever = StoreRetriever(SQLiteStore(":memory:"), FakeEmbedder(16), RetrievalSettings())
>>> answerer = Answerer(retriever, FakeGenerator(reply="Hello."), settings=AnswerSettings())
>>> answerer.ask("hi", Principal.anonymous(), mode="base").text
'Hello.'
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

from ragtune.answer.conversation import Turn, retrieval_query
from ragtune.answer.hybrid import answer_hybrid
from ragtune.answer.pipeline import AnswerPipeline, TokenFn
from ragtune.answer.traces import TraceSink
from ragtune.config import ANSWER_MODES, AnswerSettings
from ragtune.errors import ConfigError
from ragtune.finetune.serving import ServedAdapter
from ragtune.generate.base import Generator
from ragtune.retrieve.search import Retriever
from ragtune.store.base import SearchFilter
from ragtune.types import Answer, Principal, Route

RouteFn = Callable[[str, Principal], Route]  # the router's decision (ragtune.route.policy.Routing)
GeneratorWrap = Callable[[Generator], Generator]
"""Wraps every generator an answer uses (the server's: wait for a generation slot, stop when
the client goes away, per-request token limits)."""


class Adapters(Protocol):
    """What the modes need of adapter serving (:class:`ragtune.finetune.serving.AdapterServing`)."""

    def served(self, adapter: str, principal: Principal) -> ServedAdapter: ...


class Answerer:
    """Answers in any of the four modes and records every answer."""

    def __init__(self, retriever: Retriever, generator: Generator, *, settings: AnswerSettings,
                 adapters: Adapters | None = None, router: RouteFn | None = None,
                 sink: TraceSink | None = None, source_tokens: int | None = None,
                 config_hint: str = "ragtune.toml", wrap: GeneratorWrap | None = None) -> None:
        self.retriever = retriever
        self.wrap = wrap
        self.generator = generator
        self.settings = settings
        self.adapters = adapters
        self.router = router
        self.sink = sink
        self.source_tokens = source_tokens
        self.config_hint = config_hint  # where answer.adapter is set, for error messages

    def pipeline(self, generator: Generator | None = None, *, direct_system: str | None = None,
                 conclusion: Callable[[str], str] | None = None) -> AnswerPipeline:
        """The grounded-answer pipeline on ``generator`` (default: the base model)."""
        generator = generator or self.generator
        if self.wrap is not None:
            generator = self.wrap(generator)
        return AnswerPipeline(self.retriever, generator,
                              direct_system=direct_system, conclusion=conclusion,
                              source_tokens=self.source_tokens,
                              unsupported=self.settings.unsupported,
                              support_threshold=self.settings.min_support,
                              max_sentences=self.settings.max_sentences,
                              fallback=self.settings.fallback,
                              injections=self.settings.injections)

    def ask(self, question: str, principal: Principal, *, mode: str | None = None,
            adapter: str | None = None, filters: SearchFilter | None = None,
            k: int | None = None, on_token: TokenFn | None = None,
            origin: str = "ask", history: Sequence[Turn] = ()) -> Answer:
        """Answer ``question`` as ``principal``; defaults come from ``[answer]``.

        ``origin`` marks the record: ``ask`` for people, ``eval`` for evaluation runs.
        ``history``: the earlier turns of a conversation (``question`` is the last one).
        """
        mode, adapter = self._check(mode, adapter)
        answer = self._answer(question, principal, mode, adapter, filters, k, on_token,
                              tuple(history))
        answer.trace.origin = origin
        if self.sink is not None:
            self.sink.record(answer)
        return answer

    def _check(self, mode: str | None, adapter: str | None) -> tuple[str, str | None]:
        mode = mode or self.settings.mode
        if mode not in ANSWER_MODES:
            raise ConfigError(f"unknown answer mode '{mode}' (known: {', '.join(ANSWER_MODES)})")
        if adapter is None and mode in {"finetuned", "hybrid"}:
            adapter = self.settings.adapter or None
            if adapter is None:
                raise ConfigError(f"mode '{mode}' needs an adapter: pass --adapter NAME or set "
                                  f"answer.adapter in {self.config_hint}")
        if mode == "base" and adapter:
            raise ConfigError("mode 'base' answers with the base model alone; use mode "
                              "'finetuned' to answer with an adapter")
        if adapter and self.adapters is None:
            raise ConfigError(f"mode '{mode}' with adapter '{adapter}': no adapter serving "
                              "is configured")
        return mode, adapter

    def _answer(self, question: str, principal: Principal, mode: str, adapter: str | None,
                filters: SearchFilter | None, k: int | None, on_token: TokenFn | None,
                history: tuple[Turn, ...]) -> Answer:
        base = self.pipeline()
        if mode == "base":
            return base.ask_direct(question, principal, on_token=on_token, history=history)
        tuned, served = base, None
        if adapter:
            assert self.adapters is not None
            served = self.adapters.served(adapter, principal)
            tuned = self.pipeline(served.generator, direct_system=served.system_prompt,
                                  conclusion=served.conclusion)
        if mode == "rag":
            answer = tuned.ask(question, principal, filters=filters, k=k, on_token=on_token,
                               history=history)
        elif mode == "finetuned":
            answer = tuned.ask_direct(question, principal, on_token=on_token, mode="finetuned",
                                      history=history)
        else:
            assert adapter is not None and served is not None
            # A follow-up is routed with the questions before it, as it is retrieved.
            routed = retrieval_query(question, history)
            route = (self.router(routed, principal) if self.router is not None
                     else Route.unrouted())
            return answer_hybrid(question, principal, route=route, base=base, tuned=tuned,
                                 adapter=adapter, freshness=served.freshness(), filters=filters,
                                 k=k, on_token=on_token, history=history)
        answer.trace.adapter = adapter
        return answer
