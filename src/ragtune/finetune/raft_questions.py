"""Questions for RAFT: where each answer is (chunk or document) and the answer itself.

From a JSONL file (:func:`load_questions`) or the synth module's extractive pairs
(:func:`synth_questions`):

>>> as_question({"question": "Return window?", "answers": ["30 days"],
...              "sources": ["policies/returns-policy.md"]}, "q.jsonl", 1).source
'policies/returns-policy.md'
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ragtune.errors import InputError
from ragtune.finetune.synth import extractive_pairs
from ragtune.jsonl import read_jsonl
from ragtune.types import Chunk, DocumentInfo

_CITATION = re.compile(r"\s*\[Source:[^\]]*\]\s*")  # synth's citation, stripped from its answers


@dataclass(frozen=True)
class RaftQuestion:
    """One question to build an example from: where its answer is, and the answer."""

    question: str
    answers: tuple[str, ...]
    chunk_id: str | None = None
    source: str | None = None  # document id or source (a suffix such as "policies/x.md" works)
    quote: str | None = None
    id: str | None = None
    answerable: bool = True  # False (eval sets mark some so): dropped, nothing to quote


def as_question(obj: Any, where: str, line: int | None) -> RaftQuestion:
    def bad(problem: str) -> InputError:
        return InputError(where, problem, line=line)

    if not isinstance(obj, dict):
        raise bad(f"expected a JSON object, got {type(obj).__name__}")
    meta: dict[str, Any] = obj["metadata"] if isinstance(obj.get("metadata"), dict) else {}
    if isinstance(obj.get("messages"), list):  # a chat line from `ragtune data synth`
        msgs = [m for m in obj["messages"] if isinstance(m, dict)]
        q = next((m.get("content") for m in reversed(msgs) if m.get("role") == "user"), None)
        a = next((m.get("content") for m in reversed(msgs) if m.get("role") == "assistant"), None)
        obj = {"question": q, "answer": _CITATION.sub(" ", a).strip() if isinstance(a, str) else a,
               "chunk_id": meta.get("chunk_id"), "source": meta.get("doc_id") or meta.get("source")}
    question = obj.get("question")
    if not isinstance(question, str) or not question.strip():
        raise bad("'question' must be a non-empty string")
    answers = obj.get("answers", [obj["answer"]] if "answer" in obj else None)
    if isinstance(answers, str):
        answers = [answers]
    if not isinstance(answers, list) or not answers or not all(
            isinstance(a, str) and a.strip() for a in answers):
        raise bad("needs 'answer' (a string) or 'answers' (a list of strings): RAFT targets end "
                  "with the answer")
    sources = obj.get("sources")
    source = obj.get("source") or obj.get("doc_id") or (
        sources[0] if isinstance(sources, list) and sources else None)
    chunk_id = obj.get("chunk_id")
    answerable = obj.get("answerable") is not False
    if answerable and not (isinstance(chunk_id, str) and chunk_id) and not (
            isinstance(source, str) and source):
        raise bad("needs 'chunk_id' or 'source' (the document holding the answer): RAFT needs "
                  "the oracle chunk")
    quote = obj.get("quote")
    if quote is not None and not isinstance(quote, str):
        raise bad("'quote' must be a string")
    qid = obj.get("id")
    return RaftQuestion(question.strip(), tuple(a.strip() for a in answers),
                        chunk_id if isinstance(chunk_id, str) and chunk_id else None,
                        source if isinstance(source, str) and source else None,
                        quote or None, str(qid) if qid is not None else None, answerable)


def load_questions(path: str | Path) -> list[RaftQuestion]:
    """Questions from JSONL; an :class:`InputError` names the first bad line.

    Accepted lines: ``{"question", "answer" | "answers", "chunk_id" | "source" | "sources",
    "quote"?, "id"?, "answerable"?}`` (the eval set format works as is; questions marked
    ``"answerable": false`` are kept and later dropped as unanswerable) or chat lines with ``metadata``
    as ``ragtune data synth`` writes them.
    """
    path = Path(path)
    out = []
    for n, obj in read_jsonl(path):
        out.append(as_question(obj, str(path), n))
    if not out:
        raise InputError(str(path), "no questions in the file")
    return out


def synth_questions(chunks: list[Chunk], docs: dict[str, DocumentInfo]) -> list[RaftQuestion]:
    out = []
    for c in chunks:
        for q, a in extractive_pairs(c, docs[c.doc_id].title, 1):
            out.append(RaftQuestion(q, (a,), chunk_id=c.id))
    return out


def spread(doc_ids: list[str], limit: int | None) -> list[int]:
    """Indexes of all items, or of ``limit`` of them taken round-robin across documents.

    >>> spread(["a", "a", "a", "b"], 2)
    [0, 3]
    """
    if limit is None or limit >= len(doc_ids):
        return list(range(len(doc_ids)))
    by_doc: dict[str, list[int]] = {}
    for i, d in enumerate(doc_ids):
        by_doc.setdefault(d, []).append(i)
    picked: list[int] = []
    depth = 0
    while len(picked) < limit:
        picked += [v[depth] for v in by_doc.values() if depth < len(v)][: limit - len(picked)]
        depth += 1
    return sorted(picked)
