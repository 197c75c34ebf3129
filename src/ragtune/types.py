"""The shared vocabulary of ragtune: frozen dataclasses every component takes and returns.

Flow: a loader turns a file into a :class:`Document` made of :class:`Section` s; the chunker
cuts it into :class:`Chunk` s; retrieval returns :class:`Hit` s; the answer pipeline
returns an :class:`Answer` with :class:`Citation` s and a :class:`Trace`.

>>> doc = Document(source="policies/returns.md", title="Returns",
...                sections=(Section(path=("Returns", "Exceptions"), text="No refunds on gift cards."),))
>>> doc.content_hash == Document(source="elsewhere.md", title="Returns", sections=doc.sections).content_hash
True
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

ProgressFn = Callable[[int, int, str], None]
"""Progress callbacks everywhere: ``(done, total, what)`` — files, questions, steps; ``what``
names the current item or stage."""


def sha256_text(text: str) -> str:
    """Hex sha256 of a string (UTF-8).

    >>> sha256_text("a")[:8]
    'ca978112'
    """
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def file_sha256(path: str | Path) -> str:
    """Hex sha256 of a file's bytes, read in blocks (the one helper every layer uses).

    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "a.txt"; _ = p.write_text("a")
    >>> file_sha256(p)[:8]
    'ca978112'
    """
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


@dataclass(frozen=True)
class Section:
    """A headed part of a document: its heading path and its text.

    ``path`` is the chain of headings from the top ("Returns", "Exceptions"); ``page`` is
    the 1-based PDF page the text came from, when there is one.
    """

    path: tuple[str, ...]
    text: str
    page: int | None = None

    @property
    def label(self) -> str:
        """Human-readable location used in citations: ``"Returns > Exceptions (p. 3)"``."""
        label = " > ".join(p for p in self.path if p)
        if self.page is not None:
            label = f"{label} (p. {self.page})" if label else f"p. {self.page}"
        return label


@dataclass(frozen=True)
class Document:
    """A loaded file: where it came from, its title and its sections in order.

    ``source`` is the document's identity (a path relative to the ingest root, or a name
    the caller chose); ``content_hash`` identifies this version of its content.
    """

    source: str
    title: str
    sections: tuple[Section, ...]
    metadata: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @property
    def id(self) -> str:
        """Stable document id: a hash of the source, so a new version keeps its id."""
        return "doc_" + sha256_text(self.source)[:16]

    @property
    def content_hash(self) -> str:
        """Hash of title and sections: equal content gives an equal hash, whatever the file."""
        h = hashlib.sha256(self.title.encode("utf-8"))
        for s in self.sections:
            h.update(b"\x1e" + "\x1f".join(s.path).encode("utf-8"))
            h.update(b"\x1d" + str(s.page).encode() + b"\x1d" + s.text.encode("utf-8"))
        return h.hexdigest()

    @property
    def text(self) -> str:
        return "\n\n".join(s.text for s in self.sections)


@dataclass(frozen=True)
class Chunk:
    """A retrievable piece of a document, small enough for a prompt.

    ``id`` is a content hash of (document id, section, text), so unchanged chunks of a
    changed document keep their ids and their embeddings.
    """

    id: str
    doc_id: str
    text: str
    section: str
    ordinal: int
    tokens: int
    page: int | None = None

    @staticmethod
    def make_id(doc_id: str, section: str, text: str) -> str:
        return "ch_" + sha256_text(f"{doc_id}\x1f{section}\x1f{text}")[:20]


@dataclass(frozen=True)
class DocumentInfo:
    """What the store knows about a stored document (no text)."""

    id: str
    source: str
    title: str
    collection: str
    groups: tuple[str, ...]
    version: int
    content_hash: str
    chunks: int
    created_at: float
    updated_at: float
    metadata: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)


@dataclass(frozen=True)
class Hit:
    """A retrieved chunk with its fused score and the per-method scores behind it."""

    chunk: Chunk
    score: float
    document: str  # document source, for display and citations
    title: str
    dense_score: float | None = None
    lexical_score: float | None = None
    rank: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "rank": self.rank,
            "chunk_id": self.chunk.id,
            "document": self.document,
            "title": self.title,
            "section": self.chunk.section,
            "page": self.chunk.page,
            "score": round(self.score, 6),
            "dense_score": None if self.dense_score is None else round(self.dense_score, 6),
            "lexical_score": None if self.lexical_score is None else round(self.lexical_score, 6),
            "text": self.chunk.text,
        }


@dataclass(frozen=True)
class Principal:
    """Who is asking. A document restricted to groups is visible to members of any of them.

    >>> Principal("ana", frozenset({"hr"})).can_read(("hr",))
    True
    >>> Principal.anonymous().can_read(("hr",))
    False
    >>> Principal.anonymous().can_read(())
    True
    """

    user: str
    groups: frozenset[str] = frozenset()
    admin: bool = False

    @classmethod
    def anonymous(cls) -> Principal:
        return cls("anonymous")

    def can_read(self, doc_groups: tuple[str, ...] | list[str]) -> bool:
        return self.admin or not doc_groups or bool(self.groups.intersection(doc_groups))


@dataclass(frozen=True)
class Citation:
    """One numbered source the answer relies on, with the span that supports it."""

    n: int
    document: str
    section: str
    chunk_id: str
    quote: str
    supported: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "n": self.n,
            "document": self.document,
            "section": self.section,
            "chunk_id": self.chunk_id,
            "quote": self.quote,
            "supported": self.supported,
        }


@dataclass(frozen=True)
class SentenceCheck:
    """An answer sentence, the sources it cites, and whether they support it."""

    text: str
    cited: tuple[int, ...]
    supported: bool
    score: float


@dataclass(frozen=True)
class Route:
    """The intent router's verdict for one question, safe to show the principal who asked.

    ``kind`` is knowledge | direct | out_of_scope; ``collections`` None means every
    collection the principal may read.

    >>> Route.everything("no router").to_dict()["collections"] is None
    True
    """

    label: str  # what the classifier said (or "knowledge" on fallback)
    kind: str
    confidence: float
    collections: tuple[str, ...] | None
    reason: str  # human-readable why, safe to show the principal

    @classmethod
    def everything(cls, reason: str) -> Route:
        return cls("knowledge", "knowledge", 1.0, None, reason)

    @classmethod
    def unrouted(cls) -> Route:
        """The route of a workspace without a router: every readable collection."""
        return cls.everything("no router configured (routing.router): retrieve from every "
                              "collection you may read")

    def to_dict(self) -> dict[str, Any]:
        return {"label": self.label, "kind": self.kind, "confidence": round(self.confidence, 4),
                "collections": list(self.collections) if self.collections is not None else None,
                "reason": self.reason}


@dataclass
class Trace:
    """Everything needed to audit or evaluate an answer without recomputing it.

    ``origin`` says who asked: ``ask`` (a person, CLI or server) or ``eval`` (an evaluation
    run), so monitoring can tell live traffic from test traffic. ``id`` names the answer
    (its trace record, feedback on it); ``caller`` says how the principal was established
    when an edge knows more than the user name (the server: ``auth`` key | oidc | proxy |
    anonymous, ``subject``, ``groups``, ``admin``) — the audit log's "as whom".
    ``best_similarity`` is the best dense cosine of the retrieval and ``not_found`` says the
    relevance floor refused the question before any model ran. ``vector`` is the question's
    embedding from retrieval (kept for monitoring, never serialised with the trace).
    """

    question: str
    principal: str
    retrieved: list[dict[str, Any]] = field(default_factory=list)
    prompt: str = ""
    model: str = ""
    adapter: str | None = None
    mode: str = "rag"
    route: dict[str, Any] | None = None
    timings: dict[str, float] = field(default_factory=dict)
    tokens: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    origin: str = "ask"
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    caller: dict[str, Any] = field(default_factory=dict)
    best_similarity: float | None = None
    not_found: bool = False
    vector: np.ndarray | None = field(default=None, repr=False, compare=False)
    # Retrieved spans that read as instructions (source n, kind, excerpt): data, never support.
    flags: list[dict[str, Any]] = field(default_factory=list)
    reply: str = ""  # the model's whole reply, before the check decided what to show
    removed: list[str] = field(default_factory=list)  # reply sentences not shown: unsupported

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "question": self.question,
            "principal": self.principal,
            "retrieved": self.retrieved,
            "prompt": self.prompt,
            "model": self.model,
            "adapter": self.adapter,
            "mode": self.mode,
            "route": self.route,
            "timings": {k: round(v, 4) for k, v in self.timings.items()},
            "tokens": self.tokens,
            "notes": self.notes,
            "origin": self.origin,
            "best_similarity": (None if self.best_similarity is None
                                else round(self.best_similarity, 6)),
            "not_found": self.not_found,
            "caller": self.caller,
            "flags": self.flags,
            "reply": self.reply,
            "removed": self.removed,
        }


@dataclass
class Answer:
    """A grounded answer: text, checked citations, refusal flag and the trace."""

    text: str
    citations: list[Citation]
    refused: bool
    trace: Trace
    sentences: list[SentenceCheck] = field(default_factory=list)

    @property
    def unsupported(self) -> list[SentenceCheck]:
        return [s for s in self.sentences if not s.supported]

    def to_dict(self) -> dict[str, Any]:
        return {
            "answer": self.text,
            "citations": [c.to_dict() for c in self.citations],
            "refused": self.refused,
            "unsupported_sentences": [s.text for s in self.unsupported],
            "sentences": [{"text": s.text, "cited": list(s.cited), "supported": s.supported,
                           "score": round(s.score, 4)} for s in self.sentences],
            "trace": self.trace.to_dict(),
        }


@dataclass(frozen=True)
class ChatMessage:
    role: str
    content: str
    weight: int | None = None


@dataclass(frozen=True)
class ChatExample:
    """One training conversation (OpenAI chat fine-tuning format)."""

    messages: tuple[ChatMessage, ...]
    line: int = 0
