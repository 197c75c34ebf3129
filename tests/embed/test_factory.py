"""make_embedder picks the backend named in the settings."""

from __future__ import annotations

import pytest

from ragtune.config import EmbeddingSettings
from ragtune.embed.factory import make_embedder
from ragtune.embed.fake import FakeEmbedder
from ragtune.embed.http import HttpEmbedder
from ragtune.errors import ConfigError


def test_fake() -> None:
    e = make_embedder(EmbeddingSettings(backend="fake", dimension=12))
    assert isinstance(e, FakeEmbedder) and e.dimension == 12


def test_http() -> None:
    e = make_embedder(
        EmbeddingSettings(backend="http", base_url="http://h:1/v1", model="m", batch_size=7)
    )
    assert isinstance(e, HttpEmbedder)
    assert e.url == "http://h:1/v1/embeddings" and e.batch_size == 7 and e.name == "http:m"


def test_http_needs_base_url() -> None:
    with pytest.raises(ConfigError, match="embedding.base_url"):
        make_embedder(EmbeddingSettings(backend="http"))


def test_local_is_lazy() -> None:
    from ragtune.embed.local import LocalEmbedder

    e = make_embedder(EmbeddingSettings(backend="local", quantize=False, batch_size=8))
    assert isinstance(e, LocalEmbedder)
    assert e.quantize is False and e.batch_size == 8
    assert e._model is None  # nothing loaded until the first embed
