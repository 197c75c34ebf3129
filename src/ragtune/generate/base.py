"""The Generator protocol: chat messages in, text (whole or streamed) out.

>>> from ragtune.generate.fake import FakeGenerator
>>> g = FakeGenerator(reply="Hi [1].")
>>> g.complete([{"role": "user", "content": "hello"}]).text
'Hi [1].'
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable


@dataclass
class Completion:
    """A finished generation with the counts a trace needs."""

    text: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    timings: dict[str, float] = field(default_factory=dict)  # first_token_s, total_s
    # Why generation stopped, as OpenAI-compatible servers say it: "stop" (the model ended
    # its reply), "length" (it hit max_tokens mid-answer), None (the backend cannot tell).
    finish_reason: str | None = None


@runtime_checkable
class Generator(Protocol):
    """A chat model, local or remote.

    ``name`` identifies the model (and adapter) in traces; ``last_completion`` holds the
    token counts of the last finished reply (None before the first one).
    """

    name: str
    last_completion: Completion | None

    def complete(self, messages: list[dict[str, str]], *, max_tokens: int | None = None,
                 temperature: float | None = None) -> Completion:
        """Generate the whole reply."""
        ...

    def stream(self, messages: list[dict[str, str]], *, max_tokens: int | None = None,
               temperature: float | None = None) -> Iterator[str]:
        """Yield the reply piece by piece. After exhaustion, ``last_completion`` holds counts."""
        ...
