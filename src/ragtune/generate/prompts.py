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

OUT_OF_SCOPE_TEXT = ("I can only help with questions about this organisation's knowledge base "
                     "and its documents.")
"""What hybrid mode answers, without calling a model, when the router says out of scope."""

# Tuned on the packaged Qwen2.5-Coder-0.5B-Instruct (greedy, 3 sources, 4 questions).
# A one-line example inside the rules ("like this: Returns are free [2].") was copied
# verbatim as the answer; an instruction appended to the user message made the model emit
# bare "[1]" lines. A separate worked example with two sources, citing the second, gave the
# most correct [n] markers (2 of 3 answerable questions; the third answered without one).
RAG_SYSTEM_PROMPT = (
    "You answer questions using ONLY the numbered sources the user gives you.\n"
    "Rules:\n"
    "- Use only facts stated in the sources.\n"
    "- Cite the source number in square brackets at the end of each sentence.\n"
    f'- If the sources do not contain the answer, reply exactly: "{NOT_FOUND_TEXT}"\n'
    "- Be concise: one to three sentences.\n"
    "\n"
    "Example:\n"
    "Sources:\n"
    "[1] Office — Hours\n"
    "The office opens at 9 am on weekdays.\n"
    "[2] Office — Parking\n"
    "Visitors park in lot B behind the building.\n"
    "Question: Where do visitors park?\n"
    "Answer: Visitors park in lot B behind the building [2]."
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

    ``system=""`` sends no system message (an adapter trained without one).

    >>> build_plain_messages("Hi?")[1]
    {'role': 'user', 'content': 'Hi?'}
    >>> len(build_plain_messages("Hi?", system=""))
    1
    """
    user = {"role": "user", "content": question.strip()}
    if system == "":
        return [user]
    return [{"role": "system", "content": PLAIN_SYSTEM_PROMPT if system is None else system}, user]
