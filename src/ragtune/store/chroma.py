"""ChromaStore: vectors, chunk text and metadata in Chroma collections (``[store] backend = "chroma"``).

Embedded by default (``chromadb.PersistentClient`` in the workspace's ``chroma/`` folder),
or a running Chroma server (``[store] url = "http://host:8000"``, ``HttpClient``). Every
collection name starts with a prefix (``ragtune`` unless ``?prefix=`` says otherwise), so
workspaces can share one server:

- ``<p>_chunks``: one record per chunk: our vector (never Chroma's embedding function),
  the text, and metadata — document id, source, title, section, collection, ACL
  (``public`` + ``groups``), update time, version and the chunk's BM25 term hashes;
- ``<p>_documents``, ``<p>_versions``, ``<p>_log``, ``<p>_traces``, ``<p>_feedback``,
  ``<p>_meta``: the catalog, each record with a 1-dimensional placeholder vector (an answer
  record keeps its question vector as base64 float16 in its metadata).

ACL and filters are Chroma ``where`` clauses (``{"$or": [{"public": True}, {"groups":
{"$contains": "hr"}}]}``). Chroma has no BM25, so ragtune's own index (store/bm25.py)
sits beside it in memory, rebuilt from the chunks' stored term hashes whenever the
``generation`` token in ``<p>_meta`` changes: every writer sets a new random token after its
last write, so every process sharing the server rebuilds after any change, and the
index never holds a term its chunk records do not. Chroma has no transactions: a replace
writes the new chunks, deletes the old ones, then updates the document record; searches
only return chunks whose version is their document's current one, so a reader (or a
writer that died half-way) never sees a half-replaced document, and ``integrity_check``
reports what a crash left.

Telemetry is off (``anonymized_telemetry=False``); Chroma never embeds anything itself.
"""

from __future__ import annotations

import base64
import json
import os
import re
import threading
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import numpy as np

from ragtune.config import StoreSettings
from ragtune.errors import MissingDependency, StoreError
from ragtune.store.analysis import check_analysis, quoted_phrases
from ragtune.store.base import (
    FeedbackRecord,
    IngestLogEntry,
    ScoredChunk,
    SearchFilter,
    TraceRecord,
    WriteResult,
    chunk_vectors,
    may_read_trace,
    read_ranked,
)
from ragtune.store.bm25 import BM25Index, BM25Params
from ragtune.store.row_index import RowIndex, best_rows
from ragtune.store.trace_rows import (
    check_feedback,
    record_sources,
    records_from_rows,
    redacted,
    vector_bytes,
)
from ragtune.types import Chunk, Document, DocumentInfo, Principal

os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
try:
    import chromadb
    from chromadb.config import Settings as ChromaSettings
except ImportError as e:  # pragma: no cover - depends on the installed extras
    raise MissingDependency(f"the chroma store needs chromadb ({e}): "
                            "pip install 'ragtune[chroma]'") from None

_PLACEHOLDER = [1.0]
_PAGE = 5000
_EXACT_MAX = 200  # filtered rows up to which dense search scores them itself
EF_SEARCH = 400  # Chroma's HNSW candidate list (its default, 100, gave recall@10 0.36 on
# 20k random vectors in bench/store_scale.py; on 100k real MiniLM chunks 100 gives 0.994 and
# 400 0.998, docs/stores.md). Chroma takes it when the collection is created: an existing
# collection keeps its own, and a process keeps the one its index loaded with.


def acl_where(principal: Principal) -> dict[str, Any] | None:
    """The Chroma ``where`` clause of what ``principal`` may read (None: everything).

    >>> acl_where(Principal("ana", frozenset({"hr"})))
    {'$or': [{'public': True}, {'groups': {'$contains': 'hr'}}]}
    """
    if principal.admin:
        return None
    anyof: list[dict[str, Any]] = [{"public": True}]
    anyof += [{"groups": {"$contains": g}} for g in sorted(principal.groups)]
    return anyof[0] if len(anyof) == 1 else {"$or": anyof}


def _and(clauses: list[dict[str, Any]]) -> dict[str, Any] | None:
    return None if not clauses else clauses[0] if len(clauses) == 1 else {"$and": clauses}


