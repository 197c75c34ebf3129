"""The Store protocol: documents, versions, chunks, vectors, full-text index and ACLs.

Every search takes a :class:`~ragtune.types.Principal` and applies access control inside
the store query, so text a principal may not read never leaves the store.

>>> from ragtune.store.sqlite import SQLiteStore
>>> store = SQLiteStore(":memory:")
>>> store.count_documents()
0
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np

from ragtune.errors import StoreError
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


def chunk_vectors(vectors: Any, chunks: int, source: str) -> np.ndarray:
    """A document's vectors as a contiguous float32 (chunks, dim) array; a document with no
    chunks may pass any empty array. A count that differs is a StoreError naming ``source``.

    >>> chunk_vectors(np.zeros(0), 0, "empty.md").shape
    (0, 0)
    >>> chunk_vectors([[1, 0], [0, 1]], 2, "a.md").dtype
    dtype('float32')
    """
    array = np.ascontiguousarray(vectors, dtype=np.float32)
    if chunks == 0 and array.size == 0:
        return array.reshape(0, array.shape[-1] if array.ndim == 2 else 0)
    if len(array) != chunks:
        raise StoreError(f"{source}: {chunks} chunks but {len(array)} vectors")
    return array.reshape(chunks, -1)


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
    per-sentence support and the whole trace. ``summary`` is the few figures the monitor
    reads (:func:`ragtune.answer.traces.summarize`); ``vector`` the question's embedding;
    ``sources`` the documents whose text the record quotes (retrieved or cited; a deletion
    finds the records to strip by them; not read back, and computed from ``answer`` when
    empty: :func:`ragtune.store.trace_rows.record_sources`).
    """

    id: str
    ts: float
    principal: str
    mode: str
    adapter: str | None
    origin: str
    answer: dict[str, Any]
    summary: dict[str, Any] = field(default_factory=dict)
    vector: np.ndarray | None = field(default=None, repr=False, compare=False)
    sources: tuple[str, ...] = ()


@dataclass(frozen=True)
class FeedbackRecord:
    """A user's verdict on one recorded answer: ``rating`` +1 (thumbs up) or -1 (down)."""

    trace_id: str
    ts: float
    principal: str
    rating: int
    comment: str = ""


def may_read_trace(principal: Principal | None, asker: str) -> bool:
    """Whether ``principal`` may read a record of a question ``asker`` asked: admins and the
    asker (None is the operator, who holds the store's files anyway). Anonymous questions
    belong to nobody who can be told apart, so no anonymous reader sees them.

    >>> may_read_trace(Principal("ana"), "ana"), may_read_trace(Principal("bob"), "ana")
    (True, False)
    >>> may_read_trace(Principal.anonymous(), "anonymous"), may_read_trace(None, "ana")
    (False, True)
    """
    if principal is None or principal.admin:
        return True
    return principal.user == asker and principal.user != Principal.anonymous().user


REMOVED = "[removed: the source document was deleted]"


