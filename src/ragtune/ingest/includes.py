"""Include directives in documentation: pull the included file's text into the page.

Documentation sites keep code in separate files and include it at build time; indexed as
written, such a page loses its code. :func:`expand_includes` resolves the common forms when
the included file lies inside the tree being ingested (never outside it: an include must
not read what the user did not ingest):

* FastAPI/Typer style ``{* docs_src/app/tutorial001.py hl[3] ln[1:10] *}``
* MkDocs snippets ``--8<-- "path/file.md"`` (also ``"file.py:3:8"`` line ranges) and the
  block form ``--8<--`` / one path a line / ``--8<--``
* Sphinx ``.. literalinclude:: path`` and MyST ``` ```{literalinclude} path ``` (with
  ``:lines: 3-8``)

Code files come in as fenced blocks tagged with their language; Markdown snippets come in
as text (their own includes expanded, three levels deep). A directive that cannot be
resolved stays as written.

>>> import tempfile
>>> root = Path(tempfile.mkdtemp())
>>> _ = (root / "src").mkdir(), (root / "src" / "app.py").write_text("import typer\\n")
>>> page = root / "docs" / "page.md"
>>> with include_roots([root]):
...     text, stats = expand_includes("Intro\\n\\n{* ../src/app.py hl[1] *}\\n", page)
>>> print(text)
Intro
<BLANKLINE>
```python
import typer
```
<BLANKLINE>
>>> stats
{'includes': 1, 'includes_unresolved': 0}
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path

_ROOTS: ContextVar[tuple[Path, ...]] = ContextVar("ragtune_include_roots", default=())
_MAX_BYTES = 512 * 1024
_MAX_DEPTH = 3

_FASTAPI = re.compile(r"^[ \t]*\{\*\s*(?P<path>[^\s*]+)(?P<opts>[^*]*)\*\}[ \t]*$", re.MULTILINE)
_SNIPPET_LINE = re.compile(r"^(?P<indent>[ \t]*)-{1,}8<-{1,}[ \t]+[\"'](?P<path>[^\"']+)[\"'][ \t]*$", re.MULTILINE)
_SNIPPET_BLOCK = re.compile(r"^[ \t]*-{1,}8<-{1,}[ \t]*\n(?P<body>(?:.*\n)*?)[ \t]*-{1,}8<-{1,}[ \t]*$", re.MULTILINE)
_LITERAL_RST = re.compile(r"^[ \t]*\.\.\s+literalinclude::\s*(?P<path>\S+)[ \t]*\n(?P<opts>(?:[ \t]+:[\w-]+:.*\n?)*)", re.MULTILINE)
_LITERAL_MYST = re.compile(r"^[ \t]*(?P<fence>`{3,}|~{3,})\{literalinclude\}\s*(?P<path>\S+)[ \t]*\n(?P<opts>(?:[ \t]*:[\w-]+:.*\n)*)[ \t]*(?P=fence)[ \t]*$", re.MULTILINE)

_LANGUAGES = {".py": "python", ".js": "javascript", ".ts": "typescript", ".sh": "bash",
              ".toml": "toml", ".yaml": "yaml", ".yml": "yaml", ".json": "json", ".html": "html",
              ".css": "css", ".sql": "sql", ".rs": "rust", ".go": "go", ".java": "java",
              ".c": "c", ".cpp": "cpp", ".rb": "ruby", ".ini": "ini", ".txt": "text"}
_TEXT = {".md", ".markdown", ".txt", ".rst"}


@contextmanager
def include_roots(paths: Sequence[Path]) -> Iterator[None]:
    """Within this block, includes may resolve to files under ``paths`` (the ingested
    folders, or the folders of ingested files)."""
    roots = tuple(p.resolve() if p.is_dir() else p.resolve().parent for p in paths)
    token = _ROOTS.set(roots)
    try:
        yield
    finally:
        _ROOTS.reset(token)


def _inside(path: Path, roots: tuple[Path, ...]) -> bool:
    return any(path == r or r in path.parents for r in roots)


def resolve(target: str, page: Path) -> Path | None:
    """The file ``target`` names, seen from ``page``: relative to the page's folder, then to
    each folder above it (sites write paths from the project root), but only inside the
    ingested tree (without one: inside the page's own folder)."""
    roots = _ROOTS.get() or (page.resolve().parent,)
    here = page.resolve().parent
    for base in (here, *here.parents):
        if not _inside(base, roots):
            break
        candidate = (base / target).resolve()
        if _inside(candidate, roots) and candidate.is_file():
            try:
                if candidate.stat().st_size <= _MAX_BYTES:
                    return candidate
            except OSError:
                return None
    return None


def _lines(text: str, spec: str | None) -> str:
    """Lines ``a:b`` / ``a-b`` (1-based, inclusive) of ``text``; all when no spec."""
    if not spec:
        return text
    m = re.match(r"\s*(\d*)\s*[-:]\s*(\d*)\s*$", spec)
    if not m:
        return text
    lines = text.splitlines()
    start = int(m.group(1) or 1) - 1
    end = int(m.group(2) or len(lines))
    return "\n".join(lines[max(0, start):end])


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None


class _Expander:
    def __init__(self, page: Path) -> None:
        self.page = page
        self.resolved = 0
        self.unresolved = 0

    def include(self, target: str, lines: str | None, depth: int, indent: str = "") -> str | None:
        path = resolve(target, self.page)
        text = _read(path) if path is not None else None
        if path is None or text is None:
            self.unresolved += 1
            return None
        self.resolved += 1
        body = _lines(text, lines).rstrip("\n")
        if path.suffix.lower() in _TEXT:
            if depth < _MAX_DEPTH:
                body = self.expand(body, depth + 1)
            return "\n".join(indent + line for line in body.split("\n"))
        lang = _LANGUAGES.get(path.suffix.lower(), "")
        return f"{indent}```{lang}\n{body}\n{indent}```"

    def expand(self, text: str, depth: int = 0) -> str:
        def fastapi(m: re.Match[str]) -> str:
            ln = re.search(r"\bln\[([^\]]*)\]", m.group("opts"))
            return self.include(m.group("path"), ln.group(1) if ln else None, depth) or m.group()

        def snippet(m: re.Match[str]) -> str:
            target, _, rng = m.group("path").partition(":")
            return self.include(target, rng or None, depth, m.group("indent")) or m.group()

        def block(m: re.Match[str]) -> str:
            parts = []
            for line in m.group("body").splitlines():
                if line.strip() and not line.strip().startswith(";"):
                    target, _, rng = line.strip().partition(":")
                    got = self.include(target, rng or None, depth)
                    parts.append(got if got is not None else line)
            return "\n".join(parts)

        def literal(m: re.Match[str]) -> str:
            opt = re.search(r":lines:\s*([\d:, -]+)", m.group("opts") or "")
            got = self.include(m.group("path"), opt.group(1).split(",")[0] if opt else None, depth)
            return got if got is not None else m.group()

        if "{*" in text:
            text = _FASTAPI.sub(fastapi, text)
        if "8<" in text:
            text = _SNIPPET_BLOCK.sub(block, text)
            text = _SNIPPET_LINE.sub(snippet, text)
        if "literalinclude" in text:
            text = _LITERAL_MYST.sub(literal, text)
            text = _LITERAL_RST.sub(literal, text)
        return text


def expand_includes(text: str, where: str | Path) -> tuple[str, dict[str, int]]:
    """``text`` of the page at ``where`` with its include directives resolved (module doc),
    and counts for the document's metadata (``includes``, ``includes_unresolved``)."""
    if "{*" not in text and "8<" not in text and "literalinclude" not in text:
        return text, {}
    expander = _Expander(Path(where))
    out = expander.expand(text)
    return out, {"includes": expander.resolved, "includes_unresolved": expander.unresolved}
