"""RAFT data: retrieval-augmented fine-tuning examples with hard-negative distractors.

>>> from ragtune.workspace import Workspace                                       # doctest: +SKIP
>>> ws = Workspace.open()                                                         # doctest: +SKIP
>>> report = build_raft(ws.store, ws.retriever, ws.principal(None), None,
...                     out_train=Path("raft_train.jsonl"), out_eval=Path("raft_eval.jsonl"))  # doctest: +SKIP
>>> report.train_examples, report.dropped                                         # doctest: +SKIP
(212, {'answer_not_in_oracle': 3})

Each example is the prompt ``ragtune ask`` serves in rag mode
(:func:`~ragtune.generate.prompts.build_rag_messages` over Hits: the same system rules,
numbered ``[n] title — section`` sources and ``Question:`` line), so the adapter learns the
format it will see, followed by the target answer:

- **oracle present** (a share ``p`` of the training examples, chosen exactly, by a seeded
  hash of the question): the sources are the oracle chunk (the chunk the question was
  written from) plus ``k`` distractors, in a seeded shuffled order so the oracle is not
  always ``[1]``. The target (:mod:`ragtune.finetune.raft_quotes`) reasons in steps, quotes
  the oracle verbatim between ``##begin_quote##`` and ``##end_quote##``, then ends with
  ``Answer: <answer> [n]`` where ``n`` is the oracle's number in this prompt.
- **oracle absent** (the other ``1 - p``): ``k + 1`` distractors (the same number of
  sources, so their count does not give the oracle away) and the target is exactly the
  refusal sentence :data:`~ragtune.generate.prompts.NOT_FOUND_TEXT`.
  The RAFT paper keeps the answer here, to make the model memorise domain facts. We do not:
  ragtune is a grounded system whose answers must be checkable against the sources shown,
  and the answer pipeline and citation checker treat that exact sentence as "not in the
  knowledge base". Training the model to state an answer that no source supports would
  teach it to make uncitable claims; training it to refuse teaches it to tell evidence from
  look-alike text, which is the point of the distractors.

Distractors are *hard negatives*: the retriever's top hits for the question, searched as
the principal, excluding the oracle chunk and any chunk that contains the quoted evidence
(a duplicate of the evidence is not a distractor). Every quote is checked to occur
verbatim in the oracle chunk; an example whose quote does not is dropped and counted.

Questions come from a JSONL file (:func:`~ragtune.finetune.raft_questions.load_questions`: ``{"question", "answer" or
"answers", "chunk_id" or "source"/"sources", optional "quote"}`` lines, or the chat lines
``ragtune data synth`` writes) or, with ``questions=None``, from the synth module's
deterministic extractive pairs (one per chunk).

The split is by document with :func:`~ragtune.finetune.synth.split_documents` (same
documents, fraction and seed as ``ragtune data synth``): a document feeds train or eval,
never both, and that includes distractors: each side's distractors are searched only among
that side's documents. The eval side always shows the oracle (``eval_p=1.0``) so that it
measures answering with the evidence among distractors.

Next to the training file, ``<file>.lineage.json`` records the documents and versions
behind every prompt (oracles and distractors), the principal, ``p``, ``k`` and the seed;
:func:`training_lineage` returns it (only while the file's sha256 still matches) and
``ragtune finetune train`` stores it in the adapter's ``run.json``.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ragtune.errors import InputError, NotFound
from ragtune.finetune.raft_questions import (
    RaftQuestion,
    as_question,
    load_questions,
    spread,
    synth_questions,
)
from ragtune.finetune.raft_quotes import (
    MIN_QUOTE_RECALL,
    final_answer,
    is_raft_adapter,
    quotes_verbatim,
    raft_target,
    rank_quote,
)
from ragtune.finetune.synth import readable_chunks, split_documents
from ragtune.generate.prompts import NOT_FOUND_TEXT, build_rag_messages
from ragtune.jsonl import write_jsonl_atomic
from ragtune.store.base import SearchFilter
from ragtune.types import Chunk, DocumentInfo, Hit, Principal, file_sha256

__all__ = ["RaftQuestion", "RaftReport", "build_raft", "final_answer", "is_raft_adapter",
           "lineage_path", "load_questions", "read_lineage_sidecar", "training_lineage"]

LINEAGE_SUFFIX = ".lineage.json"


# ---------------------------------------------------------------- the build


@dataclass
class RaftReport:
    """What :func:`build_raft` wrote, and what it dropped and why."""

    principal: str
    questions: int  # given (or generated)
    train_path: str
    eval_path: str
    train_examples: int = 0
    eval_examples: int = 0
    with_oracle: int = 0  # training examples showing the oracle
    without_oracle: int = 0  # training examples whose target is the refusal
    dropped: dict[str, int] = field(default_factory=dict)
    mean_distractors: float = 0.0
    distractors_skipped_holding_the_quote: int = 0  # retrieved chunks that repeat the evidence
    estimated_tokens: dict[str, int] = field(default_factory=dict)  # per example: p50, max
    train_documents: list[dict[str, Any]] = field(default_factory=list)
    eval_documents: list[dict[str, Any]] = field(default_factory=list)
    options: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    lineage_path: str = ""
    limited_to: int | None = None  # questions kept by --limit (None: no limit)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _unit(*parts: object) -> float:
    digest = hashlib.sha256("\x1f".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def _squash(text: str) -> str:
    return " ".join(text.split()).lower()


def _doc_record(d: DocumentInfo) -> dict[str, Any]:
    return {"doc_id": d.id, "source": d.source, "title": d.title, "version": d.version,
            "content_hash": d.content_hash, "collection": d.collection}


def _find_doc(ref: str, docs: dict[str, DocumentInfo]) -> DocumentInfo | None:
    if ref in docs:
        return docs[ref]
    exact = [d for d in docs.values() if d.source == ref]
    if exact:
        return exact[0]
    tail = "/" + ref.lstrip("/")
    ends = [d for d in docs.values() if d.source.endswith(tail)]
    return ends[0] if len(ends) == 1 else None


def _estimate_tokens(messages: list[dict[str, str]]) -> int:
    # ~1.3 model tokens per word plus chat-template overhead: a guide for --max-length, not
    # a count (`ragtune data validate --base` counts with the real tokenizer)
    return round(sum(len(m["content"].split()) for m in messages) * 1.3) + 12


def build_raft(store: Any, retriever: Any, principal: Principal,
               questions: Sequence[RaftQuestion | dict[str, Any]] | None, *,
               out_train: Path, out_eval: Path, k: int = 4, p: float = 0.8, seed: int = 0,
               eval_fraction: float = 0.2, eval_p: float = 1.0, limit: int | None = None,
               questions_from: str | None = None) -> RaftReport:
    """Write RAFT train and eval chat JSONL files (see the module doc) and the lineage.

    ``questions``: :class:`~ragtune.finetune.raft_questions.RaftQuestion` s or dicts in the
    :func:`~ragtune.finetune.raft_questions.load_questions` format;
    None makes one extractive question per chunk. Only documents ``principal`` may read are
    used: a question about any other document is dropped like one about a missing
    document (``source_not_found``), so the report reveals nothing about hidden documents.
    ``limit`` keeps that many questions, spread across documents.
    """
    if k < 1:
        raise InputError("--k", f"must be >= 1 distractor, got {k}")
    for name, value in (("--p", p), ("eval_p", eval_p)):
        if not 0.0 <= value <= 1.0:
            raise InputError(name, f"must be in [0, 1], got {value}")
    if limit is not None and limit < 1:
        raise InputError("--limit", f"must be >= 1, got {limit}")
    docs, chunks = readable_chunks(store, principal)
    by_id = {c.id: c for c in chunks}
    by_doc: dict[str, list[Chunk]] = {}
    for c in chunks:
        by_doc.setdefault(c.doc_id, []).append(c)
    train_ids, eval_ids = split_documents(sorted(by_doc), eval_fraction, seed)
    side_of = {d: "train" for d in train_ids} | {d: "eval" for d in eval_ids}
    filters = {"train": SearchFilter(documents=tuple(train_ids)),
               "eval": SearchFilter(documents=tuple(eval_ids))}

    if questions is None:
        qs = synth_questions(chunks, docs)
        questions_from = questions_from or "extractive questions from the knowledge base (synth)"
    else:
        qs = [q if isinstance(q, RaftQuestion) else as_question(q, "questions", i)
              for i, q in enumerate(questions, 1)]
        questions_from = questions_from or "given questions"
    if not qs:
        raise InputError("questions", "no questions: the readable chunks gave no extractive "
                         "question (pass a questions file)")
    dropped: dict[str, int] = {}

    def drop(reason: str) -> None:
        dropped[reason] = dropped.get(reason, 0) + 1

    # 1. oracle chunk and verified quote for each question
    located: list[tuple[RaftQuestion, Chunk, str]] = []
    for q in qs:
        if not q.answerable:
            drop("unanswerable_question")
            continue
        if q.chunk_id is not None:
            oracle = by_id.get(q.chunk_id)
            if oracle is None:
                drop("chunk_not_found")  # missing, or not readable by the principal
                continue
            candidates = [oracle]
        else:
            info = _find_doc(q.source or "", docs)
            if info is None or info.id not in by_doc:
                drop("source_not_found")
                continue
            candidates = by_doc[info.id]
        scored = []
        for c in candidates:
            # a given quote is taken as is (and verified below) from the chunk holding it
            quote, rank = ((q.quote, (1.0, 1.0, 0, float(q.quote in c.text), 0)) if q.quote
                           else rank_quote(c.text, q.answers, q.question))
            scored.append((rank, -c.ordinal, c, quote))
        (score, *_), _, oracle, quote = max(scored, key=lambda s: s[:2])
        if score < MIN_QUOTE_RECALL:
            drop("answer_not_in_oracle")
            continue
        if not quote or quote not in oracle.text:
            drop("quote_not_verbatim")
            continue
        located.append((q, oracle, quote))
    located = [located[i] for i in spread([x[1].doc_id for x in located], limit)]

    # 2. hard negatives from the live retriever, as the principal, on the oracle's side
    built: dict[str, list[dict[str, Any]]] = {"train": [], "eval": []}
    seen: set[str] = set()
    no_hits = holding_quote = 0
    for q, oracle, quote in located:
        key = f"{q.question}\x1f{oracle.id}"
        if key in seen:
            drop("duplicate_question")
            continue
        seen.add(key)
        side = side_of[oracle.doc_id]
        result = retriever.search(q.question, principal, k=2 * k + 4, filters=filters[side])
        evidence = _squash(quote)
        others = [h for h in result.hits if h.chunk.id != oracle.id]
        distractors = [h for h in others if evidence not in _squash(h.chunk.text)]
        holding_quote += len(others) - len(distractors)
        if not distractors:
            no_hits += 1
            drop("no_retriever_hits")
            continue
        built[side].append({"q": q, "oracle": oracle, "quote": quote, "key": key,
                            "with": distractors[:k], "without": distractors[: k + 1]})
    if not built["train"] and not built["eval"]:
        if no_hits:
            raise NotFound(
                f"no RAFT example could be built: for {no_hits} of {len(located)} questions the "
                f"retriever (as '{principal.user}') returned no chunk other than the oracle to "
                "use as a distractor. RAFT needs other chunks on the same side of the document "
                "split: ingest more documents, or check that they were embedded")
        raise InputError("questions", f"no RAFT example could be built from {len(qs)} questions "
                         f"(dropped: {_fmt_counts(dropped)})")

    # 3. which training examples show the oracle: exactly round(p * n), by seeded hash
    ranked = sorted(built["train"], key=lambda b: _unit(seed, "oracle", b["key"]))
    n_with = round(p * len(ranked))
    for i, b in enumerate(ranked):
        b["with_oracle"] = i < n_with
    for b in built["eval"]:
        b["with_oracle"] = _unit(seed, "eval-oracle", b["key"]) < eval_p

    rows: dict[str, list[dict[str, Any]]] = {"train": [], "eval": []}
    used_docs: dict[str, set[str]] = {"train": set(), "eval": set()}
    n_distractors: list[int] = []
    tokens: list[int] = []
    for side in ("train", "eval"):
        for b in built[side]:
            row = _example(b, docs, seed)
            if row is None:
                drop("quote_not_verbatim")
                continue
            rows[side].append(row)
            used_docs[side].update(row["metadata"]["source_docs"])
            n_distractors.append(len(row["metadata"]["sources"]) - row["metadata"]["oracle_included"])
            tokens.append(_estimate_tokens(row["messages"]))
    assert not used_docs["train"] & used_docs["eval"], "a document fed both sides"

    out_train, out_eval = Path(out_train), Path(out_eval)
    write_jsonl_atomic(out_train, rows["train"])
    write_jsonl_atomic(out_eval, rows["eval"])
    with_oracle = sum(r["metadata"]["oracle_included"] for r in rows["train"])
    options = {"k": k, "p": p, "eval_p": eval_p, "seed": seed, "eval_fraction": eval_fraction,
               "limit": limit, "questions_from": questions_from}
    tokens.sort()
    report = RaftReport(
        principal=principal.user, questions=len(qs), train_path=str(out_train),
        eval_path=str(out_eval), train_examples=len(rows["train"]),
        eval_examples=len(rows["eval"]), with_oracle=with_oracle,
        without_oracle=len(rows["train"]) - with_oracle, dropped=dict(sorted(dropped.items())),
        mean_distractors=round(sum(n_distractors) / len(n_distractors), 2) if n_distractors else 0.0,
        estimated_tokens={"p50": tokens[len(tokens) // 2], "max": tokens[-1]} if tokens else {},
        train_documents=[_doc_record(docs[d]) for d in sorted(used_docs["train"])],
        eval_documents=[_doc_record(docs[d]) for d in sorted(used_docs["eval"])],
        options=options, distractors_skipped_holding_the_quote=holding_quote,
        limited_to=len(located) if limit is not None else None)
    if report.train_examples < 10:
        report.warnings.append(f"only {report.train_examples} training examples; training "
                               "needs at least 10")
    if eval_fraction > 0 and not report.eval_examples:
        report.warnings.append("no eval examples: no question is about a held-out document")
    if tokens and tokens[-1] > 512:
        report.warnings.append(
            f"examples reach about {tokens[-1]} tokens (estimate): train with --max-length "
            f"{-(-tokens[-1] // 128) * 128} or more, or the end of the answer is cut off "
            "(`ragtune data validate --base MODEL` counts exactly)")
    lineage = {
        "kind": "raft", "principal": {"user": principal.user, "groups": sorted(principal.groups),
                                      "admin": principal.admin},
        **options, "examples": len(rows["train"]), "with_oracle": with_oracle,
        # oracle: examples whose answer came from the document; prompts: examples showing it
        "documents": [d | {"oracle": sum(r["metadata"]["doc_id"] == d["doc_id"] and
                                         r["metadata"]["oracle_included"] for r in rows["train"]),
                           "prompts": sum(d["doc_id"] in r["metadata"]["source_docs"]
                                          for r in rows["train"])}
                      for d in report.train_documents],
        "eval_documents": [d["doc_id"] for d in report.eval_documents],
        "source_file": str(out_train), "data_sha256": file_sha256(out_train),
    }
    side_path = lineage_path(out_train)
    side_path.write_text(json.dumps(lineage, indent=2, ensure_ascii=False), encoding="utf-8")
    report.lineage_path = str(side_path)
    return report


def _example(b: dict[str, Any], docs: dict[str, DocumentInfo], seed: int) -> dict[str, Any] | None:
    q, oracle, quote = b["q"], b["oracle"], b["quote"]
    info = docs[oracle.doc_id]
    hits = [Hit(oracle, 0.0, info.source, info.title), *b["with"]] if b["with_oracle"] else list(b["without"])
    random.Random(f"{seed}\x1f{b['key']}").shuffle(hits)
    n = next((i for i, h in enumerate(hits, 1) if h.chunk.id == oracle.id), None)
    if n is not None:
        target = raft_target(n, info.title, quote, q.answers[0])
        if not quotes_verbatim(target, oracle.text):
            return None
    else:
        target = NOT_FOUND_TEXT
    messages = build_rag_messages(q.question, hits) + [{"role": "assistant", "content": target}]
    return {"messages": messages, "metadata": {
        "doc_id": info.id, "source": info.source, "title": info.title, "version": info.version,
        "content_hash": info.content_hash, "chunk_id": oracle.id, "method": "raft",
        "question_id": q.id, "question": q.question, "answers": list(q.answers), "quote": quote,
        "oracle_included": n is not None, "oracle_n": n,
        "sources": [h.chunk.id for h in hits],
        "source_docs": sorted({h.chunk.doc_id for h in hits} | {info.id}),
    }}


def _fmt_counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{v} {k}" for k, v in sorted(counts.items())) or "none"




# ---------------------------------------------------------------- lineage


def lineage_path(data_file: str | Path) -> Path:
    """``<data_file>.lineage.json``: where :func:`build_raft` writes the run-level lineage."""
    return Path(str(data_file) + LINEAGE_SUFFIX)


def read_lineage_sidecar(data_file: str | Path) -> dict[str, Any] | None:
    """The lineage written next to ``data_file``; None when absent, unreadable, or written
    for other content (the file was edited after the build: its sha256 no longer matches)."""
    side = lineage_path(data_file)
    try:
        lineage = json.loads(side.read_text(encoding="utf-8"))
        current = file_sha256(Path(data_file))
    except (OSError, json.JSONDecodeError):
        return None
    if not isinstance(lineage, dict) or lineage.get("data_sha256") != current:
        return None
    return lineage


def training_lineage(data_file: str | Path) -> dict[str, Any] | None:
    """The lineage to store with an adapter trained on ``data_file``: the RAFT sidecar when
    it matches the file, else the per-line document metadata (:func:`~ragtune.finetune.synth.lineage_from_file`)."""
    from ragtune.finetune.synth import lineage_from_file

    return read_lineage_sidecar(data_file) or lineage_from_file(Path(data_file))
