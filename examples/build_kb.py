"""Build the PDF and DOCX documents of the sample knowledge base from Markdown sources.

The binary documents in ``examples/kb/`` are generated, not hand-made: each source file
``examples/build_src/<folder>/<name>.<fmt>.md`` (``fmt`` is ``pdf`` or ``docx``) becomes
``examples/kb/<folder>/<name>.<fmt>``. The sources use a small Markdown subset:
``#``/``##``/``###`` headings, ``- `` bullets, ``1. `` numbered items and paragraphs
separated by blank lines (``**bold**`` markers are dropped).

The output is byte-for-byte deterministic (fixed creation dates, fixed zip timestamps),
so re-running the script on unchanged sources leaves ``git status`` clean::

    .venv/bin/python examples/build_kb.py            # (re)write the files
    .venv/bin/python examples/build_kb.py --check    # exit 1 if a file is stale

PDFs use the core Helvetica font (ASCII text only), US Letter pages, an outline entry per
heading and a footer with the page number, so that some section text runs across pages.
DOCX files use Word's built-in "Heading 1/2/3", "List Bullet" and "List Number" styles.
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import re
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
SRC = HERE / "build_src"
KB = HERE / "kb"

# One fixed moment for every metadata date: the reason the output is reproducible.
FIXED_DATE = dt.datetime(2025, 1, 15, 9, 0, 0, tzinfo=dt.UTC)
ZIP_DATE = (2025, 1, 15, 9, 0, 0)
AUTHOR = "Northwind Outfitters"


@dataclass(frozen=True)
class Block:
    """One parsed Markdown block: ``kind`` is h1/h2/h3/p/bullet/number."""

    kind: str
    text: str


def parse_markdown(text: str, source: Path) -> list[Block]:
    """Parse the Markdown subset into blocks.

    >>> [b.kind for b in parse_markdown("# T\\n\\nIntro\\ntext.\\n\\n- a\\n1. b\\n", Path("x"))]
    ['h1', 'p', 'bullet', 'number']
    """
    blocks: list[Block] = []
    para: list[str] = []

    def flush() -> None:
        if para:
            blocks.append(Block("p", " ".join(para)))
            para.clear()

    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line.isascii():
            # Core PDF fonts are Latin-1 only; keep every source ASCII so PDF and DOCX agree.
            raise ValueError(f"{source}:{lineno}: non-ASCII character in {line!r}")
        line = line.replace("**", "")
        if not line:
            flush()
            continue
        heading = re.match(r"^(#{1,3})\s+(.*)$", line)
        if heading:
            flush()
            blocks.append(Block(f"h{len(heading.group(1))}", heading.group(2)))
        elif line.startswith("- "):
            flush()
            blocks.append(Block("bullet", line[2:]))
        elif re.match(r"^\d+\.\s", line):
            flush()
            blocks.append(Block("number", line))
        else:
            para.append(line)
    flush()
    if not blocks or blocks[0].kind != "h1":
        raise ValueError(f"{source}: the first block must be a '# Title' heading")
    return blocks


def render_pdf(blocks: list[Block]) -> bytes:
    """Render blocks as a PDF with headings, an outline and page-numbered footers."""
    from fpdf import FPDF

    title = blocks[0].text

    class KbPdf(FPDF):
        def footer(self) -> None:
            self.set_y(-15)
            self.set_font("Helvetica", "I", 8)
            self.cell(0, 10, f"{AUTHOR} - {title} - Page {self.page_no()}", align="C")

    pdf = KbPdf(format="Letter")
    pdf.set_creation_date(FIXED_DATE)
    pdf.set_title(title)
    pdf.set_author(AUTHOR)
    pdf.set_creator("examples/build_kb.py")
    pdf.set_producer("examples/build_kb.py")
    pdf.set_auto_page_break(auto=True, margin=20)
    pdf.set_margins(20, 20, 20)
    pdf.add_page()

    sizes = {"h1": 18, "h2": 14, "h3": 12}
    levels = {"h1": 0, "h2": 1, "h3": 2}
    for index, block in enumerate(blocks):
        if block.kind in sizes:
            # Keep a heading (and a heading right after it) with two lines of its text, so
            # no heading is orphaned at a page foot; body text itself flows across pages.
            following = blocks[index + 1] if index + 1 < len(blocks) else None
            needed = 25 + (12 if following is not None and following.kind in sizes else 0)
            if pdf.get_y() + needed > pdf.page_break_trigger:
                pdf.add_page()
            pdf.ln(3 if block.kind != "h1" else 0)
            pdf.start_section(block.text, level=levels[block.kind])
            pdf.set_font("Helvetica", "B", sizes[block.kind])
            pdf.multi_cell(0, sizes[block.kind] * 0.5, block.text, new_x="LMARGIN", new_y="NEXT")
            pdf.ln(1.5)
        elif block.kind in ("bullet", "number"):
            pdf.set_font("Helvetica", "", 11)
            pdf.set_x(pdf.l_margin + 5)
            text = block.text if block.kind == "number" else f"- {block.text}"
            pdf.multi_cell(0, 5.5, text, new_x="LMARGIN", new_y="NEXT")
            pdf.ln(0.8)
        else:
            pdf.set_font("Helvetica", "", 11)
            pdf.multi_cell(0, 5.5, block.text, new_x="LMARGIN", new_y="NEXT")
            pdf.ln(2.5)
    return bytes(pdf.output())


def _normalise_zip(data: bytes) -> bytes:
    """Rewrite a zip with fixed timestamps and permissions (python-docx stamps 'now')."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            fixed = zipfile.ZipInfo(info.filename, date_time=ZIP_DATE)
            fixed.compress_type = zipfile.ZIP_DEFLATED
            fixed.external_attr = 0o644 << 16
            dst.writestr(fixed, src.read(info.filename))
    return out.getvalue()


