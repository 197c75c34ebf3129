"""Build the embedder that ``[embedding] backend`` names, from the ``EMBEDDERS`` registry.

Built in: ``local`` (the packaged all-MiniLM-L6-v2, ONNX int8 or torch), ``http`` (any
OpenAI-compatible ``/v1/embeddings``), ``fake`` (deterministic, for tests). More register
through the ``ragtune.embedders`` entry point group (see :mod:`ragtune.registry`).

>>> from ragtune.config import EmbeddingSettings
>>> make_embedder(EmbeddingSettings(backend="fake", dimension=16)).dimension
16
"""

from __future__ import annotations

from ragtune.config import EmbeddingSettings
from ragtune.embed.base import Embedder
from ragtune.errors import ConfigError
from ragtune.registry import Registry

EMBEDDERS: Registry[Embedder] = Registry("embedding", "ragtune.embedders")


@EMBEDDERS.register("fake")
def _fake(settings: EmbeddingSettings) -> Embedder:
    from ragtune.embed.fake import FakeEmbedder

    return FakeEmbedder(dimension=settings.dimension)


@EMBEDDERS.register("http")
def _http(settings: EmbeddingSettings) -> Embedder:
    if not settings.base_url:
        raise ConfigError("embedding.base_url is required when embedding.backend = 'http'")
    from ragtune.embed.http import HttpEmbedder

    return HttpEmbedder(settings.base_url, settings.model, api_key=settings.api_key,
                        batch_size=settings.batch_size)


@EMBEDDERS.register("local")
def _local(settings: EmbeddingSettings) -> Embedder:
    from ragtune.embed.local import LocalEmbedder

    return LocalEmbedder(settings.model, quantize=settings.quantize,
                         batch_size=settings.batch_size, runtime=settings.runtime,
                         device=settings.device)


def make_embedder(settings: EmbeddingSettings) -> Embedder:
    """Return the backend ``settings.backend`` names. Local models load lazily, on first use."""
    return EMBEDDERS.create(settings.backend, settings)
