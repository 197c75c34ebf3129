"""Shared fixtures. Every workspace lives in tmp_path; nothing touches the network."""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

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


# A command run as ``[*FRESH_PROCESS, *cmd]`` starts with its own peak-memory account. Linux
# carries a process's peak RSS (``ru_maxrss``, which libFuzzer's -rss_limit_mb reads too)
# across fork + exec, so a child of this test process (gigabytes after the real-model tests)
# would report our peak as its own; the shell forks the command (``; exit`` stops it from
# exec'ing in place), and a forked child's account starts at zero.
FRESH_PROCESS = ["/bin/sh", "-c", '"$@"; exit $?', "sh"]


def free_port() -> int:
    """A loopback TCP port nothing listens on (now)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def serve_in_thread(app: Any, path: str = "/v1") -> Iterator[str]:
    """A real uvicorn server for ``app`` on a free loopback port; yields its URL + ``path``."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("test server did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}{path}"
    finally:
        server.should_exit = True
        thread.join(timeout=5)


@contextmanager
def server_process(command: list[str], ready_url: str, *, timeout_s: float) -> Iterator[None]:
    """Run ``command`` (a server) until ``GET ready_url`` answers 200, then yield; stop it
    after. Its output goes to a file, not a pipe: a full pipe buffer would block it."""
    import subprocess
    import tempfile

    import httpx

    log = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 (closed in the finally below)
    proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            if proc.poll() is not None:
                log.seek(0)
                raise RuntimeError(f"{' '.join(command[:3])} exited: {log.read()[-2000:]}")
            try:
                if httpx.get(ready_url, timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{' '.join(command[:3])} did not answer within {timeout_s} s")
            time.sleep(0.2)
        yield
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        log.close()


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


def _no_cuda_reason() -> str | None:
    """Why ``gpu`` tests cannot run here, or None when torch sees a CUDA GPU."""
    try:
        import torch
    except ImportError:
        return "needs CUDA: torch is not installed"
    if not torch.cuda.is_available():
        return (f"needs CUDA: torch {torch.__version__} sees no GPU "
                "(docs/finetuning.md says how to run these on a GPU machine)")
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip every test marked ``gpu`` with a reason when there is no CUDA GPU.

    torch is imported only when such a test was collected.
    """
    gpu = [item for item in items if item.get_closest_marker("gpu")]
    reason = _no_cuda_reason() if gpu else None
    if reason:
        for item in gpu:
            item.add_marker(pytest.mark.skip(reason=reason))
