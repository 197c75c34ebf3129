"""Hybrid answers: route the question, retrieve if the route needs it, the adapter answers.

The architecture the RAG-vs-fine-tuning guides end on::

    question → intent router → retrieval in the routed collection(s) if needed
             → LoRA adapter answers with the retrieved context → checked citations

Three safety rules shape it:

* ``out_of_scope`` is answered with a fixed polite refusal; no model runs.
* A knowledge question whose topic the adapter is *stale* on (a document it was trained on
  changed or was deleted) is answered by the base model from the current documents: the
  adapter may have memorised the old facts. The trace says which documents.
* The route only narrows retrieval inside what the principal may read (the router's policy
  never names a collection the principal cannot read), and the store applies the ACL as in
  every other mode.

>>> # answer = answer_hybrid(q, principal, route=r, base=rag_pipeline, tuned=adapter_pipeline)
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import replace
from typing import Protocol

from ragtune.answer.conversation import Turn
from ragtune.answer.pipeline import AnswerPipeline, TokenFn
from ragtune.generate.prompts import OUT_OF_SCOPE_TEXT
from ragtune.store.base import SearchFilter
from ragtune.types import Answer, Principal, Route, Trace


class StaleCheck(Protocol):
    """What hybrid mode asks of an adapter's freshness (ragtune.finetune.freshness.Freshness)."""

    def stale_in(self, collections: Iterable[str] | None) -> list[str]:
        """Sources the adapter was trained on that changed or went, within ``collections``
        (None: any collection)."""
        ...


def _narrow(filters: SearchFilter | None, collections: tuple[str, ...] | None) -> SearchFilter | None:
    """The caller's filters, restricted to the routed collections."""
    if collections is None:
        return filters
    if filters is None:
        return SearchFilter(collections=collections)
    if filters.collections:
        kept = tuple(c for c in filters.collections if c in collections)
        # The user's explicit choice wins over the router when they do not overlap.
        return filters if not kept else replace(filters, collections=kept)
    return replace(filters, collections=collections)


def answer_hybrid(question: str, principal: Principal, *, route: Route, base: AnswerPipeline,
                  tuned: AnswerPipeline, adapter: str, freshness: StaleCheck | None = None,
                  filters: SearchFilter | None = None, k: int | None = None,
                  on_token: TokenFn | None = None, history: Sequence[Turn] = ()) -> Answer:
    """Answer ``question`` the hybrid way; ``trace.route`` records the decision and why.
    ``history``: earlier turns of the conversation (the route was decided with them)."""
    started = time.perf_counter()
    used: str | None = adapter
    if route.kind == "out_of_scope":
        trace = Trace(question=question, principal=principal.user, mode="hybrid",
                      model="none", adapter=adapter)
        trace.notes.append(f"out of scope ({route.reason}): refused without retrieval or generation")
        if on_token:
            on_token(OUT_OF_SCOPE_TEXT)
        answer = Answer(OUT_OF_SCOPE_TEXT, [], True, trace)
    elif route.kind == "direct":
        answer = tuned.ask_direct(question, principal, on_token=on_token, mode="hybrid",
                                  history=history)
        answer.trace.notes.append(f"direct route ({route.reason}): answered by adapter "
                                  f"'{adapter}' without retrieval")
    else:
        stale = freshness.stale_in(route.collections) if freshness is not None else []
        pipeline = base if stale else tuned
        answer = pipeline.ask(question, principal, filters=_narrow(filters, route.collections),
                              k=k, on_token=on_token, mode="hybrid", history=history)
        if stale:
            used = None
            answer.trace.notes.append(
                f"adapter '{adapter}' is stale for this topic (trained on an older version of: "
                f"{', '.join(stale)}): answered by the base model from the current documents")
    answer.trace.adapter = used
    answer.trace.route = route.to_dict()
    answer.trace.timings["total_s"] = time.perf_counter() - started
    return answer