def render_docx(blocks: list[Block]) -> bytes:
    """Render blocks as a DOCX using Word's built-in heading and list styles."""
    import docx

    document = docx.Document()
    props = document.core_properties
    props.title = blocks[0].text
    props.author = AUTHOR
    props.last_modified_by = AUTHOR
    props.created = FIXED_DATE.replace(tzinfo=None)
    props.modified = FIXED_DATE.replace(tzinfo=None)
    props.last_printed = FIXED_DATE.replace(tzinfo=None)
    props.revision = 1
    props.comments = "Generated by examples/build_kb.py"

    for block in blocks:
        if block.kind in ("h1", "h2", "h3"):
            document.add_heading(block.text, level=int(block.kind[1]))
        elif block.kind == "bullet":
            document.add_paragraph(block.text, style="List Bullet")
        elif block.kind == "number":
            document.add_paragraph(re.sub(r"^\d+\.\s+", "", block.text), style="List Number")
        else:
            document.add_paragraph(block.text)
    buffer = io.BytesIO()
    document.save(buffer)
    return _normalise_zip(buffer.getvalue())


RENDERERS = {"pdf": render_pdf, "docx": render_docx}


def targets() -> list[tuple[Path, Path, str]]:
    """(source, output, format) for every ``*.pdf.md`` and ``*.docx.md`` under build_src/."""
    found = []
    for source in sorted(SRC.rglob("*.md")):
        stem, _, fmt = source.name[: -len(".md")].rpartition(".")
        if fmt not in RENDERERS:
            continue
        rel = source.parent.relative_to(SRC)
        found.append((source, KB / rel / f"{stem}.{fmt}", fmt))
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="report stale files, write nothing")
    args = parser.parse_args(argv)
    stale = 0
    for source, output, fmt in targets():
        data = RENDERERS[fmt](parse_markdown(source.read_text(encoding="utf-8"), source))
        current = output.read_bytes() if output.exists() else None
        rel = output.relative_to(HERE)
        if current == data:
            print(f"unchanged {rel}")
        elif args.check:
            print(f"STALE     {rel}")
            stale += 1
        else:
            output.parent.mkdir(parents=True, exist_ok=True)
            output.write_bytes(data)
            print(f"wrote     {rel} ({len(data)} bytes)")
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
