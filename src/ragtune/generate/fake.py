"""FakeGenerator: a deterministic Generator for tests; no model, no network.

Default reply: if the last user message holds numbered sources (``<source id="1" …>``
blocks as :func:`ragtune.generate.prompts.build_rag_messages` writes them, or ``[1] ...``
at the start of a line), the reply is the first sentence of source 1's text followed by
``" [1]"``; otherwise it is ``"I don't know."``. Tokens are counted as whitespace-separated
words.

>>> g = FakeGenerator()
>>> g.complete([{"role": "user", "content": '<source id="1" title="Policy — Returns">\\n'
...             "Returns take 30 days. Gift cards are final.\\n</source>\\n\\nQuestion: How long?"}]).text
'Returns take 30 days. [1]'
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
_FENCED_1 = re.compile(r'<source id="1"[^>\n]*>\n(.*?)\n</source>', re.DOTALL)


def default_reply(messages: list[dict[str, str]]) -> str:
    """First sentence of source [1] plus " [1]", or "I don't know." (see module doc)."""
    from ragtune.generate.citations import split_sentences

    last_user = next((m["content"] for m in reversed(messages) if m.get("role") == "user"), "")
    fenced = _FENCED_1.search(last_user)
    if fenced:
        sentences = split_sentences(fenced.group(1).strip())
        return f"{sentences[0]} [1]" if sentences else DONT_KNOW
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

    ``max_tokens`` (per call, or the constructor's default) cuts the reply to that many
    words, like a real model running out of tokens (``finish_reason`` "length"). Every call's messages are kept in ``calls`` so tests can check the prompt.
    """

    def __init__(self, reply: str | Callable[[list[dict[str, str]]], str] = default_reply,
                 name: str = "fake", max_tokens: int | None = None) -> None:
        self.reply = reply
        self.max_tokens = max_tokens  # the default cut, like generation.max_tokens
        self.name = name
        self.calls: list[list[dict[str, str]]] = []
        self.last_completion: Completion | None = None

    def _text(self, messages: list[dict[str, str]], max_tokens: int | None) -> tuple[str, str]:
        self.calls.append([dict(m) for m in messages])
        text = self.reply(messages) if callable(self.reply) else self.reply
        limit = self.max_tokens if max_tokens is None else max_tokens
        if limit is not None and _words(text) > limit:
            return "".join(re.findall(r"\s*\S+", text)[:limit]).strip(), "length"
        return text, "stop"

    def complete(self, messages: list[dict[str, str]], *, max_tokens: int | None = None,
                 temperature: float | None = None) -> Completion:
        start = time.perf_counter()
        text, finish = self._text(messages, max_tokens)
        elapsed = time.perf_counter() - start
        self.last_completion = Completion(
            text=text,
            prompt_tokens=sum(_words(m.get("content", "")) for m in messages),
            completion_tokens=_words(text),
            timings={"first_token_s": elapsed, "total_s": elapsed},
            finish_reason=finish,
        )
        return self.last_completion

    def stream(self, messages: list[dict[str, str]], *, max_tokens: int | None = None,
               temperature: float | None = None) -> Iterator[str]:
        """Yield the reply word by word (each piece keeps its leading whitespace)."""
        completion = self.complete(messages, max_tokens=max_tokens, temperature=temperature)
        yield from re.findall(r"\s*\S+\s*$|\s*\S+", completion.text)
