"""Fused search embeds the query on another thread while the BM25 arm runs, and returns
exactly what running the two arms one after the other returns."""

from __future__ import annotations

import os
import select
import signal
import threading

import numpy as np
import pytest

from ragtune.config import RetrievalSettings
from ragtune.embed.base import Embedder
from ragtune.embed.fake import FakeEmbedder
from ragtune.errors import ModelError
from ragtune.ingest.chunking import chunk_document, chunk_embedding_text
from ragtune.retrieve.search import StoreRetriever, fuse
from ragtune.store.sqlite import SQLiteStore
from ragtune.types import Document, Principal, Section

ANON = Principal.anonymous()
HR = Principal("ana", frozenset({"hr"}))
TEXTS = [
    ("returns.md", "Customers may return unused tents within 30 days for a full refund.", ()),
    ("shipping.md", "Standard shipping takes five working days; express ships overnight.", ()),
    ("stoves.md", "Camping stoves need butane cartridges; never use them inside a tent.", ()),
    ("salary.md", "The salary band for senior engineers is confidential.", ("hr",)),
    ("tents.md", "Our tents keep rain out; return a tent that leaks for a refund.", ()),
    ("vpn.md", "Reset your VPN password from the IT portal; it expires every 90 days.", ()),
]
QUERIES = ["return tents refund", "how many days to return", "salary band", "VPN password",
           "butane stove inside a tent", "express shipping overnight", '"full refund" tents']


def make_store(embedder: Embedder) -> SQLiteStore:
    store = SQLiteStore(":memory:")
    for source, text, groups in TEXTS:
        doc = Document(source, source, (Section((source,), text),))
        chunks = chunk_document(doc, max_tokens=200, overlap=0)
        vecs = embedder.embed_documents([chunk_embedding_text(c, doc.title) for c in chunks])
        store.upsert_document(doc, chunks, vecs, groups=groups)
    return store


def sequential(store: SQLiteStore, embedder: Embedder, settings: RetrievalSettings,
               query: str, principal: Principal, k: int) -> list[tuple[str, float]]:
    """The fused ranking computed the plain way: embed, dense arm, then BM25, then fuse."""
    n = max(settings.candidates, k)
    dense = store.dense_ranking(embedder.embed_query(query), n, principal)
    lexical = store.lexical_ranking(query, n, principal)
    return fuse(dense, lexical, settings)[:k]


@pytest.mark.parametrize("fusion", ["weighted", "zscore", "rrf"])
def test_fused_results_equal_the_sequential_ones(fusion: str) -> None:
    embedder = FakeEmbedder(dimension=64)
    store = make_store(embedder)
    settings = RetrievalSettings(fusion=fusion)
    retriever = StoreRetriever(store, embedder, settings)
    for principal in (ANON, HR):
        for query in QUERIES:
            result = retriever.search(query, principal, k=5)
            want = sequential(store, embedder, settings, query, principal, 5)
            assert [(h.chunk.id, h.score) for h in result.hits] == want
            assert np.array_equal(result.vector, embedder.embed_query(query))
            assert {"embed_s", "dense_s", "lexical_s"} <= set(result.timings)


class WaitsForBM25(FakeEmbedder):
    """Embeds a query only once the BM25 arm has started: a retriever that ran the arms one
    after the other would wait here until the timeout and fail."""

    def __init__(self, started: threading.Event) -> None:
        super().__init__(dimension=64)
        self.started = started
        self.threads: list[str] = []

    def embed_query(self, text: str) -> np.ndarray:
        self.threads.append(threading.current_thread().name)
        if not self.started.wait(timeout=10):
            raise AssertionError("the query was embedded before BM25 started (arms in sequence)")
        return super().embed_query(text)


class SignalsBM25(SQLiteStore):
    def __init__(self, started: threading.Event) -> None:
        super().__init__(":memory:")
        self.started = started

    def lexical_ranking(self, *args, **kwargs):
        self.started.set()
        return super().lexical_ranking(*args, **kwargs)


def test_the_query_is_embedded_while_bm25_runs() -> None:
    started = threading.Event()
    embedder = WaitsForBM25(started)
    store = SignalsBM25(started)
    plain = FakeEmbedder(dimension=64)
    for source, text, groups in TEXTS:
        doc = Document(source, source, (Section((source,), text),))
        chunks = chunk_document(doc, max_tokens=200, overlap=0)
        store.upsert_document(doc, chunks, plain.embed_documents([c.text for c in chunks]),
                              groups=groups)
    hits = StoreRetriever(store, embedder, RetrievalSettings()).search(
        "return tents refund", ANON, k=3).hits
    assert hits and embedder.threads and embedder.threads[0] != threading.current_thread().name
    # dense mode has no second arm: it embeds on the caller's thread
    started.set()
    StoreRetriever(store, embedder, RetrievalSettings()).search("tents", ANON, mode="dense")
    assert embedder.threads[-1] == threading.current_thread().name


class BrokenEmbedder(FakeEmbedder):
    def embed_query(self, text: str) -> np.ndarray:
        raise ModelError("the embedding model failed")


def test_an_embedding_error_surfaces_from_fused_search() -> None:
    store = make_store(FakeEmbedder(dimension=64))
    retriever = StoreRetriever(store, BrokenEmbedder(dimension=64), RetrievalSettings())
    with pytest.raises(ModelError, match="embedding model failed"):
        retriever.search("return tents refund", ANON)
    assert retriever.search("return tents refund", ANON, mode="lexical").hits


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_fused_search_works_in_a_forked_child() -> None:
    """A child forked after the parent searched has none of the parent's pool threads."""
    embedder = FakeEmbedder(dimension=64)
    retriever = StoreRetriever(make_store(embedder), embedder, RetrievalSettings())
    want = [h.chunk.id for h in retriever.search("return tents refund", ANON).hits]
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: search, report, exit without running pytest's teardown
        try:
            got = [h.chunk.id for h in retriever.search("return tents refund", ANON).hits]
            os.write(write, ("ok" if got == want else "differs").encode())
        finally:
            os._exit(0)
    os.close(write)
    ready, _, _ = select.select([read], [], [], 30)
    if not ready:  # the child hangs: its search waits on threads that do not exist
        os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    with os.fdopen(read) as f:
        assert ready and f.read() == "ok"


@pytest.mark.integration
def test_fused_results_equal_the_sequential_ones_with_the_packaged_model(local_embedder) -> None:
    """The real MiniLM (ONNX Runtime) run on the pool thread gives the same vectors, so the
    same fused ranking, as run on the caller's thread."""
    store = make_store(local_embedder)
    settings = RetrievalSettings()
    retriever = StoreRetriever(store, local_embedder, settings)
    for query in QUERIES:
        result = retriever.search(query, HR, k=5)
        want = sequential(store, local_embedder, settings, query, HR, 5)
        assert [(h.chunk.id, h.score) for h in result.hits] == want
