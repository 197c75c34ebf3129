"""The Generator contract: complete and stream agree, counts are kept, max_tokens holds.

Subclass :class:`GeneratorContract` and define a ``generator`` fixture answering greedily
(temperature 0), so the same messages give the same reply.
"""

from __future__ import annotations

from ragtune.generate.base import Completion, Generator

MESSAGES = [{"role": "system", "content": "You answer in one short sentence."},
            {"role": "user", "content": "Where do returned tents go?"}]


class GeneratorContract:
    """Tests every Generator backend must pass."""

    def test_is_a_generator(self, generator: Generator) -> None:
        assert isinstance(generator, Generator)
        assert isinstance(generator.name, str) and generator.name

    def test_complete_returns_text_and_counts(self, generator: Generator) -> None:
        c = generator.complete(MESSAGES, max_tokens=24, temperature=0.0)
        assert isinstance(c, Completion) and isinstance(c.text, str)
        assert c.completion_tokens >= 1 and c.prompt_tokens >= 1
        assert generator.last_completion is c or generator.last_completion == c

    def test_stream_yields_pieces_then_records_the_completion(self, generator: Generator) -> None:
        pieces = list(generator.stream(MESSAGES, max_tokens=24, temperature=0.0))
        assert pieces and all(isinstance(p, str) for p in pieces)
        done = generator.last_completion
        assert done is not None and done.completion_tokens >= 1
        assert "".join(pieces).strip() == done.text.strip()

    def test_stream_and_complete_agree_when_greedy(self, generator: Generator) -> None:
        whole = generator.complete(MESSAGES, max_tokens=24, temperature=0.0).text
        streamed = "".join(generator.stream(MESSAGES, max_tokens=24, temperature=0.0))
        assert streamed.strip() == whole.strip()

    def test_max_tokens_bounds_the_reply(self, generator: Generator) -> None:
        short = generator.complete(MESSAGES, max_tokens=3, temperature=0.0)
        assert 1 <= short.completion_tokens <= 3
