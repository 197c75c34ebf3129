"""Answering: the grounded-answer pipeline, the four answer modes, and the trace sink.

- :mod:`ragtune.answer.pipeline`: retrieve → relevance floor → prompt → generate → cite;
- :mod:`ragtune.answer.hybrid`: the router + adapter flow (out of scope / direct / knowledge);
- :mod:`ragtune.answer.modes`: :class:`Answerer`, one ``ask`` for base, rag, finetuned, hybrid;
- :mod:`ragtune.answer.traces`: where every finished answer is recorded;
- :mod:`ragtune.answer.service`: what the edges (CLI, server, evaluation) ask of a workspace.
"""

from ragtune.answer.modes import Answerer
from ragtune.answer.pipeline import AnswerPipeline, TokenFn
from ragtune.answer.traces import MemoryTraceSink, StoreTraceSink, TraceSink

__all__ = ["AnswerPipeline", "Answerer", "MemoryTraceSink", "StoreTraceSink", "TokenFn",
           "TraceSink"]
