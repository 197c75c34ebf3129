"""Workspace: the composition root. The CLI, the server and Python users hold one of these.

A workspace is a folder (``./.ragtune``, ``--workspace`` or ``$RAGTUNE_HOME``) holding
``ragtune.toml`` and, with the default store, ``store.db``. The Workspace only assembles:
typed settings in, Protocol-typed components out (``store``, ``embedder``, ``generator``,
``retriever``, ``adapters``, ``routing``, ``answerer``, ``traces``), each backend chosen
by name from its registry. Components are built lazily, so ``ragtune docs`` never loads a
model. Its operations (``ingest``, ``search``, ``ask``...) are one-line calls into them.

>>> import tempfile
>>> ws = Workspace.init(Path(tempfile.mkdtemp()) / "ws", overrides={"embedding": {"backend": "fake"}})
>>> ws.settings.embedding.backend
'fake'
>>> ws.status()["documents"]
0
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import replace
from functools import cached_property
from pathlib import Path
from typing import Any

from ragtune.answer.conversation import Turn
from ragtune.answer.modes import Answerer, GeneratorWrap, RouteFn
from ragtune.answer.pipeline import AnswerPipeline, TokenFn
from ragtune.answer.traces import StoreTraceSink, TraceSink
from ragtune.config import Settings
from ragtune.config_file import set_setting
from ragtune.embed.base import Embedder
from ragtune.embed.factory import EMBEDDERS
from ragtune.embed.local import PACKAGED
from ragtune.errors import AccessDenied, ConfigError, NotFound
from ragtune.finetune.adapters import AdapterRegistry
from ragtune.finetune.freshness import Freshness
from ragtune.finetune.serving import AdapterServing
from ragtune.generate.base import Generator
from ragtune.generate.factory import GENERATORS
from ragtune.ingest.guards import display_path
from ragtune.ingest.includes import include_roots
from ragtune.ingest.sync import IngestReport, ingest_paths
from ragtune.retrieve.search import RetrievalResult, Retriever, StoreRetriever
from ragtune.route.policy import Routing
from ragtune.store.base import SearchFilter, Store
from ragtune.store.factory import STORES, open_store
from ragtune.tune.data import Passage
from ragtune.tune.questions import asker
from ragtune.tune.run import TuneOptions, TuneRun, open_run, reembed_store, summaries
from ragtune.types import Answer, DocumentInfo, Principal, ProgressFn, Route

CONFIG_NAME = "ragtune.toml"
STORE_NAME = "store.db"


def default_root(explicit: Path | str | None = None) -> Path:
    """``explicit``, else ``$RAGTUNE_HOME``, else ``./.ragtune``."""
    if explicit:
        return Path(explicit)
    env = os.environ.get("RAGTUNE_HOME")
    return Path(env) if env else Path.cwd() / ".ragtune"


class Workspace:
    """One workspace folder: settings, store and the models that serve it."""

    def __init__(self, root: Path, settings: Settings | None = None,
                 overrides: dict[str, dict[str, Any]] | None = None) -> None:
        self.root = Path(root)
        self.settings = settings or Settings.load(self.root / CONFIG_NAME, overrides=overrides)
        for registry, name in ((STORES, self.settings.store.backend),
                               (EMBEDDERS, self.settings.embedding.backend),
                               (GENERATORS, self.settings.generation.backend)):
            if name not in registry:  # fail at open, not at the first question
                raise ConfigError(f"unknown {registry.role} backend '{name}' in "
                                  f"{self.root / CONFIG_NAME} (known: {', '.join(registry.names())})")
        self._embedder: Embedder | None = None
        self._generator: Generator | None = None
        self._adapters: AdapterServing | None = None
        self._routing: RouteFn | None = None
        self._overrides = overrides

    @classmethod
    def init(cls, root: Path | str | None = None,
             overrides: dict[str, dict[str, Any]] | None = None) -> Workspace:
        """Create the folder and a ``ragtune.toml`` with the effective settings."""
        root = default_root(root)
        root.mkdir(parents=True, exist_ok=True)
        config = root / CONFIG_NAME
        if not config.exists():
            settings = Settings.load(None, env={}, overrides=overrides)
            config.write_text(
                "# ragtune workspace settings. Every key is documented in docs/configuration.md;\n"
                "# RAGTUNE_<SECTION>_<KEY> environment variables override them.\n\n"
                + settings.to_toml(), encoding="utf-8")
        ws = cls(root, overrides=overrides)
        ws.store  # noqa: B018 — creates the database and applies migrations
        return ws

    @classmethod
    def open(cls, root: Path | str | None = None,
             overrides: dict[str, dict[str, Any]] | None = None) -> Workspace:
        """Open an existing workspace; a missing one is a clear error."""
        root = default_root(root)
        if not (root / CONFIG_NAME).exists():
            raise NotFound(f"no ragtune workspace at {root} (run 'ragtune init' first, "
                           "or pass --workspace / set RAGTUNE_HOME)")
        return cls(root, overrides=overrides)

    # ------------------------------------------------------------------ components
    @cached_property
    def store(self) -> Store:
        return open_store(self.settings.store, self.root)

    @property
    def embedder(self) -> Embedder:
        if self._embedder is None:
            self._embedder = EMBEDDERS.create(self.settings.embedding.backend,
                                              self.settings.embedding)
        return self._embedder

    @embedder.setter
    def embedder(self, value: Embedder) -> None:
        self._embedder = value

    @property
    def generator(self) -> Generator:
        if self._generator is None:
            self._generator = GENERATORS.create(self.settings.generation.backend,
                                                self.settings.generation)
        return self._generator

    @generator.setter
    def generator(self, value: Generator) -> None:
        self._generator = value

    @property
    def adapters_root(self) -> Path:
        return self.root / "adapters"

    @property
    def registry(self) -> AdapterRegistry:
        """The workspace's finished adapters (``<workspace>/adapters``)."""
        return self.adapters.registry

    @property
    def adapters(self) -> AdapterServing:
        """Adapter serving; rebuilt only when ``[generation]`` changes (it keeps loaded models)."""
        if self._adapters is None or self._adapters.generation is not self.settings.generation:
            self._adapters = AdapterServing(self.adapters_root, self.settings.generation, self.store)
        return self._adapters

    @property
    def routing(self) -> RouteFn:
        """The router (``routing.router``); rebuilt only when ``[routing]`` changes, since it
        keeps the loaded model. Assign any ``(question, principal) -> Route`` to replace it."""
        stale = isinstance(self._routing, Routing) and self._routing.settings is not self.settings.routing
        if self._routing is None or stale:
            self._routing = Routing(self.root, self.settings.routing, self.store)
        return self._routing

    @routing.setter
    def routing(self, value: RouteFn) -> None:
        self._routing = value

    @cached_property
    def traces(self) -> TraceSink:
        monitor = self.settings.monitor
        return StoreTraceSink(self.store, keep_questions=monitor.keep_questions,
                              retention_s=monitor.retention_s)

    @property
    def retriever(self) -> Retriever:
        return StoreRetriever(self.store, self.embedder, self.settings.retrieval)

    @property
    def answerer(self) -> Answerer:
        # Built per call: tests and the CLI swap the embedder or generator in place.
        return self.answerer_for()

    def answerer_for(self, *, sink: TraceSink | None = None,
                     wrap: GeneratorWrap | None = None) -> Answerer:
        """The answerer with another trace sink (default: the store's) and every generator
        passed through ``wrap`` (the server's generation queue)."""
        return Answerer(self.retriever, self.generator, settings=self.settings.answer,
                        adapters=self.adapters, router=self.routing,
                        sink=self.traces if sink is None else sink,
                        source_tokens=self.settings.generation.source_tokens,
                        config_hint=str(self.root / CONFIG_NAME), wrap=wrap)

    @property
    def pipeline(self) -> AnswerPipeline:
        return self.answerer.pipeline()

    # ------------------------------------------------------------------ principals
    def principal(self, user: str | Principal | None) -> Principal:
        """The principal for ``user`` from ``[access.users]``; None is the anonymous reader.

        A :class:`Principal` is taken as it is: the server establishes who asks (API key,
        single sign-on) and passes the principal to every operation below.
        """
        access = self.settings.access
        if isinstance(user, Principal):
            return user
        if user is None:
            return Principal.anonymous()
        if user not in access.users and user not in access.admins:
            known = ", ".join(sorted({*access.users, *access.admins})) or "none configured"
            raise ConfigError(f"unknown user '{user}' (access.users in {self.root / CONFIG_NAME}: "
                              f"{known})")
        return Principal(user, frozenset(access.users.get(user, ())), admin=user in access.admins)

    # ------------------------------------------------------------------ operations
    def ingest(self, paths: Sequence[Path | str], *, collection: str = "default",
               groups: Sequence[str] | None = None, sync: bool = False,
               follow_symlinks: bool = False, exclude: Sequence[str] = (),
               progress: ProgressFn | None = None,
               report: IngestReport | None = None) -> IngestReport:
        """Ingest files and folders (see :func:`ragtune.ingest.sync.ingest_paths`):
        ``groups=None`` keeps each stored document's groups, ``()`` makes them public;
        ``exclude`` patterns leave files out like a .ragtuneignore."""
        with include_roots([Path(p) for p in paths]):  # include directives stay in these trees
            return ingest_paths([Path(p) for p in paths], store=self.store, embedder=self.embedder,
                                chunking=self.settings.chunking, ingest=self.settings.ingest,
                                collection=collection, groups=groups, sync=sync,
                                follow_symlinks=follow_symlinks, exclude=exclude,
                                progress=progress, report=report)

    def remove(self, ref: str, *, erase_wait: float = 10.0) -> DocumentInfo:
        """Delete a document (by id, source or path) and everything derived from it, then
        wait up to ``erase_wait`` s for its text to be erased from disk
        (``store.pending_deletions()`` is True if a reader still holds it)."""
        info = self.find_document(ref)
        with self.store.write_lock():
            self.store.delete_document(info.id)
            self.store.log_ingest(info.source, "removed", "ragtune rm")
        self.store.finish_deletions(wait=erase_wait)
        return info

    def find_document(self, ref: str) -> DocumentInfo:
        # sources are stored as valid UTF-8 (ingest/guards.py: display_path)
        candidates = [display_path(ref)]
        if Path(ref).exists() or not ref.startswith("doc_"):
            candidates.append(display_path(Path(ref).resolve()))
        for c in candidates:
            info = self.store.get_document(c)
            if info:
                return info
        raise NotFound(f"no document '{ref}' in the workspace (see 'ragtune docs')")

    def search(self, query: str, user: str | Principal | None = None, *, k: int | None = None,
               mode: str | None = None, filters: SearchFilter | None = None) -> RetrievalResult:
        return self.retriever.search(query, self.principal(user), k=k, mode=mode, filters=filters)

    def ask(self, question: str, user: str | Principal | None = None, *,
            mode: str | None = None, adapter: str | None = None,
            filters: SearchFilter | None = None, k: int | None = None,
            on_token: TokenFn | None = None, origin: str = "ask",
            history: Sequence[Turn] = ()) -> Answer:
        """Answer ``question`` as ``user`` (see :class:`ragtune.answer.modes.Answerer`)."""
        return self.answerer.ask(question, self.principal(user), mode=mode, adapter=adapter,
                                 filters=filters, k=k, on_token=on_token, origin=origin,
                                 history=history)

    def freshness(self, adapter: str) -> Freshness:
        """Which documents ``adapter`` was trained on changed or went since."""
        return self.adapters.freshness(adapter)

    # ------------------------------------------------------------------ tune retriever
    @property
    def embedders_root(self) -> Path:
        return self.root / "embedders"

    def local_embedder(self, model: str) -> Embedder:
        """The configured local embedder with another model (an adapted one, or the base)."""
        if self.settings.embedding.backend != "local":
            raise ConfigError(f"tune retriever adapts the local embedder; embedding.backend is "
                              f"'{self.settings.embedding.backend}' in {self.root / CONFIG_NAME}")
        return EMBEDDERS.create("local", replace(self.settings.embedding, model=model))

    def _use_embedding_model(self, model: str) -> None:
        set_setting(self.root / CONFIG_NAME, "embedding", "model", model)
        self.settings = Settings.load(self.root / CONFIG_NAME, overrides=self._overrides)
        self._embedder = None

    def tune_retriever(self, options: TuneOptions, *, resume: bool = False,
                       progress: ProgressFn | None = None) -> dict[str, Any]:
        """Adapt the embedder to this workspace's documents (see :mod:`ragtune.tune.run`)."""
        self.local_embedder(self.settings.embedding.model)  # fails early off the local backend
        folder, options = open_run(self.embedders_root, options, resume=resume)

        def ask(passage: Passage) -> str | None:  # loads the chat model only when asked
            return asker(self.generator)(passage)

        return TuneRun(folder, self.store, self.embedder, self.local_embedder,
                       self._use_embedding_model, options, progress, ask=ask).run()

    def use_embedder(self, model: str, progress: ProgressFn | None = None) -> int:
        """Re-embed the store with ``model`` (a tune run's name, or a model) and use it."""
        run = self.embedders_root / model / "model"
        chosen = str(run.resolve()) if run.is_dir() else PACKAGED if model == "base" else model
        n = reembed_store(self.store, self.local_embedder(chosen),
                          lambda d, t: progress(d, t, "re-embed store") if progress else None)
        self._use_embedding_model(chosen)
        return n

    def tune_runs(self) -> list[dict[str, Any]]:
        """Every tune run, its scores, decision, freshness and whether it is in use."""
        return summaries(self.embedders_root, self.store, self.settings.embedding.model)

    def route(self, question: str, principal: Principal) -> Route:
        """The router's decision for ``question`` (every readable collection without one)."""
        return self.routing(question, principal)

    def documents(self, user: str | Principal | None = None, *,
                  all_users: bool = False) -> list[DocumentInfo]:
        """The documents ``user`` may read; ``all_users`` (every document, whatever its
        groups) is the operator's view and needs an admin."""
        principal = self.principal(user)
        if all_users and not principal.admin:
            raise AccessDenied("listing every document (--all) needs an admin: pass --as "
                               f"one of access.admins in {self.root / CONFIG_NAME}")
        return self.store.list_documents(None if all_users else principal)

    def status(self, user: str | Principal | None = None) -> dict[str, Any]:
        """What ``user`` may know of the workspace. Admins see the operator's view (every
        document, store size, recent ingest failures); others only counts of what they may
        read: restricted documents, collections and file names are not theirs to see."""
        principal = self.principal(user)
        stats = self.store.stats()
        info: dict[str, Any] = {"workspace": str(self.root), "user": principal.user}
        if principal.admin:
            info |= stats
            latest: dict[str, Any] = {}  # a file that failed, then went in, is fine now
            for e in self.store.ingest_log(2000):  # newest first
                latest.setdefault(e.source, e)
            info["recent_failures"] = [
                {"source": e.source, "message": e.message, "ts": e.ts}
                for e in latest.values() if e.status == "failed"][:10]
        else:
            readable = self.store.list_documents(principal)
            info |= {"documents": len(readable), "chunks": sum(d.chunks for d in readable),
                     "collections": dict(Counter(d.collection for d in readable)),
                     "last_ingest": max((d.updated_at for d in readable), default=None)}
        info["embedding"] = f"{self.settings.embedding.backend}:{self.settings.embedding.model}"
        info["generation"] = f"{self.settings.generation.backend}:{self.settings.generation.model}"
        return info
