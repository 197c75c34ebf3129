"""Evaluation sets: load and check them, map their sources to documents, synthesise one.

An eval set is JSONL, one question a line::

    {"id": "q001", "question": "How many days do I have to return an item?",
     "answers": ["30 days"], "sources": ["policies/returns-policy.md"],
     "answerable": true, "tags": ["policy"]}

``answers`` are reference answers (any one may match); ``sources`` name the documents that
hold the answer, as stored sources or paths relative to the ingested folder
(:class:`SourceResolver` matches them on path suffixes); ``answerable: false`` marks a
question the knowledge base cannot answer (the right answer is a refusal). An optional
``metadata`` object is kept as is. A BEIR folder (``corpus.jsonl``, ``queries.jsonl``,
``qrels/``) loads as a retrieval-only set: no reference answers, sources are BEIR ids.

>>> import tempfile, pathlib
>>> p = pathlib.Path(tempfile.mkdtemp()) / "e.jsonl"
>>> _ = p.write_text('{"id": "q1", "question": "Hi?", "answers": ["yes"], "sources": [], '
...                  '"answerable": true, "tags": []}\\n{"id": "q1"}\\n')
>>> load_evalset(p)
Traceback (most recent call last):
...
ragtune.errors.InputError: ...e.jsonl:2: missing key 'question'...

:func:`synth_evalset` writes a set from the knowledge base with the document split of
``ragtune data synth`` (:func:`ragtune.finetune.synth.split_documents`, same fraction and
seed): questions come only from the held-out documents, so nothing an adapter trained on
``data synth``'s training file saw is used to grade it.
"""

from __future__ import annotations

import hashlib
import json
import re
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ragtune.errors import InputError
from ragtune.jsonl import write_jsonl_atomic
from ragtune.types import DocumentInfo, Principal

_REQUIRED: dict[str, type] = {"id": str, "question": str, "answers": list, "sources": list,
                              "answerable": bool, "tags": list}
_OPTIONAL = {"metadata"}


@dataclass(frozen=True)
class EvalQuestion:
    """One question of an eval set. ``line`` is its 1-based line in the file (0 for BEIR)."""

    id: str
    question: str
    answers: tuple[str, ...]
    sources: tuple[str, ...]
    answerable: bool
    tags: tuple[str, ...] = ()
    line: int = 0
    metadata: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @property
    def retrieval_only(self) -> bool:
        """No reference answer (a BEIR query): only retrieval can be scored."""
        return self.answerable and not self.answers


@dataclass(frozen=True)
class EvalSet:
    """Questions plus where they came from (path and content hash, for reports and resume)."""

    path: str
    sha256: str
    questions: tuple[EvalQuestion, ...]

    @property
    def answerable(self) -> int:
        return sum(q.answerable for q in self.questions)

    @property
    def unanswerable(self) -> int:
        return sum(not q.answerable for q in self.questions)

    def __len__(self) -> int:
        return len(self.questions)


def _check_strings(value: list[Any], key: str, where: str, line: int) -> tuple[str, ...]:
    bad = [v for v in value if not isinstance(v, str) or not v.strip()]
    if bad:
        raise InputError(where, f"'{key}' must hold non-empty strings, got {bad[0]!r}", line)
    return tuple(v.strip() for v in value)


def parse_question(record: Any, where: str, line: int) -> EvalQuestion:
    """Check one decoded line; raise :class:`InputError` naming the file, line and key."""
    if not isinstance(record, dict):
        raise InputError(where, f"expected a JSON object, got {type(record).__name__}", line)
    for key, typ in _REQUIRED.items():
        if key not in record:
            raise InputError(where, f"missing key '{key}' (every line needs "
                                    f"{', '.join(_REQUIRED)})", line)
        if not isinstance(record[key], typ):
            raise InputError(where, f"'{key}' must be a {typ.__name__}, got "
                                    f"{type(record[key]).__name__}", line)
    unknown = set(record) - set(_REQUIRED) - _OPTIONAL
    if unknown:
        raise InputError(where, f"unknown key(s) {', '.join(sorted(unknown))} (known: "
                                f"{', '.join([*_REQUIRED, *_OPTIONAL])})", line)
    if not record["id"].strip() or not record["question"].strip():
        raise InputError(where, "'id' and 'question' must not be empty", line)
    answers = _check_strings(record["answers"], "answers", where, line)
    if record["answerable"] and not answers:
        raise InputError(where, "an answerable question needs at least one reference answer",
                         line)
    metadata = record.get("metadata") or {}
    if not isinstance(metadata, dict):
        raise InputError(where, "'metadata' must be an object", line)
    return EvalQuestion(
        id=record["id"].strip(), question=record["question"].strip(), answers=answers,
        sources=_check_strings(record["sources"], "sources", where, line),
        answerable=record["answerable"], tags=_check_strings(record["tags"], "tags", where, line),
        line=line, metadata=metadata)


