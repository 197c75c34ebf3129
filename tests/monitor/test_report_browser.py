"""The monitor's report.html in headless Chromium (as tests/test_report_browser.py does for
the bake-off): it renders its charts from the scenario's report without errors and
without any network request, and a screenshot is kept in the test's tmp dir."""

from __future__ import annotations

from ragtune.monitor.report import render_html
from tests.monitor.conftest import DAY
from tests.test_report_browser import open_page, read_charts


def test_monitor_report_renders_in_headless_chromium(scenario, tmp_path) -> None:
    from ragtune.monitor.health import monitor_report

    report, _, _ = monitor_report(scenario.ws, since=scenario.until - 7 * DAY, until=scenario.until)
    page_file = tmp_path / "monitor.html"
    page_file.write_text(render_html(report), encoding="utf-8")
    with open_page(page_file) as (page, errors, requests):
        charts = read_charts(page)
        alerts = page.locator("#alerts li").all_inner_texts()
        gaps = page.locator("div.gap .headline").all_inner_texts()
        modes = page.locator("#quality-modes tr").count()
        stale = page.locator("#freshness-adapters .bad").count()
        page.screenshot(path=str(tmp_path / "monitor.png"), full_page=True)
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
