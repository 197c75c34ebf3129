"""Embeddings from an OpenAI-compatible server: ``POST {base_url}/embeddings``.

Works with OpenAI, vLLM, llama.cpp's server, Ollama's ``/v1``, text-embeddings-inference
and ragtune's own server. Rows are re-normalised here, so servers that return raw vectors
still satisfy the Embedder contract.

>>> e = HttpEmbedder("http://127.0.0.1:8000/v1", "all-MiniLM-L6-v2", dimension=384)
>>> e.name
'http:all-MiniLM-L6-v2'
"""

from __future__ import annotations

import json
import re
from typing import Any

import httpx
import numpy as np

from ragtune.errors import ModelError

_TOKEN = re.compile(r"\w+|[^\w\s]")


class HttpEmbedder:
    """Client of an OpenAI-compatible ``/embeddings`` endpoint; an :class:`Embedder`."""

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str = "",
        dimension: int | None = None,
        batch_size: int = 64,
        timeout: float = 60,
    ) -> None:
        if not base_url:
            raise ModelError("embedding.base_url is required for the http embedding backend")
        if batch_size < 1:
            raise ValueError(f"batch_size must be greater than 0, got {batch_size}")
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.name = f"http:{model}"
        self.batch_size = batch_size
        self._dimension = dimension
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.Client(timeout=timeout, headers=headers)

    @property
    def url(self) -> str:
        return f"{self.base_url}/embeddings"

    @property
    def dimension(self) -> int:
        """Vector size; asks the server once (embeds one word) if not given."""
        if self._dimension is None:
            self._dimension = int(self._post(["dimension probe"]).shape[1])
        return self._dimension

    @dimension.setter
    def dimension(self, value: int) -> None:
        # The Embedder protocol declares a plain attribute; allow setting it (a known size).
        self._dimension = int(value)

    def _post(self, texts: list[str]) -> np.ndarray:
        url = self.url
        try:
            r = self._client.post(url, json={"model": self.model, "input": texts})
        except httpx.TimeoutException:
            raise ModelError(f"embedding server {url} did not answer in time") from None
        except httpx.HTTPError as e:
            raise ModelError(f"cannot reach embedding server {url}: {e}") from None
        if r.status_code != 200:
            hint = " (check embedding.api_key)" if r.status_code in (401, 403) else ""
            raise ModelError(
                f"embedding server {url} answered HTTP {r.status_code}{hint}: {r.text[:200]}"
            )
        try:
            payload: Any = r.json()
            items = sorted(payload["data"], key=lambda d: d["index"])
            vectors = np.asarray([d["embedding"] for d in items], dtype=np.float32)
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
            raise ModelError(
                f"embedding server {url} sent a malformed answer ({type(e).__name__}: {e}): "
                f"{r.text[:200]}"
            ) from None
        if vectors.ndim != 2 or len(vectors) != len(texts):
            raise ModelError(
                f"embedding server {url} returned {len(vectors)} vectors for {len(texts)} texts"
            )
        if self._dimension is not None and vectors.shape[1] != self._dimension:
            raise ModelError(
                f"embedding server {url} returned vectors of size {vectors.shape[1]}, "
                f"expected {self._dimension}"
            )
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return vectors / np.where(norms == 0, 1.0, norms)

    def embed_documents(self, texts: list[str]) -> np.ndarray:
        """Embed passages in batches of ``batch_size``; (len(texts), dimension) float32."""
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        parts = [
            self._post(texts[i : i + self.batch_size])
            for i in range(0, len(texts), self.batch_size)
        ]
        out = np.concatenate(parts).astype(np.float32, copy=False)
        self._dimension = out.shape[1]
        return out

    def embed_query(self, text: str) -> np.ndarray:
        return self.embed_documents([text])[0]

    def count_tokens(self, text: str) -> int:
        """An approximation: the server's tokenizer is unknown, so count words and
        punctuation and add a third for subword splits (BERT/BPE vocabularies split about
        one English word in three). Chunks bounded with it stay under the server's limit
        for ordinary prose; set ``chunking.max_tokens`` lower if yours truncates.
        """
        n = len(_TOKEN.findall(text))
        return n + n // 3

    def close(self) -> None:
        self._client.close()

    def __repr__(self) -> str:
        return f"HttpEmbedder({self.base_url!r}, {self.model!r})"
