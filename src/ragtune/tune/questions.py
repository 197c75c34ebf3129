"""Pseudo-queries written by the workspace's chat model: one short question per chunk.

Inverse-Cloze sentences (:mod:`ragtune.tune.data`) cost nothing, but they are sentences
lifted from the documents, and the packaged MiniLM was trained on a billion such pairs; people
type questions. Measured on two public sets (docs/tune-retriever.md), training on 480
questions the packaged 0.5B wrote moved real-query dense nDCG@10 by +0.014 (Cranfield) and
-0.010 (CACM), where 480 ICT sentences moved it by -0.012 and -0.018. A question costs
about 1-2 s on two CPU cores, so their number is capped (``TuneOptions.questions``), and the
questions a run has written are kept in its folder (:class:`QuestionLog`), so an
interrupted run does not ask again.

>>> clean_question('Question: "What limits the jib tack?"\\nIt is the halyard.')
'What limits the jib tack?'
>>> clean_question("Sure! Here is a question:") is None
True
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from pathlib import Path

from ragtune.generate.base import Generator
from ragtune.tune.data import Passage, PseudoQuery

PROMPT = ("Text:\n{text}\n\nWrite one short question (at most 15 words) that someone searching "
          "for this text might type, and that this text answers. Do not copy a sentence from "
          "the text. Reply with the question only.")
SYSTEM = "You write search questions."
MAX_CHARS = 1200  # of the chunk shown to the model: ~300 tokens keep a question ~1 s on 2 cores
_LABEL = re.compile(r"^\s*(?:\d+[.)]\s*|[-*]\s*|(?:question|q)\s*[:.]\s*)+", re.IGNORECASE)

Ask = Callable[[Passage], str | None]  # a passage -> its question, None when none came back


def clean_question(reply: str) -> str | None:
    """The question in a model's reply: its first line, without labels and quotes; None when
    that line is not a question of 3-40 words (a preamble, an empty reply)."""
    lines = [line for line in reply.strip().splitlines() if line.strip()]
    if not lines:
        return None
    q = _LABEL.sub("", lines[0]).strip().strip("\"'“”").strip()
    if not q.endswith("?") or not 3 <= len(q.split()) <= 40:
        return None
    return q


def asker(generator: Generator) -> Ask:
    """Ask ``generator`` for one question about a passage (low temperature, 40 tokens)."""
    def ask(passage: Passage) -> str | None:
        reply = generator.complete(
            [{"role": "system", "content": SYSTEM},
             {"role": "user", "content": PROMPT.format(text=passage.embedding_text()[:MAX_CHARS])}],
            max_tokens=40, temperature=0.3).text
        return clean_question(reply)
    return ask


class QuestionLog:
    """The questions a run has asked for, one JSON line per chunk (``chunk_id``, ``question``;
    ``null`` when the model gave none, so it is not asked again). Appended as they come."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.asked: dict[str, str | None] = {}
        if path.exists():
            for line in path.read_text(encoding="utf-8").splitlines():
                try:
                    row = json.loads(line)
                    self.asked[str(row["chunk_id"])] = row["question"]
                except (ValueError, KeyError, TypeError):
                    continue  # a line cut by a killed process: asked again

    def queries(self, passages: Iterable[Passage], ask: Ask, *,
                stop: Callable[[], bool] = lambda: False,
                progress: Callable[[int, int], None] | None = None) -> list[PseudoQuery]:
        """A question for each passage (asking only for those not in the log, until ``stop()``);
        the positive is the whole passage: a question does not copy its text."""
        chosen = list(passages)
        with self.path.open("a", encoding="utf-8") as log:
            for i, p in enumerate(chosen):
                if p.chunk_id not in self.asked:
                    if stop():
                        break
                    self.asked[p.chunk_id] = ask(p)
                    log.write(json.dumps({"chunk_id": p.chunk_id,
                                          "question": self.asked[p.chunk_id]}) + "\n")
                    log.flush()
                if progress:
                    progress(i + 1, len(chosen))
        return [PseudoQuery(q, p.chunk_id, p.doc_id, p.embedding_text())
                for p in chosen if (q := self.asked.get(p.chunk_id))]
