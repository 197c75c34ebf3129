"""Training and evaluation data for retriever adaptation, built from stored chunks alone.

Pseudo-queries come from the Inverse Cloze Task (ICT; Lee et al., ACL 2019): one sentence of
a chunk is the query and the rest of the chunk, with that sentence taken out, is its
positive passage. It needs no model, so thousands of chunks cost milliseconds; the packaged
0.5B chat model would take 1-2 s per query on 2 cores (hours for a 5k-document corpus), and
ICT queries are written in the corpus's own vocabulary, which is what a general-purpose
encoder lacks on a new domain. Hard negatives are chunks the current retriever ranks high
for the query that come from *another* document (a chunk of the same document may hold the
very sentence, through chunk overlap).

Documents, not chunks, are split into train and held-out, by a hash of their id: the same
document always lands on the same side, whatever else is in the store, and nothing of a
held-out document (query, positive or negative) ever reaches training.

>>> split = split_documents(["d1", "d2", "d3", "d4"], held_out=0.5, seed=0)
>>> sorted(split.train + split.held_out)
['d1', 'd2', 'd3', 'd4']
>>> p = Passage("c1", "d1", "Wings", "Swept wings delay the drag rise. The effect was measured "
...             "in a wind tunnel at Mach 0.9. Results agree with theory.")
>>> q = ict_query(p, random.Random(0), keep_sentence=0.0)
>>> q.query in p.text and q.query not in q.positive
True
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass

from ragtune.generate.citations import is_code, split_sentences


@dataclass(frozen=True)
class Passage:
    """A stored chunk as the embedder sees it: ``head`` (title > section) and its text."""

    chunk_id: str
    doc_id: str
    head: str
    text: str

    def embedding_text(self, text: str | None = None) -> str:
        """``head`` + text, as ingestion embeds a chunk (``chunk_embedding_text``)."""
        body = self.text if text is None else text
        return f"{self.head}\n\n{body}" if self.head else body


@dataclass(frozen=True)
class PseudoQuery:
    """An ICT query: a sentence of chunk ``chunk_id``; ``positive`` is the chunk's embedding
    text without it (or with it, for the ``keep_sentence`` share)."""

    query: str
    chunk_id: str
    doc_id: str
    positive: str


@dataclass(frozen=True)
class Example:
    """One training triple: query, its positive passage, a hard negative passage."""

    query: str
    positive: str
    negative: str
    chunk_id: str
    doc_id: str
    negative_id: str
    negative_doc: str

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


@dataclass(frozen=True)
class Split:
    """Document ids on each side of the train / held-out split."""

    train: tuple[str, ...]
    held_out: tuple[str, ...]


def _unit(key: str) -> float:
    """A stable number in [0, 1) for ``key`` (the first 8 bytes of its sha256)."""
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") / 2**64


def split_documents(doc_ids: Iterable[str], *, held_out: float, seed: int = 0) -> Split:
    """Each document goes to held-out when the hash of (seed, id) falls under ``held_out``.

    With two or more documents both sides get at least one (the nearest to the cut moves).

    >>> s = split_documents([f"d{i}" for i in range(1000)], held_out=0.2, seed=1)
    >>> 150 < len(s.held_out) < 250, set(s.train) & set(s.held_out)
    (True, set())
    """
    if not 0.0 < held_out < 1.0:
        raise ValueError(f"held_out must be between 0 and 1, got {held_out}")
    keyed = sorted((_unit(f"{seed}\x1f{d}"), d) for d in dict.fromkeys(doc_ids))
    cut = sum(1 for u, _ in keyed if u < held_out)
    if len(keyed) >= 2:
        cut = min(max(cut, 1), len(keyed) - 1)
    return Split(train=tuple(sorted(d for _, d in keyed[cut:])),
                 held_out=tuple(sorted(d for _, d in keyed[:cut])))


def cap_documents(doc_ids: Sequence[str], max_docs: int | None, seed: int = 0) -> list[str]:
    """At most ``max_docs`` ids, chosen by hash (stable as documents come and go).

    >>> cap_documents(["a", "b", "c"], None)
    ['a', 'b', 'c']
    >>> len(cap_documents([str(i) for i in range(50)], 10))
    10
    """
    if max_docs is None or len(doc_ids) <= max_docs:
        return list(doc_ids)
    return sorted(sorted(doc_ids, key=lambda d: _unit(f"cap{seed}\x1f{d}"))[:max_docs])


def pick_passages(passages: Iterable[Passage], limit: int, *, seed: int = 0,
                  min_words: int = 8) -> list[Passage]:
    """At most ``limit`` passages of at least ``min_words`` words, chosen by hash (the same
    ones every time, and a passage keeps its place as others come and go).

    >>> ps = [Passage(f"c{i}", "d", "", "word " * (3 if i == 0 else 9)) for i in range(5)]
    >>> [p.chunk_id for p in pick_passages(ps, 10)] == ["c1", "c2", "c3", "c4"]
    True
    """
    fit = [p for p in passages if len(p.text.split()) >= min_words]
    return sorted(sorted(fit, key=lambda p: _unit(f"q{seed}\x1f{p.chunk_id}"))[:limit],
                  key=lambda p: p.chunk_id)


def query_sentences(text: str, *, min_words: int = 5, max_words: int = 40) -> list[str]:
    """The sentences of ``text`` fit to be a query: prose of ``min_words``-``max_words`` words.

    >>> query_sentences("Short. This sentence has enough words to ask. ```x = 1```")
    ['This sentence has enough words to ask.']
    """
    return [s for s in split_sentences(text)
            if min_words <= len(s.split()) <= max_words and not is_code(s)]


def ict_query(passage: Passage, rnd: random.Random, *, keep_sentence: float = 0.1,
              min_rest_words: int = 8) -> PseudoQuery | None:
    """One ICT query for ``passage``, or None when it has no fit sentence or too little left.

    ``keep_sentence``: the share of positives that keep the query sentence (Lee et al.
    keep 10%, so the encoder still rewards word overlap, which real queries have).
    """
    candidates = query_sentences(passage.text)
    if not candidates:
        return None
    sentence = rnd.choice(candidates)
    rest = " ".join(passage.text.replace(sentence, " ", 1).split())
    if len(rest.split()) < min_rest_words:
        return None
    kept = rnd.random() < keep_sentence
    return PseudoQuery(sentence, passage.chunk_id, passage.doc_id,
                       passage.embedding_text(passage.text if kept else rest))


def ict_queries(passages: Iterable[Passage], *, seed: int = 0, keep_sentence: float = 0.1,
                limit: int | None = None) -> list[PseudoQuery]:
    """One ICT query per passage that has one (at most ``limit``, taken evenly by hash)."""
    out = []
    for p in passages:
        q = ict_query(p, random.Random(f"{seed}\x1f{p.chunk_id}"), keep_sentence=keep_sentence)
        if q is not None:
            out.append(q)
    if limit is not None and len(out) > limit:
        out = sorted(out, key=lambda q: _unit(f"q{seed}\x1f{q.chunk_id}"))[:limit]
    return out


Ranker = Callable[[str], Sequence[str]]  # query -> chunk ids, best first


def mine_negatives(queries: Sequence[PseudoQuery], rankers: Sequence[Ranker],
                   passages: dict[str, Passage], *, depth: int = 10, seed: int = 0,
                   progress: Callable[[int, int], None] | None = None) -> list[Example]:
    """A hard negative for each query: a chunk from one ranker's top ``depth`` (rankers taken
    in turn) that belongs to another document and is in ``passages`` (the training side).

    Picked at random among those, not always the first: the very top is the most likely
    to be a relevant passage the pseudo-labels do not know about (GPL answers this with a
    cross-encoder; none ships offline here). A query without any such chunk is dropped.
    """
    rnd = random.Random(seed)
    out: list[Example] = []
    for i, q in enumerate(queries):
        ranker = rankers[i % len(rankers)]
        pool = [cid for cid in ranker(q.query)
                if cid in passages and passages[cid].doc_id != q.doc_id][:depth]
        if pool:
            neg = passages[rnd.choice(pool)]
            out.append(Example(q.query, q.positive, neg.embedding_text(), q.chunk_id, q.doc_id,
                               neg.chunk_id, neg.doc_id))
        if progress:
            progress(i + 1, len(queries))
    return out


def held_out_corpus(passages: Sequence[Passage],
                    queries: Sequence[PseudoQuery]) -> dict[str, tuple[str, str]]:
    """The evaluation corpus: chunk id -> (doc id, embedding text), with every query sentence
    taken out of every chunk of its document (chunks overlap, so a neighbour may hold it)."""
    by_doc: dict[str, list[str]] = {}
    for q in queries:
        by_doc.setdefault(q.doc_id, []).append(q.query)
    corpus = {}
    for p in passages:
        text = p.text
        for sentence in by_doc.get(p.doc_id, ()):
            text = text.replace(sentence, " ")
        corpus[p.chunk_id] = (p.doc_id, p.embedding_text(" ".join(text.split())))
    return corpus
