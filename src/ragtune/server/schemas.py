"""Request and response bodies of ``/api``: the OpenAPI schema is generated from these, so
it says exactly what the server accepts and returns (schemathesis checks both)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from ragtune.store.base import SearchFilter
from ragtune.types import Citation

# ------------------------------------------------------------------ shared

# Request bodies are strict: JSON false is not 0, "5" is not 5 (a schema-violating request
# is refused with 422, never quietly coerced).
STRICT = ConfigDict(extra="forbid", strict=True)


def _integral(value: Any) -> Any:
    """JSON Schema counts 5.0 as an integer; strict pydantic would not."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


JsonInt = Annotated[int, BeforeValidator(_integral)]


def int_range(lo: int, hi: int) -> Any:
    """An integer in ``lo..hi`` (the bounds inside the type, so an optional one's schema
    keeps ``minimum``/``maximum``)."""
    return Annotated[int, Field(ge=lo, le=hi), BeforeValidator(_integral)]  # this order


TopK = int_range(1, 50)


class ErrorBody(BaseModel):
    message: str
    type: str
    fields: list[dict[str, str]] | None = None
    available: list[str] | None = None


class ErrorResponse(BaseModel):
    """Every error: a message a person can act on (never a stack trace)."""

    error: ErrorBody


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for the error statuses a route can answer."""
    text = {400: "bad input", 401: "no valid credentials", 403: "not allowed for this caller",
            404: "not found", 413: "request body too large", 422: "malformed request body",
            429: "too many questions in progress for this user (see Retry-After)",
            503: "the server is busy or not ready (see Retry-After)"}
    return {c: {"model": ErrorResponse, "description": text.get(c, "error")} for c in codes}


class Filters(BaseModel):
    """Metadata filters, applied with the access control inside the store."""

    model_config = STRICT
    collections: list[str] = Field(default_factory=list, max_length=50)
    documents: list[str] = Field(default_factory=list, max_length=200,
                                 description="document ids or sources")
    since: float | None = Field(None, description="only documents updated since (Unix s)")

    def to_filter(self) -> SearchFilter | None:
        if not (self.collections or self.documents or self.since is not None):
            return None
        return SearchFilter(collections=tuple(self.collections), documents=tuple(self.documents),
                            since=self.since)


# ------------------------------------------------------------------ search / ask


class SearchRequest(Filters):
    query: str = Field(min_length=1, max_length=4000)
    k: JsonInt = Field(5, ge=1, le=100)
    mode: Literal["fused", "dense", "lexical", "hybrid"] | None = Field(
        None, description="retrieval mode ('hybrid' is the old name of fused)")


class HitOut(BaseModel):
    rank: int
    chunk_id: str
    document: str
    title: str
    section: str
    page: int | None
    score: float
    dense_score: float | None
    lexical_score: float | None
    text: str


class SearchResponse(BaseModel):
    query: str
    mode: str
    found: bool
    best_similarity: float | None
    hits: list[HitOut]
    timings: dict[str, float]


class TurnIn(BaseModel):
    model_config = STRICT
    role: Literal["user", "assistant"]
    content: str = Field(max_length=20000)


class AskRequest(Filters):
    question: str = Field(min_length=1, max_length=4000)
    history: list[TurnIn] = Field(default_factory=list, max_length=50,
                                  description="earlier turns of the conversation, oldest first")
    mode: Literal["base", "rag", "finetuned", "hybrid"] | None = None
    adapter: str | None = Field(None, max_length=64)
    k: TopK | None = None


class SentenceOut(BaseModel):
    text: str
    cited: list[int]
    supported: bool


class AskResponse(BaseModel):
    id: str = Field(description="the answer's id (feedback, audit)")
    answer: str
    citations: list[Citation]
    sentences: list[SentenceOut]
    refused: bool
    unsupported_sentences: list[str]
    trace: dict[str, Any]


# ------------------------------------------------------------------ documents


class VersionOut(BaseModel):
    version: int
    content_hash: str
    chunks: int
    ingested_at: float


class DocumentOut(BaseModel):
    id: str
    source: str
    title: str
    collection: str
    groups: list[str]
    version: int
    chunks: int
    created_at: float
    updated_at: float
    age_days: float
    file: Literal["current", "changed", "missing", "unknown"] = Field(
        description="the source file on the server's disk now: unchanged since ingest, "
                    "changed, gone, or not checkable")
    versions: list[VersionOut] | None = None


class FileResult(BaseModel):
    file: str
    status: Literal["added", "updated", "unchanged", "failed"]
    document: str | None = None
    error: str | None = None


class UploadResponse(BaseModel):
    files: list[FileResult]
    stored: int
    failed: int


class SyncRequest(BaseModel):
    model_config = STRICT
    path: str = Field(min_length=1, max_length=4096, description="a folder the server can read")
    collection: str = Field("default", min_length=1, max_length=100)
    groups: list[str] = Field(default_factory=list, max_length=50)


class SyncResponse(BaseModel):
    added: list[str]
    updated: list[str]
    unchanged: list[str]
    removed: list[str]
    failed: list[dict[str, str]]
    seconds: float


class DeleteResponse(BaseModel):
    deleted: DocumentOut


# ------------------------------------------------------------------ adapters, reports


class AdapterOut(BaseModel):
    name: str
    base_model: str
    created_at: float
    metrics: dict[str, Any]
    dataset: dict[str, Any]
    lineage_documents: int
    built_as: str | None
    freshness: dict[str, Any]
    models: list[str] = Field(description="the /v1/models ids that answer with it")


class ReportOut(BaseModel):
    name: str
    created_at: float
    systems: list[str]
    headline: str | None
    html: bool


# ------------------------------------------------------------------ feedback, audit, keys


class FeedbackRequest(BaseModel):
    model_config = STRICT
    answer_id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")
    rating: Literal["up", "down"]
    comment: str = Field("", max_length=2000)


class FeedbackResponse(BaseModel):
    answer_id: str
    rating: str
    recorded: bool


class KeyOut(BaseModel):
    id: str
    user: str
    admin: bool
    created: float
    expires: float | None
    revoked: float | None
    active: bool


class KeyCreate(BaseModel):
    model_config = STRICT
    user: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._@+-]+$")
    admin: bool = False
    expires: str = Field("90d", max_length=16, description="90d, 12h, 2w... or never")


class KeyCreated(KeyOut):
    token: str = Field(description="the key itself: shown once, stored only as a hash")


# ------------------------------------------------------------------ me, health


class PageOut(BaseModel):
    id: str
    title: str
    module: str
    admin: bool


class MeResponse(BaseModel):
    user: str
    groups: list[str]
    admin: bool
    auth: str
    pages: list[PageOut]


class HealthResponse(BaseModel):
    status: str


class ReadyResponse(BaseModel):
    status: str
    checks: dict[str, str]
    queue: dict[str, int]
