"""Workspace: the composition root. The CLI, the server and Python users hold one of these.

A workspace is a folder (``./.ragtune``, ``--workspace`` or ``$RAGTUNE_HOME``) holding
``ragtune.toml`` and ``store.db``. Components are built lazily from Settings, so
``ragtune docs`` never loads a model.

>>> import tempfile
>>> ws = Workspace.init(Path(tempfile.mkdtemp()) / "ws", overrides={"embedding": {"backend": "fake"}})
>>> ws.settings.embedding.backend
'fake'
>>> ws.status()["documents"]
0
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from functools import cached_property
from pathlib import Path
from typing import Any

from ragtune.answer import AnswerPipeline, TokenFn
from ragtune.config import ANSWER_MODES, Settings
from ragtune.embed.base import Embedder
from ragtune.errors import ConfigError, NotFound
from ragtune.generate.base import Generator
from ragtune.hybrid import Route, answer_hybrid
from ragtune.ingest.sync import IngestReport, ProgressFn, ingest_paths
from ragtune.retrieve.search import RetrievalResult, Retriever
from ragtune.store.base import SearchFilter
from ragtune.store.sqlite import SQLiteStore
from ragtune.types import Answer, DocumentInfo, Principal

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
        self._embedder: Embedder | None = None
        self._generator: Generator | None = None
        # base model -> HFGenerator; 'lora:NAME' -> llama.cpp with that adapter's GGUF LoRA
        self._adapter_generators: dict[str, Any] = {}
        self._routers: dict[str, Any] = {}  # router name -> loaded IntentRouter

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
    def store(self) -> SQLiteStore:
        return SQLiteStore(self.root / STORE_NAME)

    @property
    def embedder(self) -> Embedder:
        if self._embedder is None:
            from ragtune.embed.factory import make_embedder

            self._embedder = make_embedder(self.settings.embedding)
        return self._embedder

    @embedder.setter
    def embedder(self, value: Embedder) -> None:
        self._embedder = value

    @property
    def generator(self) -> Generator:
        if self._generator is None:
            from ragtune.generate.factory import make_generator

            self._generator = make_generator(self.settings.generation)
        return self._generator

    @generator.setter
    def generator(self, value: Generator) -> None:
        self._generator = value

    @property
    def adapters_root(self) -> Path:
        return self.root / "adapters"

    def adapter_generator(self, adapter: str) -> Generator:
        """A generator answering with LoRA adapter ``adapter``.

        On the local backend, an adapter trained on the very GGUF file the workspace
        generates with is served by llama.cpp (exported once to ``adapter.gguf`` in its
        folder): it decodes ~2.5x faster than transformers on a CPU and needs ~0.5 GB instead
        of ~2.5 GB (bench/adapter_serving.py). Any other adapter runs on
        transformers + PEFT, one base model per base shared by all its adapters, so
        switching adapters does not reload it.
        """
        gen = self._lora_generator(adapter)
        if gen is not None:
            return gen
        from ragtune.generate.hf import HFGenerator

        info = self._adapter_info(adapter)
        hf = self._adapter_generators.get(info.base_model)
        if hf is None:
            hf = HFGenerator(info.base_model, adapters_root=self.adapters_root,
                             max_tokens=self.settings.generation.max_tokens,
                             temperature=self.settings.generation.temperature,
                             threads=self.settings.generation.threads)
            self._adapter_generators[info.base_model] = hf
        hf.use_adapter(adapter)
        return hf

    def _lora_generator(self, adapter: str) -> Generator | None:
        """llama.cpp with the adapter's GGUF LoRA, when the adapter fits the workspace's GGUF."""
        g = self.settings.generation
        if g.backend != "local":
            return None
        key = f"lora:{adapter}"
        if key in self._adapter_generators:
            return self._adapter_generators[key]
        from ragtune.errors import RagtuneError
        from ragtune.finetune.adapters import AdapterRegistry
        from ragtune.finetune.freshness import base_identity
        from ragtune.generate.llama_cpp import lora_generator
        from ragtune.generate.models import resolve_model

        registry = AdapterRegistry(self.adapters_root)
        base_gguf = resolve_model(g.model)
        lora = registry.gguf_for(adapter, base_gguf)
        if lora is None:
            run = json.loads((registry.get(adapter).path / "run.json").read_text(encoding="utf-8"))
            if run.get("base_model_hash") != base_identity(str(base_gguf)):
                return None  # trained on another base: transformers + PEFT checks and says so
            try:
                registry.export_gguf(adapter)
            except RagtuneError:
                return None
            lora = registry.gguf_for(adapter, base_gguf)
            if lora is None:
                return None
        gen = lora_generator(base_gguf, lora, name=adapter, n_ctx=g.context_tokens,
                             threads=g.threads, max_tokens=g.max_tokens, temperature=g.temperature)
        self._adapter_generators[key] = gen
        return gen

    @property
    def retriever(self) -> Retriever:
        return Retriever(self.store, self.embedder, self.settings.retrieval)

    @property
    def pipeline(self) -> AnswerPipeline:
        return self._pipeline(self.generator)

    # ------------------------------------------------------------------ principals
    def principal(self, user: str | None) -> Principal:
        """The principal for ``user`` from ``[access.users]``; None is the anonymous reader."""
        access = self.settings.access
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
               follow_symlinks: bool = False, progress: ProgressFn | None = None,
               report: IngestReport | None = None) -> IngestReport:
        """Ingest files and folders (see :func:`ragtune.ingest.sync.ingest_paths`):
        ``groups=None`` keeps each stored document's groups, ``()`` makes them public."""
        return ingest_paths([Path(p) for p in paths], store=self.store, embedder=self.embedder,
                            chunking=self.settings.chunking, ingest=self.settings.ingest,
                            collection=collection, groups=groups, sync=sync,
                            follow_symlinks=follow_symlinks, progress=progress, report=report)

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
        candidates = [ref]
        if Path(ref).exists() or not ref.startswith("doc_"):
            candidates.append(str(Path(ref).resolve()))
        for c in candidates:
            info = self.store.get_document(c)
            if info:
                return info
        raise NotFound(f"no document '{ref}' in the workspace (see 'ragtune docs')")

    def search(self, query: str, user: str | None = None, *, k: int | None = None,
               mode: str | None = None, filters: SearchFilter | None = None) -> RetrievalResult:
        return self.retriever.search(query, self.principal(user), k=k, mode=mode, filters=filters)

    def ask(self, question: str, user: str | None = None, *, mode: str | None = None,
            adapter: str | None = None, filters: SearchFilter | None = None,
            k: int | None = None, on_token: TokenFn | None = None) -> Answer:
        """Answer ``question`` as ``user`` in one of the four modes.

        ``base``: the model alone. ``rag``: retrieve, then the base model answers — or the
        adapter, when one is given (how a RAFT adapter is served). ``finetuned``: the
        adapter alone. ``hybrid``: the intent router picks out-of-scope / direct / a
        knowledge route; knowledge routes retrieve in the routed collections and the
        adapter answers with that context (the base model when the adapter is stale on the
        topic). Defaults come from ``[answer]`` in ragtune.toml.
        """
        mode = mode or self.settings.answer.mode
        if mode not in ANSWER_MODES:
            raise ConfigError(f"unknown answer mode '{mode}' (known: {', '.join(ANSWER_MODES)})")
        if adapter is None and mode in {"finetuned", "hybrid"}:
            adapter = self.settings.answer.adapter or None
            if adapter is None:
                raise ConfigError(f"mode '{mode}' needs an adapter: pass --adapter NAME or set "
                                  f"answer.adapter in {self.root / CONFIG_NAME}")
        if mode == "base" and adapter:
            raise ConfigError("mode 'base' answers with the base model alone; use mode "
                              "'finetuned' to answer with an adapter")
        principal = self.principal(user)
        base = self._pipeline(self.generator)
        if mode == "base":
            return base.ask_direct(question, principal, on_token=on_token)
        tuned = base
        if adapter:
            from ragtune.finetune.raft_quotes import final_answer, is_raft_adapter

            info = self._adapter_info(adapter)
            # The system prompt the adapter was trained with ("" = none); older adapters
            # did not record it and get the default one.
            system = (info.dataset.get("system_prompt") or "") if "system_prompt" in info.dataset \
                else None
            tuned = self._pipeline(self.adapter_generator(adapter), direct_system=system,
                                   conclusion=final_answer if is_raft_adapter(info) else None)
        if mode == "rag":
            answer = tuned.ask(question, principal, filters=filters, k=k, on_token=on_token)
        elif mode == "finetuned":
            answer = tuned.ask_direct(question, principal, on_token=on_token, mode="finetuned")
        else:
            assert adapter is not None
            return answer_hybrid(question, principal, route=self.route(question, principal),
                                 base=base, tuned=tuned, adapter=adapter,
                                 freshness=self.freshness(adapter), filters=filters, k=k,
                                 on_token=on_token)
        answer.trace.adapter = adapter
        return answer

    def _pipeline(self, generator: Generator, direct_system: str | None = None,
                  conclusion: Callable[[str], str] | None = None) -> AnswerPipeline:
        return AnswerPipeline(self.retriever, generator, direct_system=direct_system,
                              conclusion=conclusion,
                              source_tokens=self.settings.generation.source_tokens)

    def _adapter_info(self, adapter: str) -> Any:
        from ragtune.finetune.adapters import AdapterRegistry

        return AdapterRegistry(self.adapters_root).get(adapter)

    def freshness(self, adapter: str) -> Any:
        """Which documents ``adapter`` was trained on changed or went since (a Freshness)."""
        from ragtune.finetune.freshness import adapter_freshness

        return adapter_freshness(self._adapter_info(adapter), self.store)

    def route(self, question: str, principal: Principal) -> Route:
        """The router's decision for ``question`` (every readable collection without one)."""
        routing = self.settings.routing
        if not routing.router:
            return Route.everything("no router configured (routing.router): retrieve from "
                                    "every collection you may read")
        from ragtune.route.policy import decide, load_router

        router = self._routers.get(routing.router)
        if router is None:
            router = self._routers[routing.router] = load_router(self.root, routing.router)
        d = decide(router, question, routing=routing, principal=principal, store=self.store)
        return Route(d.label, d.kind, d.confidence, d.collections, d.reason)

    def documents(self, user: str | None = None, *, all_users: bool = False) -> list[DocumentInfo]:
        return self.store.list_documents(None if all_users else self.principal(user))

    def status(self) -> dict[str, Any]:
        stats = self.store.stats()
        stats["workspace"] = str(self.root)
        stats["embedding"] = f"{self.settings.embedding.backend}:{self.settings.embedding.model}"
        stats["generation"] = f"{self.settings.generation.backend}:{self.settings.generation.model}"
        return stats
