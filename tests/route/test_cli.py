"""``ragtune route train|test|check`` through Typer's CliRunner and the real entry point."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from ragtune.cli.route import route_app
from ragtune.errors import ConfigError, InputError, NotFound

from ..conftest import EXAMPLES, FAKE, ROOT
from .conftest import ROUTES

app = typer.Typer()
app.add_typer(route_app, name="route")
runner = CliRunner()
INTENTS = EXAMPLES / "intents" / "intents.jsonl"


def cli(*args: object):
    return runner.invoke(app, [str(a) for a in args])


def _configure(ws, **routing) -> None:
    """Rewrite the workspace's ragtune.toml with these [routing] settings."""
    from ragtune.config import Settings

    settings = Settings.load(None, env={}, overrides={**FAKE, "routing": routing})
    (ws.root / "ragtune.toml").write_text(settings.to_toml(), encoding="utf-8")


def test_train_refuses_bad_files_with_clear_messages(kb_ws, tmp_path: Path) -> None:
    one = tmp_path / "one.jsonl"
    one.write_text('{"text": "hi", "label": "direct"}\n{"text": "hey", "label": "direct"}\n'
                   '{"text": "vpn?", "label": "it"}\n')
    r = cli("route", "train", one, "-w", kb_ws.root)
    assert isinstance(r.exception, InputError)
    assert str(r.exception) == (f"{one}: label 'it' has 1 example; every label needs at least 2 "
                                "(one to train, one to validate)")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "hi", "label": "direct"}\n{"text": "vpn?"}\n')
    r = cli("route", "train", bad, "-w", kb_ws.root)
    assert isinstance(r.exception, InputError) and str(r.exception).startswith(f"{bad}:2: missing 'label'")
    r = cli("route", "train", INTENTS, "--name", "Bad Name", "-w", kb_ws.root)
    assert isinstance(r.exception, InputError) and "router names use only" in str(r.exception)
    assert not (kb_ws.root / "routers").exists()  # nothing trained, nothing written


def test_test_and_check_without_a_router(kb_ws) -> None:
    r = cli("route", "test", "hello", "-w", kb_ws.root)
    assert isinstance(r.exception, NotFound) and "no router 'intents'" in str(r.exception)
    r = cli("route", "check", "--name", "other", "-w", kb_ws.root)
    assert isinstance(r.exception, NotFound) and "no router 'other'" in str(r.exception)


def test_errors_become_one_line_and_exit_code_2(kb_ws) -> None:
    env = {**os.environ, "RAGTUNE_HOME": str(kb_ws.root)}
    p = subprocess.run([sys.executable, "-m", "ragtune.cli", "route", "test", "hello"],
                       capture_output=True, text=True, env=env, cwd=ROOT, timeout=120,
                       check=False)
    assert p.returncode == 2
    assert p.stderr.startswith("error: no router 'intents' in ") and "Traceback" not in p.stderr


@pytest.mark.slow
@pytest.mark.integration
def test_train_end_to_end_writes_the_router_and_reports(kb_ws) -> None:
    r = cli("route", "train", INTENTS, "--steps", "2", "--json", "-w", kb_ws.root)
    assert r.exit_code == 0, r.output
    report = json.loads(r.stdout)
    folder = kb_ws.root / "routers" / "intents"
    assert report["path"] == str(folder) and (folder / "router.json").is_file()
    assert report["training"]["steps"] == 2 and report["data"]["examples"] == 126
    assert report["metrics"]["confusion"]["labels"] == report["labels"]
    assert report["metrics"]["accuracy"] > 0.5  # chance is 1/7
    r = cli("route", "train", INTENTS, "--steps", "2", "--name", "second", "-w", kb_ws.root)
    assert r.exit_code == 0, r.output
    assert "validation accuracy" in r.output and "confusion matrix" in r.output
    assert 'routing.router = "second"' in r.output
    assert (kb_ws.root / "routers" / "second" / "head.npz").is_file()


@pytest.mark.slow
@pytest.mark.integration
def test_check_and_test_with_a_trained_router(kb_ws, trained_router) -> None:
    shutil.copytree(trained_router[2], kb_ws.root / "routers" / "intents")
    # routes not configured: 'policy', 'manuals' and 'expenses' name no collection here
    r = cli("route", "check", "-w", kb_ws.root, "--json")
    assert r.exit_code == 2
    out = json.loads(r.stdout)
    assert not out["configured"]
    assert any("route 'manuals' has no routing.routes entry, so it searches collection "
               "'manuals', which has no documents" in p for p in out["problems"])
    r = cli("route", "test", "How do I set up the VPN?", "-w", kb_ws.root)
    assert isinstance(r.exception, ConfigError) and "collection 'expenses'" in str(r.exception)

    _configure(kb_ws, router="intents", min_confidence=0.3,
               routes={**ROUTES, "manuals": ["policies"], "expenses": ["policies"]})
    r = cli("route", "check", "-w", kb_ws.root)
    assert r.exit_code == 0, r.output
    assert "OK" in r.output
    r = cli("route", "test", "My VPN says authentication failed.", "--as", "bob", "--json",
            "-w", kb_ws.root)
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout)
    assert (d["label"], d["kind"], d["collections"]) == ("it", "knowledge", ["it"])
    # bob cannot read hr: the same kind of question for him names no route at all
    r = cli("route", "test", "How many vacation days do I get?", "--as", "bob", "--json",
            "-w", kb_ws.root)
    d = json.loads(r.stdout)
    assert d["label"] == "knowledge" and d["collections"] is None and "hr" not in r.stdout
    r = cli("route", "test", "How many vacation days do I get?", "--as", "ana", "-w", kb_ws.root)
    assert r.exit_code == 0 and "label hr" in r.output and "→ hr" in r.output
    r = cli("route", "test", "Hello there!", "--scores", "-w", kb_ws.root)
    assert "direct" in r.output and "no retrieval" in r.output and "classifier scores" in r.output
