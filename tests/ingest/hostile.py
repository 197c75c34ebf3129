"""Hostile and pathological inputs, generated (nothing is checked in): what an attacker or a
careless user puts in a folder that gets ingested (issue 17). ``make_hostile(folder)``
writes them all and returns their names; tests assert that a batch survives every one.
"""

from __future__ import annotations

import io
import os
import struct
import zipfile
from collections.abc import Callable
from pathlib import Path

GOOD = {
    "good-returns.md": "# Returns\n\nItems can be returned within 30 days of delivery.\n",
    "good-vpn.txt": "VPN\n\nReset your VPN password at the IT portal every 90 days.\n",
    "good-faq.json": '[{"question": "How long is shipping?", "answer": "Five working days."}]',
}


def pdf_bytes(pages: int = 2, text: str = "Hostile PDF page") -> bytes:
    from fpdf import FPDF

    pdf = FPDF()
    for k in range(pages):
        pdf.add_page()
        pdf.set_font("Helvetica", "", 12)
        pdf.multi_cell(0, 8, f"{text} {k + 1}. " * 5, new_x="LMARGIN", new_y="NEXT")
    return bytes(pdf.output())


def docx_bytes(text: str = "A hostile DOCX paragraph.") -> bytes:
    import docx

    d = docx.Document()
    d.add_heading("Hostile", 1)
    d.add_paragraph(text)
    buf = io.BytesIO()
    d.save(buf)
    return buf.getvalue()


def _rezip(data: bytes, extra: dict[str, bytes] | None = None,
           replace: dict[str, bytes] | None = None) -> bytes:
    src, out = zipfile.ZipFile(io.BytesIO(data)), io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        for info in src.infolist():
            z.writestr(info.filename, (replace or {}).get(info.filename, src.read(info)))
        for name, payload in (extra or {}).items():
            z.writestr(name, payload)
    return out.getvalue()


def zip_bomb_docx() -> bytes:
    """A real DOCX with a 60 MB part of zeros that deflates ~1000x."""
    return _rezip(docx_bytes(), extra={"word/media/bomb.bin": bytes(60 * 1024 * 1024)})


def lying_docx() -> bytes:
    """document.xml inflates to 20 MB but the zip directory says 1 KB."""
    body = b"<w:document>" + b" " * (20 * 1024 * 1024) + b"</w:document>"
    data = bytearray(_rezip(docx_bytes(), replace={"word/document.xml": body}))
    info = zipfile.ZipFile(io.BytesIO(bytes(data))).getinfo("word/document.xml")
    struct.pack_into("<I", data, info.header_offset + 22, 1024)  # local header size
    central = bytes(data).rfind(b"PK\x01\x02", 0, len(data))
    while central != -1:  # the central directory record of that member
        name_len = struct.unpack_from("<H", data, central + 28)[0]
        if data[central + 46:central + 46 + name_len] == b"word/document.xml":
            struct.pack_into("<I", data, central + 24, 1024)
            break
        central = bytes(data).rfind(b"PK\x01\x02", 0, central)
    return bytes(data)


def many_entries_docx() -> bytes:
    return _rezip(docx_bytes(), extra={f"word/x/{i}.xml": b"<a/>" for i in range(10_050)})


def cyclic_pdf() -> bytes:
    """A PDF whose page tree lists itself as its own kid (a loop for naive walkers)."""
    objs = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [2 0 R 3 0 R] /Count 2 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] >>",
    ]
    out, offsets = bytearray(b"%PDF-1.4\n"), []
    for k, body in enumerate(objs, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % k + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objs) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objs) + 1, xref)
    return bytes(out)


