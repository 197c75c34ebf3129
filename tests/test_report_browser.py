"""report.html in a real browser: headless Chromium opens a report built from a real
compare run (fake models), renders the charts without errors or network access, and a
screenshot is kept in the test's tmp dir. At 1,280 and 800 px wide the page needs no
horizontal scroll, no two texts of a chart overlap or leave it, headers are plain words
explained in a legend, and costs read per 1,000 questions (no "6.2e-05").

Needs Debian's chromium (``apt-get install -y chromium``) and the Python ``playwright``
package (its bundled driver only; no ``playwright install``: the system Chromium is used).
Without them the test skips, except in CI (``CI`` set), where it fails.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import FAKE, write
from tests.evaluate.conftest import KB, QUESTIONS, adapter_reply, add_adapter

ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def _chromium() -> str:
    """The Chromium executable, or skip (fail in CI) saying what to install."""
    path = os.environ.get("RAGTUNE_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    problem = None
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        problem = "the 'playwright' package is missing: pip install playwright"
    if problem is None and not Path(path).exists():
        problem = "no Chromium: apt-get install -y chromium (or set RAGTUNE_CHROMIUM)"
    if problem:
        if os.environ.get("CI"):
            pytest.fail(f"browser test cannot run in CI: {problem}")
        pytest.skip(problem)
    return path


ADAPTER = "support-style"  # long system names are what made bar labels collide
@contextmanager
def open_page(path: Path) -> Iterator[tuple[Any, list[str], list[str]]]:
    """``path`` loaded in headless Chromium: (page, console/page errors, requested URLs);
    skips (fails in CI) without Chromium."""
    executable = _chromium()
    from playwright.sync_api import sync_playwright

    errors: list[str] = []
    requests: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=executable, args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1300, "height": 900})
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("request", lambda r: requests.append(r.url))
            page.goto(path.as_uri())
            page.wait_for_load_state("load")
            yield page, errors, requests
        finally:
            browser.close()


def read_charts(page: Any) -> list[dict[str, Any]]:
    """Every ``svg.chart`` as drawn: id, width, height, its marks' (tag, box width, box
    height), and how many break-even circles it has."""
    return page.evaluate("""() => [...document.querySelectorAll('svg.chart')].map(s => {
        const r = s.getBoundingClientRect();
        const marks = [...s.querySelectorAll('.mark')].map(el => {
            const b = el.getBBox(); return [el.tagName, b.width, b.height]; });
        return {id: s.id, w: r.width, h: r.height, marks,
                breakEven: s.querySelectorAll('circle.break-even').length};
    })""")


@pytest.fixture
def report_html(tmp_path, monkeypatch) -> Path:
    """report.html from a real compare over four systems (base, rag, adapter, RAFT)."""
    from ragtune.evaluate.compare import parse_systems, run_compare
    from ragtune.evaluate.evalset import load_evalset
    from ragtune.evaluate.report import write_reports
    from ragtune.generate.fake import FakeGenerator
    from ragtune.workspace import Workspace

    ws = Workspace.init(tmp_path / "ws", overrides=FAKE)
    for rel, text in KB.items():
        write(tmp_path / "kb" / rel, text)
    ws.ingest([tmp_path / "kb"])
    add_adapter(ws, ADAPTER)
    gen = FakeGenerator(reply=adapter_reply, name="fake-adapter")
    monkeypatch.setattr(ws.adapters, "generator", lambda adapter: gen)
    evalset = write(tmp_path / "eval.jsonl", "".join(json.dumps(q) + "\n" for q in QUESTIONS))
    data = run_compare(ws, load_evalset(evalset),
                       parse_systems(f"base,rag,finetuned:{ADAPTER},raft:{ADAPTER}"),
                       tmp_path / "out", index_seconds=20.0)
    return write_reports(data, tmp_path / "out")["html"]


LAYOUT = """() => {
    const boxes = (root, sel) => [...root.querySelectorAll(sel)].map(el => {
        const r = el.getBoundingClientRect();
        return {text: el.textContent, l: r.left, t: r.top, r: r.right, b: r.bottom};
    });
    return {
        scrollWidth: document.documentElement.scrollWidth, innerWidth: window.innerWidth,
        charts: [...document.querySelectorAll('svg.chart')].map(s => ({
            id: s.id, box: boxes(s.parentNode, '#' + s.id)[0], texts: boxes(s, 'text')})),
        headers: [...document.querySelectorAll('#metrics tr > th:first-child')].map(
            th => th.textContent),
        legend: [...document.querySelectorAll('#legend dt')].map(dt => dt.textContent),
        body: document.body.innerText,
    };
}"""


def _overlaps(a: dict, b: dict, slack: float = 0.5) -> bool:
    return (a["l"] < b["r"] - slack and b["l"] < a["r"] - slack
            and a["t"] < b["b"] - slack and b["t"] < a["b"] - slack)


@pytest.mark.parametrize("width", [1280, 800])
def test_report_fits_the_window_and_nothing_overlaps(report_html, tmp_path, width) -> None:
    executable = _chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=executable, args=ARGS)
        try:
            page = browser.new_page(viewport={"width": width, "height": 900})
            page.goto(report_html.as_uri())
            page.wait_for_load_state("load")
            layout = page.evaluate(LAYOUT)
            page.screenshot(path=str(tmp_path / f"report-{width}.png"), full_page=True)
        finally:
            browser.close()
    assert layout["innerWidth"] == width
    assert layout["scrollWidth"] <= width, f"horizontal scroll at {width} px"
    for chart in layout["charts"]:
        texts, box = chart["texts"], chart["box"]
        assert len(texts) >= 4, chart["id"]
        for t in texts:  # every text inside its chart
            assert (t["l"] >= box["l"] - 0.5 and t["r"] <= box["r"] + 0.5
                    and t["t"] >= box["t"] - 0.5 and t["b"] <= box["b"] + 0.5), (chart["id"], t)
        clashes = [(a["text"], b["text"]) for i, a in enumerate(texts) for b in texts[i + 1:]
                   if _overlaps(a, b)]
        assert clashes == [], (chart["id"], width, clashes)
    # the system names are all there as bar labels
    cost = next(c for c in layout["charts"] if c["id"] == "chart-cost")
    assert {t["text"] for t in cost["texts"]} >= {"base", "rag", f"finetuned:{ADAPTER}",
                                                   f"raft:{ADAPTER}"}
    # plain headers, each explained in the legend; no jargon, no exponents
    headers = layout["headers"][1:]  # the first is the corner cell
    assert "Answer F1 (0-100)" in headers and "Correct citations" in headers
    assert headers == layout["legend"]
    for jargon in ("cit. prec.", "emb. sim.", "EM", "p50 s", "$/query"):
        assert jargon not in headers
    assert "Cost per 1,000 questions" in headers
    assert not re.search(r"\$\d(\.\d+)?e-\d", layout["body"]), "a cost in exponent form"


def test_report_renders_in_headless_chromium(report_html, tmp_path) -> None:
    data = json.loads((report_html.parent / "report.json").read_text())
    n_systems = len(data["systems"])
    grid_lo, grid_hi = 10.0, data["break_even"]["max_volume"]
    markers = sum(1 for p in data["break_even"]["pairs"]
                  if p["volume"] and grid_lo <= p["volume"] <= grid_hi)
    with open_page(report_html) as (page, errors, requests):
        charts = read_charts(page)
        rows = page.locator("#questions tr").count()
        headline = page.locator("#recommendation .headline").inner_text()
        page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
    assert errors == []
    assert all(u.startswith("file://") for u in requests), requests  # self-contained
    by_id = {c["id"]: c for c in charts}
    assert set(by_id) == {"chart-accuracy-latency", "chart-cost", "chart-break-even"}
    for c in charts:
        assert c["w"] > 200 and c["h"] > 100, c["id"]
        assert c["marks"] and all(w > 0 or h > 0 for _, w, h in c["marks"]), c
    assert [m[0] for m in by_id["chart-accuracy-latency"]["marks"]] == ["circle"] * n_systems
    assert [m[0] for m in by_id["chart-cost"]["marks"]] == ["rect"] * n_systems
    lines = [m for m in by_id["chart-break-even"]["marks"] if m[0] == "polyline"]
    assert len(lines) == n_systems and all(w > 100 for _, w, _ in lines)
    assert by_id["chart-break-even"]["breakEven"] == markers
    assert rows == len(QUESTIONS) + 1
    assert headline == data["recommendation"]["headline"]
    assert (tmp_path / "report.png").stat().st_size > 10_000
