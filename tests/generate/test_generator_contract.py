"""Every Generator backend runs the one contract suite (tests/contracts/generator.py):
the fake, the HTTP client against a real server, llama.cpp on the packaged model (transformers + PEFT
on the tiny test model runs it in tests/finetune/test_hf_generator.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ragtune.generate.base import Generator
from ragtune.generate.fake import FakeGenerator
from ragtune.generate.http import HttpGenerator
from tests.contracts.generator import GeneratorContract

from .test_http import API_KEY, _app


class TestFakeGenerator(GeneratorContract):
    @pytest.fixture
    def generator(self) -> Generator:
        return FakeGenerator(reply="Returned tents go to the outlet store after inspection.")


class TestHttpGenerator(GeneratorContract):
    @pytest.fixture(scope="class")
    @classmethod
    def generator(cls) -> Iterator[Generator]:
        from tests.conftest import serve_in_thread

        with serve_in_thread(_app()) as url:
            yield HttpGenerator(url, "qwen", api_key=API_KEY)


@pytest.mark.integration
class TestLlamaCppGenerator(GeneratorContract):
    @pytest.fixture(scope="class")
    @classmethod
    def generator(cls) -> Generator:
        from ragtune.generate.llama_cpp import LlamaCppGenerator
        from ragtune.generate.models import resolve_model

        return LlamaCppGenerator(resolve_model("qwen2.5-0.5b"), n_ctx=1024, max_tokens=24)