def redact_source(answer: dict[str, Any], source: str, doc_id: str | None = None,
                  ) -> dict[str, Any]:
    """``answer`` (an Answer dict) without the text it holds of document ``source``.

    Retrieved chunk texts and citation quotes of that document are emptied (ids, document
    names, scores and support flags stay, so figures computed from the record do not
    change); the chunk texts are cut out of the prompt; answer sentences that cite the
    document are cut out of the answer (small models copy their sources word for word); a
    RAFT adapter's reasoning, the model's whole reply and the sentences the support check
    removed, which may quote their sources, are dropped. ``answer["redacted"]`` lists the
    ids of the deleted documents it used (``doc_id``; the audit log shows them). Every store
    calls this on the records that quote a document it deletes.

    >>> a = {"citations": [{"document": "a.md", "quote": "secret"}], "trace": {
    ...     "prompt": "[1] A\\nsecret text", "notes": [],
    ...     "retrieved": [{"document": "a.md", "chunk_id": "c1", "text": "secret text"}]}}
    >>> r = redact_source(a, "a.md")
    >>> r["citations"][0]["quote"], r["trace"]["retrieved"][0]["chunk_id"], r["trace"]["prompt"]
    ('', 'c1', '[1] A\\n[removed: the source document was deleted]')
    >>> redact_source(a, "a.md", "doc_1")["redacted"]
    ['doc_1']
    """
    trace = answer.get("trace") or {}
    texts = []
    used = False
    for hit in trace.get("retrieved") or []:
        if hit.get("document") == source:
            used = True
            if hit.get("text"):
                texts.append(str(hit["text"]).strip())
            hit["text"], hit["removed"] = "", True
            for flag in hit.get("flags") or []:
                flag["excerpt"], flag["matched"] = "", ""
    cited = set()
    for c in answer.get("citations") or []:
        if c.get("document") == source:
            c["quote"], c["removed"] = "", True
            cited.add(c.get("n"))
            used = True
    if used and doc_id:
        answer["redacted"] = sorted({*answer.get("redacted", []), doc_id})
    for sentence in answer.get("sentences") or []:
        text = sentence.get("text") or ""
        if text and cited.intersection(sentence.get("cited") or ()):
            answer["answer"] = str(answer.get("answer", "")).replace(text, REMOVED)
            answer["unsupported_sentences"] = [
                u for u in answer.get("unsupported_sentences") or [] if u != text]
            sentence["text"], sentence["removed"] = "", True
    prompt = str(trace.get("prompt") or "")
    for text in sorted(filter(None, texts), key=len, reverse=True):
        prompt = prompt.replace(text, REMOVED)
    if "prompt" in trace:
        trace["prompt"] = prompt
    for flag in trace.get("flags") or []:  # instruction-like spans quoted from the document
        if flag.get("document") == source:
            flag["excerpt"], flag["matched"] = "", ""
    if texts or cited:
        # The model's words copy its sources: RAFT reasoning, attributed sentences, the whole
        # reply, the sentences the support check removed (their count stays: the monitor
        # counts them as unsupported claims) and the unfinished one cut at max_tokens.
        trace["notes"] = [REMOVED if str(n).startswith(("reasoning before the answer",
                                                        "uncited sentence",
                                                        "the answer reached generation"))
                          or "no source supports were not shown" in str(n) else n
                          for n in trace.get("notes") or []]
        if trace.get("reply"):
            trace["reply"] = REMOVED
        if trace.get("removed"):
            trace["removed"] = [REMOVED] * len(trace["removed"])
    return answer


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

    def replace_vectors(self, vectors: Mapping[str, np.ndarray]) -> int:
        """Give stored chunks new vectors (chunk id -> vector), in one write; nothing else
        changes (no new document version: ``ragtune tune retriever`` re-embeds a store with
        an adapted model). Ids not in the store are skipped; the number replaced is returned.
        A vector of another size than the stored ones is a :class:`StoreError`."""
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

    def traces(self, *, since: float | None = None, until: float | None = None,
               limit: int | None = None, principal: Principal | None = None,
               brief: bool = False) -> list[TraceRecord]:
        """Recorded answers in ``[since, until)``, oldest first (``limit``: the newest N).

        ``principal``: only the records it may read (:func:`may_read_trace`; None: all).
        ``brief``: without the full ``answer`` (summary and vector only), for reports.
        """
        ...

    def trace(self, trace_id: str, principal: Principal | None = None) -> TraceRecord | None:
        """One record by id; None when missing or not readable by ``principal``."""
        ...

    def add_feedback(self, trace_id: str, principal: Principal, rating: int,
                     comment: str = "") -> FeedbackRecord:
        """Record ``principal``'s thumbs up (+1) or down (-1) on an answer it may read
        (:class:`~ragtune.errors.NotFound` otherwise; the record's existence is not told)."""
        ...

    def feedback(self, *, since: float | None = None, until: float | None = None,
                 principal: Principal | None = None) -> list[FeedbackRecord]:
        """Feedback on the records ``traces(since=, until=, principal=)`` returns, oldest first."""
        ...

    def purge_traces(self, before: float) -> int:
        """Delete the records older than ``before`` (Unix seconds) and their feedback; the
        number deleted."""
        ...

    def integrity_check(self) -> list[str]:
        """Problems found in the stored data (empty: consistent)."""
        ...

    def close(self) -> None: ...
