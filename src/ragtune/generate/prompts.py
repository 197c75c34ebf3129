"""Chat prompts: retrieved chunks become numbered sources the model must cite.

>>> from ragtune.types import Chunk, Hit
>>> c = Chunk(id="ch_1", doc_id="doc_1", text="Returns are accepted within 30 days.",
...           section="Returns", ordinal=0, tokens=8)
>>> msgs = build_rag_messages("How long do I have?", [Hit(chunk=c, score=1.0,
...                           document="policy.md", title="Policy")])
>>> [m["role"] for m in msgs]
['system', 'user']
>>> print(msgs[1]["content"])
Sources:
<BLANKLINE>
[1] Policy — Returns
Returns are accepted within 30 days.
<BLANKLINE>
Question: How long do I have?
"""

from __future__ import annotations

from ragtune.types import Hit

NOT_FOUND_TEXT = "I could not find this in the knowledge base."
"""The exact refusal sentence; the answer pipeline and the citation checker look for it."""

# Tuned on the packaged Qwen2.5-Coder-0.5B-Instruct: short, imperative rules, the refusal
# sentence quoted verbatim, and one worked example of the marker placement. Without the
# example the 0.5B model mostly writes "(Source 1)" or no marker at all.
RAG_SYSTEM_PROMPT = (
    "You answer questions using ONLY the numbered sources the user gives you.\n"
    "Rules:\n"
    "- Use only facts stated in the sources. Do not add anything else.\n"
    "- End every sentence with the number of its source in square brackets, "
    "like this: Returns are free [2].\n"
    f'- If the sources do not contain the answer, reply exactly: "{NOT_FOUND_TEXT}"\n'
    "- Be concise: one to three sentences."
)

PLAIN_SYSTEM_PROMPT = "You are a helpful assistant. Answer concisely."


def format_source(n: int, hit: Hit) -> str:
    """One numbered source block: ``[n] <title> — <section>`` then the chunk text.

    The section is left out when the chunk has none (or it repeats the title).
    """
    header = hit.title or hit.document
    section = hit.chunk.section.strip()
    if section and section != header:
        header = f"{header} — {section}"
    if hit.chunk.page is not None and "(p." not in header:
        header = f"{header} (p. {hit.chunk.page})"
    return f"[{n}] {header}\n{hit.chunk.text.strip()}"


def build_rag_messages(question: str, hits: list[Hit], *,
                       system: str | None = None) -> list[dict[str, str]]:
    """System rules plus a user message with the numbered sources and the question.

    Source ``[n]`` is ``hits[n-1]``; :func:`ragtune.generate.citations.check_answer` maps
    the markers back with the same numbering. ``system`` replaces the default rules.
    """
    sources = "\n\n".join(format_source(i, h) for i, h in enumerate(hits, start=1))
    user = f"Sources:\n\n{sources}\n\nQuestion: {question.strip()}"
    return [
        {"role": "system", "content": RAG_SYSTEM_PROMPT if system is None else system},
        {"role": "user", "content": user},
    ]


def build_plain_messages(question: str, *, system: str | None = None) -> list[dict[str, str]]:
    """Messages for answering without retrieval (the fine-tuned-only mode of a bake-off).

    >>> build_plain_messages("Hi?")[1]
    {'role': 'user', 'content': 'Hi?'}
    """
    return [
        {"role": "system", "content": PLAIN_SYSTEM_PROMPT if system is None else system},
        {"role": "user", "content": question.strip()},
    ]
