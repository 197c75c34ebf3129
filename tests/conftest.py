"""Shared fixtures. Every workspace lives in tmp_path; nothing touches the network."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# Model caches (assembled GGUF, exported ONNX) are shared by every test session on the
# machine: built once, reused; tests never write into the user's own home cache.
os.environ.setdefault("RAGTUNE_CACHE", str(Path(__file__).resolve().parent.parent / ".cache" / "ragtune"))

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"

FAKE = {
    "embedding": {"backend": "fake"},
    "generation": {"backend": "fake"},
    # the hashing fake embedder scores related texts lower than a real model does
    "retrieval": {"min_similarity": 0.15},
    "access": {"users": {"ana": ["hr"], "bob": ["it"]}, "admins": ["root"]},
}


@pytest.fixture
def fake_ws(tmp_path):
    """A workspace with the fake embedder and generator and two users (ana in hr, bob in it)."""
    from ragtune.workspace import Workspace

    return Workspace.init(tmp_path / "ws", overrides=FAKE)


@pytest.fixture(scope="session")
def local_embedder():
    """The real packaged MiniLM, loaded once per test session."""
    from ragtune.config import EmbeddingSettings
    from ragtune.embed.factory import make_embedder

    return make_embedder(EmbeddingSettings())


@pytest.fixture(scope="session")
def local_generator():
    """The real packaged Qwen2.5-0.5B GGUF on llama.cpp, loaded once per test session."""
    from ragtune.config import GenerationSettings
    from ragtune.generate.factory import make_generator

    return make_generator(GenerationSettings())


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path
