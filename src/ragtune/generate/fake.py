"""FakeGenerator: a deterministic Generator for tests; no model, no network.

Default reply: if the last user message holds numbered sources (``[1] ...`` at the start
of a line, as :func:`ragtune.generate.prompts.build_rag_messages` writes them), the reply
is the first sentence of source 1's text followed by ``" [1]"``; otherwise it is
``"I don't know."``. Tokens are counted as whitespace-separated words.

>>> g = FakeGenerator()
>>> g.complete([{"role": "user", "content": "[1] Policy — Returns\\n"
...             "Returns take 30 days. Gift cards are final.\\n\\nQuestion: How long?"}]).text
'Returns take 30 days. [1]'
>>> "".join(FakeGenerator(reply="a b  c").stream([{"role": "user", "content": "x"}]))
'a b  c'
>>> FakeGenerator(reply=lambda msgs: msgs[-1]["content"].upper()).complete(
...     [{"role": "user", "content": "hi"}]).text
'HI'
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator

from ragtune.generate.base import Completion

DONT_KNOW = "I don't know."

# "[1] header" up to the next "[n]" line or the "Question:" line.
_SOURCE_1 = re.compile(r"^\[1\][ \t]*(.*?)(?=^\[\d+\]|^Question:|\Z)", re.MULTILINE | re.DOTALL)


def default_reply(messages: list[dict[str, str]]) -> str:
    """First sentence of source [1] plus " [1]", or "I don't know." (see module doc)."""
    from ragtune.generate.citations import split_sentences

    last_user = next((m["content"] for m in reversed(messages) if m.get("role") == "user"), "")
    m = _SOURCE_1.search(last_user)
    if not m:
        return DONT_KNOW
    lines = m.group(1).strip().splitlines()
    # "[1] Title — Section\ntext" -> text; a one-line "[1] text" -> text.
    body = "\n".join(lines[1:]).strip() if len(lines) > 1 else (lines[0] if lines else "")
    sentences = split_sentences(body)
    return f"{sentences[0]} [1]" if sentences else DONT_KNOW


def _words(text: str) -> int:
    return len(text.split())


class FakeGenerator:
    """A Generator whose reply is fixed (a string) or computed from the messages.

    ``max_tokens`` cuts the reply to that many words, like a real model running out of
    tokens. Every call's messages are kept in ``calls`` so tests can check the prompt.
    """

    def __init__(self, reply: str | Callable[[list[dict[str, str]]], str] = default_reply,
                 name: str = "fake") -> None:
        self.reply = reply
        self.name = name
        self.calls: list[list[dict[str, str]]] = []
        self.last_completion: Completion | None = None

    def _text(self, messages: list[dict[str, str]], max_tokens: int | None) -> str:
        self.calls.append([dict(m) for m in messages])
        text = self.reply(messages) if callable(self.reply) else self.reply
        if max_tokens is not None and _words(text) > max_tokens:
            text = "".join(re.findall(r"\s*\S+", text)[:max_tokens]).strip()
        return text

    def complete(self, messages: list[dict[str, str]], *, max_tokens: int | None = None,
                 temperature: float | None = None) -> Completion:
        start = time.perf_counter()
        text = self._text(messages, max_tokens)
        elapsed = time.perf_counter() - start
        self.last_completion = Completion(
            text=text,
            prompt_tokens=sum(_words(m.get("content", "")) for m in messages),
            completion_tokens=_words(text),
            timings={"first_token_s": elapsed, "total_s": elapsed},
        )
        return self.last_completion

    def stream(self, messages: list[dict[str, str]], *, max_tokens: int | None = None,
               temperature: float | None = None) -> Iterator[str]:
        """Yield the reply word by word (each piece keeps its leading whitespace)."""
        completion = self.complete(messages, max_tokens=max_tokens, temperature=temperature)
        yield from re.findall(r"\s*\S+\s*$|\s*\S+", completion.text)
