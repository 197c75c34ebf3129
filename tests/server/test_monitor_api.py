"""Monitoring through the server: /metrics in the Prometheus text format, counted from the
answers this server gave, and the monitor report (JSON and HTML), admins only."""

from __future__ import annotations

import re

from prometheus_client.parser import text_string_to_metric_families

RETURNS_Q = "How many days can items be returned after delivery for online orders?"


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_metrics_count_the_answers_and_need_an_admin(served) -> None:
    with served.client("root") as root, served.client("ana") as ana:
        before = samples(root.get("/metrics").text)
        assert ("ragtune_answers_total", (("mode", "rag"), ("outcome", "answered"))) not in before
        for _ in range(3):
            assert ana.post("/api/ask", json={"question": RETURNS_Q}).status_code == 200
        r = root.get("/metrics")
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
        got = samples(r.text)
        assert got[("ragtune_answers_total", (("mode", "rag"), ("outcome", "answered")))] == 3
        assert got[("ragtune_answer_seconds_count", (("mode", "rag"),))] == 3
        assert got[("ragtune_citations_total", (("supported", "true"),))] >= 2
        assert got[("ragtune_queue_depth", ())] == 0
        assert got[("ragtune_store_documents", ())] == len(served.ws.store.list_documents(None))
        assert got[("ragtune_answer_records", ())] >= 3
        assert ana.get("/metrics").status_code == 403
    with served.client() as nobody:
        assert nobody.get("/metrics").status_code == 401


def test_the_monitor_report_over_http(served) -> None:
    with served.client("root") as root, served.client("ana") as ana:
        for _ in range(2):
            ana.post("/api/ask", json={"question": RETURNS_Q})
        report = root.get("/api/monitor", params={"since": "1d"}).json()
        assert report["quality"]["overall"]["refusal_rate"]["n"] == 2  # the two answers above
        html = root.get("/api/monitor/html")
        assert html.status_code == 200 and html.headers["content-type"].startswith("text/html")
        assert re.search(r"<html", html.text) and "Knowledge gaps" in html.text
        bad = root.get("/api/monitor", params={"since": "soon"})
        assert bad.status_code == 400 and "soon" in bad.json()["error"]["message"]
        assert ana.get("/api/monitor").status_code == 403
        assert "monitor" in [p["id"] for p in root.get("/api/me").json()["pages"]]
        assert "monitor" not in [p["id"] for p in ana.get("/api/me").json()["pages"]]
