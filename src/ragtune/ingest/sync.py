"""The ingest pipeline: files → documents → chunks → vectors → store, idempotently.

A file whose bytes are unchanged (same sha256 and collection, and no new groups asked for)
is skipped before it is even parsed; a changed file is re-chunked and only chunks whose ids
are new are embedded; each document is written in its own transaction, so a process killed
mid-ingest leaves every document either fully old or fully new, and the next run finishes
the job. With ``sync=True`` documents whose files are gone from a walked folder are removed
(never those under a folder that could not be read).

A batch survives any single file: each file is read once, hashed, parsed and chunked in
isolation, under the limits of ``[ingest]`` (size, nesting, pages, unzipped size, seconds);
whatever goes wrong with it, any exception included, becomes that file's one-line entry in
``report.failed`` and the ingest log (``ragtune status``), and the rest goes in.

Who may read a document changes only when the caller says so: ``groups=None`` keeps a
stored document's groups (new documents are public), ``groups=()`` makes them public, a
sequence sets them; every change is listed in ``report.regrouped``.

>>> # report = ingest_paths([Path("docs/")], store=store, embedder=embedder)
>>> # report.added, report.failed
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import time
from collections import deque
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ragtune.config import ChunkingSettings, IngestSettings
from ragtune.embed.base import Embedder
from ragtune.errors import InputError, StoreError
from ragtune.ingest.chunking import chunk_document, chunk_embedding_text
from ragtune.ingest.guards import Limits, display_path, one_line, short, time_limit
from ragtune.ingest.loaders import load_bytes, read_file
from ragtune.ingest.report import IngestReport, Progress
from ragtune.ingest.walk import Found, walk
from ragtune.store.base import Store
from ragtune.types import Chunk, Document, ProgressFn

__all__ = ["IngestReport", "ingest_paths", "stricter_groups"]

# Chunks embedded together: big enough to keep the embedder's batches full across small
# documents, small enough that parsing overlaps embedding, a crash loses little work, and a
# long document moves the progress bar while it embeds.
_FLUSH_CHUNKS = 128
# Share of a file's progress given to parsing and chunking it (the rest to embedding): a
# rough split that keeps the bar and its ETA moving while a 40 MB file is being chunked.
_CHUNKING_SHARE = 0.3


def stricter_groups(a: tuple[str, ...], b: tuple[str, ...]) -> tuple[str, ...] | None:
    """The groups of ``a`` and ``b`` that fewer principals can read, or None when neither is
    (readers of {hr} and of {it} are different people: no group set means "both").

    >>> stricter_groups((), ("hr",)), stricter_groups(("hr", "it"), ("hr",))
    (('hr',), ('hr',))
    >>> stricter_groups(("hr",), ("it",)) is None
    True
    """
    if set(a) == set(b) or not b:
        return a
    if not a:
        return b
    if set(a) <= set(b):
        return a
    if set(b) <= set(a):
        return b
    return None


@dataclass
class _Pending:
    """A parsed document waiting for its vectors; written when none are missing."""

    doc: Document
    chunks: list[Chunk]
    file_hash: str
    path: str
    groups: tuple[str, ...] | None
    weight: float  # input bytes per chunk, for progress
    vectors: dict[str, np.ndarray] = field(default_factory=dict)
    missing: int = 0


class _Batch:
    """Documents waiting for embeddings, embedded in flushes of ``_FLUSH_CHUNKS`` chunks.

    A flush hands its texts to a background thread and returns, so the next files are
    parsed and chunked while these embed (the embedder releases the GIL); up to two
    flushes embed at once, which keeps the embedder's workers busy across the boundary, and
    a third waits for the oldest (a long document streams through in flushes instead of
    queueing all its texts at once). Documents are written by the calling thread, in
    order, once all their vectors are ready: the store is only ever touched from one
    thread, and a crash loses only unwritten work.
    """

    IN_FLIGHT = 2

    def __init__(self, store: Store, embedder: Embedder, report: IngestReport,
                 collection: str, progress: Progress) -> None:
        self.store, self.embedder, self.report = store, embedder, report
        self.collection, self.progress = collection, progress
        self.waiting: list[tuple[_Pending, Chunk]] = []
        self.docs: deque[_Pending] = deque()  # unwritten, in file order
        self._pool = ThreadPoolExecutor(self.IN_FLIGHT, thread_name_prefix="ragtune-ingest")
        self._inflight: deque[tuple[list[tuple[_Pending, Chunk]], Future[np.ndarray]]] = deque()

    def add(self, p: _Pending) -> None:
        p.vectors = self.store.existing_embeddings([c.id for c in p.chunks])
        todo = [c for c in p.chunks if c.id not in p.vectors]
        p.missing = len(todo)
        self.progress.advance(p.weight * (len(p.chunks) - len(todo)))
        self.docs.append(p)
        self.waiting.extend((p, c) for c in todo)
        while len(self.waiting) >= _FLUSH_CHUNKS:
            self._submit(self.waiting[:_FLUSH_CHUNKS])
            self.waiting = self.waiting[_FLUSH_CHUNKS:]
        self._collect(block=False)

    def finish(self) -> None:
        """Embed and write everything still waiting."""
        if self.waiting:
            self._submit(self.waiting)
            self.waiting = []
        while self._inflight:
            self._complete_oldest()
        self._write_ready()

    def close(self) -> None:
        """Stop the embedding threads; flushes not yet written are dropped (nothing stored)."""
        self._pool.shutdown(cancel_futures=True)

    def _submit(self, pieces: list[tuple[_Pending, Chunk]]) -> None:
        while len(self._inflight) >= self.IN_FLIGHT:
            self._complete_oldest()
        texts = [chunk_embedding_text(c, p.doc.title) for p, c in pieces]
        self._inflight.append((pieces, self._pool.submit(self.embedder.embed_documents, texts)))

    def _collect(self, block: bool) -> None:
        while self._inflight and (block or self._inflight[0][1].done()):
            self._complete_oldest()
        self._write_ready()

    def _complete_oldest(self) -> None:
        pieces, future = self._inflight.popleft()
        vecs = future.result()  # re-raises the embedder's error here, in the caller
        for (p, c), v in zip(pieces, vecs, strict=True):
            p.vectors[c.id] = v
            p.missing -= 1
            self.progress.advance(p.weight)
        self.report.chunks_embedded += len(pieces)
        self._write_ready()

    def _write_ready(self) -> None:
        while self.docs and self.docs[0].missing == 0:
            self._write(self.docs.popleft())

    def _write(self, p: _Pending) -> None:
        vectors = (np.stack([p.vectors[c.id] for c in p.chunks]) if p.chunks
                   else np.zeros((0, self.embedder.dimension), dtype=np.float32))
        metadata = dict(p.doc.metadata, file_sha256=p.file_hash, path=p.path)
        try:
            result = self.store.upsert_document(p.doc, p.chunks, vectors,
                                                collection=self.collection, groups=p.groups,
                                                metadata=metadata)
        except (StoreError, sqlite3.OperationalError):
            raise  # the store itself is in trouble (locked, disk full): stop the batch
        except Exception as exc:  # noqa: BLE001 - this document's data; the rest goes in
            _fail(self.store, self.report, p.path, p.doc.source,
                  f"could not be stored: {type(exc).__name__}: {short(exc)}")
            return
        finally:
            p.vectors = {}  # a long document's vectors are not kept past its write
        bucket = {"added": self.report.added, "unchanged": self.report.unchanged}.get(
            result.status, self.report.updated)
        bucket.append(p.doc.source)
        if result.status in {"added", "updated"}:
            self.report.chunks_written += len(p.chunks)
        message = f"version {result.version}"
        if result.previous_groups is not None and result.previous_groups != result.groups:
            self.report.regrouped.append((p.doc.source, result.previous_groups, result.groups))
            message += f"; groups {','.join(result.previous_groups) or 'public'} -> " \
                       f"{','.join(result.groups) or 'public'}"
        self.store.log_ingest(p.doc.source, result.status, message)


def ingest_paths(paths: Sequence[Path], *, store: Store, embedder: Embedder,
                 chunking: ChunkingSettings | None = None, ingest: IngestSettings | None = None,
                 collection: str = "default", groups: Sequence[str] | None = None,
                 sync: bool = False, follow_symlinks: bool = False,
                 progress: ProgressFn | None = None,
                 report: IngestReport | None = None) -> IngestReport:
    """Ingest files and folders. Bad files are reported in ``failed``; the rest go in.

    ``groups``: None keeps each stored document's groups, ``()`` makes the documents
    public, names restrict them. ``follow_symlinks`` reads links that lead outside the
    folder being ingested; such a document gets the stricter of the groups asked for and
    the groups its target already has. ``report`` may be passed in to keep what was done
    if the run stops on an error that is not one file's (the store or the embedder).
    """
    chunking = chunking or ChunkingSettings()
    limits = Limits.from_settings(ingest or IngestSettings())
    started = time.perf_counter()
    report = report if report is not None else IngestReport()
    asked = None if groups is None else tuple(sorted(set(groups)))
    found = walk(paths, follow_symlinks=follow_symlinks)
    for shown, problem in found.failed:
        _fail(store, report, shown, shown, problem)
    sizes = [_size(f.target) for f in found.files]
    bar = Progress(progress, sum(sizes))
    seen: set[str] = set()
    with store.write_lock():
        batch = _Batch(store, embedder, report, collection, bar)
        try:  # an error or Ctrl-C must not leave embedding threads running on
            for f, size in zip(found.files, sizes, strict=True):
                shown = display_path(f.path)
                bar.start(shown)
                seen.add(f.source)
                try:
                    with time_limit(limits.max_seconds, shown):
                        pending = _prepare(f, store, embedder, chunking, limits, collection,
                                           asked, size, bar)
                except InputError as e:
                    _fail(store, report, shown, f.source, e.problem)
                    bar.settle(size)
                    continue
                except Exception as exc:  # noqa: BLE001 - a parser bug must not stop the batch
                    _fail(store, report, shown, f.source,
                          f"could not be parsed: {type(exc).__name__}: {short(exc)}")
                    bar.settle(size)
                    continue
                if pending is None:  # unchanged: nothing to do
                    report.unchanged.append(f.source)
                    bar.settle(size)
                    continue
                if said := pending.doc.metadata.get("warnings"):
                    report.warnings.extend((shown, one_line(w)) for w in said)
                batch.add(pending)
            batch.finish()
        finally:
            batch.close()
        if sync:
            for folder in found.folders:
                for source in store.sources_under(display_path(folder) + os.sep):
                    if source in seen or not found.may_remove(source):
                        continue
                    if store.delete_document(source):
                        report.removed.append(source)
                        store.log_ingest(source, "removed", "file is gone (--sync)")
        bar.finish()
    report.seconds = time.perf_counter() - started
    return report


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _fail(store: Store, report: IngestReport, shown: str, source: str, problem: str) -> None:
    problem = one_line(problem)
    report.failed.append((shown, problem))
    store.log_ingest(source, "failed", problem)


def _prepare(f: Found, store: Store, embedder: Embedder, chunking: ChunkingSettings,
             limits: Limits, collection: str, asked: tuple[str, ...] | None,
             size: int, bar: Progress) -> _Pending | None:
    """Read, hash, parse and chunk one file (raises InputError with the reason it cannot).

    None when the stored document is already this file, in this collection, with these
    groups.
    """
    shown = display_path(f.path)
    existing = store.get_document(f.source)
    groups = asked
    if f.outside:  # a followed link: the stricter of what was asked and what the target has
        theirs = existing.groups if existing else None
        mine = asked if asked is not None else theirs
        if mine is not None and theirs is not None:
            groups = stricter_groups(mine, theirs)
            if groups is None:
                raise InputError(shown, f"a link to a document restricted to "
                                        f"{','.join(theirs)}, ingested here for "
                                        f"{','.join(mine)}: give --group to choose who reads it")
        else:
            groups = mine
    data = read_file(f.target, limits.max_bytes)  # read once: hashed and parsed alike
    file_hash = hashlib.sha256(data).hexdigest()
    if (existing and existing.metadata.get("file_sha256") == file_hash
            and existing.collection == collection
            and (groups is None or existing.groups == groups)):
        return None
    doc = load_bytes(data, f.target, source=f.source, limits=limits)
    del data
    share = size * _CHUNKING_SHARE
    chunks = chunk_document(doc, max_tokens=chunking.max_tokens, overlap=chunking.overlap,
                            count_tokens=embedder.count_tokens,
                            progress=lambda done: bar.advance_file(share * done))
    if not chunks:
        raise InputError(shown, "no text to index after parsing")
    bar.advance_file(share)
    return _Pending(doc, chunks, file_hash, shown, groups, (size - share) / len(chunks))
