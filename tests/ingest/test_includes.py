"""Include directives (MkDocs snippets, FastAPI-style {* *}, literalinclude) and anchor titles."""

from __future__ import annotations

from pathlib import Path

from ragtune.ingest.includes import expand_includes, include_roots
from ragtune.ingest.loaders import load_file
from tests.conftest import write


def _tree(tmp_path: Path) -> Path:
    root = tmp_path / "site"
    write(root / "docs_src" / "prompt" / "tutorial001.py",
          "import typer\n\n\ndef main(name: str, lastname: str = typer.Option(..., prompt=True)):\n"
          "    print(f'Hello {name} {lastname}')\n")
    write(root / "docs" / "snippets" / "note.md", "Shared note:\n--8<-- \"snippets/nested.md\"\n")
    write(root / "docs" / "snippets" / "nested.md", "nested text\n")
    write(root / "docs" / "abbr.md", "*[CLI]: Command Line Interface\n")
    return root


def test_fastapi_style_include_pulls_the_code_in_as_a_fenced_block(tmp_path):
    root = _tree(tmp_path)
    page = write(root / "docs" / "tutorial" / "prompt.md",
                 "# CLI Option Prompt { #cli-option-prompt }\n\nAsk with `prompt=True`:\n\n"
                 "{* docs_src/prompt/tutorial001.py hl[4] *}\n\nDone.\n")
    with include_roots([root]):
        doc = load_file(page)
    text = "\n".join(s.text for s in doc.sections)
    assert "```python\nimport typer" in text and "prompt=True)" in text
    assert "{*" not in text
    assert doc.title == "CLI Option Prompt"  # the { #anchor } suffix is gone
    assert doc.metadata["includes"] == 1 and doc.metadata["includes_unresolved"] == 0


def test_line_ranges_and_snippets(tmp_path):
    root = _tree(tmp_path)
    page = root / "docs" / "p.md"
    with include_roots([root]):
        text, stats = expand_includes('A\n--8<-- "docs_src/prompt/tutorial001.py:4:5"\n'
                                      '--8<-- "docs/abbr.md"\n{* docs_src/prompt/tutorial001.py ln[1:1] *}\n', page)
    assert "def main(name: str" in text and "import typer\n```" in text
    assert text.count("import typer") == 1  # 4:5 leaves line 1 out; ln[1:1] is only line 1
    assert "Command Line Interface" in text and stats == {"includes": 3, "includes_unresolved": 0}


def test_snippet_block_and_nested_markdown(tmp_path):
    root = _tree(tmp_path)
    with include_roots([root]):
        text, stats = expand_includes("--8<--\nsnippets/note.md\n--8<--\n", root / "docs" / "p.md")
    assert "Shared note:\nnested text" in text and stats["includes"] == 2


def test_sphinx_and_myst_literalinclude(tmp_path):
    root = _tree(tmp_path)
    page = root / "docs" / "p.md"
    with include_roots([root]):
        rst, _ = expand_includes(".. literalinclude:: ../docs_src/prompt/tutorial001.py\n   :lines: 1-1\n", page)
        myst, _ = expand_includes("```{literalinclude} ../docs_src/prompt/tutorial001.py\n:lines: 4-5\n```\n", page)
    assert rst.strip() == "```python\nimport typer\n```"
    assert "def main" in myst and "import typer" not in myst


def test_includes_never_leave_the_ingested_tree(tmp_path):
    root = _tree(tmp_path)
    write(tmp_path / "secret.txt", "password=hunter2\n")
    page = root / "docs" / "p.md"
    with include_roots([root]):
        text, stats = expand_includes('--8<-- "../../secret.txt"\n{* /etc/passwd *}\n', page)
    assert "hunter2" not in text and "root:" not in text
    assert stats == {"includes": 0, "includes_unresolved": 2}
    # Without an ingest root, only the page's own folder is reachable.
    text, stats = expand_includes("{* ../docs_src/prompt/tutorial001.py *}\n", page)
    assert stats["includes_unresolved"] == 1 and "import typer" not in text


def test_unresolved_directive_stays_as_written(tmp_path):
    page = write(tmp_path / "p.md", "# T\n\n{* missing/file.py *}\n")
    with include_roots([tmp_path]):
        doc = load_file(page)
    assert "{* missing/file.py *}" in doc.sections[0].text
    assert doc.metadata["includes_unresolved"] == 1


def test_workspace_ingest_resolves_includes_inside_the_ingested_folder(tmp_path, fake_ws):
    root = _tree(tmp_path)
    write(root / "docs" / "prompt.md", "# Prompt\n\n{* docs_src/prompt/tutorial001.py *}\n")
    fake_ws.ingest([root])
    hits = fake_ws.search("prompt=True lastname", k=3).hits
    assert any("typer.Option(..., prompt=True)" in h.chunk.text for h in hits)
