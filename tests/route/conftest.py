"""Fixtures for the router tests: a workspace with restricted HR documents, a real router.

``trained_router`` trains the real thing (packaged MiniLM, contrastive steps, ONNX export,
logistic head) once per session on examples/intents; tests that use it are marked
``slow`` and ``integration``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ..conftest import EXAMPLES, FAKE

KB = EXAMPLES / "kb"
ROUTES = {"policy": ["policies", "shipping"]}


class FixedRouter:
    """Stands in for :class:`IntentRouter` in policy unit tests: a fixed answer per question."""

    def __init__(self, answers: dict[str, tuple[str, float]]) -> None:
        self.answers = answers
        self.labels = sorted({label for label, _ in answers.values()})

    def predict(self, text: str) -> tuple[str, float, dict[str, float]]:
        label, conf = self.answers[text]
        return label, conf, {label: conf}


@pytest.fixture
def kb_ws(tmp_path: Path) -> Any:
    """Fake embedder; public it, policies, shipping; collection hr readable by group hr only
    (users: ana in hr, bob in it, root admin)."""
    from ragtune.workspace import Workspace

    ws = Workspace.init(tmp_path / "ws", overrides=FAKE)
    ws.ingest([KB / "it" / "vpn-setup.md", KB / "it" / "mfa.html"], collection="it")
    ws.ingest([KB / "policies" / "returns-policy.md"], collection="policies")
    ws.ingest([KB / "shipping" / "domestic-shipping.md"], collection="shipping")
    ws.ingest([KB / "restricted" / "salary-bands-2025.md"], collection="hr", groups=["hr"])
    return ws


@pytest.fixture(scope="session")
def trained_router(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, dict, Path]:
    """(router, report, saved folder): the default recipe on examples/intents, seed 0."""
    from ragtune.route.data import load_intents
    from ragtune.route.model import IntentRouter

    examples = load_intents(EXAMPLES / "intents" / "intents.jsonl")
    router, report = IntentRouter.train(examples, seed=0, source="intents.jsonl")
    folder = router.save(tmp_path_factory.mktemp("routers") / "intents")
    return router, report, folder
