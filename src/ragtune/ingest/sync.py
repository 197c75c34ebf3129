"""The ingest pipeline: files → documents → chunks → vectors → store, idempotently.

A file whose bytes are unchanged (same sha256, collection and groups) is skipped before
it is even parsed; a changed file is re-chunked and only chunks whose ids are new are
embedded; each document is written in its own transaction, so a process killed mid-ingest
leaves every document either fully old or fully new, and the next run finishes the job.
With ``sync=True`` documents whose files are gone from a walked folder are removed.

>>> # report = ingest_paths([Path("docs/")], store=store, embedder=embedder)
>>> # report.added, report.failed
"""

from __future__ import annotations

import os
import time
from collections import deque
from collections.abc import Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ragtune.config import ChunkingSettings, IngestSettings
from ragtune.embed.base import Embedder
from ragtune.errors import InputError
from ragtune.ingest.chunking import chunk_document, chunk_embedding_text
from ragtune.ingest.loaders import load_file
from ragtune.store.base import Store
from ragtune.types import Chunk, Document, ProgressFn, file_sha256

# Chunks embedded together: big enough to keep the embedder's batches full across small
# documents, small enough that parsing overlaps embedding and a crash loses little work.
_FLUSH_CHUNKS = 128


@dataclass
class IngestReport:
    """What an ingest run did, file by file."""

    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)  # (path, problem)
    chunks_written: int = 0
    chunks_embedded: int = 0
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.failed

    def to_dict(self) -> dict[str, object]:
        return {
            "added": self.added, "updated": self.updated, "unchanged": self.unchanged,
            "removed": self.removed,
            "failed": [{"path": p, "error": e} for p, e in self.failed],
            "chunks_written": self.chunks_written, "chunks_embedded": self.chunks_embedded,
            "seconds": round(self.seconds, 3),
        }




def expand_paths(paths: Iterable[Path]) -> tuple[list[Path], list[Path], list[tuple[str, str]]]:
    """Files to ingest, folders walked (for sync), and paths that do not exist.

    Hidden files and folders (starting with '.') are skipped inside folders.
    """
    files: list[Path] = []
    folders: list[Path] = []
    missing: list[tuple[str, str]] = []
    for p in paths:
        if p.is_dir():
            folders.append(p.resolve())
            for root, dirs, names in os.walk(p):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                files.extend(Path(root) / n for n in sorted(names) if not n.startswith("."))
        elif p.exists() or p.is_symlink():
            files.append(p)
        else:
            missing.append((str(p), "no such file or folder"))
    return files, folders, missing


@dataclass
class _Pending:
    doc: Document
    chunks: list[Chunk]
    file_hash: str
    path: str


class _Batch:
    """Documents waiting for embeddings, flushed together to keep batches full.

    A flush hands its texts to a background thread and returns, so the next files are
    parsed and chunked while these embed (the embedder releases the GIL); up to two
    flushes embed at once, which keeps the embedder's workers busy across the boundary.
    Documents are written by the calling thread, in order, once their vectors are ready:
    the store is only ever touched from one thread, and a crash loses only unwritten work.
    """

    IN_FLIGHT = 2

    def __init__(self, store: Store, embedder: Embedder, report: IngestReport,
                 collection: str, groups: Sequence[str]) -> None:
        self.store, self.embedder, self.report = store, embedder, report
        self.collection, self.groups = collection, tuple(groups)
        self.items: list[_Pending] = []
        self._pool = ThreadPoolExecutor(self.IN_FLIGHT, thread_name_prefix="ragtune-ingest")
        self._inflight: deque[tuple[list[_Pending], dict[str, np.ndarray], list[str], Future[np.ndarray] | None]] = deque()

    @property
    def size(self) -> int:
        return sum(len(p.chunks) for p in self.items)

    def flush(self, wait: bool = False) -> None:
        """Start embedding the waiting documents; write those whose vectors are ready.

        ``wait=True`` (the end of a run) writes everything before returning.
        """
        if self.items:
            all_chunks = [(p, c) for p in self.items for c in p.chunks]
            known = self.store.existing_embeddings([c.id for _, c in all_chunks])
            todo = [(p, c) for p, c in all_chunks if c.id not in known]
            future = (self._pool.submit(self.embedder.embed_documents,
                                        [chunk_embedding_text(c, p.doc.title) for p, c in todo])
                      if todo else None)
            self._inflight.append((self.items, known, [c.id for _, c in todo], future))
            self.items = []
        while self._inflight and (wait or len(self._inflight) >= self.IN_FLIGHT
                                  or self._inflight[0][3] is None or self._inflight[0][3].done()):
            self._write(*self._inflight.popleft())

    def close(self) -> None:
        """Stop the embedding threads; flushes not yet written are dropped (nothing stored)."""
        self._pool.shutdown(cancel_futures=True)

    def _write(self, items: list[_Pending], known: dict[str, np.ndarray], todo: list[str],
               future: Future[np.ndarray] | None) -> None:
        if future is not None:
            vecs = future.result()  # re-raises the embedder's error here, in the caller
            known.update(zip(todo, vecs, strict=True))
            self.report.chunks_embedded += len(todo)
        for p in items:
            dim = self.embedder.dimension
            vectors = (np.stack([known[c.id] for c in p.chunks]) if p.chunks
                       else np.zeros((0, dim), dtype=np.float32))
            metadata = dict(p.doc.metadata, file_sha256=p.file_hash, path=p.path)
            result = self.store.upsert_document(p.doc, p.chunks, vectors, collection=self.collection,
                                                groups=self.groups, metadata=metadata)
            bucket = self.report.added if result.status == "added" else self.report.updated
            if result.status == "unchanged":
                bucket = self.report.unchanged
            bucket.append(p.doc.source)
            self.report.chunks_written += len(p.chunks) if result.status in {"added", "updated"} else 0
            self.store.log_ingest(p.doc.source, result.status, f"version {result.version}")


