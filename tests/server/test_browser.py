"""The web app in real headless Chromium (Debian's, driven by Playwright): sign in, ask with
streaming and citations, open a cited passage, upload by drag and drop with per-file
results, ask about the upload, delete it (with confirmation) and see the answer change;
as a non-admin, no admin pages and 403 from the API.

Screenshots go to ``test-artifacts/browser/`` (``$RAGTUNE_ARTIFACTS`` overrides; ignored by
git). Without Chromium or Playwright the tests skip, except in CI where they fail.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from ragtune.generate.fake import FakeGenerator, default_reply
from tests.conftest import write
from tests.evaluate.conftest import add_adapter
from tests.server.conftest import SALARY_Q
from tests.test_report_browser import ARGS, _chromium

pytestmark = pytest.mark.slow
ARTIFACTS = Path(os.environ.get("RAGTUNE_ARTIFACTS", Path(__file__).resolve().parents[2]
                                / "test-artifacts")) / "browser"
ZEPPELIN = "# Zeppelin\n\nThe company zeppelin is painted teal and named Aurora.\n"


@pytest.fixture
def browser():
    executable = _chromium()
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=executable, args=ARGS)
        try:
            yield b
        finally:
            b.close()


def open_page(browser, url: str, errors: list[str]):
    page = browser.new_page(viewport={"width": 1366, "height": 860})
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.goto(url)
    return page


def sign_in(page, token: str) -> None:
    page.get_by_label("API key").fill(token)
    page.get_by_role("button", name="Sign in").click()
    page.locator("#user-name").wait_for()


def ask(page, question: str) -> str:
    """Ask in the chat; returns the finished answer's text."""
    turns = page.locator(".turn").count()
    page.get_by_label("Question").fill(question)
    page.keyboard.press("Enter")
    turn = page.locator(".turn").nth(turns)
    turn.locator(".actions button.copy, .error").first.wait_for(timeout=20_000)
    return turn.locator(".answer").inner_text()


def test_admin_asks_uploads_and_deletes(served, browser) -> None:
    add_adapter(served.ws, "style", trained_on=(str(served.kb / "policies/returns.md"),))
    write(served.kb / "policies/returns.md", "# Returns\n\n## Window\n\nItems can be returned "
          "within 30 days of delivery for online orders.\n\n## Note\n\nUpdated.\n")
    served.ws.ingest([served.kb / "policies/returns.md"])  # the adapter is now stale
    report = served.ws.root / "compare" / "kb_eval"
    write(report / "report.json", json.dumps({"ragtune_report": 1, "systems": [{"name": "rag"}],
                                              "recommendation": {"headline": "Serve RAG"}}))
    write(report / "report.html", "<html><body><h1 id='headline'>Serve RAG</h1></body></html>")
    errors: list[str] = []
    page = open_page(browser, served.url, errors)
    page.get_by_label("API key").wait_for()
    assert page.get_by_role("heading", name="Sign in").is_visible()
    page.get_by_label("API key").fill("rtk_nope_nope")
    page.get_by_role("button", name="Sign in").click()
    page.get_by_text("That key was not accepted").wait_for()
    errors.clear()  # the refused key's 401 is logged by the browser as a failed request
    sign_in(page, served.tokens["root"])
    assert page.locator("#user-name").inner_text() == "root"
    assert "admin" in page.locator("#user-groups").inner_text()
    assert page.get_by_role("link", name="Documents").is_visible()

    # ask, stream, open the cited passage
    page.locator("#question").wait_for()
    models = page.locator("#model option").all_inner_texts()
    assert models[:2] == ["ragtune-rag", "ragtune-base"]
    answer = ask(page, "How many days can items be returned after delivery for online orders?")
    assert "30 days" in answer and "[1]" in answer
    page.locator(".turn").last.locator("button.cite").first.click()
    quote = page.locator("#source-quote")
    assert "30 days" in quote.inner_text()
    assert page.evaluate("document.activeElement.id") == "source-title"  # keyboard users follow
    page.screenshot(path=str(ARTIFACTS / "1-answer-with-source.png"), full_page=True)

    # upload by drag and drop: one good file, one corrupt PDF; per-file results
    page.get_by_role("link", name="Documents").click()
    page.locator("#dropzone").wait_for()
    page.evaluate("""([good, bad]) => {
        const dt = new DataTransfer();
        dt.items.add(new File([good], 'zeppelin.md', {type: 'text/markdown'}));
        dt.items.add(new File([bad], 'broken.pdf', {type: 'application/pdf'}));
        document.getElementById('dropzone').dispatchEvent(
            new DragEvent('drop', {dataTransfer: dt, bubbles: true, cancelable: true}));
    }""", [ZEPPELIN, "%PDF-1.4 this is not really a pdf"])
    ok = page.locator('#upload-progress li[data-file="zeppelin.md"].ok')
    failed = page.locator('#upload-progress li[data-file="broken.pdf"].failed')
    ok.wait_for()
    failed.wait_for()
    assert "added" in ok.inner_text()
    assert "failed" in failed.inner_text() and "broken.pdf" in failed.inner_text()
    row = page.locator('#documents tr[data-source="zeppelin.md"]')
    row.wait_for()
    assert page.locator('#documents tr[data-source="broken.pdf"]').count() == 0
    page.screenshot(path=str(ARTIFACTS / "2-upload.png"), full_page=True)

    # ask about the upload (the conversation is kept: a new one starts on a new topic)
    page.get_by_role("link", name="Ask").click()
    page.locator(".turn").first.wait_for()
    assert page.locator(".turn").count() == 1
    page.get_by_role("button", name="New conversation").click()
    answer = ask(page, "What colour is the company zeppelin?")
    assert "teal" in answer
    assert "zeppelin.md" in page.locator(".turn").last.locator(".citations").inner_text()

    # delete it, with confirmation, and see the answer change
    page.get_by_role("link", name="Documents").click()
    row.wait_for()
    row.get_by_role("button", name="Delete zeppelin.md").click()
    dialog = page.locator("#confirm-delete")
    assert dialog.is_visible() and "cannot be undone" in dialog.inner_text()
    page.screenshot(path=str(ARTIFACTS / "3-confirm-delete.png"))
    dialog.get_by_role("button", name="Delete").click()
    row.wait_for(state="detached")
    page.get_by_role("link", name="Ask").click()
    page.get_by_role("button", name="New conversation").click()
    answer = ask(page, "What colour is the company zeppelin?")
    assert "teal" not in answer
    page.screenshot(path=str(ARTIFACTS / "4-after-delete.png"), full_page=True)

    # adapters: lineage and staleness; the latest bake-off report one click away
    page.get_by_role("link", name="Adapters").click()
    row = page.locator('#adapters tr[data-adapter="style"]')
    row.wait_for()
    assert "STALE" in row.inner_text() and "1 documents" in row.inner_text()
    page.get_by_role("link", name="Reports").click()
    page.get_by_role("button", name="Open the latest bake-off report").click()
    frame = page.frame_locator("#report-frame")
    assert frame.locator("#headline").inner_text() == "Serve RAG"
    page.screenshot(path=str(ARTIFACTS / "6-report.png"), full_page=True)

    # the monitor: this session's answers, in the page
    page.get_by_role("link", name="Monitor").click()
    monitor = page.frame_locator("#monitor-frame")
    assert monitor.locator("h1").inner_text().startswith("ragtune monitor")
    assert "Knowledge gaps" in monitor.locator("body").inner_text()
    page.get_by_label("Period").select_option("30d")
    page.get_by_text("Answers of the last 30 days").wait_for()
    page.screenshot(path=str(ARTIFACTS / "7-monitor.png"), full_page=True)
    assert errors == []


