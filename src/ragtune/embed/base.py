"""The Embedder protocol: texts in, L2-normalised float32 vectors out.

>>> from ragtune.embed.fake import FakeEmbedder
>>> e = FakeEmbedder(dimension=8)
>>> e.embed_documents(["a b", "c"]).shape
(2, 8)
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class Embedder(Protocol):
    """Turns text into vectors. Rows are L2-normalised, so a dot product is a cosine."""

    name: str
    dimension: int

    def embed_documents(self, texts: list[str]) -> np.ndarray:
        """Embed passages; returns shape (len(texts), dimension), float32."""
        ...

    def embed_query(self, text: str) -> np.ndarray:
        """Embed one query; returns shape (dimension,), float32."""
        ...

    def count_tokens(self, text: str) -> int:
        """Tokens this model sees for ``text`` (used to bound chunks)."""
        ...
