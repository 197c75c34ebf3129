"""The monitor's report.html in headless Chromium (as tests/test_report_browser.py does for
the bake-off): it renders its charts from the scenario's report without errors and
without any network request, and a screenshot is kept in the test's tmp dir."""

from __future__ import annotations

from ragtune.monitor.report import render_html
from tests.monitor.conftest import DAY
from tests.test_report_browser import ARGS, _chromium


def test_monitor_report_renders_in_headless_chromium(scenario, tmp_path) -> None:
    from ragtune.monitor.health import monitor_report

    executable = _chromium()
    from playwright.sync_api import sync_playwright

    report, _, _ = monitor_report(scenario.ws, since=scenario.until - 7 * DAY, until=scenario.until)
    page_file = tmp_path / "monitor.html"
    page_file.write_text(render_html(report), encoding="utf-8")
    errors: list[str] = []
    requests: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=executable, args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1300, "height": 900})
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("request", lambda r: requests.append(r.url))
            page.goto(page_file.as_uri())
            page.wait_for_load_state("load")
            charts = page.evaluate("""() => [...document.querySelectorAll('svg.chart')].map(s => {
                const r = s.getBoundingClientRect();
                const marks = [...s.querySelectorAll('.mark')].map(el => {
                    const b = el.getBBox(); return [el.tagName, b.width, b.height]; });
                return {id: s.id, w: r.width, h: r.height, marks};
            })""")
            alerts = page.locator("#alerts li").all_inner_texts()
            gaps = page.locator("div.gap .headline").all_inner_texts()
            modes = page.locator("#quality-modes tr").count()
            stale = page.locator("#freshness-adapters .bad").count()
            page.screenshot(path=str(tmp_path / "monitor.png"), full_page=True)
        finally:
            browser.close()
    assert errors == []
    assert all(u.startswith("file://") for u in requests), requests
    by_id = {c["id"]: c for c in charts}
    assert set(by_id) == {"chart-quality-days", "chart-gaps", "chart-similarity", "chart-routes"}
    for c in charts:
        assert c["w"] > 200 and c["h"] > 100, c["id"]
        assert c["marks"] and all(w > 0 or h > 0 for _, w, h in c["marks"]), c
    points = sum(v is not None for d in report["quality"]["by_day"] for k, v in d.items()
                 if k not in {"day", "answers"})
    assert len(by_id["chart-quality-days"]["marks"]) == points
    assert len(by_id["chart-gaps"]["marks"]) == min(8, len(report["gaps"]["clusters"]))
    bins = len(report["drift"]["corpus"]["histogram"]["edges"]) - 1
    assert [m[0] for m in by_id["chart-similarity"]["marks"]] == ["rect"] * 2 * bins
    assert len(by_id["chart-routes"]["marks"]) == 2 * len(report["drift"]["routes"])
    assert alerts == [a["message"] for a in report["alerts"]]
    assert gaps == [f"#{c['rank']} {c['headline']}" for c in report["gaps"]["clusters"]]
    assert modes == len(report["quality"]["by_mode"]) + 1 and stale == 1
    assert (tmp_path / "monitor.png").stat().st_size > 20_000
