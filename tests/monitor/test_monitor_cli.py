"""``ragtune monitor`` as a user runs it (real subprocesses on the monitored workspace), with
a real local HTTP server receiving the webhook alert."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest

from ragtune.evaluate.evalset import load_evalset
from tests.monitor.conftest import NONSENSE

pytestmark = pytest.mark.slow  # a dozen real subprocesses


def run(*args: str, home: Path, code: int = 0) -> subprocess.CompletedProcess:
    env = dict(os.environ, RAGTUNE_HOME=str(home), COLUMNS="200")
    p = subprocess.run([sys.executable, "-m", "ragtune.cli", *args], capture_output=True,
                       text=True, env=env, timeout=180, check=False)
    assert p.returncode == code, f"exit {p.returncode}\n{p.stdout}\n{p.stderr}"
    return p


def window(sc) -> list[str]:
    return ["--since", "7d", "--until", datetime.fromtimestamp(sc.until).isoformat()]


class Hook(BaseHTTPRequestHandler):
    received: ClassVar[list[dict]] = []
    status = 200

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        Hook.received.append({"path": self.path, "type": self.headers["Content-Type"],
                              "body": json.loads(body)})
        self.send_response(Hook.status)
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def webhook():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    Hook.received, Hook.status = [], 200
    yield f"http://127.0.0.1:{server.server_address[1]}/alerts"
    server.shutdown()
    thread.join(5)


def test_report_json_text_and_html(scenario, tmp_path) -> None:
    home = scenario.ws.root
    data = json.loads(run("monitor", *window(scenario), "--json", "--as", "root",
                          home=home).stdout)
    assert data["traffic"]["answers"] == 66 and data["period"]["days"] == 7
    anonymous = run("monitor", *window(scenario), "--json", home=home)
    assert json.loads(anonymous.stdout)["traffic"]["answers"] == 0
    assert "no answer records" in anonymous.stderr and "--as an admin" in anonymous.stderr
    html = tmp_path / "out" / "monitor.html"
    text = run("monitor", *window(scenario), "--html", str(html), "--as", "root",
               home=home).stdout
    assert "66 live answers in the last 7 days" in text and "refusal rate" in text
    assert "ALERT: refusal rate 0.136 is above 0.1 (66 answers)" in text
    assert "gap #1: 6 questions about" in text
    page = html.read_text()
    assert page.startswith("<!doctype html>") and "zorblax" in page
    bob = json.loads(run("monitor", *window(scenario), "--json", "--as", "bob", home=home).stdout)
    assert bob["traffic"]["answers"] == 2 and bob["viewer"] == "bob"


def test_check_exits_3_and_posts_the_alert(scenario, webhook) -> None:
    p = run("monitor", "check", *window(scenario), "--webhook", webhook, "--as", "root",
            home=scenario.ws.root, code=3)
    assert "ALERT refusal rate" in p.stdout and "ALERT stale documents 8 is above 0" in p.stdout
    (hit,) = Hook.received
    assert hit["path"] == "/alerts" and hit["type"] == "application/json"
    body = hit["body"]
    assert [a["name"] for a in body["alerts"]] == ["refusal_rate_max", "stale_documents_max"]
    assert body["answers"] == 66 and body["text"].startswith("ragtune monitor: refusal rate")
    Hook.status = 500  # a failing webhook is reported; the alerts still decide the exit code
    p = run("monitor", "check", *window(scenario), "--webhook", webhook, "--json", "--as",
            "root", home=scenario.ws.root, code=3)
    assert "answered HTTP 500" in p.stderr and json.loads(p.stdout)["webhook_status"] is None


def test_check_passes_on_a_quiet_workspace(tmp_path, webhook) -> None:
    home = tmp_path / "ws"
    env = dict(os.environ, RAGTUNE_HOME=str(home))
    subprocess.run([sys.executable, "-m", "ragtune.cli", "init", "--embedding", "fake",
                    "--generation", "fake"], env=env, check=True, capture_output=True)
    p = run("monitor", "check", "--webhook", webhook, home=home)
    assert p.stdout.startswith("ok: no threshold crossed") and Hook.received == []


def test_gaps_export_is_an_eval_set(scenario, tmp_path) -> None:
    out = tmp_path / "gaps.jsonl"
    p = run("monitor", "gaps", *window(scenario), "--export", str(out), "--cluster", "1",
            "--as", "root", home=scenario.ws.root)
    assert "#1 6 questions about" in p.stdout and "6 questions written" in p.stdout
    stub = load_evalset(out)
    assert sorted(q.question for q in stub.questions) == sorted(NONSENSE)
    data = json.loads(run("monitor", "gaps", *window(scenario), "--json", "--as", "root",
                          home=scenario.ws.root).stdout)
    assert data["questions"] == 17 and data["clusters"][0]["size"] == 6


def test_ask_prints_the_record_id_and_feedback_rates_it(scenario) -> None:
    home = scenario.ws.root
    out = run("ask", "How do I reset my VPN password?", "--as", "ana", home=home).stdout
    trace_id = out.split("rate it: ragtune monitor feedback ")[1].split()[0]
    p = run("monitor", "feedback", trace_id, "--down", "-m", "outdated", "--as", "ana", home=home)
    assert "recorded thumbs down" in p.stdout
    denied = run("monitor", "feedback", trace_id, "--up", "--as", "bob", home=home, code=2)
    assert "no answer record" in denied.stderr
    (fb,) = [f for f in scenario.ws.store.feedback() if f.trace_id == trace_id]
    assert (fb.rating, fb.comment, fb.principal) == (-1, "outdated", "ana")


def test_purge(scenario) -> None:
    before = len(scenario.ws.store.traces())
    denied = run("monitor", "purge", "--older-than", "8.5d", "--as", "ana",
                 home=scenario.ws.root, code=2)
    assert "needs an admin" in denied.stderr and len(scenario.ws.store.traces()) == before
    p = run("monitor", "purge", "--older-than", "8.5d", "--json", "--as", "root",
            home=scenario.ws.root)
    assert json.loads(p.stdout) == {"deleted": 30, "older_than": "8.5d"}
    assert len(scenario.ws.store.traces()) == before - 30
