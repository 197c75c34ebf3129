"""The Store protocol: documents, versions, chunks, vectors, full-text index and ACLs.

Every search takes a :class:`~ragtune.types.Principal` and applies access control inside
the store query, so text a principal may not read never leaves the store.

>>> from ragtune.store.sqlite import SQLiteStore
>>> store = SQLiteStore(":memory:")
>>> store.count_documents()
0
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np

from ragtune.types import Chunk, Document, DocumentInfo, Principal


@dataclass(frozen=True)
class SearchFilter:
    """Metadata filters applied with the ACL inside the store query.

    ``documents`` matches document ids or sources; ``since``/``until`` bound the
    document's last update time (Unix seconds).
    """

    collections: tuple[str, ...] = ()
    documents: tuple[str, ...] = ()
    since: float | None = None
    until: float | None = None


@dataclass(frozen=True)
class ScoredChunk:
    """A chunk found by one search method, with that method's score (higher is better)."""

    chunk: Chunk
    score: float
    document: str
    title: str


@dataclass(frozen=True)
class WriteResult:
    """What an upsert did: ``status`` is added, updated, retagged (same content, new
    collection or groups) or unchanged; ``groups`` the document has now and
    ``previous_groups`` it had before (None for a new document), so a change of who may
    read it can be reported."""

    doc_id: str
    status: str
    version: int
    chunks: int
    embedded: int = 0
    groups: tuple[str, ...] = ()
    previous_groups: tuple[str, ...] | None = None


def read_ranked(store: Store, ranking: Sequence[tuple[str, float]],
                principal: Principal) -> list[ScoredChunk]:
    """The chunks of a (chunk id, score) ranking that ``principal`` may read, with the
    ranking's scores: ``dense_search`` is ``read_ranked(store, dense_ranking(...), who)``."""
    score = dict(ranking)
    return [ScoredChunk(c.chunk, score[c.chunk.id], c.document, c.title)
            for c in store.get_chunks([cid for cid, _ in ranking], principal)]


@dataclass
class IngestLogEntry:
    ts: float
    source: str
    status: str
    message: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TraceRecord:
    """One finished answer as recorded for monitoring and audit (see ragtune.answer.traces).

    ``answer`` is :meth:`ragtune.types.Answer.to_dict`: text, citations, refusal,
    unsupported sentences and the whole trace.
    """

    id: str
    ts: float
    principal: str
    mode: str
    adapter: str | None
    origin: str
    answer: dict[str, Any]


@runtime_checkable
class Store(Protocol):
    """Storage for a workspace. Backends register by name in :mod:`ragtune.store.factory`;
    every one passes the contract suite in ``tests/contracts/store.py``."""

    def write_lock(self, timeout: float = 30.0) -> AbstractContextManager[None]:
        """Hold the single-writer lock; a second writer waits up to ``timeout`` then fails."""
        ...

    def get_document(self, ref: str) -> DocumentInfo | None:
        """By id or source."""
        ...

    def list_documents(self, principal: Principal | None = None) -> list[DocumentInfo]: ...

    def count_documents(self) -> int: ...

    def document_versions(self, doc_id: str) -> list[dict[str, Any]]: ...

    def existing_embeddings(self, chunk_ids: Sequence[str]) -> dict[str, np.ndarray]:
        """Stored vectors for chunk ids that are already embedded (reused on re-ingest)."""
        ...

    def upsert_document(self, doc: Document, chunks: Sequence[Chunk], vectors: np.ndarray, *,
                        collection: str = "default", groups: Sequence[str] | None = None,
                        metadata: dict[str, Any] | None = None) -> WriteResult:
        """Insert or atomically replace a document's chunks; records a new version.

        Who may read a document changes only when the caller says so: ``groups=None`` keeps
        the groups a stored document has (a new document is public), ``()`` makes it public,
        a sequence sets exactly those groups. The result carries the groups before and after.
        """
        ...

    def delete_document(self, ref: str) -> bool:
        """Remove a document and everything derived from it, in one transaction.

        The document is gone from every read when this returns. Erasing its bytes from disk
        may have to wait (another process holding a read snapshot keeps the old pages
        alive): :meth:`finish_deletions` says whether that is done.
        """
        ...

    def finish_deletions(self, wait: float = 5.0) -> bool:
        """Finish erasing deleted text from disk, waiting up to ``wait`` seconds for readers.

        True when no deleted text remains in the store's files; False when some still does
        (a reader is in the way). A store remembers unfinished erasure and retries on its
        next open and after each write until it is done.
        """
        ...

    def pending_deletions(self) -> bool:
        """True while deleted text may still be on disk (erasure not yet finished)."""
        ...

    def sources_under(self, prefix: str) -> list[str]: ...

    def get_chunks(self, chunk_ids: Sequence[str], principal: Principal) -> list[ScoredChunk]: ...

    def dense_search(self, vector: np.ndarray, k: int, principal: Principal,
                     filters: SearchFilter | None = None) -> list[ScoredChunk]: ...

    def dense_ranking(self, vector: np.ndarray, k: int, principal: Principal,
                      filters: SearchFilter | None = None) -> list[tuple[str, float]]:
        """``dense_search`` as (chunk id, score) pairs, without reading chunk text: hybrid
        search fuses candidates first and reads only the chunks it keeps."""
        ...

    def lexical_ranking(self, query: str, k: int, principal: Principal,
                        filters: SearchFilter | None = None) -> list[tuple[str, float]]:
        """``lexical_search`` as (chunk id, score) pairs."""
        ...

    def lexical_search(self, query: str, k: int, principal: Principal,
                       filters: SearchFilter | None = None) -> list[ScoredChunk]: ...

    def log_ingest(self, source: str, status: str, message: str = "") -> None: ...

    def ingest_log(self, limit: int = 50) -> list[IngestLogEntry]: ...

    def stats(self) -> dict[str, Any]: ...

    def iter_chunks(self) -> Iterator[Chunk]: ...

    def append_trace(self, record: TraceRecord) -> None:
        """Add one answer's record to the trace log."""
        ...

    def traces(self, *, since: float | None = None, limit: int | None = None) -> list[TraceRecord]:
        """Recorded answers, oldest first (``since``: Unix seconds; ``limit``: the newest N)."""
        ...

    def integrity_check(self) -> list[str]:
        """Problems found in the stored data (empty: consistent)."""
        ...

    def close(self) -> None: ...