def test_non_admin_sees_no_admin_pages_and_gets_403(served, browser) -> None:
    errors: list[str] = []
    page = open_page(browser, served.url, errors)
    page.get_by_label("API key").wait_for()
    errors.clear()  # Chromium logs the 401 of the signed-out start page
    sign_in(page, served.tokens["bob"])
    assert page.locator("#user-groups").inner_text() == " (it)"
    assert [a.inner_text() for a in page.locator("#nav a").all()] == ["Ask"]
    page.goto(served.url + "/#documents")
    page.get_by_text("There is no such page for you.").wait_for()
    status = page.evaluate("""async () => {
        const key = sessionStorage.getItem('ragtune.key');
        const r = await fetch('/api/documents/sync', {method: 'POST',
            headers: {'Authorization': 'Bearer ' + key, 'Content-Type': 'application/json'},
            body: JSON.stringify({path: '/tmp'})});
        return [r.status, (await r.json()).error.message];
    }""")
    assert status[0] == 403 and "admin" in status[1]
    page.goto(served.url + "/#chat")
    answer = ask(page, SALARY_Q)
    assert "zorblax" not in answer  # the hr document stays hidden from bob

    # with answer.unsupported = "flag" an unsupported sentence is shown marked; feedback on
    # the answer is recorded
    served.ws.settings = served.ws.settings.replace("answer", unsupported="flag")
    served.ws.generator = FakeGenerator(
        reply=lambda m: default_reply(m) + " Refunds also earn double loyalty points [1].")
    ask(page, "How many days can items be returned after delivery for online orders?")
    turn = page.locator(".turn").last
    flagged = turn.locator("mark.unsupported")
    assert flagged.count() == 1 and "double loyalty points" in flagged.inner_text()
    assert "not supported" in flagged.inner_text()  # said to screen readers too
    turn.get_by_role("button", name="Helpful", exact=True).click()
    turn.get_by_text("Thanks for the feedback.").wait_for()
    (vote,) = served.ws.store.feedback()
    assert (vote.principal, vote.rating) == ("bob", 1)
    page.screenshot(path=str(ARTIFACTS / "5-non-admin.png"), full_page=True)
    errors = [e for e in errors if "403" not in e]  # the refused request, logged by Chromium
    assert errors == []
