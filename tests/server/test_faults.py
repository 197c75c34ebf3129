"""``ragtune serve`` as a user runs it (a separate process, keys made with the CLI), killed
with SIGKILL in the middle of an upload: the store stays consistent, half-written files are
cleaned up at the next start, and uploading again works."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import FAKE, free_port, write

pytestmark = pytest.mark.slow
N = 120  # files in the upload that is killed while ingesting


def ragtune(ws: Path, *args: str) -> str:
    return subprocess.run([sys.executable, "-m", "ragtune.cli", *args, "--workspace", str(ws)],
                          capture_output=True, text=True, check=True).stdout


def start(ws: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "ragtune.cli", "serve", "--port", str(port),
                             "--workspace", str(ws)], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(url + "/api/ready", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"server did not start: {proc.stdout.read()}")
        time.sleep(0.2)


def multipart(files: dict[str, bytes], boundary: str = "b0undary") -> bytes:
    out = b""
    for name, data in files.items():
        out += (f"--{boundary}\r\nContent-Disposition: form-data; name=\"files\"; "
                f"filename=\"{name}\"\r\nContent-Type: text/markdown\r\n\r\n").encode()
        out += data + b"\r\n"
    return out + f"--{boundary}--\r\n".encode()


def test_killed_mid_upload_leaves_the_store_consistent(tmp_path) -> None:
    from ragtune.store.sqlite import SQLiteStore
    from ragtune.workspace import Workspace

    ws = Workspace.init(tmp_path / "ws", overrides=FAKE)
    ws.ingest([write(tmp_path / "kb" / "vpn.md", "# VPN\n\nReset it at the IT portal.\n")])
    created = json.loads(ragtune(ws.root, "keys", "create", "root", "--admin", "--json"))
    listed = ragtune(ws.root, "keys", "list")
    assert created["id"] in listed and created["token"] not in listed
    auth = {"Authorization": f"Bearer {created['token']}"}

    # 1. killed while the body is still arriving
    proc, url = start(ws.root)
    body = multipart({"half.md": b"# Half\n\n" + b"lorem ipsum " * 200_000})
    port = int(url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall((f"POST /api/documents HTTP/1.1\r\nHost: x\r\nAuthorization: {auth['Authorization']}"
                   f"\r\nContent-Type: multipart/form-data; boundary=b0undary\r\n"
                   f"Content-Length: {len(body)}\r\n\r\n").encode())
        s.sendall(body[: len(body) // 2])
        time.sleep(0.5)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)

    # 2. killed while many uploaded files are being ingested
    proc, url = start(ws.root)
    files = {f"doc{i:03}.md": f"# Doc {i}\n\nFact number {i} about the fleet.\n".encode()
             for i in range(N)}
    uploads = ws.root / "uploads" / "default"

    def send() -> None:
        try:
            httpx.post(url + "/api/documents", headers={**auth, "Content-Type":
                       "multipart/form-data; boundary=b0undary"}, content=multipart(files),
                       timeout=60)
        except httpx.HTTPError:
            pass  # the server died under it

    sender = threading.Thread(target=send)
    sender.start()
    deadline = time.monotonic() + 60
    while not (uploads.is_dir() and any(p.name.startswith("doc") for p in uploads.iterdir())):
        assert time.monotonic() < deadline
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    sender.join(60)

    store = SQLiteStore(ws.root / "store.db")
    assert store.integrity_check() == []
    stored = [d for d in store.list_documents() if Path(d.source).name.startswith("doc")]
    assert len(stored) < N  # it really died in the middle
    assert all(d.chunks == 1 for d in stored)  # every document whole
    store.close()

    # 3. the next start cleans up and uploading again completes the job
    proc, url = start(ws.root)
    try:
        assert not list((ws.root / "uploads").rglob(".partial-*"))
        r = httpx.post(url + "/api/documents", headers={**auth, "Content-Type":
                       "multipart/form-data; boundary=b0undary"}, content=multipart(files),
                       timeout=120)
        assert r.status_code == 200 and r.json()["failed"] == 0
        docs = httpx.get(url + "/api/documents", headers=auth).json()
        assert sum(Path(d["source"]).name.startswith("doc") for d in docs) == N
        hits = httpx.post(url + "/api/search", headers=auth,
                          json={"query": "Doc 77 fact number 77", "mode": "lexical"}).json()["hits"]
        assert hits[0]["document"].endswith("doc077.md")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(20)
    assert ragtune(ws.root, "keys", "revoke", created["id"]).startswith("revoked")
    assert "revoked" in ragtune(ws.root, "keys", "list")


def test_several_workers_serve_one_workspace(tmp_path) -> None:
    """``--workers 2``: uvicorn's worker processes each open the workspace (app_from_env)."""
    from ragtune.workspace import Workspace

    ws = Workspace.init(tmp_path / "ws", overrides=FAKE)
    ws.ingest([write(tmp_path / "kb" / "vpn.md", "# VPN\n\nReset it at the IT portal.\n")])
    token = json.loads(ragtune(ws.root, "keys", "create", "ana", "--json"))["token"]
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "ragtune.cli", "serve", "--port", str(port),
                             "--workers", "2", "--workspace", str(ws.root)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                if httpx.get(url + "/api/ready", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.3)
        for _ in range(4):  # new connections: spread over the workers
            r = httpx.post(url + "/api/search", json={"query": "VPN reset"},
                           headers={"Authorization": f"Bearer {token}"})
            assert r.status_code == 200 and r.json()["hits"]
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)


def test_readme_serve_quick_start(tmp_path) -> None:
    """The README's "Serve it to your team": a key made with the CLI, ``ragtune serve``, the
    web app and an OpenAI client with that key."""
    from openai import OpenAI

    from ragtune.workspace import Workspace

    ws = Workspace.init(tmp_path / "ws", overrides=FAKE)
    ws.ingest([write(tmp_path / "kb" / "vpn.md", "# VPN\n\nReset it at the IT portal.\n")])
    out = ragtune(ws.root, "keys", "create", "ana", "--admin")
    token = next(w for w in out.split() if w.startswith("rtk_"))  # shown once
    proc, url = start(ws.root)
    try:
        page = httpx.get(url + "/")
        assert page.status_code == 200 and "<html" in page.text.lower()
        me = httpx.get(url + "/api/me", headers={"Authorization": f"Bearer {token}"}).json()
        assert (me["user"], me["admin"]) == ("ana", True)
        chat = OpenAI(base_url=url + "/v1", api_key=token).chat.completions.create(
            model="ragtune-rag", messages=[{"role": "user", "content": "How do I reset the VPN?"}])
        assert chat.choices[0].message.content
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
