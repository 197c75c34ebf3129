"""The CLI as a user runs it: a real subprocess, real workspace, fake models (fast)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import write

PY = sys.executable


def run(*args: str, home: Path, check: bool = True, env: dict | None = None) -> subprocess.CompletedProcess:
    e = dict(os.environ, RAGTUNE_HOME=str(home), RAGTUNE_EMBEDDING_BACKEND="fake",
             RAGTUNE_GENERATION_BACKEND="fake", COLUMNS="200",
             RAGTUNE_RETRIEVAL_MIN_SIMILARITY="0.15", **(env or {}))
    p = subprocess.run([PY, "-m", "ragtune.cli", *args], capture_output=True, text=True, env=e,
                       timeout=120)
    if check and p.returncode != 0:
        raise AssertionError(f"exit {p.returncode}\nstdout:{p.stdout}\nstderr:{p.stderr}")
    return p


@pytest.fixture
def home(tmp_path):
    h = tmp_path / "ws"
    run("init", home=h)
    cfg = h / "ragtune.toml"
    cfg.write_text(cfg.read_text().replace("admins = []", 'admins = ["root"]', 1)
                   .replace("[access.users]\n", '[access.users]\nana = ["hr"]\nbob = ["it"]\n', 1))
    return h


@pytest.fixture
def kb(tmp_path):
    write(tmp_path / "kb" / "returns.md", "# Returns\n\n## Window\n\nItems can be returned within 30 days of delivery.\n")
    write(tmp_path / "kb" / "vpn.md", "# VPN\n\n## Reset\n\nReset your VPN password at the IT portal.\n")
    write(tmp_path / "hr" / "salary.md", "# Salaries\n\n## Bands\n\nA senior engineer earns between 120000 and 150000 zorkmids.\n")
    return tmp_path


def test_ingest_ask_search_docs_rm(home, kb):
    out = run("ingest", str(kb / "kb"), "--json", home=home)
    assert len(json.loads(out.stdout)["added"]) == 2
    again = json.loads(run("ingest", str(kb / "kb"), "--json", home=home).stdout)
    assert len(again["unchanged"]) == 2 and again["added"] == []
    run("ingest", str(kb / "hr"), "--group", "hr", home=home)

    ans = json.loads(run("ask", "How many days to return items?", "--json", home=home).stdout)
    assert set(ans) >= {"answer", "citations", "refused", "trace"}
    assert ans["refused"] is False and "30 days" in ans["answer"]
    c = ans["citations"][0]
    assert set(c) == {"n", "document", "section", "chunk_id", "quote", "supported"}
    assert c["document"].endswith("returns.md") and c["supported"] is True
    assert "30 days" in c["quote"]
    assert ans["trace"]["retrieved"] and "total_s" in ans["trace"]["timings"]

    # access control: bob cannot see the salary document in search, ask, or docs
    bob = json.loads(run("search", "senior engineer salary zorkmids", "--as", "bob", "--json", home=home).stdout)
    assert all("salary" not in h["document"] for h in bob["hits"])
    ans_bob = run("ask", "What does a senior engineer earn in zorkmids?", "--as", "bob", "--json", home=home).stdout
    assert "zorkmids" not in ans_bob.replace("What does a senior engineer earn in zorkmids?", "")
    ana = json.loads(run("search", "senior engineer salary zorkmids", "--as", "ana", "--json", home=home).stdout)
    assert ana["hits"][0]["document"].endswith("salary.md")
    assert "salary.md" not in run("docs", "--json", home=home).stdout
    assert "salary.md" in run("docs", "--all", "--as", "root", "--json", home=home).stdout
    # the operator's views need an admin (issue 17 item 5)
    denied = run("docs", "--all", "--json", home=home, check=False)
    assert denied.returncode == 2 and "needs an admin" in denied.stderr and "salary" not in denied.stdout
    anon_status = json.loads(run("status", "--json", home=home).stdout)
    assert "restricted_documents" not in anon_status and "recent_failures" not in anon_status
    assert anon_status["documents"] == 2  # returns.md and vpn.md; salary.md is hr's
    admin_status = json.loads(run("status", "--as", "root", "--json", home=home).stdout)
    assert admin_status["documents"] == 3 and admin_status["restricted_documents"] == 1

    text = run("ask", "How many days to return items?", home=home).stdout
    assert "[1]" in text and "returns.md" in text

    run("rm", str(kb / "kb" / "returns.md"), home=home)
    docs = json.loads(run("docs", "--json", home=home).stdout)
    assert [Path(d["source"]).name for d in docs] == ["vpn.md"]
    status = json.loads(run("status", "--as", "root", "--json", home=home).stdout)
    assert status["documents"] == 2


def test_errors_are_one_clear_line(home, kb, tmp_path):
    write(tmp_path / "bad" / "ok.md", "# Fine\n\nSome text.\n")
    (tmp_path / "bad" / "empty.txt").write_text("")
    p = run("ingest", str(tmp_path / "bad"), home=home, check=False)
    assert p.returncode == 1  # some files failed; the rest went in
    assert "empty.txt" in p.stderr and "empty" in p.stderr and "Traceback" not in p.stderr
    assert "1 added" in p.stdout

    p = run("ask", "x?", "--as", "mallory", home=home, check=False)
    assert p.returncode == 2 and "unknown user 'mallory'" in p.stderr and "Traceback" not in p.stderr

    p = run("rm", "nope.md", home=home, check=False)
    assert p.returncode == 2 and "no document 'nope.md'" in p.stderr

    p = run("status", home=home, check=False, env={"RAGTUNE_RETRIEVAL_TOP_K": "many"})
    assert p.returncode == 2 and "retrieval.top_k" in p.stderr

    cfg = home / "ragtune.toml"
    cfg.write_text(cfg.read_text() + "\n[retrieval2]\nx = 1\n")
    p = run("status", home=home, check=False)
    assert p.returncode == 2 and "unknown config section 'retrieval2'" in p.stderr

    p = run("status", home=tmp_path / "nowhere", check=False)
    assert p.returncode == 2 and "no ragtune workspace" in p.stderr


def test_below_relevance_floor_refuses_without_generating(home, kb):
    run("ingest", str(kb / "kb"), home=home)
    ans = json.loads(run("ask", "Who won the 1998 football world cup?", "--json", home=home).stdout)
    assert ans["refused"] is True and ans["citations"] == []
    assert "knowledge base" in ans["answer"]
    assert any("relevance floor" in n for n in ans["trace"]["notes"])
