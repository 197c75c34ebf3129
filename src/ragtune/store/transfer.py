"""Copy one store into another without re-embedding, then verify (``ragtune store migrate``).

Documents keep their ids, version history, times, collection and ACL; chunks keep their
ids and their stored vectors, so adapters' lineage (document ids, versions, content
hashes) stays valid. Traces and the ingest log come along. Running it again copies only
what changed since (documents whose version or content differ).

>>> # report = copy_store(SQLiteStore("store.db"), PostgresStore("postgresql://..."))
>>> # report["problems"]
>>> # []
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

import numpy as np

from ragtune.errors import StoreError
from ragtune.store.base import IngestLogEntry, Store
from ragtune.types import Chunk, DocumentInfo


class ImportTarget(Store, Protocol):
    """A store that can take documents exactly as another store holds them."""

    def import_document(self, info: DocumentInfo, chunks: Sequence[Chunk], vectors: np.ndarray,
                        versions: Sequence[dict[str, Any]]) -> bool: ...

    def import_log(self, entries: Sequence[IngestLogEntry]) -> None: ...


def _summary(store: Store) -> dict[str, Any]:
    docs = store.list_documents(None)
    return {"documents": len(docs),
            "chunks": sum(1 for _ in store.iter_chunks()),
            "restricted_documents": sum(1 for d in docs if d.groups),
            "versions": sum(len(store.document_versions(d.id)) for d in docs),
            "traces": len(store.traces()),
            "by_document": {d.id: (d.version, d.content_hash, d.chunks, d.groups, d.collection)
                            for d in docs}}


def verify(src: Store, dst: Store) -> list[str]:
    """Differences between two stores' contents (empty: same documents, versions, chunks,
    ACLs and traces)."""
    a, b = _summary(src), _summary(dst)
    problems = [f"{key}: {a[key]} in the source, {b[key]} in the copy"
                for key in ("documents", "chunks", "restricted_documents", "versions", "traces")
                if a[key] != b[key]]
    problems += [f"document {doc_id}: differs in the copy" for doc_id, v in a["by_document"].items()
                 if b["by_document"].get(doc_id) != v]
    return problems + dst.integrity_check()


def copy_store(src: Store, dst: ImportTarget,
               progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """Copy ``src`` into ``dst`` and verify; returns counts and the problems found."""
    by_doc: dict[str, list[Chunk]] = {}
    for c in src.iter_chunks():
        by_doc.setdefault(c.doc_id, []).append(c)
    docs = src.list_documents(None)
    copied = 0
    for n, info in enumerate(docs, start=1):
        chunks = sorted(by_doc.get(info.id, []), key=lambda c: c.ordinal)
        stored = src.existing_embeddings([c.id for c in chunks])
        missing = [c.id for c in chunks if c.id not in stored]
        if missing:
            raise StoreError(f"{info.source}: {len(missing)} chunks have no stored vector")
        vectors = np.stack([stored[c.id] for c in chunks]) if chunks else np.zeros((0, 1))
        copied += dst.import_document(info, chunks, vectors, src.document_versions(info.id))
        if progress:
            progress(n, len(docs))
    have = {t.id for t in dst.traces()}
    traces = [t for t in src.traces() if t.id not in have]
    for t in traces:
        dst.append_trace(t)
    newest = max((e.ts for e in dst.ingest_log(1)), default=float("-inf"))
    dst.import_log([e for e in src.ingest_log(limit=10**9) if e.ts > newest])
    return {"documents": len(docs), "copied": copied, "traces": len(traces),
            "problems": verify(src, dst)}
