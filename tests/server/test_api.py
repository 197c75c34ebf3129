"""ragtune's own API: search, ask, documents (upload, versions, delete, sync), adapters,
reports, feedback, audit, health; and its error contract (JSON with a message, never a
stack trace; 413, 422 with the field, per-file upload errors)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import httpx

from ragtune.server.keys import KeyStore
from tests.conftest import write
from tests.evaluate.conftest import add_adapter
from tests.server.conftest import SALARY_Q, serving

RETURNS_Q = "How many days can items be returned after delivery for online orders?"


def test_search_matches_the_workspace_and_respects_the_acl(served) -> None:
    with served.client("bob") as bob, served.client("ana") as ana:
        got = bob.post("/api/search", json={"query": "VPN password reset", "k": 3}).json()
        local = served.ws.search("VPN password reset", "bob", k=3)
        assert [h["chunk_id"] for h in got["hits"]] == [h.chunk.id for h in local.hits]
        assert got["found"] is True and got["mode"] == "fused"
        assert "zorblax" not in bob.post("/api/search", json={"query": SALARY_Q, "k": 10}).text
        assert "zorblax" in ana.post("/api/search", json={"query": SALARY_Q}).text
        r = bob.post("/api/search", json={"query": "vpn", "collections": ["hr"], "mode": "lexical"})
        assert r.json()["hits"] == []
        assert bob.post("/api/search", json={"query": ""}).status_code == 422


def test_ask_returns_the_answer_and_its_trace(served) -> None:
    with served.client("ana") as ana:
        body = ana.post("/api/ask", json={"question": RETURNS_Q}).json()
    assert "30 days" in body["answer"] and body["citations"][0]["supported"]
    assert body["trace"]["retrieved"] and body["trace"]["id"] == body["id"]
    assert body["trace"]["caller"] == {"auth": "key", "subject": served.ws.store.traces()[-1]
                                       .answer["trace"]["caller"]["subject"],
                                       "groups": ["hr"], "admin": False}


def test_upload_versions_and_per_file_errors(served, tmp_path) -> None:
    big = "# Big\n\n" + "word " * 10
    with served.client("root") as root:
        r = root.post("/api/documents", data={"collection": "team", "groups": "hr, it"}, files=[
            ("files", ("zeppelin.md", b"# Zeppelin\n\nThe company zeppelin is teal.\n")),
            ("files", ("broken.pdf", b"%PDF-1.4 not really")),
            ("files", ("notes.exe", b"MZ\x90\x00")),
            ("files", ("../../etc/passwd", b"x")),
            ("files", ("big.md", big.encode()))])
        assert r.status_code == 200
        results = {f["file"]: f for f in r.json()["files"]}
        assert results["zeppelin.md"]["status"] == "added" and results["big.md"]["status"] == "added"
        assert results["broken.pdf"]["status"] == "failed" and "PDF" in results["broken.pdf"]["error"]
        assert results["notes.exe"]["status"] == "failed"
        assert "unsupported" in results["notes.exe"]["error"].lower()
        assert results["../../etc/passwd"]["status"] == "failed"  # names only, no paths
        assert r.json()["stored"] == 2 and r.json()["failed"] == 3
        uploads = served.ws.root / "uploads" / "team"
        assert sorted(p.name for p in uploads.iterdir()) == ["big.md", "zeppelin.md"]
        doc_id = results["zeppelin.md"]["document"]
        doc = root.get(f"/api/documents/{doc_id}").json()
        assert (doc["collection"], doc["groups"], doc["version"], doc["file"]) == (
            "team", ["hr", "it"], 1, "current")
        # the same bytes again: unchanged; new content: version 2
        again = root.post("/api/documents", data={"collection": "team", "groups": "hr,it"},
                          files={"files": ("zeppelin.md", b"# Zeppelin\n\nThe company zeppelin is teal.\n")})
        assert again.json()["files"][0]["status"] == "unchanged"
        v2 = root.post("/api/documents", data={"collection": "team", "groups": "hr,it"},
                       files={"files": ("zeppelin.md", b"# Zeppelin\n\nThe zeppelin is now red.\n")})
        assert v2.json()["files"][0]["status"] == "updated"
        doc = root.get(f"/api/documents/{doc_id}").json()
        assert [v["version"] for v in doc["versions"]] == [1, 2]
        # a corrupt replacement fails and leaves version 2 and its file in place
        bad = root.post("/api/documents", data={"collection": "team", "groups": "hr,it"},
                        files={"files": ("zeppelin.md", b"")})
        assert bad.json()["files"][0]["status"] == "failed"
        assert "red" in (uploads / "zeppelin.md").read_text()
        assert root.get(f"/api/documents/{doc_id}").json()["version"] == 2
        assert not list(uploads.glob(".partial-*"))
    with served.client("bob") as bob:  # bob (it) reads it; a user in neither group does not
        assert bob.get(f"/api/documents/{doc_id}").status_code == 200
    served.tokens["eve"] = KeyStore(served.ws.root / "keys.json").create("eve")[1]
    with served.client("eve") as eve:
        assert eve.get(f"/api/documents/{doc_id}").status_code == 404
        assert doc_id not in eve.get("/api/documents").text


def test_delete_removes_text_everywhere_and_strips_the_audit_trail(served) -> None:
    with served.client("root") as root, served.client("ana") as ana:
        up = root.post("/api/documents", files={"files": (
            "zeppelin.md", b"# Zeppelin\n\nThe company zeppelin is painted teal.\n")}).json()
        doc_id = up["files"][0]["document"]
        answer = ana.post("/api/ask", json={"question": "What colour is the company zeppelin?"}).json()
        assert "teal" in answer["answer"]
        r = root.delete(f"/api/documents/{doc_id}")
        assert r.status_code == 200 and r.json()["deleted"]["id"] == doc_id
        assert root.delete(f"/api/documents/{doc_id}").status_code == 404
        assert not (served.ws.root / "uploads" / "default" / "zeppelin.md").exists()
        after = ana.post("/api/ask", json={"question": "What colour is the company zeppelin?"}).json()
        assert "teal" not in after["answer"]
        hits = ana.post("/api/search", json={"query": "zeppelin painted teal"}).json()["hits"]
        assert "teal" not in json.dumps(hits)
        audit = root.get("/api/audit").json()
        entry = next(e for e in audit if e["id"] == answer["id"])
        assert entry["redacted"] == [doc_id] and any(c.endswith("zeppelin.md") for c in entry["cited"])
        raw = json.dumps([t.answer for t in served.ws.store.traces()])
        assert "teal" not in raw  # quotes, prompt and answer text gone; ids kept


def test_sync_a_server_folder(served, tmp_path) -> None:
    folder = tmp_path / "shared"
    write(folder / "a.md", "# A\n\nAlpha facts.\n")
    write(folder / "b.md", "# B\n\nBeta facts.\n")
    with served.client("root") as root:
        r = root.post("/api/documents/sync", json={"path": str(folder), "collection": "shared"})
        assert r.status_code == 200 and len(r.json()["added"]) == 2
        (folder / "b.md").unlink()
        r = root.post("/api/documents/sync", json={"path": str(folder), "collection": "shared"})
        assert [p.rsplit("/", 1)[-1] for p in r.json()["removed"]] == ["b.md"]
        r = root.post("/api/documents/sync", json={"path": str(tmp_path / "nope")})
        assert r.status_code == 400 and "no such folder" in r.json()["error"]["message"]


def test_sync_stays_under_sync_roots(tmp_path) -> None:
    with serving(tmp_path, server={"sync_roots": [str(tmp_path / "kb")]}) as served, \
            served.client("root") as root:
        r = root.post("/api/documents/sync", json={"path": str(tmp_path)})
        assert r.status_code == 403 and "server.sync_roots" in r.json()["error"]["message"]
        r = root.post("/api/documents/sync", json={"path": "a\u0000b"})  # found by the fuzzer
        assert r.status_code == 400 and "not a usable path" in r.json()["error"]["message"]


def test_adapters_reports_feedback_and_health(served, tmp_path) -> None:
    add_adapter(served.ws, "style", trained_on=(str(served.kb / "policies/returns.md"),))
    with served.client("root") as root, served.client("ana") as ana:
        (adapter,) = ana.get("/api/adapters").json()
        assert adapter["name"] == "style" and adapter["lineage_documents"] == 1
        assert adapter["freshness"]["tracked"] and adapter["freshness"]["stale"] is False
        write(served.kb / "policies/returns.md", "# Returns\n\nReturns now take 60 days.\n")
        served.ws.ingest([served.kb / "policies/returns.md"])
        (adapter,) = ana.get("/api/adapters").json()
        assert adapter["freshness"]["stale"] is True and "changed (v1 -> v2)" in adapter["freshness"]["summary"]
        assert ana.get("/api/adapters/nope").status_code == 404
        assert root.get("/api/reports").json() == []
        report = served.ws.root / "compare" / "kb"
        write(report / "report.json", json.dumps({"ragtune_report": 1, "systems": [{"name": "rag"}],
                                                  "recommendation": {"headline": "Use RAG"}}))
        write(report / "report.html", "<html><body>Use RAG</body></html>")
        (listed,) = root.get("/api/reports").json()
        assert (listed["name"], listed["headline"], listed["html"]) == ("compare/kb", "Use RAG", True)
        assert root.get("/api/reports/compare/kb").json()["systems"] == [{"name": "rag"}]
        html = root.get("/api/reports/compare/kb/html")
        assert html.headers["content-type"].startswith("text/html") and "Use RAG" in html.text
        assert root.get("/api/reports/../keys.json").status_code == 404
        answer = ana.post("/api/ask", json={"question": RETURNS_Q}).json()
        r = ana.post("/api/feedback", json={"answer_id": answer["id"], "rating": "down",
                                            "comment": "missed the holiday rule"})
        assert r.status_code == 201 and r.json()["recorded"]
        (vote,) = served.ws.store.feedback()
        assert (vote.trace_id, vote.principal, vote.rating, vote.comment) == (
            answer["id"], "ana", -1, "missed the holiday rule")
        r = root.post("/api/feedback", json={"answer_id": "0123abcd", "rating": "up"})
        assert r.status_code == 404 and r.json()["error"]["message"]  # no such answer
        r = ana.post("/api/feedback", json={"answer_id": answer["id"], "rating": "meh"})
        assert r.status_code == 422 and r.json()["error"]["fields"][0]["field"] == "rating"
    assert httpx.get(served.url + "/api/health").json() == {"status": "ok"}
    ready = httpx.get(served.url + "/api/ready").json()
    assert ready["status"] == "ready" and ready["queue"]["slots"] == 1


def test_audit_who_asked_what_as_whom(served) -> None:
    with served.client("ana") as ana, served.client("bob") as bob, served.client("root") as root:
        ana.post("/api/ask", json={"question": SALARY_Q})
        bob.post("/api/ask", json={"question": SALARY_Q})
        log = root.get("/api/audit", params={"limit": 10}).json()
        assert [e["user"] for e in log] == ["ana", "bob"]
        a, b = log
        assert a["via"].startswith("key:") and a["groups"] == ["hr"] and a["question"] == SALARY_Q
        assert any(c.endswith("salaries.md") for c in a["cited"])
        assert a["latency_s"] > 0 and a["tokens"]["completion"] > 0 and a["model"] == "fake"
        # bob's entry holds only what bob could read
        assert not any("salaries" in json.dumps(x) for x in (b["retrieved"], b["cited"]))
        assert [e["user"] for e in root.get("/api/audit", params={"user": "bob"}).json()] == ["bob"]
        # a filter given twice is refused, not half-applied
        r = root.get("/api/audit", params=[("user", "bob"), ("user", "ana")])
        assert r.status_code == 422 and r.json()["error"]["fields"][0]["field"] == "user"
        assert "more than once" in r.json()["error"]["message"]
        r = root.get("/api/audit", params={"usr": "bob"})  # a typo is not "no filter"
        assert r.status_code == 422 and r.json()["error"]["fields"][0]["field"] == "usr"
        assert "takes: limit, origin, since, user" in r.json()["error"]["message"]
    out = subprocess.run([sys.executable, "-m", "ragtune.cli", "audit", "--json",
                          "--workspace", str(served.ws.root), "--user", "ana"],
                         capture_output=True, text=True, check=True)
    (entry,) = json.loads(out.stdout)
    assert entry["user"] == "ana" and entry["groups"] == ["hr"]
    table = subprocess.run([sys.executable, "-m", "ragtune.cli", "audit", "--since", "1d",
                            "--workspace", str(served.ws.root)], capture_output=True, text=True,
                           check=True, env={**os.environ, "COLUMNS": "200"}).stdout
    assert "ana [hr]" in table and "salaries.md" in table


def test_errors_are_json_with_a_message_and_never_a_traceback(tmp_path, monkeypatch) -> None:
    with serving(tmp_path, server={"max_upload_mb": 0.01}) as served, \
            served.client("root") as root:
        r = root.post("/api/documents", files={"files": ("big.md", b"x" * 20_000)})
        assert r.status_code == 413 and "max_upload_mb" in r.json()["error"]["message"]

        def chunked():  # no Content-Length: counted as it arrives
            yield b'--b\r\nContent-Disposition: form-data; name="files"; filename="a.md"\r\n\r\n'
            for _ in range(40):
                yield b"y" * 1000
            yield b"\r\n--b--\r\n"

        r = root.post("/api/documents", content=chunked(),
                      headers={"Content-Type": "multipart/form-data; boundary=b"})
        assert r.status_code == 413 and r.json()["error"]["type"] == "payload_too_large"
        assert not (served.ws.root / "uploads" / "default" / "a.md").exists()

        def boom(*a, **kw):
            raise RuntimeError("secret internals /etc/shadow")

        monkeypatch.setattr(served.ws, "search", boom)
        r = root.post("/api/search", json={"query": "vpn"})
        assert r.status_code == 500
        assert r.json() == {"error": {"message": "internal error; the details are in the "
                                                 "server log", "type": "internal_error"}}
        r = root.get("/api/nowhere")
        assert r.status_code == 404 and r.json()["error"]["message"] == "Not Found"
        r = root.post("/api/search", json={"query": "vpn", "k": "many"})
        assert r.status_code == 422 and r.json()["error"]["fields"][0]["field"] == "k"
        r = root.post("/api/search", content=b"{not json", headers={"Content-Type": "application/json"})
        assert r.status_code == 422 and "Traceback" not in r.text
