"""Build the embedder that ``[embedding]`` in ragtune.toml names.

>>> from ragtune.config import EmbeddingSettings
>>> make_embedder(EmbeddingSettings(backend="fake", dimension=16)).dimension
16
"""

from __future__ import annotations

from ragtune.config import EmbeddingSettings
from ragtune.embed.base import Embedder
from ragtune.errors import ConfigError


def make_embedder(settings: EmbeddingSettings) -> Embedder:
    """Return the backend ``settings.backend`` names. Local models load lazily, on first use."""
    if settings.backend == "fake":
        from ragtune.embed.fake import FakeEmbedder

        return FakeEmbedder(dimension=settings.dimension)
    if settings.backend == "http":
        if not settings.base_url:
            raise ConfigError("embedding.base_url is required when embedding.backend = 'http'")
        from ragtune.embed.http import HttpEmbedder

        return HttpEmbedder(
            settings.base_url,
            settings.model,
            api_key=settings.api_key,
            batch_size=settings.batch_size,
        )
    if settings.backend == "local":
        from ragtune.embed.local import LocalEmbedder

        return LocalEmbedder(
            settings.model,
            quantize=settings.quantize,
            batch_size=settings.batch_size,
            # embedding.runtime ("onnx" | "torch"); older Settings without it get the default
            runtime=settings.runtime,
            device=settings.device,
        )
    raise ConfigError(f"embedding.backend must be local, http or fake, got {settings.backend!r}")
