"""Deleting a document deletes its text from the trace log too: ids stay, quotes go.

A trace record (:class:`~ragtune.store.base.TraceRecord`) holds the retrieved chunks'
text, the prompt they were pasted into, the citations' quotes and the answer written from
them. When a document is deleted, every record that retrieved it keeps who asked, when,
the chunk ids, documents and scores (the audit trail), and loses the deleted document's
text: its chunks' text, quotes and flagged excerpts, the prompt (it mixes every source),
the model's raw reply and the notes quoting it, and, where the answer cited the document,
the answer text and its sentences.
Every store backend calls :func:`redact_answer` from its ``delete_document``.

>>> answer = {"answer": "30 days [1].", "citations": [{"document": "r.md", "chunk_id": "ch_1",
...           "quote": "within 30 days", "n": 1}], "unsupported_sentences": [],
...           "trace": {"prompt": "[1] Returns...", "retrieved": [{"document": "r.md",
...           "chunk_id": "ch_1", "text": "within 30 days"}], "notes": []}}
>>> redact_answer(answer, "r.md", "doc_1")
True
>>> answer["answer"], answer["citations"][0]["quote"], answer["trace"]["retrieved"][0]
('', '', {'document': 'r.md', 'chunk_id': 'ch_1', 'text': ''})
>>> answer["redacted"]
['doc_1']
"""

from __future__ import annotations

from typing import Any

REDACTED_NOTE = "text removed: a document this answer used was deleted"


def redact_answer(answer: dict[str, Any], source: str, doc_id: str) -> bool:
    """Strip ``source``'s text from one record's answer dict in place; True if it had any."""
    trace = answer.get("trace") or {}
    retrieved = [h for h in trace.get("retrieved") or [] if h.get("document") == source]
    cited = [c for c in answer.get("citations") or [] if c.get("document") == source]
    if not (retrieved or cited):
        return False
    for hit in retrieved:
        hit["text"] = ""
        for flag in hit.get("flags") or []:
            flag["excerpt"] = flag["matched"] = ""
    for flag in trace.get("flags") or []:
        if flag.get("document") == source:
            flag["excerpt"] = flag["matched"] = ""
    # the prompt mixes every source, and the model's whole reply (with the sentences the
    # check did not show) was written from it
    trace["prompt"] = trace["reply"] = ""
    trace["removed"] = []
    # notes that quote the reply (sentences attributed, not shown or cut off; a RAFT
    # adapter's reasoning); the rest stay
    trace["notes"] = [n for n in trace.get("notes") or [] if not any(
        k in n for k in ("attributed", "reasoning", "not shown", "mid-sentence"))]
    if cited:
        for c in cited:
            c["quote"] = ""
        answer["answer"] = ""
        answer["unsupported_sentences"] = []
    if REDACTED_NOTE not in (trace.get("notes") or []):
        trace.setdefault("notes", []).append(REDACTED_NOTE)
    answer["redacted"] = sorted({*answer.get("redacted", []), doc_id})
    return True

