"""Turn a file into a :class:`~ragtune.types.Document`: its title and its headed sections.

One loader per format, chosen by extension: Markdown, plain text, HTML, PDF (pypdf),
DOCX (python-docx), JSON and JSON Lines. Every bad input becomes an
:class:`~ragtune.errors.InputError` with a one-line reason ("the PDF is encrypted"), never
a traceback; pathological inputs (nesting, zip bombs, page counts) are refused before the
expensive parse by the guards in ``ingest/guards.py``, and whatever a library logs or prints
while reading the file is kept in ``metadata["warnings"]`` (or in the error's reason).

>>> from pathlib import Path; import tempfile
>>> p = Path(tempfile.mkdtemp()) / "returns.md"
>>> _ = p.write_text("# Returns\\n\\nWithin 30 days.\\n\\n## Exceptions\\n\\nNo gift cards.\\n")
>>> doc = load_file(p, source="returns.md")
>>> doc.title, [s.path for s in doc.sections]
('Returns', [('Returns',), ('Returns', 'Exceptions')])
"""

from __future__ import annotations

import io
import json
import os
import re
import stat
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from ragtune.errors import InputError
from ragtune.ingest.guards import (
    Limits,
    captured_output,
    check_zip,
    display_path,
    json_depth_exceeds,
    short,
)
from ragtune.ingest.includes import expand_includes
from ragtune.types import Document, Section

__all__ = ["SUPPORTED_EXTENSIONS", "decode_text", "load_bytes", "load_file", "read_file"]

_MB = 1024 * 1024


class _Sections:
    """Collects text under a heading stack and emits one Section per non-empty block.

    >>> b = _Sections(); b.heading(1, "A"); b.add("x"); b.heading(2, "B"); b.add("y")
    >>> [(s.path, s.text) for s in b.done()]
    [(('A',), 'x'), (('A', 'B'), 'y')]
    """

    def __init__(self) -> None:
        self.stack: list[tuple[int, str]] = []
        self.lines: list[str] = []
        self.page: int | None = None
        self.sections: list[Section] = []

    def heading(self, level: int, text: str) -> None:
        self.flush()
        while self.stack and self.stack[-1][0] >= level:
            self.stack.pop()
        self.stack.append((level, text))

    def add(self, text: str) -> None:
        self.lines.append(text)

    def flush(self) -> None:
        text = _tidy("\n".join(self.lines))
        self.lines = []
        if text:
            path = tuple(h for _, h in self.stack)
            self.sections.append(Section(path=path, text=text, page=self.page))

    def done(self) -> list[Section]:
        self.flush()
        return self.sections


def _tidy(text: str) -> str:
    """Trim line ends and squeeze runs of blank lines to one (paragraphs stay visible)."""
    text = "\n".join(line.rstrip() for line in text.split("\n"))
    return re.sub(r"\n{3,}", "\n\n", text).strip("\n").strip()