def ingest_paths(paths: Sequence[Path], *, store: Store, embedder: Embedder,
                 chunking: ChunkingSettings | None = None, ingest: IngestSettings | None = None,
                 collection: str = "default", groups: Sequence[str] = (), sync: bool = False,
                 progress: ProgressFn | None = None) -> IngestReport:
    """Ingest files and folders. Bad files are reported in ``failed``; the rest go in."""
    chunking = chunking or ChunkingSettings()
    ingest = ingest or IngestSettings()
    started = time.perf_counter()
    report = IngestReport()
    files, folders, missing = expand_paths(paths)
    report.failed.extend(missing)
    for path, problem in missing:
        store.log_ingest(path, "failed", problem)
    groups = tuple(sorted(set(groups)))
    seen: set[str] = set()
    with store.write_lock():
        batch = _Batch(store, embedder, report, collection, groups)
        try:  # an error or Ctrl-C must not leave embedding threads running on
            for i, path in enumerate(files):
                if progress:
                    progress(i, len(files), str(path))
                source = str(path.resolve())
                seen.add(source)
                try:
                    _ingest_one(path, source, store, embedder, chunking, ingest, collection,
                                groups, batch, report)
                except InputError as e:
                    report.failed.append((str(path), e.problem))
                    store.log_ingest(source, "failed", e.problem)
                if batch.size >= _FLUSH_CHUNKS:
                    batch.flush()
            batch.flush(wait=True)
        finally:
            batch.close()
        if sync:
            for folder in folders:
                for source in store.sources_under(str(folder) + os.sep):
                    if source not in seen and store.delete_document(source):
                        report.removed.append(source)
                        store.log_ingest(source, "removed", "file is gone (--sync)")
        if progress:
            progress(len(files), len(files), "")
    report.seconds = time.perf_counter() - started
    return report


def _ingest_one(path: Path, source: str, store: Store, embedder: Embedder,
                chunking: ChunkingSettings, ingest: IngestSettings, collection: str,
                groups: tuple[str, ...], batch: _Batch, report: IngestReport) -> None:
    max_bytes = int(ingest.max_file_mb * 1024 * 1024)
    existing = store.get_document(source)
    try:
        size = path.stat().st_size
        # Check the size before hashing: a huge file is refused without reading it.
        file_hash = file_sha256(path) if path.is_file() and size <= max_bytes else ""
    except OSError:
        file_hash = ""  # the loader reports the precise problem
    if (existing and file_hash and existing.metadata.get("file_sha256") == file_hash
            and existing.collection == collection and existing.groups == groups):
        report.unchanged.append(source)
        return
    doc = load_file(path, max_bytes=max_bytes, source=source)
    chunks = chunk_document(doc, max_tokens=chunking.max_tokens, overlap=chunking.overlap,
                            count_tokens=embedder.count_tokens)
    if not chunks:
        raise InputError(str(path), "no text to index after parsing")
    batch.items.append(_Pending(doc, chunks, file_hash, str(path)))
