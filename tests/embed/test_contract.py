"""Every Embedder backend runs the one contract suite (tests/contracts/embedder.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ragtune.embed.base import Embedder
from ragtune.embed.fake import FakeEmbedder
from ragtune.embed.http import HttpEmbedder
from tests.contracts.embedder import EmbedderContract

from .test_http import serve


class TestFakeEmbedder(EmbedderContract):
    @pytest.fixture
    def embedder(self) -> Embedder:
        return FakeEmbedder(dimension=64)


class TestHttpEmbedder(EmbedderContract):
    @pytest.fixture(scope="class")
    @classmethod
    def embedder(cls) -> Iterator[Embedder]:
        with serve() as url:
            yield HttpEmbedder(f"{url}/v1", "fake")


@pytest.mark.integration
class TestLocalEmbedder(EmbedderContract):
    @pytest.fixture(scope="class")
    @classmethod
    def embedder(cls) -> Embedder:
        from ragtune.embed.local import LocalEmbedder

        e = LocalEmbedder()
        e.embed_query("warm up")  # load once for the whole class
        return e
