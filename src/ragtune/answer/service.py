"""What the edges ask of a workspace: the :class:`AnswerService` protocol.

The CLI, the server and the evaluation harness talk to a
:class:`~ragtune.workspace.Workspace` through these members only, so each can be handed
anything that answers the same way (a test double, a remote workspace).

>>> from ragtune.workspace import Workspace
>>> isinstance(Workspace, type) and hasattr(Workspace, "ask")
True
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from ragtune.answer.conversation import Turn
from ragtune.answer.pipeline import TokenFn
from ragtune.config import Settings
from ragtune.embed.base import Embedder
from ragtune.finetune.adapters import AdapterRegistry
from ragtune.retrieve.search import RetrievalResult
from ragtune.store.base import SearchFilter, Store
from ragtune.types import Answer, Principal


class AnswerService(Protocol):
    """Settings, the store, the embedder, the adapters; search and ask as a user."""

    root: Path
    settings: Settings

    @property
    def store(self) -> Store: ...

    @property
    def embedder(self) -> Embedder: ...

    @property
    def registry(self) -> AdapterRegistry: ...

    def principal(self, user: str | Principal | None) -> Principal: ...

    def search(self, query: str, user: str | Principal | None = None, *, k: int | None = None,
               mode: str | None = None, filters: SearchFilter | None = None) -> RetrievalResult: ...

    def ask(self, question: str, user: str | Principal | None = None, *,
            mode: str | None = None, adapter: str | None = None,
            filters: SearchFilter | None = None, k: int | None = None,
            on_token: TokenFn | None = None, origin: str = "ask",
            history: Sequence[Turn] = ()) -> Answer: ...
