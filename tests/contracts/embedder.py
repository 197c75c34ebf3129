"""The Embedder contract: shape, dtype, unit norm, determinism, query/document agreement.

Subclass :class:`EmbedderContract` and define an ``embedder`` fixture.
"""

from __future__ import annotations

import numpy as np

from ragtune.embed.base import Embedder

TEXTS = [
    "Employees may carry over five days of unused leave into the next year.",
    "The VPN must be used on public Wi-Fi networks.",
    "",
    "Ünïcödé text — with dashes, emoji 🙂 and numbers 3.14!",
    "leave leave leave",
]


class EmbedderContract:
    """Tests every Embedder backend must pass."""

    def test_is_an_embedder(self, embedder: Embedder) -> None:
        assert isinstance(embedder, Embedder)
        assert isinstance(embedder.name, str) and embedder.name
        assert embedder.dimension > 0

    def test_documents_have_shape_dtype_and_unit_norm(self, embedder: Embedder) -> None:
        v = embedder.embed_documents(TEXTS)
        assert v.shape == (len(TEXTS), embedder.dimension)
        assert v.dtype == np.float32
        assert np.all(np.isfinite(v))
        np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)

    def test_is_deterministic(self, embedder: Embedder) -> None:
        np.testing.assert_allclose(
            embedder.embed_documents(TEXTS), embedder.embed_documents(TEXTS), atol=1e-6)

    def test_query_equals_single_document(self, embedder: Embedder) -> None:
        q = embedder.embed_query(TEXTS[0])
        assert q.shape == (embedder.dimension,) and q.dtype == np.float32
        # Batched and single embeddings may differ by padding-dependent rounding only.
        np.testing.assert_allclose(q, embedder.embed_documents([TEXTS[0]])[0], atol=1e-3)
        # In a batch of other texts: dynamic int8 picks its activation scale per batch, so the
        # local int8 model moves a little (cosine ~0.99), the others not at all.
        assert float(q @ embedder.embed_documents(TEXTS)[0]) > 0.97

    def test_empty_list_gives_zero_rows(self, embedder: Embedder) -> None:
        v = embedder.embed_documents([])
        assert v.shape == (0, embedder.dimension) and v.dtype == np.float32

    def test_related_text_scores_higher(self, embedder: Embedder) -> None:
        docs = embedder.embed_documents(
            ["How many vacation days can employees carry over to next year?",
             "Configure the printer driver on Linux."])
        q = embedder.embed_query(TEXTS[0])
        assert q @ docs[0] > q @ docs[1]

    def test_count_tokens_grows_with_text(self, embedder: Embedder) -> None:
        short, long = embedder.count_tokens("one two"), embedder.count_tokens("one two " * 50)
        assert 0 < short < long
        assert embedder.count_tokens("") >= 0
