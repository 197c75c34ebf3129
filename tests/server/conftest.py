"""A served workspace for the server tests: the fake models, a small knowledge base with one
restricted document, and API keys for an admin (root), ana (group hr) and bob (group it).

The server is real: uvicorn on a loopback port, driven over HTTP (httpx, the official
``openai`` client, headless Chromium).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from ragtune.generate.fake import FakeGenerator
from tests.conftest import FAKE, serve_in_thread, write

KB = {
    "policies/returns.md": "# Returns\n\n## Window\n\nItems can be returned within 30 days of "
                           "delivery for online orders.\n\n## In-store\n\nIn-store purchases "
                           "can be returned within 30 days with the receipt.\n",
    "it/vpn.md": "# VPN\n\n## Password reset\n\nReset your VPN password at the IT portal under "
                 "Account settings.\n",
    "expenses/travel.md": "# Travel expenses\n\n## Meals\n\nThe daily meal allowance for work "
                          "travel is 45 euros.\n",
}
SECRET = ("hr/salaries.md", ("# Salary bands\n\n## Engineers\n\nThe salary band for a senior "
                             "engineer is zorblax 95000 to 120000 euros.\n"))
SALARY_Q = "What is the salary band for a senior engineer?"


class SlowGenerator(FakeGenerator):
    """The fake model, one word every ``delay`` seconds (queueing and cancellation tests).

    ``stopped`` counts streams closed before their last word (a cancelled generation);
    ``active`` is how many streams are running now, ``peak`` the most at once.
    """

    def __init__(self, delay: float = 0.05, **kw) -> None:
        super().__init__(**kw)
        self.delay = delay
        self.stopped = 0
        self.finished = 0
        self.active = 0
        self.peak = 0
        self._lock = threading.Lock()

    def stream(self, messages, *, max_tokens=None, temperature=None):
        words = list(super().stream(messages, max_tokens=max_tokens, temperature=temperature))
        with self._lock:
            self.active += 1
            self.peak = max(self.peak, self.active)
        done = False
        try:
            for w in words:
                time.sleep(self.delay)
                yield w
            done = True
        finally:
            with self._lock:
                self.active -= 1
                if done:
                    self.finished += 1
                else:
                    self.stopped += 1


@dataclass
class Served:
    """A running server and the keys of its users."""

    url: str
    ws: object
    tokens: dict[str, str]
    kb: Path

    def client(self, user: str | None = None, **kw) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.tokens[user]}"} if user else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30, **kw)


def make_workspace(tmp_path: Path, **overrides):
    from ragtune.workspace import Workspace

    settings = {area: dict(values) for area, values in FAKE.items()}
    for area, values in overrides.items():
        settings.setdefault(area, {}).update(values)
    ws = Workspace.init(tmp_path / "ws", overrides=settings)
    for rel, text in KB.items():
        write(tmp_path / "kb" / rel, text)
    ws.ingest([tmp_path / "kb"])
    ws.ingest([write(tmp_path / "restricted" / SECRET[0], SECRET[1])], groups=["hr"],
              collection="hr")
    return ws


def issue_keys(ws) -> dict[str, str]:
    from ragtune.server.keys import KeyStore

    keys = KeyStore(ws.root / "keys.json")
    return {"root": keys.create("root", admin=True)[1], "ana": keys.create("ana")[1],
            "bob": keys.create("bob")[1]}


@contextmanager
def serving(tmp_path: Path, **overrides) -> Iterator[Served]:
    """A workspace (``overrides``: settings by area) served on a free port."""
    from ragtune.server.app import create_app

    ws = make_workspace(tmp_path, **overrides)
    tokens = issue_keys(ws)
    with serve_in_thread(create_app(ws), path="") as url:
        yield Served(url, ws, tokens, tmp_path / "kb")


@pytest.fixture
def served(tmp_path) -> Iterator[Served]:
    with serving(tmp_path) as s:
        yield s


def edit_access(ws, users: dict[str, list[str]]) -> None:
    """Rewrite ``[access.users]`` in the workspace's ragtune.toml, as an admin would."""
    import tomllib

    import tomli_w

    config = ws.root / "ragtune.toml"
    data = tomllib.loads(config.read_text(encoding="utf-8"))
    data.setdefault("access", {})["users"] = users
    config.write_text(tomli_w.dumps(data), encoding="utf-8")