def _squash(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


# --------------------------------------------------------------------------- text decoding


def decode_text(data: bytes, where: str) -> tuple[str, str]:
    """Decode bytes to text and name the encoding used.

    BOMs win (UTF-8, UTF-16 LE/BE, UTF-32); NUL bytes mean UTF-16 without a BOM when they
    sit on every other byte, else binary data; then strict UTF-8; then cp1252 (a superset of
    Latin-1's printable range, what "ANSI" files really are); then Latin-1, which never fails.

    >>> decode_text("café".encode("utf-16"), "x")
    ('café', 'utf-16')
    >>> decode_text("café".encode("cp1252"), "x")
    ('café', 'cp1252')
    """
    boms = [
        (b"\xef\xbb\xbf", "utf-8-sig"),
        (b"\xff\xfe\x00\x00", "utf-32"),
        (b"\x00\x00\xfe\xff", "utf-32"),
        (b"\xff\xfe", "utf-16"),
        (b"\xfe\xff", "utf-16"),
    ]
    for bom, enc in boms:
        if data.startswith(bom):
            return data.decode(enc, errors="replace"), enc
    if b"\x00" in data:
        guess = _utf16_without_bom(data)
        if guess is None:
            raise InputError(where, "binary data in a text file (NUL bytes)")
        try:
            return data.decode(guess), guess
        except UnicodeDecodeError:
            raise InputError(where, "binary data in a text file (NUL bytes)") from None
    for enc in ("utf-8", "cp1252"):
        try:
            return data.decode(enc), enc
        except UnicodeDecodeError:
            continue
    return data.decode("latin-1"), "latin-1"


def _utf16_without_bom(data: bytes) -> str | None:
    """Guess UTF-16 from where the NULs fall: ASCII-range text has a NUL in every other byte."""
    sample = data[:4096]
    if len(data) % 2 or len(sample) < 4:
        return None
    even, odd = sample[0::2], sample[1::2]
    even_nul, odd_nul = even.count(0) / len(even), odd.count(0) / len(odd)
    if odd_nul > 0.4 and even_nul < 0.05:
        return "utf-16-le"
    if even_nul > 0.4 and odd_nul < 0.05:
        return "utf-16-be"
    return None


def _read_text(data: bytes, where: str) -> tuple[str, str]:
    text, enc = decode_text(data, where)
    text = unicodedata.normalize("NFC", text.replace("\r\n", "\n").replace("\r", "\n"))
    if not text.strip():
        raise InputError(where, "the file has no text (only whitespace)")
    return text, enc


# --------------------------------------------------------------------------- Markdown

_ATX = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$")
_SETEXT = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_NOT_PARAGRAPH = re.compile(r"^(?: {4}|\t| {0,3}(?:[-+*>|]|\d+[.)]\s|#|<))")


def _load_markdown(data: bytes, where: str, limits: Limits) -> tuple[str | None, list[Section], dict[str, Any]]:
    # A line scanner rather than markdown-it-py: we only need heading positions and fence
    # awareness, and markdown-it-py's block parse alone took ~6 s on a 3 MB file here.
    text, enc = _read_text(data, where)
    text, included = expand_includes(text, where)  # code pulled in by include directives
    lines = text.split("\n")
    title, start = _front_matter(lines)
    out, fence = _Sections(), ""
    i = start
    while i < len(lines):
        line = lines[i]
        if fence:
            out.add(line)
            if re.match(rf"^ {{0,3}}{fence[0]}{{{len(fence)},}}\s*$", line):
                fence = ""
        elif m := _FENCE.match(line):
            fence = m.group(1)
            out.add(line)
        elif m := _ATX.match(line):
            level, heading = len(m.group(1)), _inline_text(m.group(2) or "")
            title = title or (heading if level == 1 else None)
            out.heading(level, heading)
        elif (
            i + 1 < len(lines)
            and line.strip()
            and (i == start or not lines[i - 1].strip())
            and not _NOT_PARAGRAPH.match(line)
            and (m := _SETEXT.match(lines[i + 1]))
        ):
            level, heading = (1 if m.group(1)[0] == "=" else 2), _inline_text(line)
            title = title or (heading if level == 1 else None)
            out.heading(level, heading)
            i += 1
        else:
            out.add(line)
        i += 1
    return title, out.done(), {"format": "markdown", "encoding": enc, **included}


def _front_matter(lines: list[str]) -> tuple[str | None, int]:
    """Skip a YAML front-matter block; take its ``title:`` if it has one."""
    if not lines or lines[0].strip() != "---":
        return None, 0
    for end in range(1, min(len(lines), 200)):
        if lines[end].strip() in ("---", "..."):
            for line in lines[1:end]:
                if m := re.match(r"^title:\s*(.+?)\s*$", line):
                    return m.group(1).strip("'\""), end + 1
            return None, end + 1
    return None, 0


def _inline_text(s: str) -> str:
    """Heading text without inline markup: links keep their words, emphasis loses its marks."""
    s = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", s)
    s = re.sub(r"(\*\*|__|\*|_|`)(.+?)\1", r"\2", s)
    s = re.sub(r"\s*\{\s*#[\w:.-]+[^{}]*\}\s*$", "", s)  # attr_list "{ #anchor }" suffixes
    return _squash(s)


# --------------------------------------------------------------------------- plain text

_NUMBERED = re.compile(r"^\d+(?:\.\d+)*\.?\s+\S")


def _load_txt(data: bytes, where: str, limits: Limits) -> tuple[str | None, list[Section], dict[str, Any]]:
    text, enc = _read_text(data, where)
    paragraphs = [p.strip("\n") for p in re.split(r"\n\s*\n", text) if p.strip()]
    first = paragraphs[0].split("\n")[0].strip()
    title = first if len(first) <= 80 else None
    out = _Sections()
    for k, para in enumerate(paragraphs):
        if k and k + 1 < len(paragraphs) and _looks_like_heading(para):
            out.heading(1, _squash(para.split("\n")[0]))
        else:
            out.add(para + "\n")
    return title, out.done(), {"format": "text", "encoding": enc}


def _looks_like_heading(para: str) -> bool:
    """A lone short line that is numbered ("2.1 Refunds"), ALL CAPS, or underlined."""
    lines = para.split("\n")
    if len(lines) == 2 and re.fullmatch(r"[=-]{3,}\s*", lines[1]):
        return len(lines[0]) <= 80
    line = lines[0].strip()
    if len(lines) != 1 or len(line) > 80 or line[-1] in ".,;:!?":
        return False
    return bool(_NUMBERED.match(line)) or (line.isupper() and len(line.split()) <= 10)


# --------------------------------------------------------------------------- HTML

_DROP = ["script", "style", "nav", "noscript", "template", "svg", "iframe", "head"]
_BLOCKS = frozenset(
    ["p", "div", "section", "article", "main", "header", "footer", "aside", "blockquote"]
    + ["ul", "ol", "dl", "dt", "dd", "figure", "figcaption", "form", "fieldset", "address"]
    + ["hr", "details", "summary", "body", "html"]
)


def _load_html(data: bytes, where: str, limits: Limits) -> tuple[str | None, list[Section], dict[str, Any]]:
    from bs4 import BeautifulSoup

    text, enc = _read_text(data, where)
    soup = BeautifulSoup(text, "html.parser")
    title = _squash(soup.title.get_text()) if soup.title else ""
    for tag in soup.find_all(_DROP):
        tag.decompose()
    if not title and (h1 := soup.find("h1")):
        title = _squash(h1.get_text(" "))
    out = _Sections()
    _walk_html(soup, out, where, limits.max_depth)
    return title or None, out.done(), {"format": "html", "encoding": enc}


def _walk_html(root: Any, out: _Sections, where: str, max_depth: int) -> None:
    """Visit the tree in document order with an explicit stack (a recursive walk dies at
    Python's recursion limit on ~990 nested elements); refuse trees nested past
    ``max_depth``."""
    from bs4 import NavigableString, Tag
    from bs4.element import PreformattedString

    # Stack items: an element whose children are still to visit, or a string to add
    # when the walk gets back to it (the blank line after a block element).
    stack: list[tuple[Iterator[Any], int] | str] = [(iter(root.children), 0)]
    while stack:
        top = stack[-1]
        if isinstance(top, str):
            stack.pop()
            out.add(top)
            continue
        children, depth = top
        child = next(children, None)
        if child is None:
            stack.pop()
            continue
        if isinstance(child, PreformattedString):  # comments, doctype, CDATA
            continue
        if isinstance(child, NavigableString):
            if s := re.sub(r"\s+", " ", str(child)):
                _append(out, s)
            continue
        if not isinstance(child, Tag):
            continue
        if depth >= max_depth:
            raise InputError(where, f"HTML elements nest deeper than {max_depth} "
                                    "(ingest.max_depth): refused")
        name = child.name
        if re.fullmatch(r"h[1-6]", name):
            out.heading(int(name[1]), _squash(child.get_text(" ")))
        elif name == "br":
            out.add("")
        elif name == "pre":
            out.add("\n" + child.get_text().strip("\n") + "\n")
        elif name == "table":
            out.add("\n" + _table_text(child) + "\n")
        elif name == "li":
            out.add("- ")  # a fresh line; the item's inline text joins it
            stack.append((iter(child.children), depth + 1))
        elif name in _BLOCKS:
            out.add("\n")
            stack.append("\n")
            stack.append((iter(child.children), depth + 1))
        else:
            stack.append((iter(child.children), depth + 1))


def _append(out: _Sections, s: str) -> None:
    """Inline text joins the current line; a fresh line drops its leading space."""
    last = out.lines[-1] if out.lines else ""
    if last and not last.endswith("\n"):
        out.lines[-1] += s.lstrip() if last.endswith(" ") else s
    else:
        out.lines.append(s.lstrip())


def _table_text(table: Any) -> str:
    rows = []
    for tr in table.find_all("tr"):
        cells = [_squash(c.get_text(" ")) for c in tr.find_all(["td", "th"], recursive=False)]
        if any(cells):
            rows.append(" | ".join(cells))
    return "\n".join(rows)


# --------------------------------------------------------------------------- PDF

_PAGE_NUMBER = re.compile(r"^\s*(?:page\s*)?\d+(?:\s*(?:of|/)\s*\d+)?\s*$", re.IGNORECASE)


def _load_pdf(data: bytes, where: str, limits: Limits) -> tuple[str | None, list[Section], dict[str, Any]]:
    import pypdf
    from pypdf.errors import DependencyError

    if b"%PDF" not in data[:1024]:
        raise InputError(where, "not a valid PDF: no %PDF header")
    # pypdf raises many exception types on damaged files (PdfReadError, ValueError,
    # KeyError, struct errors, RecursionError on cyclic page trees...); each one means the
    # same thing to the user.
    try:
        reader = pypdf.PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            try:  # owner-password-only PDFs open with an empty user password
                if not reader.decrypt(""):
                    raise InputError(where, "the PDF is encrypted")
            except DependencyError:
                raise InputError(
                    where, "the PDF is encrypted (AES; install 'cryptography' to open it)"
                ) from None
        if (count := len(reader.pages)) > limits.max_pages:
            raise InputError(where, f"the PDF has {count} pages, over the {limits.max_pages} "
                                    "page limit (ingest.max_pages)")
        pages = [_pdf_lines(page) for page in reader.pages]
        meta_title = reader.metadata.get("/Title") if reader.metadata else None
    except InputError:
        raise
    except Exception as exc:  # noqa: BLE001 - see comment above
        raise InputError(where, f"not a valid PDF: {short(exc)}") from None
    if not pages:
        raise InputError(where, "the PDF has no pages")
    if not any(text.strip() for lines in pages for text, _ in lines):
        raise InputError(where, "the PDF has no text layer (scanned?); OCR it first")
    return _pdf_sections(pages, str(meta_title or "").strip() or None)


def _pdf_lines(page: Any) -> list[tuple[str, float]]:
    """A page's text lines, each with the largest font size (in points) used on it."""
    lines: list[list[Any]] = [["", 0.0]]

    def visit(text: str, cm: list[float], tm: list[float], _font: Any, size: float) -> None:
        scale = abs(tm[3] or 1.0) * abs(cm[3] or 1.0)
        for k, part in enumerate(text.split("\n")):
            if k:
                lines.append(["", 0.0])
            lines[-1][0] += part
            if part.strip():
                lines[-1][1] = max(lines[-1][1], float(size or 0) * scale)

    page.extract_text(visitor_text=visit)
    return [(_squash(t), s) for t, s in lines if t.strip() and not _PAGE_NUMBER.match(t)]


def _pdf_sections(
    pages: list[list[tuple[str, float]]], meta_title: str | None
) -> tuple[str | None, list[Section], dict[str, Any]]:
    # Body size = the size most characters use; a short line set clearly larger is a
    # heading, and larger heading sizes rank higher (level 1 = biggest).
    sizes: Counter[float] = Counter()
    for lines in pages:
        for text, size in lines:
            sizes[round(size, 1)] += len(text)
    body = sizes.most_common(1)[0][0]
    heading_sizes = sorted({s for s in sizes if s >= body * 1.15}, reverse=True)
    out, first_heading, empty = _Sections(), None, []
    for number, lines in enumerate(pages, start=1):
        out.flush()
        out.page = number
        if not lines:
            empty.append(number)
        for text, size in lines:
            level = _pdf_heading_level(text, round(size, 1), heading_sizes)
            if level:
                first_heading = first_heading or text
                out.heading(level, text)
            else:
                out.add(text)
    meta = {"format": "pdf", "pages": len(pages), "pages_without_text": empty}
    if (
        meta_title
        and meta_title.lower() in ("untitled", "none")
        or (meta_title and meta_title.lower().startswith("microsoft word -"))
    ):
        meta_title = None
    return meta_title or first_heading, out.done(), meta


def _pdf_heading_level(text: str, size: float, heading_sizes: list[float]) -> int:
    if size not in heading_sizes or len(text) > 100 or len(text.split()) > 14:
        return 0
    if text[-1] in ".,;:" or not any(c.isalpha() for c in text):
        return 0
    return heading_sizes.index(size) + 1


# --------------------------------------------------------------------------- DOCX


def _load_docx(data: bytes, where: str, limits: Limits) -> tuple[str | None, list[Section], dict[str, Any]]:
    import docx
    from docx.table import Table

    check_zip(data, where, limits)  # before python-docx inflates any part
    try:
        document = docx.Document(io.BytesIO(data))
    except Exception as exc:  # noqa: BLE001 - zipfile, lxml and python-docx all raise
        raise InputError(where, f"not a valid DOCX file: {short(exc)}") from None
    out, title, first_heading = _Sections(), None, None
    # (heading level, is a list) per style id: python-docx resolves ``paragraph.style`` by
    # scanning every style of the document, which was a third of a DOCX file's load time
    kinds: dict[str | None, tuple[int | None, bool]] = {}
    for block in document.iter_inner_content():
        if isinstance(block, Table):
            out.add("\n" + _docx_table(block) + "\n")
            continue
        text = block.text.strip()
        if not text:
            continue
        style_id = block._p.style
        if style_id not in kinds:
            style = block.style
            kinds[style_id] = (_docx_heading_level(style),
                               style is not None and (style.name or "").startswith("List"))
        level, is_list = kinds[style_id]
        if level == 0:  # the "Title" style
            title = title or text
        elif level:
            first_heading = first_heading or text
            out.heading(level, text)
        else:
            bullet = "- " if is_list else ""
            out.add(bullet + text + ("" if bullet else "\n"))
    core_title = (document.core_properties.title or "").strip()
    return core_title or title or first_heading, out.done(), {"format": "docx"}


def _docx_heading_level(style: Any) -> int | None:
    """1..9 for "Heading N" (or a style based on one), 0 for "Title", else None."""
    seen = 0
    while style is not None and seen < 10:
        name = (style.name or "").lower()
        if name == "title":
            return 0
        if m := re.fullmatch(r"heading (\d)", name):
            return int(m.group(1))
        style, seen = style.base_style, seen + 1
    return None


def _docx_table(table: Any) -> str:
    rows = []
    for row in table.rows:
        cells, last = [], None
        for cell in row.cells:
            if cell._tc is last:  # a merged cell repeats across the columns it spans
                continue
            last = cell._tc
            cells.append(_squash(cell.text))
        if any(cells):
            rows.append(" | ".join(cells))
    return "\n".join(rows)


# --------------------------------------------------------------------------- JSON

_Q_KEYS, _A_KEYS = ("question", "q", "prompt"), ("answer", "a", "response")


def _load_json(data: bytes, where: str, limits: Limits) -> tuple[str | None, list[Section], dict[str, Any]]:
    text, enc = _read_text(data, where)
    _check_json_depth(text, where, limits)
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(where, f"invalid JSON: {exc.msg} (column {exc.colno})", line=exc.lineno)
    title = value.get("title") if isinstance(value, dict) else None
    sections = list(_json_sections(value, ()))
    return (
        (title if isinstance(title, str) else None),
        sections,
        {"format": "json", "encoding": enc},
    )


def _load_jsonl(data: bytes, where: str, limits: Limits) -> tuple[str | None, list[Section], dict[str, Any]]:
    text, enc = _read_text(data, where)
    records = []
    _check_json_depth(text, where, limits)
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as exc:
            raise InputError(
                where,
                f"invalid JSON on line {number}: {exc.msg} (column {exc.colno})",
                line=number,
            ) from None
    meta = {"format": "jsonl", "records": len(records), "encoding": enc}
    return None, list(_json_sections(records, ())), meta


def _check_json_depth(text: str, where: str, limits: Limits) -> None:
    if json_depth_exceeds(text, limits.max_depth):
        raise InputError(where, f"JSON values nest deeper than {limits.max_depth} "
                                "(ingest.max_depth): refused")


def _json_sections(value: Any, prefix: tuple[str, ...]) -> Iterable[Section]:
    """Records become sections; FAQ records ({"question", "answer"}) are titled by the question."""
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        for k, record in enumerate(value, start=1):
            yield from _json_record(record, prefix, k)
    elif isinstance(value, dict):
        loose = {}
        for key, item in value.items():
            if isinstance(item, list) and item and all(isinstance(v, dict) for v in item):
                yield from _json_sections(item, prefix + (str(key),))
            elif key != "title" or prefix:
                loose[key] = item
        if text := _json_text(loose).strip():
            yield Section(path=prefix, text=text)
    elif text := _json_text(value).strip():
        yield Section(path=prefix, text=text)


def _json_record(record: dict[str, Any], prefix: tuple[str, ...], k: int) -> Iterable[Section]:
    q = next((record[key] for key in _Q_KEYS if isinstance(record.get(key), str)), None)
    a = next((record[key] for key in _A_KEYS if key in record), None)
    if q is not None and a is not None:
        rest = {key: v for key, v in record.items() if key not in _Q_KEYS + _A_KEYS}
        # The question stays in the text too, so lexical search matches FAQ wording.
        body = f"{q.strip()}\n\n{_json_text(a).strip()}\n\n{_json_text(rest)}"
        yield Section(path=prefix + (_squash(q),), text=_tidy(body))
        return
    name = next((record[key] for key in ("title", "name", "id") if key in record), None)
    label = _squash(str(name)) if isinstance(name, (str, int)) else f"record {k}"
    if text := _json_text(record).strip():
        yield Section(path=prefix + (label,), text=text)


def _json_text(value: Any, indent: str = "") -> str:
    """Readable ``key: value`` lines; nested objects indent, lists become "- " items."""
    if isinstance(value, dict):
        lines = []
        for key, item in value.items():
            if isinstance(item, (dict, list)) and item:
                lines.append(f"{indent}{key}:\n{_json_text(item, indent + '  ')}")
            else:
                lines.append(f"{indent}{key}: {_scalar(item)}")
        return "\n".join(lines)
    if isinstance(value, list):
        return "\n".join(f"{indent}- {_json_text(v, indent + '  ').lstrip()}" for v in value)
    return indent + _scalar(value)


def _scalar(v: Any) -> str:
    if isinstance(v, str):
        return v
    return json.dumps(v, ensure_ascii=False)


# --------------------------------------------------------------------------- entry point

_Loader = Callable[[bytes, str, Limits], tuple[str | None, list[Section], dict[str, Any]]]
_LOADERS: dict[str, _Loader] = {
    ".md": _load_markdown,
    ".markdown": _load_markdown,
    ".txt": _load_txt,
    ".html": _load_html,
    ".htm": _load_html,
    ".pdf": _load_pdf,
    ".docx": _load_docx,
    ".json": _load_json,
    ".jsonl": _load_jsonl,
}
SUPPORTED_EXTENSIONS: frozenset[str] = frozenset(_LOADERS)


def load_file(path: Path, *, max_bytes: int | None = None, source: str | None = None,
              limits: Limits | None = None) -> Document:
    """Load one file into a Document; raise InputError naming the file and the problem.

    ``source`` is the document's identity (its id hashes it); by default the resolved path.
    The size limit is checked before anything is read.

    >>> load_file(Path("notes.xyz"))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ragtune.errors.InputError: notes.xyz: unsupported file type '.xyz' (supported: ...)
    """
    limits = limits or Limits()
    if max_bytes is not None:
        limits = Limits(**{**limits.__dict__, "max_bytes": max_bytes})
    _loader_for(path)  # an unsupported type is refused before the file is opened
    data = read_file(path, limits.max_bytes)
    return load_bytes(data, path, source=source, limits=limits)


def load_bytes(data: bytes, path: Path, *, source: str | None = None,
               limits: Limits | None = None) -> Document:
    """Parse ``data``, the bytes of the file at ``path`` (its extension picks the loader)."""
    limits = limits or Limits()
    where = display_path(path)
    loader = _loader_for(path)
    failure: InputError | None = None
    with captured_output() as said:
        try:
            title, sections, metadata = loader(data, where, limits)
        except InputError as e:
            failure = e
    if failure is not None:  # what the library said belongs in the reason
        if said:
            raise InputError(where, f"{failure.problem} ({'; '.join(sorted(set(said)))})",
                             line=failure.line) from None
        raise failure
    if said:
        metadata["warnings"] = sorted(set(said))
    sections = [s for s in map(_clean_section, sections) if s.text]
    if not sections:
        raise InputError(where, "no text found in the file")
    metadata.setdefault("bytes", len(data))
    return Document(
        source=source if source is not None else display_path(path.resolve()),
        title=_clean_text(title or display_path(path.stem)).strip(),
        sections=tuple(sections),
        metadata=metadata,
    )


def _loader_for(path: Path) -> _Loader:
    ext = display_path(path.suffix.lower())
    loader = _LOADERS.get(ext)
    if loader is None:
        supported = ", ".join(sorted(SUPPORTED_EXTENSIONS))
        raise InputError(display_path(path),
                         f"unsupported file type '{ext}' (supported: {supported})")
    return loader


# C0 controls other than tab and newline, DEL and the C1 controls: they carry no text, and
# NUL breaks C string APIs downstream (FTS5 tokenizers, terminals). Form and line feeds
# (page breaks in text files) become newlines.
_CONTROLS = re.compile("[\x00-\x08\x0e-\x1f\x7f-\x9f]")
_BREAKS = re.compile("[\x0b\x0c]")


def _clean_text(text: str) -> str:
    """Drop control characters; replace lone surrogates (JSON "\\ud800") with U+FFFD.

    >>> _clean_text("a\\x00b\\x0cc\\ud800")
    'ab\\nc\\ufffd'
    """
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            text = text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    if _BREAKS.search(text):
        text = _BREAKS.sub("\n", text)
    if _CONTROLS.search(text):
        text = _CONTROLS.sub("", text)
    return text


def _clean_section(s: Section) -> Section:
    text = _clean_text(s.text).strip()
    path = tuple(_clean_text(p) for p in s.path)
    if text == s.text and path == s.path:
        return s
    return Section(path=path, text=text, page=s.page)


def read_file(path: Path, max_bytes: int) -> bytes:
    """The file's bytes, refused over ``max_bytes`` before reading; a file that changes
    while it is read (its size or modification time moves) is read again, once."""
    where = display_path(path)
    for _ in range(2):
        before = _stat(path, where, max_bytes)
        try:
            with path.open("rb") as f:
                data = f.read(max_bytes + 1)
                after = os.fstat(f.fileno())
        except PermissionError:
            raise InputError(where, "cannot read: permission denied") from None
        except OSError as exc:
            raise InputError(where, f"cannot read: {exc.strerror or exc}") from None
        if len(data) > max_bytes:
            raise InputError(where, f"file grew over the {max_bytes / _MB:g} MB limit while "
                                    "it was read (ingest.max_file_mb)")
        if (after.st_size, after.st_mtime_ns) == before and len(data) == after.st_size:
            if not data:
                raise InputError(where, "the file is empty")
            return data
    raise InputError(where, "the file kept changing while it was read; ingest it again "
                            "when it is written")


def _stat(path: Path, where: str, max_bytes: int) -> tuple[int, int]:
    try:
        st = path.stat()
        if path.is_dir():
            raise InputError(where, "cannot read: it is a directory")
    except FileNotFoundError:
        if path.is_symlink():
            raise InputError(where, "cannot read: broken symbolic link") from None
        raise InputError(where, "cannot read: no such file") from None
    except PermissionError:
        raise InputError(where, "cannot read: permission denied") from None
    except OSError as exc:  # ELOOP (a symbolic link loop), ENAMETOOLONG...
        raise InputError(where, f"cannot read: {exc.strerror or exc}") from None
    if not stat.S_ISREG(st.st_mode):  # a FIFO would block the read forever
        raise InputError(where, "cannot read: not a regular file (a pipe, socket or device)")
    if st.st_size > max_bytes:
        raise InputError(
            where,
            f"file is {st.st_size / _MB:.1f} MB, over the {max_bytes / _MB:g} MB limit "
            "(ingest.max_file_mb)",
        )
    if st.st_size == 0:
        raise InputError(where, "the file is empty")
    return st.st_size, st.st_mtime_ns
