"""FakeGenerator: deterministic replies that satisfy the Generator protocol."""

from __future__ import annotations

from ragtune.config import GenerationSettings
from ragtune.generate.base import Generator
from ragtune.generate.citations import check_answer
from ragtune.generate.factory import make_generator
from ragtune.generate.fake import DONT_KNOW, FakeGenerator
from ragtune.generate.prompts import build_plain_messages, build_rag_messages
from ragtune.types import Chunk, Hit

HIT = Hit(chunk=Chunk(id="ch_1", doc_id="d", text="Returns take 30 days, e.g. for shoes. Gift cards are final.",
                      section="Returns", ordinal=0, tokens=10), score=1.0, document="p.md", title="Policy")


def test_is_a_generator() -> None:
    assert isinstance(FakeGenerator(), Generator)


def test_default_reply_copies_source_one_and_cites_it() -> None:
    g = FakeGenerator()
    c = g.complete(build_rag_messages("How long?", [HIT]))
    assert c.text == "Returns take 30 days, e.g. for shoes. [1]"
    cites, checks = check_answer(c.text, [HIT])
    assert cites[0].supported and checks[0].supported


def test_default_reply_without_sources() -> None:
    assert FakeGenerator().complete(build_plain_messages("Hi?")).text == DONT_KNOW
    one_line = [{"role": "user", "content": "[1] Only line here. More.\nQuestion: x"}]
    assert FakeGenerator().complete(one_line).text == "Only line here. [1]"


def test_counts_words_and_records_calls() -> None:
    g = FakeGenerator(reply="one two three")
    msgs = [{"role": "system", "content": "a b"}, {"role": "user", "content": "c d e"}]
    c = g.complete(msgs)
    assert (c.prompt_tokens, c.completion_tokens) == (5, 3)
    assert set(c.timings) == {"first_token_s", "total_s"}
    assert g.calls == [msgs] and g.last_completion is c


def test_stream_yields_words_and_sets_last_completion() -> None:
    g = FakeGenerator(reply="Returns take  30 days [1].")
    pieces = list(g.stream([{"role": "user", "content": "q"}]))
    assert pieces == ["Returns", " take", "  30", " days", " [1]."]
    assert g.last_completion is not None and g.last_completion.text == "".join(pieces)
    assert g.last_completion.completion_tokens == 5


def test_callable_reply_and_max_tokens() -> None:
    g = FakeGenerator(reply=lambda msgs: f"echo {msgs[-1]['content']}", name="echo")
    assert g.name == "echo"
    assert g.complete([{"role": "user", "content": "a b c"}], max_tokens=2).text == "echo a"


def test_factory_builds_fake() -> None:
    assert isinstance(make_generator(GenerationSettings(backend="fake")), FakeGenerator)