def load_evalset(path: Path | str) -> EvalSet:
    """Read an eval JSONL file (or a BEIR folder); every problem names ``file:line``."""
    path = Path(path)
    if path.is_dir():
        return _load_beir(path)
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise InputError(str(path), f"cannot read the eval set: {e.strerror or e}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InputError(str(path), "not UTF-8 text") from None
    questions: list[EvalQuestion] = []
    seen: dict[str, int] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            raise InputError(str(path), f"not valid JSON ({e.msg}, column {e.colno})", number) from None
        q = parse_question(record, str(path), number)
        if q.id in seen:
            raise InputError(str(path), f"duplicate id {q.id!r} (first on line {seen[q.id]})", number)
        seen[q.id] = number
        questions.append(q)
    if not questions:
        raise InputError(str(path), "the eval set has no questions")
    return EvalSet(str(path), hashlib.sha256(raw).hexdigest(), tuple(questions))


def _load_beir(folder: Path) -> EvalSet:
    from ragtune.evaluate.beir import load_beir

    data = load_beir(folder)
    h = hashlib.sha256()
    questions = []
    for qid in sorted(data.qrels):
        if qid not in data.queries:
            continue
        gold = tuple(sorted(d for d, rel in data.qrels[qid].items() if rel > 0))
        if not gold:
            continue
        h.update(f"{qid}\x1f{data.queries[qid]}\x1f{','.join(gold)}\n".encode())
        questions.append(EvalQuestion(qid, data.queries[qid], (), tuple(f"beir:{d}" for d in gold),
                                      True, ("beir",)))
    if not questions:
        raise InputError(str(folder), "the BEIR folder has no judged queries")
    return EvalSet(str(folder), h.hexdigest(), tuple(questions))


def subset(evalset: EvalSet, *, tags: Sequence[str] = (), limit: int | None = None,
           ids: Iterable[str] | None = None) -> EvalSet:
    """Questions carrying every tag in ``tags`` (and in ``ids``), the first ``limit`` of them."""
    wanted = set(ids) if ids is not None else None
    qs = [q for q in evalset.questions
          if set(tags) <= set(q.tags) and (wanted is None or q.id in wanted)]
    if limit is not None:
        qs = qs[:max(0, limit)]
    if not qs:
        raise InputError(evalset.path, f"no question left after the filters (tags={list(tags)}, "
                                       f"limit={limit})")
    return EvalSet(evalset.path, evalset.sha256, tuple(qs))


# ----------------------------------------------------------------------------- sources

def _norm(path: str) -> str:
    p = path.replace("\\", "/")
    while p.startswith("./"):
        p = p[2:]
    return p.rstrip("/")


class SourceResolver:
    """Maps an eval set's source names to the store's document ids.

    A name matches a document whose id or stored source equals it, else whose source ends
    with ``/<name>`` (so ``policies/returns.md`` finds ``/home/me/kb/policies/returns.md``;
    separators are normalised). A name that matches no document, or several, resolves to
    nothing and is reported in :attr:`problems`: the question then keeps an unfindable gold
    document, which lowers retrieval recall rather than hiding the miss.

    >>> from ragtune.types import DocumentInfo
    >>> docs = [DocumentInfo("doc_1", "/kb/policies/returns.md", "R", "default", (), 1, "h", 2, 0, 0),
    ...         DocumentInfo("doc_2", "/kb/hr/returns.md", "R", "default", (), 1, "h", 2, 0, 0)]
    >>> r = SourceResolver(docs)
    >>> r.resolve("policies/returns.md"), r.resolve("returns.md"), r.resolve("nope.md")
    ('doc_1', None, None)
    >>> sorted(r.problems)
    ['nope.md', 'returns.md']
    """

    def __init__(self, documents: Sequence[DocumentInfo]) -> None:
        self.documents = list(documents)
        self.documents_by_id = {d.id: d for d in self.documents}
        self._exact = {d.source: d.id for d in self.documents} | {d.id: d.id for d in self.documents}
        self._normed = [(_norm(d.source), d.id) for d in self.documents]
        self.source_to_id = {d.source: d.id for d in self.documents}
        self.problems: dict[str, str] = {}
        self._cache: dict[str, str | None] = {}

    def resolve(self, name: str) -> str | None:
        """The document id ``name`` refers to, or None (see :attr:`problems`)."""
        if name in self._cache:
            return self._cache[name]
        found: str | None = self._exact.get(name)
        if found is None:
            n = _norm(name)
            matches = sorted({i for src, i in self._normed if src == n or src.endswith("/" + n)})
            if len(matches) == 1:
                found = matches[0]
            elif matches:
                self.problems[name] = (f"matches {len(matches)} documents; give a longer path "
                                       "to tell them apart")
            else:
                self.problems[name] = "matches no document in the workspace"
        self._cache[name] = found
        return found

    def gold(self, question: EvalQuestion) -> list[str]:
        """Gold document ids of a question; an unresolved name stays as ``missing:<name>``
        (relevant but never retrievable)."""
        return [self.resolve(s) or f"missing:{s}" for s in question.sources]

    def doc_id(self, source: str) -> str:
        """The id of a retrieved chunk's document (by its stored source)."""
        return self.source_to_id.get(source, source)


# ----------------------------------------------------------------------------- synthesis



def synth_evalset(store: Any, *, principal: Principal, out: Path, eval_fraction: float = 0.2,
                  seed: int = 0, per_chunk: int = 1, generator: Any = None,
                  limit_chunks: int | None = None) -> dict[str, Any]:
    """Write an eval set from the held-out documents of the shared document split.

    Runs :func:`ragtune.finetune.synth.synth_examples` with the same ``eval_fraction`` and
    ``seed`` as ``ragtune data synth`` (its defaults too), keeps its eval half and turns each
    chat example into an eval question: the user turn is the question, the assistant turn
    without its ``[Source: ...]`` tag is the reference answer, the chunk's document is the
    source. Every question is answerable (write unanswerable ones by hand: the knowledge base
    cannot tell what it lacks). Returns the synth summary plus ``out`` and ``questions``.
    """
    from ragtune.finetune.synth import synth_examples

    with tempfile.TemporaryDirectory(prefix="ragtune-evalsynth-") as tmp:
        summary = synth_examples(store, principal=principal, out_train=Path(tmp) / "train.jsonl",
                                 out_eval=Path(tmp) / "eval.jsonl", per_chunk=per_chunk,
                                 eval_fraction=eval_fraction, seed=seed, generator=generator,
                                 limit_chunks=limit_chunks)
        chats = [json.loads(x) for x in
                 (Path(tmp) / "eval.jsonl").read_text(encoding="utf-8").splitlines() if x.strip()]
    rows: list[dict[str, Any]] = []
    for n, chat in enumerate(chats, start=1):
        msgs = chat["messages"]
        question = next(m["content"] for m in msgs if m["role"] == "user")
        answer = re.sub(r"\s*\[Source:[^\]]*\]\s*$", "", msgs[-1]["content"]).strip()
        meta = chat["metadata"]
        rows.append({"id": f"s{n:04d}", "question": question, "answers": [answer],
                     "sources": [meta["source"]], "answerable": True,
                     "tags": ["synth", meta.get("method", "extractive")],
                     "metadata": {k: meta.get(k) for k in ("doc_id", "chunk_id", "section",
                                                            "version", "content_hash")}})
    write_jsonl_atomic(Path(out), rows)
    del summary["train"]["path"]
    summary["eval"]["path"] = str(out)
    summary.update(out=str(out), questions=len(rows))
    if not rows:
        summary["warnings"].append("no eval question: the held-out documents gave no example")
    return summary