def _files() -> dict[str, bytes | Callable[[], bytes]]:
    good_pdf = pdf_bytes()
    return {
        # nesting
        "deep-array.json": b"[" * 5000 + b"]" * 5000,
        "deep-object.json": b'{"a":' * 3000 + b"1" + b"}" * 3000,
        "deep-line.jsonl": b'{"ok": 1}\n' + b"[" * 2000 + b"]" * 2000 + b"\n",
        "deep.html": b"<html><body>" + b"<div>" * 5000 + b"deep text" + b"</div>" * 5000,
        "deep-unclosed.html": b"<p>" + b"<b><i>" * 3000 + b"never closed",
        "wide-table.html": b"<table><tr>" + b"<td>c</td>" * 20000 + b"</tr></table>",
        # archives
        "zip-bomb.docx": zip_bomb_docx,
        "lying-sizes.docx": lying_docx,
        "many-entries.docx": many_entries_docx,
        "not-a-zip.docx": os.urandom(4096),
        "empty-zip.docx": _empty_zip(),
        # PDFs
        "truncated.pdf": good_pdf[: len(good_pdf) // 2],
        "no-eof-marker.pdf": good_pdf.replace(b"%%EOF", b""),
        "header-only.pdf": b"%PDF-1.7\n" + os.urandom(2048),
        "cyclic-pages.pdf": cyclic_pdf(),
        "too-many-pages.pdf": pdf_bytes(pages=8),  # ingested with max_pages below 8
        "not-a-pdf.pdf": b"GIF89a" + os.urandom(512),
        # bytes and characters
        "nul-bytes.md": b"# Nul\n\nhello\x00world\x00" * 100,
        "nul-escape.json": b'{"title": "n", "text": "a\\u0000b \\u001b[31mred"}',
        "lone-surrogate.json": b'[{"question": "Why \\ud800?", "answer": "Because \\udfff."}]',
        "invalid-utf8.md": b"# Caf\xe9\n\n\xff\xfe\xfa broken \xc3\x28 bytes \x80\x81\n",
        "utf16-odd-length.txt": "odd".encode("utf-16-le") + b"\x00",
        "ansi-escapes.md": b"# \x1b[2J\x1b[31mRed\x1b[0m\n\n\x1b]0;pwned\x07title text \x9b31m\n",
        "bidi-override.txt": "Invoice \u202etxt.exe\u202c total 100\n".encode(),
        "only-whitespace.txt": b" \n\t\n   \n" * 100,
        "empty.md": b"",
        "random.txt": os.urandom(8192),
        "random.html": os.urandom(8192),
        "one-word-1mb.txt": b"x" * (1024 * 1024),
        "base64-line.txt": __import__("base64").b64encode(os.urandom(300_000)),
        "words-no-stop.txt": b"word " * 200_000,
        "many-headings.md": b"".join(b"# H%d\n\nt\n" % i for i in range(20_000)),
        "quote-nesting.md": b"> " * 10_000 + b"deep quote\n",
        "crlf-mess.txt": b"line\r\r\r\n\r" * 10_000 + b"end",
        # names
        "[red]markup-name.md": b"# Markup\n\nName with rich markup.\n",
        "\x1b[31mescape-name.md": b"# Esc\n\nName with an escape sequence.\n",
        "-rf.md": b"# Dash\n\nA name that looks like an option.\n",
        "new\nline.md": b"# Newline\n\nA name with a newline.\n",
        "\u202egnp.md": b"# RTL\n\nA name with a right-to-left override.\n",
        "n" * 250 + ".md": b"# Long\n\nA 253-byte name.\n",
    }


def _empty_zip() -> bytes:
    buf = io.BytesIO()
    zipfile.ZipFile(buf, "w").close()
    return buf.getvalue()


def make_hostile(folder: Path) -> list[str]:
    """Write every hostile file (and three good ones) into ``folder``; returns the names of
    the hostile entries (links, a FIFO and a non-UTF-8 name included)."""
    folder.mkdir(parents=True, exist_ok=True)
    names = []
    for name, content in _files().items():
        (folder / name).write_bytes(content() if callable(content) else content)
        names.append(name)
    for name, text in GOOD.items():
        (folder / name).write_text(text)
    # a name that is not UTF-8 (Latin-1 from an old share)
    (folder / os.fsdecode(b"caf\xe9-latin1.md")).write_bytes(b"# Latin\n\nA Latin-1 name.\n")
    names.append(os.fsdecode(b"caf\xe9-latin1.md"))
    # links: a loop, a broken one, one out of the folder, a folder loop
    (folder / "loop-a.md").symlink_to("loop-b.md")
    (folder / "loop-b.md").symlink_to("loop-a.md")
    (folder / "broken.md").symlink_to("does-not-exist.md")
    (folder / "outside.md").symlink_to("/etc/hostname")
    (folder / "sub").mkdir()
    (folder / "sub" / "up").symlink_to("..", target_is_directory=True)
    (folder / "sub" / "inner.md").write_text("# Inner\n\nA file in a subfolder.\n")
    names += ["loop-a.md", "loop-b.md", "broken.md", "outside.md", "sub/inner.md"]
    os.mkfifo(folder / "pipe.md")  # a read would block forever
    names.append("pipe.md")
    locked = folder / "locked.md"  # unreadable (except to root)
    locked.write_text("# Locked\n\nUnreadable file.\n")
    locked.chmod(0)
    names.append("locked.md")
    return names
