"""Synthetic chat examples from the knowledge base, split by document, with lineage.

>>> from ragtune.workspace import Workspace                                     # doctest: +SKIP
>>> ws = Workspace.open()                                                       # doctest: +SKIP
>>> synth_examples(ws.store, principal=ws.principal(None), out_train=Path("train.jsonl"),
...                out_eval=Path("eval.jsonl"))["train"]["examples"]            # doctest: +SKIP
212

Every example is ``system, user question, assistant answer`` where the answer ends with
``[Source: <document title>, <section>]`` (the section is the chunk's deepest heading, its
PDF page dropped; commas and brackets are removed from the title and section so that the
citation splits on its first ``", "``). Two ways to write the question and answer:

- **extractive** (no generator, deterministic): the question comes from the section
  heading (a heading that is itself a question, as in FAQ files, is used as is; otherwise
  ``What does the <title> say about <heading>?`` and two variants for ``per_chunk > 1``;
  ``What is the <title> about?`` for the text before the first heading);
  the answer is the chunk's k-th *informative* sentence (at least 6 words; headings, table
  rows and the repeated heading line are skipped), extended by the next sentence while it
  has fewer than 15 words. A chunk with no informative sentence gives no example.
- **llm** (a :class:`~ragtune.generate.base.Generator`): the model is shown the chunk and
  asked for ``per_chunk`` question/answer pairs as JSON. Any citation it writes is replaced
  by ours. A reply that is not usable JSON falls back to the extractive example for that
  chunk (counted in ``llm_fallbacks``). Answers are not checked against the chunk: review
  them, or evaluate the adapter against RAG on held-out documents.

Each line carries ``metadata`` (document id, source, title, version, content hash, chunk
id, section, method), which :func:`lineage_from_file` turns into the adapter's lineage.
The split is by document (:func:`split_documents`): a document feeds train or eval, never
both, so the eval file measures generalisation to unseen documents. Only documents the
principal may read are used.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ragtune.errors import InputError, NotFound
from ragtune.generate.base import Generator
from ragtune.jsonl import write_jsonl_atomic
from ragtune.types import Chunk, DocumentInfo, Principal

SYSTEM_PROMPT = ("You are a support assistant. Answer in 1-3 sentences using only the "
                 "organisation's documents, and end every answer with "
                 "[Source: <document title>, <section>].")
QUESTION_TEMPLATES = ("What does the {title} say about {heading}?",
                      "Can you tell me about {heading} in the {title}?",
                      "What should I know about {heading} ({title})?")
OVERVIEW_TEMPLATES = ("What is the {title} about?", "What does the {title} cover?",
                      "Give me an overview of the {title}.")
MIN_WORDS, SHORT_ANSWER = 6, 15
_PAGE = re.compile(r"\s*\(p\. \d+\)$")
_CITATION = re.compile(r"\s*\[Source:[^\]]*\]\s*")


# ---------------------------------------------------------------- the split


def _unit(seed: int, doc_id: str) -> float:
    digest = hashlib.sha256(f"{seed}\x1f{doc_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def split_documents(doc_ids: Sequence[str], eval_fraction: float = 0.2,
                    seed: int = 0) -> tuple[list[str], list[str]]:
    """``(train ids, eval ids)``, both sorted: the ``round(n * eval_fraction)`` documents with
    the smallest ``sha256(seed, id)`` go to eval (at least one, and never all, when there
    are two or more documents and the fraction is above 0).

    Each document's rank depends only on its own id, so the split does not depend on the
    order the ids come in, and adding documents moves only documents at the boundary. The
    evaluation harness calls this with the same seed to hold out the same documents; it
    should still compare an adapter's lineage (the documents it was trained on) with its
    eval documents when the corpus has changed since training.

    >>> split_documents(["doc_e", "doc_d", "doc_c", "doc_b", "doc_a"], 0.4, seed=1)
    (['doc_b', 'doc_c', 'doc_e'], ['doc_a', 'doc_d'])
    """
    if not 0.0 <= eval_fraction < 1.0:
        raise InputError("eval_fraction", f"must be in [0, 1), got {eval_fraction}")
    ids = sorted(set(doc_ids))
    n_eval = round(len(ids) * eval_fraction)
    if eval_fraction > 0 and len(ids) >= 2:
        n_eval = min(len(ids) - 1, max(1, n_eval))
    held = set(sorted(ids, key=lambda d: _unit(seed, d))[:n_eval])
    return [d for d in ids if d not in held], [d for d in ids if d in held]


# ---------------------------------------------------------------- one chunk


def _clean(text: str) -> str:
    return re.sub(r"\s+", " ", text.replace(",", "").replace("[", "(").replace("]", ")")).strip()


def citation(title: str, section_label: str) -> str:
    """``[Source: <title>, <deepest heading>]`` for a chunk.

    >>> citation("Returns Policy", "Returns Policy > Refunds (p. 2)")
    '[Source: Returns Policy, Refunds]'
    """
    heading = _heading(title, section_label)
    return f"[Source: {_clean(title) or 'Untitled'}, {_clean(heading) or _clean(title)}]"


def _heading(title: str, section_label: str) -> str:
    parts = [p for p in _PAGE.sub("", section_label).split(" > ") if p.strip()]
    return parts[-1].strip() if parts else title


def informative_sentences(chunk_text: str, heading: str) -> list[str]:
    """Sentences of at least 6 words, skipping headings, table rows and the heading line.

    >>> informative_sentences("Refunds\\n\\nRefunds take 5 to 7 business days. OK.\\n| a | b |", "Refunds")
    ['Refunds take 5 to 7 business days.']
    """
    from ragtune.generate.citations import split_sentences

    out: list[str] = []
    for line in chunk_text.splitlines():
        line = line.strip().lstrip("-*• ").strip()
        if not line or line.startswith(("|", "#")) or line == heading.strip():
            continue
        out += [s.strip() for s in split_sentences(line) if len(s.split()) >= MIN_WORDS]
    return out


def extractive_pairs(chunk: Chunk, title: str, n: int) -> list[tuple[str, str]]:
    """Up to ``n`` deterministic (question, answer) pairs from one chunk (see module doc)."""
    heading = _heading(title, chunk.section)
    sentences = informative_sentences(chunk.text, heading)
    pairs: list[tuple[str, str]] = []
    i = 0
    for k in range(n):
        if i >= len(sentences):
            break
        answer, i = sentences[i], i + 1
        if len(answer.split()) < SHORT_ANSWER and i < len(sentences):
            answer, i = f"{answer} {sentences[i]}", i + 1
        if heading.endswith("?") and k == 0:
            question = heading
        else:
            templates = OVERVIEW_TEMPLATES if heading == title else QUESTION_TEMPLATES
            question = templates[k % len(templates)].format(title=title, heading=heading)
        pairs.append((question, answer))
    return pairs


def _llm_pairs(generator: Generator, chunk: Chunk, title: str, n: int) -> list[tuple[str, str]] | None:
    heading = _heading(title, chunk.section)
    prompt = (
        f"Document: {title}\nSection: {heading}\n\nText:\n{chunk.text}\n\n"
        f"Write {n} question{'s' if n > 1 else ''} that a customer or employee might ask and "
        "that this text answers, each with an answer of 1 to 3 sentences that uses only facts "
        'from the text. Reply with JSON only: a list of objects with keys "question" and "answer".')
    reply = generator.complete([
        {"role": "system", "content": "You write training data. Use only the text you are given."},
        {"role": "user", "content": prompt}]).text
    start = min((i for i in (reply.find("["), reply.find("{")) if i >= 0), default=-1)
    if start < 0:
        return None
    try:
        value, _ = json.JSONDecoder().raw_decode(reply[start:])
    except json.JSONDecodeError:
        return None
    items = value if isinstance(value, list) else [value]
    pairs = []
    for item in items[:n]:
        if not isinstance(item, dict):
            continue
        q, a = item.get("question"), item.get("answer")
        if isinstance(q, str) and isinstance(a, str) and q.strip() and _CITATION.sub(" ", a).strip():
            pairs.append((q.strip(), _CITATION.sub(" ", a).strip()))
    return pairs or None


# ---------------------------------------------------------------- the files


def _pick_chunks(chunks: list[Chunk], limit: int | None) -> list[Chunk]:
    """All chunks, or ``limit`` of them taken round-robin across documents (coverage first)."""
    if limit is None:
        return chunks
    by_doc: dict[str, list[Chunk]] = {}
    for c in chunks:
        by_doc.setdefault(c.doc_id, []).append(c)
    picked: list[Chunk] = []
    depth = 0
    while len(picked) < limit and any(depth < len(v) for v in by_doc.values()):
        picked += [v[depth] for v in by_doc.values() if depth < len(v)][: limit - len(picked)]
        depth += 1
    return sorted(picked, key=lambda c: (c.doc_id, c.ordinal))




def _doc_record(d: DocumentInfo) -> dict[str, Any]:
    return {"id": d.id, "source": d.source, "title": d.title, "version": d.version,
            "content_hash": d.content_hash}


def readable_chunks(store: Any, principal: Principal) -> tuple[dict[str, DocumentInfo], list[Chunk]]:
    """The documents ``principal`` may read (by id) and their chunks; none is a clear error."""
    docs = {d.id: d for d in store.list_documents(principal)}
    chunks = [c for c in store.iter_chunks() if c.doc_id in docs]
    if not chunks:
        raise NotFound(f"no documents that '{principal.user}' may read: ingest some first "
                       "(or pick a user with --as)")
    return docs, chunks


def synth_examples(store: Any, *, principal: Principal, out_train: Path, out_eval: Path,
                   per_chunk: int = 1, eval_fraction: float = 0.2, seed: int = 0,
                   generator: Generator | None = None, limit_chunks: int | None = None,
                   system_prompt: str = SYSTEM_PROMPT) -> dict[str, Any]:
    """Write train and eval chat JSONL files from the chunks ``principal`` may read.

    Returns a summary: per split its path, example count and documents (id, source,
    title, version, content hash), plus the method, the split rule and any warnings.
    """
    if per_chunk < 1:
        raise InputError("per_chunk", f"must be >= 1, got {per_chunk}")
    if limit_chunks is not None and limit_chunks < 1:
        raise InputError("--limit-chunks", f"must be >= 1, got {limit_chunks}")
    docs, chunks = readable_chunks(store, principal)
    chunks = _pick_chunks(chunks, limit_chunks)
    train_ids, eval_ids = split_documents(sorted({c.doc_id for c in chunks}), eval_fraction, seed)
    held = set(eval_ids)
    rows: dict[str, list[dict[str, Any]]] = {"train": [], "eval": []}
    fallbacks = skipped = 0
    for chunk in chunks:
        info = docs[chunk.doc_id]
        method = "extractive"
        pairs = None
        if generator is not None:
            pairs = _llm_pairs(generator, chunk, info.title, per_chunk)
            method = "llm" if pairs else "extractive"
            fallbacks += pairs is None
        if pairs is None:
            pairs = extractive_pairs(chunk, info.title, per_chunk)
        if not pairs:
            skipped += 1
            continue
        cite = citation(info.title, chunk.section)
        for question, answer in pairs:
            rows["eval" if chunk.doc_id in held else "train"].append({
                "messages": [{"role": "system", "content": system_prompt},
                             {"role": "user", "content": question},
                             {"role": "assistant", "content": f"{answer} {cite}"}],
                "metadata": {"doc_id": info.id, "source": info.source, "title": info.title,
                             "version": info.version, "content_hash": info.content_hash,
                             "chunk_id": chunk.id, "section": chunk.section, "method": method},
            })
    write_jsonl_atomic(Path(out_train), rows["train"])
    write_jsonl_atomic(Path(out_eval), rows["eval"])
    warnings = []
    if len(rows["train"]) < 10:
        warnings.append(f"only {len(rows['train'])} training examples; training needs at least 10")
    if eval_fraction > 0 and not rows["eval"]:
        warnings.append("no eval examples: one document only, or its chunks gave none")

    def split(name: str, path: Path, ids: list[str]) -> dict[str, Any]:
        used = {r["metadata"]["doc_id"] for r in rows[name]}
        return {"path": str(path), "examples": len(rows[name]),
                "documents": [_doc_record(docs[d]) for d in ids if d in used]}

    return {
        "principal": principal.user, "method": "llm" if generator is not None else "extractive",
        "generator": getattr(generator, "name", None), "chunks_used": len(chunks),
        "chunks_without_example": skipped, "llm_fallbacks": fallbacks,
        "split": {"by": "document", "eval_fraction": eval_fraction, "seed": seed,
                  "rule": "the round(n * eval_fraction) documents with the smallest "
                          "sha256(seed, doc_id) (split_documents)"},
        "train": split("train", Path(out_train), train_ids),
        "eval": split("eval", Path(out_eval), eval_ids),
        "warnings": warnings,
    }


def lineage_from_file(path: Path) -> dict[str, Any] | None:
    """The documents (id, source, title, version, content hash) a synthetic file came from.

    Reads each line's ``metadata``; None when no line has document metadata (hand-written
    data). Lines that are not valid JSON are skipped: validation reports them elsewhere.
    """
    docs: dict[tuple[str, Any], dict[str, Any]] = {}
    n = 0
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return None
    for raw in lines:
        try:
            meta = json.loads(raw).get("metadata") if raw.strip() else None
        except (json.JSONDecodeError, AttributeError):
            continue
        if not isinstance(meta, dict) or "doc_id" not in meta:
            continue
        n += 1
        key = (meta["doc_id"], meta.get("version"))
        docs.setdefault(key, {k: meta.get(k) for k in
                              ("doc_id", "source", "title", "version", "content_hash")})
    if not docs:
        return None
    return {"documents": sorted(docs.values(), key=lambda d: (str(d["source"]), d["version"] or 0)),
            "examples_with_metadata": n, "source_file": str(path)}
