"""``ragtune store check`` and ``ragtune store migrate`` as a user runs them (subprocess)."""

from __future__ import annotations

import json

import pytest

from tests.conftest import write
from tests.test_cli import run

pytest.importorskip("psycopg", reason="pip install 'ragtune[postgres]'")
pytestmark = pytest.mark.integration


def test_migrate_a_sqlite_workspace_to_postgres_then_use_it(tmp_path, pg_url, pg_schema):
    home = tmp_path / "ws"
    run("init", home=home)
    kb = tmp_path / "kb"
    write(kb / "returns.md", "# Returns\n\nTents may be returned within 30 days.\n")
    write(kb / "vpn.md", "# VPN\n\nReset the VPN token from the portal.\n")
    write(kb / "pay.md", "# Pay\n\nSalary bands are reviewed in March.\n")
    run("ingest", str(kb / "returns.md"), str(kb / "vpn.md"), home=home)
    run("ingest", str(kb / "pay.md"), "--group", "hr", home=home)
    before = json.loads(run("search", "return tents", "--json", home=home).stdout)
    assert json.loads(run("store", "check", "--json", home=home).stdout)["problems"] == []

    url = f"{pg_url}?schema={pg_schema}"
    out = json.loads(run("store", "migrate", "--to", url, "--switch", "--json", home=home).stdout)
    assert (out["documents"], out["copied"], out["problems"]) == (3, 3, [])
    assert 'backend = "postgres"' in (home / "ragtune.toml").read_text()

    checked = json.loads(run("store", "check", "--json", home=home).stdout)
    assert checked == {"backend": "postgres", "documents": 3, "chunks": 3, "problems": []}
    after = json.loads(run("search", "return tents", "--json", home=home).stdout)
    assert [h["chunk_id"] for h in after["hits"]] == [h["chunk_id"] for h in before["hits"]]
    docs = json.loads(run("docs", "--json", home=home).stdout)
    assert {d["source"] for d in docs} == {str(kb / "returns.md"), str(kb / "vpn.md")}  # pay.md: hr


def test_migrate_refuses_what_is_not_postgres(tmp_path):
    home = tmp_path / "ws"
    run("init", home=home)
    p = run("store", "migrate", "--to", "mysql://x/y", home=home, check=False)
    assert p.returncode == 2 and "postgresql:// URL" in p.stderr


def test_readme_quick_start_with_a_local_postgres(tmp_path):
    """The README's PostgreSQL quick start, command by command."""
    import os
    import shutil
    import signal
    import subprocess
    import sys
    import tempfile
    from pathlib import Path

    from tests.conftest import free_port

    port = free_port()
    env = dict(os.environ, COLUMNS="200")
    data = Path(tempfile.mkdtemp(prefix="ragtune-pg-"))  # see conftest.pg_url: not under tmp_path
    server = subprocess.Popen([sys.executable, "-m", "ragtune.cli", "store", "local-postgres",
                               "--data", str(data / "pgdata"), "--port", str(port)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        line = server.stdout.readline()
        assert line.startswith("url = ") and f":{port}/" in line, server.stderr.read()
        url = line.split('"')[1]
        home = tmp_path / "ws"
        run("init", home=home)
        run("store", "migrate", "--to", url, "--switch", home=home)
        write(tmp_path / "docs" / "returns.md",
              "# Returns\n\n## Window\n\nItems can be returned within 30 days of delivery.\n")
        run("ingest", str(tmp_path / "docs"), home=home)
        ans = json.loads(run("ask", "How many days to return items?", "--json", home=home).stdout)
        assert ans["refused"] is False and ans["citations"][0]["document"].endswith("returns.md")
        assert json.loads(run("store", "check", "--json", home=home).stdout)["backend"] == "postgres"
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(30)
        shutil.rmtree(data, ignore_errors=True)