@dataclass
class _ChromaIndex(RowIndex):
    """The shared in-memory rows plus each row's section path and title (for quoted
    phrases; Chroma matches only the text)."""

    sections: list[str]
    titles: list[str]

    def rows_with_terms(self, hashes: np.ndarray) -> np.ndarray:
        """Rows that hold every one of these term hashes (all rows when there are none)."""
        rows = np.ones(len(self.chunk_ids), dtype=bool)
        tf = self.bm25.tf
        for h in set(hashes.tolist()):
            column = self.bm25.columns.get(int(h))
            if column is None:
                return np.zeros(0, dtype=np.int64)
            has = np.zeros(len(rows), dtype=bool)
            has[tf.indices[tf.indptr[column]:tf.indptr[column + 1]]] = True
            rows &= has
        return np.flatnonzero(rows)


class ChromaStore:
    """The store on Chroma: ``path`` (embedded) or ``url`` (a Chroma server)."""

    def __init__(self, path: str | Path | None = None, *, url: str = "",
                 prefix: str = "ragtune", bm25: BM25Params | None = None,
                 quoted_phrases: str = "boost") -> None:
        self.bm25 = bm25 or BM25Params()
        self.quoted_phrases = quoted_phrases
        settings = ChromaSettings(anonymized_telemetry=False, allow_reset=False)
        try:
            if url:
                parts = urlsplit(url)
                prefix = dict(parse_qsl(parts.query)).get("prefix", prefix)
                self._client = chromadb.HttpClient(
                    host=parts.hostname or "localhost", port=parts.port or 8000,
                    ssl=parts.scheme == "https", settings=settings)
                self.where = f"{parts.scheme}://{parts.hostname}:{parts.port or 8000}"
            else:
                if path is None:
                    raise StoreError("the chroma store needs a folder (store.path) or a server (store.url)")
                Path(path).mkdir(parents=True, exist_ok=True)
                self._client = chromadb.PersistentClient(path=str(path), settings=settings)
                self.where = str(path)
            self._chunks = self._client.get_or_create_collection(
                f"{prefix}_chunks", embedding_function=None,
                configuration={"hnsw": {"space": "ip", "ef_search": EF_SEARCH}})
            self._cols = {name: self._client.get_or_create_collection(
                f"{prefix}_{name}", embedding_function=None)
                for name in ("documents", "versions", "log", "traces", "feedback", "meta")}
        except StoreError:
            raise
        except Exception as e:  # noqa: BLE001 - chromadb raises many kinds (connection, value, internal)
            raise StoreError(f"{url or path}: cannot open the Chroma store: {e}") from None
        self.prefix = prefix
        self.path = str(path) if path else ""
        self.url = url
        self._lock = threading.RLock()
        self._index: _ChromaIndex | None = None
        self._index_token: str | None = None
        self._versions: dict[str, int] = {}
        self._deleted = 0  # deletes this process made whose text Chroma's log may still hold
        self.reanalyzed = self._ensure_analysis()

    # ----------------------------------------------------------------- plumbing
    def _generation(self) -> tuple[str, str | None]:
        """(the store's generation token, the analysis its BM25 terms were made with)."""
        got = self._cols["meta"].get(ids=["generation"], include=["metadatas"])
        if not got["ids"]:
            return "", None
        m = got["metadatas"][0]
        return str(m["token"]), m.get("analysis")

    def _bump(self) -> None:
        """A new generation token: every process rebuilds its index before its next search.
        It carries the analysis this writer's terms were made with."""
        self._cols["meta"].upsert(ids=["generation"], embeddings=[_PLACEHOLDER],
                                  metadatas=[{"token": uuid.uuid4().hex,
                                              "analysis": self.bm25.analyzer.key}])

    def _terms(self, title: str, section: str, text: str) -> list[int] | None:
        """A chunk's BM25 term hashes (title, section path, text); None when it has none."""
        terms = self.bm25.analyzer.term_hashes(f"{title}\n{section}\n{text}")
        return [int(t) for t in terms] if len(terms) else None

    def _check_analysis(self, stored: str | None) -> None:
        check_analysis(stored, self.bm25.analyzer, self.where)

    def _ensure_analysis(self) -> int:
        """Re-analyse every chunk's BM25 terms from its stored text when the store was
        analysed otherwise than ``self.bm25.analyzer`` says (a settings change, or a store
        from before analysis was configurable). Returns the chunks re-analysed.

        Chroma has no transactions: records are rewritten page by page, and the analysis
        is recorded last, so a process that dies half-way leaves the old key and the next
        open starts again (searches meanwhile refuse: the key is not theirs)."""
        want = self.bm25.analyzer.key
        with self._lock:
            stored = self._generation()[1]
            if stored == want:
                return 0
            done, offset = 0, 0
            while True:
                got = self._chunks.get(include=["documents", "metadatas"], limit=_PAGE,
                                       offset=offset)
                if got["ids"]:
                    self._chunks.update(ids=got["ids"], metadatas=[
                        {"terms": self._terms(m["title"], m["section"], text)}
                        for text, m in zip(got["documents"], got["metadatas"])])
                done += len(got["ids"])
                if len(got["ids"]) < _PAGE:
                    break
                offset += _PAGE
            self._bump()
        return done

    @contextmanager
    def write_lock(self, timeout: float = 30.0) -> Iterator[None]:
        """In-process lock only: Chroma has no locks; documents are written one by one, and a
        replace is safe against readers (see the module doc)."""
        if not self._lock.acquire(timeout=timeout):
            raise StoreError(f"{self.where}: another writer in this process holds the store")
        try:
            yield
        finally:
            self._lock.release()

    def _get_all(self, col: Any, where: dict[str, Any] | None = None,
                 include: Sequence[str] = ("metadatas",)) -> dict[str, list[Any]]:
        """Every record matching ``where``, in pages (Chroma caps one answer's size)."""
        out: dict[str, list[Any]] = {"ids": [], **{k: [] for k in include}}
        offset = 0
        while True:
            got = col.get(where=where, include=list(include), limit=_PAGE, offset=offset)
            out["ids"] += got["ids"]
            for k in include:
                out[k] += list(got[k])
            if len(got["ids"]) < _PAGE:
                return out
            offset += _PAGE

    # ----------------------------------------------------------------- documents
    @staticmethod
    def _doc_info(doc_id: str, m: dict[str, Any]) -> DocumentInfo:
        return DocumentInfo(doc_id, m["source"], m["title"], m["collection"],
                            tuple(sorted(m.get("groups") or ())), m["version"], m["content_hash"],
                            m["chunks"], m["created_at"], m["updated_at"], json.loads(m["metadata"]))

    def get_document(self, ref: str) -> DocumentInfo | None:
        col = self._cols["documents"]
        got = col.get(ids=[ref], include=["metadatas"])
        if not got["ids"]:
            got = col.get(where={"source": ref}, include=["metadatas"])
        return self._doc_info(got["ids"][0], got["metadatas"][0]) if got["ids"] else None

    def list_documents(self, principal: Principal | None = None) -> list[DocumentInfo]:
        where = None if principal is None else acl_where(principal)
        got = self._get_all(self._cols["documents"], where)
        return sorted((self._doc_info(i, m) for i, m in zip(got["ids"], got["metadatas"])),
                      key=lambda d: d.source)

    def count_documents(self) -> int:
        return self._cols["documents"].count()

    def document_versions(self, doc_id: str) -> list[dict[str, Any]]:
        got = self._get_all(self._cols["versions"], {"doc_id": doc_id})
        rows = [{k: m[k] for k in ("version", "content_hash", "chunks", "ingested_at")}
                for m in got["metadatas"]]
        return sorted(rows, key=lambda r: r["version"])

    def sources_under(self, prefix: str) -> list[str]:
        return [d.source for d in self.list_documents() if d.source.startswith(prefix)]

    def existing_embeddings(self, chunk_ids: Sequence[str]) -> dict[str, np.ndarray]:
        if not chunk_ids:
            return {}
        got = self._chunks.get(ids=list(chunk_ids), include=["embeddings"])
        return {i: np.asarray(e, dtype=np.float32) for i, e in zip(got["ids"], got["embeddings"])}

    def _dimension(self) -> int | None:
        got = self._chunks.peek(1)
        return None if not got["ids"] else len(got["embeddings"][0])

    def replace_vectors(self, vectors: Mapping[str, np.ndarray]) -> int:
        """New vectors for stored chunks (see the Store protocol), in pages; the generation
        bump at the end makes every process re-read them."""
        if not vectors:
            return 0
        with self._lock:
            dim = self._dimension()
            have = set()
            ids = list(vectors)
            for i in range(0, len(ids), _PAGE):
                have.update(self._chunks.get(ids=ids[i:i + _PAGE], include=[])["ids"])
            ids = [cid for cid in ids if cid in have]
            for i in range(0, len(ids), _PAGE):
                part = ids[i:i + _PAGE]
                matrix = np.stack([np.asarray(vectors[c], dtype=np.float32).reshape(-1)
                                   for c in part])
                if dim is not None and matrix.shape[1] != dim:
                    raise StoreError(f"{matrix.shape[1]}-dimensional vectors but the store "
                                     f"holds {dim}-dimensional ones")
                self._chunks.update(ids=part, embeddings=matrix)
            self._bump()
        return len(ids)

    def upsert_document(self, doc: Document, chunks: Sequence[Chunk], vectors: np.ndarray, *,
                        collection: str = "default", groups: Sequence[str] | None = None,
                        metadata: dict[str, Any] | None = None) -> WriteResult:
        """Add ``doc`` or replace its chunks: new chunks first, then the old ones go, then the
        document record names the new version (readers see one version or the other)."""
        vectors = chunk_vectors(vectors, len(chunks), doc.source)
        now = time.time()
        with self._lock:
            self._check_analysis(self._generation()[1])
            dim = self._dimension()
            if chunks and dim is not None and dim != vectors.shape[1]:
                raise StoreError(f"{doc.source}: {vectors.shape[1]}-dimensional vectors but the "
                                 f"store holds {dim}-dimensional ones: the embedding model changed")
            old = self.get_document(doc.id)
            before = old.groups if old else None
            acl = list(before or ()) if groups is None else sorted(set(groups))
            done = {"groups": tuple(acl), "previous_groups": before}
            if old and old.content_hash == doc.content_hash:
                if old.collection == collection and list(old.groups) == acl:
                    return WriteResult(doc.id, "unchanged", old.version, len(chunks), **done)
                self._tag_chunks(doc.id, collection, acl, now)
                self._put_document(doc, old.version, len(chunks), collection, acl,
                                   old.created_at, now, old.metadata)
                self._bump()
                return WriteResult(doc.id, "retagged", old.version, len(chunks), **done)
            version = old.version + 1 if old else 1
            base = {"doc_id": doc.id, "source": doc.source, "title": doc.title,
                    "collection": collection, "updated_at": now, "version": version,
                    **self._acl_meta(acl)}
            metas = []
            for c in chunks:
                m = {**base, "section": c.section, "ordinal": c.ordinal, "tokens": c.tokens}
                if c.page is not None:
                    m["page"] = c.page
                terms = self._terms(doc.title, c.section, c.text)
                if terms:
                    m["terms"] = terms
                metas.append(m)
            if chunks:
                self._chunks.upsert(ids=[c.id for c in chunks], embeddings=vectors,
                                    documents=[c.text for c in chunks], metadatas=metas)
            keep = {c.id for c in chunks}
            stale = [i for i in self._chunks.get(where={"doc_id": doc.id}, include=[])["ids"]
                     if i not in keep]
            if stale:
                self._chunks.delete(ids=stale)
            self._put_document(doc, version, len(chunks), collection, acl,
                               old.created_at if old else now, now,
                               metadata or doc.metadata or {})
            self._cols["versions"].add(
                ids=[f"{doc.id}:{version}"], embeddings=[_PLACEHOLDER],
                metadatas=[{"doc_id": doc.id, "version": version, "content_hash": doc.content_hash,
                            "chunks": len(chunks), "ingested_at": now}])
            self._bump()
        return WriteResult(doc.id, "updated" if old else "added", version, len(chunks), **done)

    @staticmethod
    def _acl_meta(acl: list[str]) -> dict[str, Any]:
        return {"public": not acl, "groups": acl or None}

    def _put_document(self, doc: Document, version: int, n: int, collection: str, acl: list[str],
                      created: float, updated: float, metadata: dict[str, Any]) -> None:
        meta = {"source": doc.source, "title": doc.title, "collection": collection,
                "version": version, "content_hash": doc.content_hash, "chunks": n,
                "metadata": json.dumps(metadata, sort_keys=True, default=str),
                "created_at": created, "updated_at": updated, **self._acl_meta(acl)}
        self._cols["documents"].upsert(ids=[doc.id], embeddings=[_PLACEHOLDER],
                                       metadatas=[{k: v for k, v in meta.items() if v is not None}])
        if not acl:  # upsert merges metadata: a document made public drops its groups
            self._cols["documents"].update(ids=[doc.id], metadatas=[{"groups": None}])

    def _tag_chunks(self, doc_id: str, collection: str, acl: list[str], now: float) -> None:
        ids = self._chunks.get(where={"doc_id": doc_id}, include=[])["ids"]
        if ids:
            meta = {"collection": collection, "updated_at": now, **self._acl_meta(acl)}
            self._chunks.update(ids=ids, metadatas=[meta] * len(ids))

    def delete_document(self, ref: str) -> bool:
        """Remove the document's chunks (text, vector, terms), versions and record, and its
        text from the trace log (ids kept: :func:`ragtune.store.base.redact_source`)."""
        with self._lock:
            info = self.get_document(ref)
            if info is None:
                return False
            self._redact_traces(info.id, info.source)
            self._chunks.delete(where={"doc_id": info.id})
            self._cols["versions"].delete(where={"doc_id": info.id})
            self._cols["documents"].delete(ids=[info.id])
            self._bump()
            self._deleted += 1
        return True

    def finish_deletions(self, wait: float = 5.0) -> bool:
        """False: deleted records are gone from every read, but Chroma keeps them in its own
        write log (``embeddings_queue`` in chroma.sqlite3) until its compactor purges it,
        and ragtune cannot force that (docs/stores.md)."""
        return self._deleted == 0

    def pending_deletions(self) -> bool:
        return self._deleted > 0

    # ----------------------------------------------------------------- search
    def _search_index(self) -> _ChromaIndex:
        """The BM25 index and ACL arrays, rebuilt when another writer changed the store."""
        token, analysis = self._generation()
        if self._index is not None and token == self._index_token:
            return self._index
        self._check_analysis(analysis)
        docs = self._get_all(self._cols["documents"])
        got = self._get_all(self._chunks)
        versions = {i: m["version"] for i, m in zip(docs["ids"], docs["metadatas"])}
        # only chunks of their document's current version: a half-done replace is invisible
        rows = sorted((cid, m) for cid, m in zip(got["ids"], got["metadatas"])
                      if versions.get(m["doc_id"]) == m["version"])
        code = {d: i for i, d in enumerate(docs["ids"])}
        dm = docs["metadatas"]
        self._index = _ChromaIndex(
            chunk_ids=[cid for cid, _ in rows],
            doc_codes=np.fromiter((code[m["doc_id"]] for _, m in rows), dtype=np.int32,
                                  count=len(rows)),
            doc_ids=list(docs["ids"]), doc_sources=[m["source"] for m in dm],
            doc_collections=[m["collection"] for m in dm],
            doc_updated=np.array([m["updated_at"] for m in dm], dtype=np.float64),
            doc_groups=[frozenset(m.get("groups") or ()) for m in dm],
            bm25=BM25Index.from_terms([np.asarray(m.get("terms") or (), dtype=np.uint32)
                                       for _, m in rows], self.bm25),
            sections=[m["section"] for _, m in rows],
            titles=[m["title"] for _, m in rows])
        self._index_token = token
        self._versions = versions
        return self._index

    def _where(self, principal: Principal, filters: SearchFilter | None,
               index: _ChromaIndex) -> dict[str, Any] | None:
        clauses = [c for c in [acl_where(principal)] if c]
        if filters:
            if filters.collections:
                clauses.append({"collection": {"$in": list(filters.collections)}})
            if filters.documents:
                wanted = set(filters.documents)
                ids = [i for i, s in zip(index.doc_ids, index.doc_sources)
                       if i in wanted or s in wanted]
                clauses.append({"doc_id": {"$in": ids or ["-"]}})
            if filters.since is not None:
                clauses.append({"updated_at": {"$gte": filters.since}})
            if filters.until is not None:
                clauses.append({"updated_at": {"$lte": filters.until}})
        return _and(clauses)

    def get_chunks(self, chunk_ids: Sequence[str], principal: Principal) -> list[ScoredChunk]:
        if not chunk_ids:
            return []
        got = self._chunks.get(ids=list(chunk_ids), where=acl_where(principal),
                               include=["documents", "metadatas"])
        found = {}
        for cid, text, m in zip(got["ids"], got["documents"], got["metadatas"]):
            found[cid] = ScoredChunk(Chunk(cid, m["doc_id"], text, m["section"], m["ordinal"],
                                           m["tokens"], m.get("page")), 0.0, m["source"], m["title"])
        return [found[c] for c in chunk_ids if c in found]

    def dense_ranking(self, vector: np.ndarray, k: int, principal: Principal,
                      filters: SearchFilter | None = None) -> list[tuple[str, float]]:
        """Chroma's HNSW under the ``where`` clause; an exact scan of the allowed rows when they
        are few or the walk came back short (Chroma filters during the walk)."""
        vector = np.asarray(vector, dtype=np.float32).reshape(-1)
        with self._lock:
            index = self._search_index()
            if not index.chunk_ids:
                return []
            dim = self._dimension()
            if dim is not None and dim != len(vector):
                raise StoreError(
                    f"query vector has {len(vector)} dimensions but the store holds {dim}-"
                    "dimensional vectors: the embedding model changed; re-ingest with the "
                    "original model or start a new store")
            mask = index.allowed_rows(principal, filters)
            allowed = len(index.chunk_ids) if mask is None else int(mask.sum())
            if allowed == 0:
                return []
            where = self._where(principal, filters, index)
            want = min(k, allowed)
            if mask is None or allowed > _EXACT_MAX:
                got = self._chunks.query(query_embeddings=[vector], n_results=want, where=where,
                                         include=["distances", "metadatas"])
                hits = [(cid, 1.0 - float(d)) for cid, d, m in zip(
                    got["ids"][0], got["distances"][0], got["metadatas"][0])
                    if self._versions.get(m["doc_id"]) == m["version"]]
                if len(hits) >= want:
                    return hits[:k]
            ids = [index.chunk_ids[i] for i in
                   (range(len(index.chunk_ids)) if mask is None else np.flatnonzero(mask))]
            return self._exact(vector, ids, k)

    def _exact(self, vector: np.ndarray, ids: list[str], k: int) -> list[tuple[str, float]]:
        found_ids: list[str] = []
        parts: list[np.ndarray] = []
        for i in range(0, len(ids), _PAGE):
            got = self._chunks.get(ids=ids[i:i + _PAGE], include=["embeddings"])
            found_ids += got["ids"]
            parts.append(np.asarray(got["embeddings"], dtype=np.float32).reshape(len(got["ids"]), -1))
        if not found_ids:
            return []
        scores = np.concatenate(parts) @ vector
        top = best_rows(scores, k, positive_only=False)
        return [(found_ids[i], float(scores[i])) for i in top]

    def dense_search(self, vector: np.ndarray, k: int, principal: Principal,
                     filters: SearchFilter | None = None) -> list[ScoredChunk]:
        return read_ranked(self, self.dense_ranking(vector, k, principal, filters), principal)

    def lexical_ranking(self, query: str, k: int, principal: Principal,
                        filters: SearchFilter | None = None) -> list[tuple[str, float]]:
        """BM25 from the in-memory index with the statistics of the rows ``principal`` may
        read (store/row_index.py); quoted phrases rank first (or filter: ``[store]
        quoted_phrases``)."""
        with self._lock:
            index = self._search_index()
            if not index.chunk_ids:
                return []
            phrases = quoted_phrases(query)
            holds = self._phrase_rows(index, phrases, principal) if phrases else None
            return index.lexical_top(query, k, principal, filters, phrase_rows=holds,
                                     quoted_phrases=self.quoted_phrases)

    def _phrase_rows(self, index: _ChromaIndex, phrases: list[list[str]],
                     principal: Principal) -> np.ndarray:
        """Rows whose text, section or title hold every phrase (words in order, separated by
        non-word characters, any case). Only rows holding all of a phrase's terms are asked
        about; Chroma matches the text (``where_document`` ``$regex``), ragtune the rest."""
        row_of = {cid: i for i, cid in enumerate(index.chunk_ids)}
        holds = np.ones(len(index.chunk_ids), dtype=bool)
        for words in phrases:
            pattern = "(?i)\\b" + "\\W+".join(map(re.escape, words)) + "\\b"
            rx = re.compile(pattern)
            rows = index.rows_with_terms(self.bm25.analyzer.term_hashes(" ".join(words)))
            found = np.fromiter((bool(rx.search(index.sections[i]) or rx.search(index.titles[i]))
                                 for i in rows), dtype=bool, count=len(rows))
            match = np.zeros(len(index.chunk_ids), dtype=bool)
            match[rows[found]] = True
            asks = [index.chunk_ids[i] for i in rows[~found]]
            for part in range(0, len(asks), _PAGE):
                got = self._chunks.get(ids=asks[part:part + _PAGE], where=acl_where(principal),
                                       where_document={"$regex": pattern}, include=[])
                match[[row_of[c] for c in got["ids"] if c in row_of]] = True
            holds &= match
        return holds

    def lexical_search(self, query: str, k: int, principal: Principal,
                       filters: SearchFilter | None = None) -> list[ScoredChunk]:
        return read_ranked(self, self.lexical_ranking(query, k, principal, filters), principal)

    # ----------------------------------------------------------------- log, traces, stats
    def log_ingest(self, source: str, status: str, message: str = "") -> None:
        ts = time.time()
        self._cols["log"].add(ids=[f"{ts:.6f}-{uuid.uuid4().hex[:8]}"], embeddings=[_PLACEHOLDER],
                              metadatas=[{"ts": ts, "source": source, "status": status,
                                          "message": message}])

    def ingest_log(self, limit: int = 50) -> list[IngestLogEntry]:
        got = self._get_all(self._cols["log"])
        rows = sorted(got["metadatas"], key=lambda m: -m["ts"])[:limit]
        return [IngestLogEntry(m["ts"], m["source"], m["status"], m.get("message", "")) for m in rows]

    def append_trace(self, record: TraceRecord) -> None:
        meta: dict[str, Any] = {
            "ts": record.ts, "principal": record.principal, "mode": record.mode,
            "origin": record.origin, "seq": time.time_ns(),
            "record": json.dumps(record.answer, ensure_ascii=False),
            "summary": json.dumps(record.summary, ensure_ascii=False)}
        if record.adapter is not None:
            meta["adapter"] = record.adapter
        if record.vector is not None:
            meta["vector"] = base64.b64encode(vector_bytes(record.vector) or b"").decode()
        sources = record_sources(record)
        if sources:
            meta["sources"] = list(sources)
        self._cols["traces"].add(ids=[record.id], embeddings=[_PLACEHOLDER], metadatas=[meta])

    @staticmethod
    def _trace_row(tid: str, m: dict[str, Any], full: bool) -> tuple[Any, ...]:
        vector = base64.b64decode(m["vector"]) if m.get("vector") else None
        return (tid, m["ts"], m["principal"], m["mode"], m.get("adapter"), m["origin"],
                m.get("summary") or "{}", vector, m["record"] if full else None)

    def traces(self, *, since: float | None = None, until: float | None = None,
               limit: int | None = None, principal: Principal | None = None,
               brief: bool = False) -> list[TraceRecord]:
        if principal is not None and not principal.admin and \
                principal.user == Principal.anonymous().user:
            return []  # anonymous questions belong to no reader (may_read_trace)
        clauses: list[dict[str, Any]] = []
        if since is not None:
            clauses.append({"ts": {"$gte": since}})
        if until is not None:
            clauses.append({"ts": {"$lt": until}})
        if principal is not None and not principal.admin:
            clauses.append({"principal": principal.user})
        got = self._get_all(self._cols["traces"], _and(clauses))
        rows = sorted(zip(got["ids"], got["metadatas"]), key=lambda r: (r[1]["ts"], r[1]["seq"]))
        if limit is not None:
            rows = rows[-limit:] if limit else []
        return records_from_rows([self._trace_row(i, m, not brief) for i, m in rows])

    def trace(self, trace_id: str, principal: Principal | None = None) -> TraceRecord | None:
        got = self._cols["traces"].get(ids=[trace_id], include=["metadatas"])
        if not got["ids"] or not may_read_trace(principal, got["metadatas"][0]["principal"]):
            return None
        return records_from_rows([self._trace_row(trace_id, got["metadatas"][0], True)])[0]

    def add_feedback(self, trace_id: str, principal: Principal, rating: int,
                     comment: str = "") -> FeedbackRecord:
        got = self._cols["traces"].get(ids=[trace_id], include=["metadatas"])
        check_feedback(trace_id, got["metadatas"][0]["principal"] if got["ids"] else None,
                       principal, rating)
        fb = FeedbackRecord(trace_id, time.time(), principal.user, rating, comment.strip())
        self._cols["feedback"].add(
            ids=[uuid.uuid4().hex], embeddings=[_PLACEHOLDER],
            metadatas=[{"trace_id": fb.trace_id, "ts": fb.ts, "principal": fb.principal,
                        "rating": fb.rating, "comment": fb.comment, "seq": time.time_ns()}])
        return fb

    def feedback(self, *, since: float | None = None, until: float | None = None,
                 principal: Principal | None = None) -> list[FeedbackRecord]:
        readable = {t.id for t in self.traces(since=since, until=until, principal=principal,
                                              brief=True)}
        got = self._get_all(self._cols["feedback"])
        rows = sorted((m for m in got["metadatas"] if m["trace_id"] in readable),
                      key=lambda m: (m["ts"], m["seq"]))
        return [FeedbackRecord(m["trace_id"], m["ts"], m["principal"], m["rating"],
                               m.get("comment", "")) for m in rows]

    def purge_traces(self, before: float) -> int:
        """Records and their feedback leave every read (Chroma's write log keeps them until
        it purges: ``pending_deletions``)."""
        with self._lock:
            old = self._get_all(self._cols["traces"], {"ts": {"$lt": before}}, include=())
            if not old["ids"]:
                return 0
            gone = set(old["ids"])
            fb = self._get_all(self._cols["feedback"])
            dead = [i for i, m in zip(fb["ids"], fb["metadatas"]) if m["trace_id"] in gone]
            for col, ids in ((self._cols["feedback"], dead), (self._cols["traces"], old["ids"])):
                for start in range(0, len(ids), _PAGE):
                    col.delete(ids=ids[start:start + _PAGE])
            self._deleted += 1
        return len(old["ids"])

    def _redact_traces(self, doc_id: str, source: str) -> None:
        """Strip ``source``'s text from the answer records that quote it (ids stay)."""
        got = self._get_all(self._cols["traces"], {"sources": {"$contains": source}})
        if not got["ids"]:
            return
        metas = []
        for m in got["metadatas"]:
            m = dict(m)
            m["record"] = redacted([("", m["record"])], source, doc_id)[0][0]
            rest = [s for s in m.get("sources") or [] if s != source]
            m["sources"] = rest if rest else None  # None drops the key
            metas.append(m)
        self._cols["traces"].update(ids=got["ids"], metadatas=metas)

    def iter_chunks(self) -> Iterator[Chunk]:
        got = self._get_all(self._chunks, include=("documents", "metadatas"))
        rows = sorted(zip(got["ids"], got["documents"], got["metadatas"]),
                      key=lambda r: (r[2]["doc_id"], r[2]["ordinal"]))
        for cid, text, m in rows:
            yield Chunk(cid, m["doc_id"], text, m["section"], m["ordinal"], m["tokens"], m.get("page"))

    def stats(self) -> dict[str, Any]:
        docs = self.list_documents()
        collections: dict[str, int] = {}
        for d in docs:
            collections[d.collection] = collections.get(d.collection, 0) + 1
        log = self.ingest_log(1)
        return {"backend": "chroma", "path": self.where, "documents": len(docs),
                "chunks": self._chunks.count(),
                "restricted_documents": sum(1 for d in docs if d.groups),
                "collections": collections, "last_ingest": log[0].ts if log else None,
                "traces": self._cols["traces"].count()}

    def integrity_check(self) -> list[str]:
        """Chunks of no document or of an old version (a writer died mid-replace), documents
        whose chunk records differ from their count or ACL."""
        docs = {d.id: d for d in self.list_documents()}
        got = self._get_all(self._chunks)
        problems: list[str] = []
        per_doc: dict[str, int] = {}
        for cid, m in zip(got["ids"], got["metadatas"]):
            d = docs.get(m["doc_id"])
            if d is None:
                problems.append(f"chunk {cid}: its document is gone")
                continue
            if m["version"] != d.version:
                problems.append(f"{d.source}: chunk {cid} of version {m['version']} is left over")
            per_doc[d.id] = per_doc.get(d.id, 0) + 1
            if tuple(sorted(m.get("groups") or ())) != d.groups or m["collection"] != d.collection:
                problems.append(f"{d.source}: chunk {cid} carries another ACL or collection")
        problems += [f"{d.source}: chunk count differs from its chunks"
                     for d in docs.values() if per_doc.get(d.id, 0) != d.chunks]
        return problems

    def close(self) -> None:
        self._index = None


def open_chroma(settings: StoreSettings, workspace_root: Path) -> ChromaStore:
    """Registry factory (``[store] backend = "chroma"``): ``url`` for a Chroma server, else the
    embedded store in ``path`` (default ``<workspace>/chroma``)."""
    analysis = {"bm25": BM25Params.from_settings(settings),
                "quoted_phrases": settings.quoted_phrases}
    if settings.url:
        return ChromaStore(url=settings.url, **analysis)
    path = Path(settings.path or "chroma")
    return ChromaStore(path if path.is_absolute() else Path(workspace_root) / path, **analysis)
