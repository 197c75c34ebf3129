"""Real text and real MiniLM vectors for bench/store_scale.py (``--vectors minilm``).

Synthetic vectors say how fast a store is; whether its approximate index finds what an
exact scan finds depends on how real embeddings are spread, so recall is measured on these.

Texts: the four classic IR collections of bench/retrieval_sets_data.py (Cranfield, CISI,
CACM, NPL; files cached under ``~/.cache/ragtune-bench/raw``, sha256-checked by
``ensure_raw``; provenance in bench/DATASETS.md), about 1.08M words. Each document ("title.
text") is split into sentences (after ``.``, ``!``, ``?`` or ``;``) and every sentence into
near-equal runs of at most ``MAX_WORDS`` words (NPL's abstracts have no punctuation at all);
runs under ``MIN_WORDS`` words are dropped and each text is kept once, the first time it
appears, so every chunk text is distinct. With ``MAX_WORDS = 12`` that gives 107,844
chunks of 9.9 words on average: cranfield 24,832, cisi 19,401, cacm 18,641, npl 44,970 (no
other cached text is needed for 100k; 16-word runs would give only 86,711). Source
documents are ordered by a seeded shuffle and taken until ``n`` chunks (the last one cut
short); their pieces, in that order, are stored 50 to a document as in the synthetic
corpus (one section per piece, headed by its source document's id and title), and every
tenth document is readable by the searching principal, the rest restricted: exactly 90%
of the chunks are hidden. (Stored one per source document, 6.6 pieces each, Chroma's
per-document writes made its ingest slow down to 20 chunks/s past 10k chunks.)

Vectors: the default ``[embedding]`` embedder, built by ``make_embedder(Settings().embedding)``
exactly as ``ragtune ingest`` builds it (packaged all-MiniLM-L6-v2, ONNX int8 on CPU),
cached in ``~/.cache/ragtune-bench/emb/store_scale-<n>-<model>.npz`` with the texts' hash
and the embedding time, so a rerun does not embed again. Queries: the collections' own
494 queries, in a seeded order, embedded the same way; their texts feed the lexical arm.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ragtune.types import Chunk, Document, Section

MAX_WORDS = 12
MIN_WORDS = 3
PER_DOC = 50  # chunks per stored document, as bench/store_scale.py's synthetic corpus
PUBLIC, RESTRICTED = ("public-ish",), ("restricted",)
_SENTENCE_END = re.compile(r"(?<=[.!?;])\s+")


def pieces(text: str, max_words: int = MAX_WORDS, min_words: int = MIN_WORDS) -> list[str]:
    """Sentences of ``text``, each cut into near-equal runs of at most ``max_words`` words.

    >>> for p in pieces("Wings stall early. The boundary layer separates near the leading "
    ...                 "edge at high angles of attack and low speed; lift falls.", max_words=8):
    ...     print(p)
    Wings stall early.
    The boundary layer separates near the leading edge
    at high angles of attack and low speed;
    >>> pieces("too short. a b c d e f g", max_words=4)
    ['a b c', 'd e f g']
    """
    out = []
    for sentence in _SENTENCE_END.split(" ".join(text.split())):
        words = sentence.split()
        runs = -(-len(words) // max_words)  # ceil: the fewest runs that fit
        for r in range(runs):
            run = words[r * len(words) // runs:(r + 1) * len(words) // runs]
            if len(run) >= min_words:
                out.append(" ".join(run))
    return out


@dataclass(frozen=True)
class RealDoc:
    source: str  # "<set>/<doc id>"
    title: str
    texts: tuple[str, ...]


def distinct_docs(docs: Iterator[tuple[str, str, str]], max_words: int = MAX_WORDS) -> list[RealDoc]:
    """(source, title, text) documents as RealDocs of pieces no earlier document holds
    (documents left with none are dropped).

    >>> [d.texts for d in distinct_docs(iter([("a/1", "T", "One two three. Four five six."),
    ...                                        ("a/2", "T", "Four five six. Seven eight nine.")]))]
    [('One two three.', 'Four five six.'), ('Seven eight nine.',)]
    """
    seen: set[str] = set()
    out = []
    for source, title, text in docs:
        kept = []
        for p in pieces(text, max_words):
            if p not in seen:
                seen.add(p)
                kept.append(p)
        if kept:
            out.append(RealDoc(source, title, tuple(kept)))
    return out


def _collections() -> tuple[list[tuple[str, str, str]], dict[str, int], list[str]]:
    from retrieval_sets_data import SETS, ensure_raw

    docs, per_set, queries = [], {}, []
    for spec in SETS:
        corpus, qs, _ = spec.convert(ensure_raw(spec, fetch=False))
        for doc_id, d in corpus.items():
            title = d.get("title", "").strip()
            docs.append((f"{spec.name}/{doc_id}", title or f"{spec.name} {doc_id}",
                         f"{title}. {d['text']}" if title else d["text"]))
        per_set[spec.name] = len(corpus)
        queries += [" ".join(q.split()) for q in qs.values() if q.strip()]
    return docs, per_set, queries


def take(docs: list[RealDoc], n_chunks: int, seed: int = 0) -> list[RealDoc]:
    """Documents in a seeded order until ``n_chunks`` texts (the last document cut short).

    >>> d = [RealDoc(f"s/{i}", "t", ("x", "y", "z")) for i in range(4)]
    >>> sum(len(x.texts) for x in take(d, 7))
    7
    """
    order = np.random.default_rng(seed).permutation(len(docs))
    out, left = [], n_chunks
    for i in order:
        if left <= 0:
            break
        doc = docs[i]
        out.append(RealDoc(doc.source, doc.title, doc.texts[:left]))
        left -= len(out[-1].texts)
    if left > 0:
        have = n_chunks - left
        raise SystemExit(f"--vectors minilm: the cached collections give {have} distinct chunk "
                         f"texts, fewer than --chunks {n_chunks}")
    return out


def as_store_rows(docs: list[RealDoc], per_doc: int = PER_DOC
                  ) -> Iterator[tuple[Document, list[Chunk], tuple[str, ...]]]:
    """(document, chunks, groups) per stored document, shaped like the synthetic corpus's:
    ``per_doc`` pieces to a document, one section each, every tenth document readable by
    the searching principal.

    >>> rows = list(as_store_rows([RealDoc("a/1", "Wings", ("one two three", "four five six")),
    ...                            RealDoc("a/2", "Flow", ("seven eight nine",))], per_doc=2))
    >>> [([c.section for c in chunks], groups) for _, chunks, groups in rows]
    [(['a/1 > Wings', 'a/1 > Wings'], ('public-ish',)), (['a/2 > Flow'], ('restricted',))]
    """
    flat = [(rd, t) for rd in docs for t in rd.texts]
    for d, at in enumerate(range(0, len(flat), per_doc)):
        doc = Document(f"real/{d}.txt", f"Abstracts {d}", tuple(
            Section((rd.source, rd.title), t) for rd, t in flat[at:at + per_doc]))
        chunks = [Chunk(Chunk.make_id(doc.id, s.label, s.text), doc.id, s.text, s.label, i,
                        len(s.text.split())) for i, s in enumerate(doc.sections)]
        yield doc, chunks, PUBLIC if d % 10 == 0 else RESTRICTED


@dataclass
class RealCorpus:
    docs: list[RealDoc]
    vectors: np.ndarray  # one row per text, in document order
    queries: list[str]
    query_vectors: np.ndarray
    embed_s: float  # seconds the embedder took (when the vectors were made, maybe cached)
    model: str
    per_set: dict[str, int]

    def chunks_per_set(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for d in self.docs:
            name = d.source.split("/")[0]
            out[name] = out.get(name, 0) + len(d.texts)
        return out

    def rows(self, per_doc: int = PER_DOC
             ) -> Iterator[tuple[Document, list[Chunk], np.ndarray, tuple[str, ...]]]:
        at = 0
        for doc, chunks, groups in as_store_rows(self.docs, per_doc):
            yield doc, chunks, self.vectors[at:at + len(chunks)], groups
            at += len(chunks)


def texts_hash(texts: list[str]) -> str:
    return hashlib.sha256("\n".join(texts).encode("utf-8")).hexdigest()


def load(n_chunks: int, cache_dir: Path) -> RealCorpus:
    """The real corpus of ``n_chunks`` chunks with its vectors (embedded once, then cached)."""
    from ragtune.config import Settings
    from ragtune.embed.factory import make_embedder

    raw, per_set, queries = _collections()
    docs = take(distinct_docs(iter(raw)), n_chunks)
    queries = [queries[i] for i in np.random.default_rng(7).permutation(len(queries))]
    texts = [t for d in docs for t in d.texts]
    embedder = make_embedder(Settings().embedding)
    path = cache_dir / f"store_scale-{n_chunks}-{embedder.name.replace('/', '_')}.npz"
    key = texts_hash(texts + ["\0queries"] + queries)
    if path.exists():
        data = np.load(path)
        if str(data["key"]) == key:
            print(f"  minilm: {len(texts)} chunk vectors from {path} (embedded in "
                  f"{float(data['embed_s']):.0f} s)", flush=True)
            return RealCorpus(docs, data["vectors"], queries, data["query_vectors"],
                              float(data["embed_s"]), embedder.name, per_set)
    print(f"  minilm: embedding {len(texts)} chunks and {len(queries)} queries with "
          f"{embedder.name} ...", flush=True)
    t = time.perf_counter()
    parts = []
    for i in range(0, len(texts), 4096):  # progress, and the embedder's own batches inside
        parts.append(np.asarray(embedder.embed_documents(texts[i:i + 4096]), dtype=np.float32))
        done = i + len(parts[-1])
        print(f"  minilm: {done} embedded in {time.perf_counter() - t:.0f} s "
              f"({done / (time.perf_counter() - t):.0f} chunks/s)", flush=True)
    vectors = np.concatenate(parts)
    query_vectors = np.stack([embedder.embed_query(q) for q in queries]).astype(np.float32)
    embed_s = time.perf_counter() - t
    cache_dir.mkdir(parents=True, exist_ok=True)
    np.savez(path, key=key, vectors=vectors, query_vectors=query_vectors, embed_s=embed_s)
    return RealCorpus(docs, vectors, queries, query_vectors, embed_s, embedder.name, per_set)
