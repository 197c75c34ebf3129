"""The FastAPI app factory: ``create_app(workspace)`` is all of ``ragtune serve``.

The server is a thin edge over one :class:`~ragtune.workspace.Workspace`, like the CLI:
routers parse, authenticate (:mod:`ragtune.server.auth`, the one place), call the
workspace, shape the reply. Other packages add their routers and web-app pages without
editing this file::

    app = create_app(ws, routers=[monitor_router],
                     pages=[UIPage("monitor", "Monitor", "/ui/monitor.js", admin=True)])

>>> from ragtune.workspace import Workspace
>>> import tempfile
>>> ws = Workspace.init(tempfile.mkdtemp(), overrides={"embedding": {"backend": "fake"},
...                                                    "generation": {"backend": "fake"}})
>>> sorted(p for p in create_app(ws).openapi()["paths"] if p.startswith("/v1"))
['/v1/chat/completions', '/v1/models']
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from fastapi import APIRouter, Depends, FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

from ragtune import __version__
from ragtune.monitor.prometheus import AnswerMetrics
from ragtune.server import errors
from ragtune.server.answers import AnswerRunner
from ragtune.server.auth import AccessDirectory, Authenticator
from ragtune.server.gate import GenerationGate
from ragtune.server.keys import KeyStore
from ragtune.server.limits import BodyLimit, strict_query
from ragtune.workspace import CONFIG_NAME, Workspace

log = logging.getLogger("ragtune.server")
UI = Path(__file__).parent / "ui"


@dataclass(frozen=True)
class UIPage:
    """A page of the web app: ``module`` is an ES module exporting ``render(root, app)``."""

    id: str
    title: str
    module: str
    admin: bool = False


PAGES = (
    UIPage("chat", "Ask", "/ui/chat.js"),
    UIPage("documents", "Documents", "/ui/documents.js", admin=True),
    UIPage("adapters", "Adapters", "/ui/adapters.js", admin=True),
    UIPage("reports", "Reports", "/ui/reports.js", admin=True),
    UIPage("monitor", "Monitor", "/ui/monitor.js", admin=True),
)


def generation_slots(ws: Workspace) -> int:
    """``server.generation_slots``, or 1 for an in-process model and 4 for an HTTP server."""
    slots = ws.settings.server.generation_slots
    return slots or (4 if ws.settings.generation.backend == "http" else 1)


class ServerState:
    """What the routers share: the workspace and the server's own parts."""

    def __init__(self, ws: Workspace, pages: Sequence[UIPage]) -> None:
        self.ws = ws
        server = ws.settings.server
        self.keys = KeyStore(ws.root / ws.settings.auth.keys_file)
        self.directory = AccessDirectory(ws.root / CONFIG_NAME, ws.settings.access)
        self.auth = Authenticator(ws.settings.auth, self.keys, self.directory, ws.root)
        self.gate = GenerationGate(generation_slots(ws), server.max_waiting,
                                   server.max_waiting_per_user)
        # Prometheus counters of this process's answers (GET /metrics), fed by the runner
        self.metrics = AnswerMetrics(ws.store)
        self.metrics.queue_depth.set_function(lambda: self.gate.stats()["waiting"])
        self.runner = AnswerRunner(ws, self.gate, self.metrics)
        self.uploads = ws.root / server.uploads
        self.pages = list(pages)
        self.ready: dict[str, str] = {"models": "loading"}

    def warm(self) -> None:
        """Load the models before the first question (and once: two first questions at
        once would each load their own copy)."""
        try:
            self.ws.store.count_documents()
            self.ws.embedder.embed_query("warm up")
            self.ws.adapters  # noqa: B018 — built once, before threads race to build it
            generator = self.ws.generator
            if hasattr(type(generator), "llm"):
                generator.llm  # noqa: B018 — llama.cpp loads its weights on first access
            self.ready = {"models": "ok"}
        except Exception as e:  # reported by /api/ready; the server still answers search
            log.exception("loading the models failed")
            self.ready = {"models": f"failed: {e}"}


def create_app(ws: Workspace, *, routers: Sequence[APIRouter] = (),
               pages: Sequence[UIPage] = (), warm: bool = True) -> FastAPI:
    """The ragtune service for ``ws``; ``routers`` and ``pages`` extend it."""
    from ragtune.server import openai_api
    from ragtune.server.api import ROUTERS

    state = ServerState(ws, [*PAGES, *pages])

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        _clean_partial_uploads(state.uploads)
        if warm:
            await asyncio.to_thread(state.warm)
        else:
            state.ready = {"models": "ok"}
        yield
        state.runner.close()

    app = FastAPI(title="ragtune", version=__version__, lifespan=lifespan,
                  description="Answers from your documents with checked citations. "
                              "OpenAI-compatible chat under /v1, ragtune's own API under /api.")
    app.state.ragtune = state
    errors.install(app)
    app.add_middleware(BodyLimit, max_bytes=int(ws.settings.server.max_upload_mb * 1024 * 1024))
    app.add_middleware(errors.CatchAll)  # outermost of ours: catches what the others raise
    ours = [Depends(strict_query)]
    app.include_router(openai_api.router, dependencies=ours)
    for router in ROUTERS:
        app.include_router(router, dependencies=ours)
    for router in routers:
        app.include_router(router)
    app.mount("/ui", StaticFiles(directory=UI), name="ui")

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(UI / "index.html", headers={"Cache-Control": "no-store"})

    return app


def _clean_partial_uploads(uploads: Path) -> None:
    """Files a killed upload left half-written (never ingested: they are hidden names)."""
    if not uploads.is_dir():
        return
    for p in uploads.rglob(".partial-*"):
        try:
            p.unlink()
        except OSError:
            pass


def app_from_env() -> FastAPI:
    """For ``uvicorn --factory`` with several workers: the workspace in ``$RAGTUNE_HOME``."""
    return create_app(Workspace.open(os.environ.get("RAGTUNE_HOME")))
