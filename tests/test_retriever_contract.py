"""The built-in StoreRetriever runs the Retriever contract over every store backend."""

from __future__ import annotations

from pathlib import Path

import pytest

from ragtune.config import RetrievalSettings, StoreSettings
from ragtune.embed.fake import FakeEmbedder
from ragtune.ingest.chunking import chunk_document, chunk_embedding_text
from ragtune.retrieve.search import Retriever, StoreRetriever
from ragtune.store.factory import STORES, open_store
from ragtune.types import Document, Section
from tests.contracts.retriever import Docs, RetrieverContract


def build(store_settings: StoreSettings, root: Path, docs: Docs) -> Retriever:
    store = open_store(store_settings, root)
    embedder = FakeEmbedder(dimension=64)
    for source, text, groups, collection in docs:
        doc = Document(source, source, (Section((source,), text),))
        chunks = chunk_document(doc, max_tokens=200, overlap=0)
        vecs = embedder.embed_documents([chunk_embedding_text(c, doc.title) for c in chunks])
        store.upsert_document(doc, chunks, vecs, collection=collection, groups=groups)
    return StoreRetriever(store, embedder, RetrievalSettings())


@pytest.mark.parametrize("backend", ["sqlite"])
class TestStoreRetriever(RetrieverContract):
    @pytest.fixture
    def make_retriever(self, backend: str, tmp_path: Path):
        assert backend in STORES.names()
        return lambda docs: build(StoreSettings(backend=backend), tmp_path, docs)
