"""Loaders: every format parsed into the right sections, every bad input into one clear line."""

from __future__ import annotations

import json
import os
import random
import zipfile
from pathlib import Path

import pytest

from ragtune.errors import InputError
from ragtune.ingest.loaders import SUPPORTED_EXTENSIONS, decode_text, load_file


def paths(doc):
    return [s.path for s in doc.sections]


def problem(path: Path, **kw) -> str:
    with pytest.raises(InputError) as info:
        load_file(path, **kw)
    assert str(info.value).startswith(str(path))
    assert "\n" not in str(info.value)
    return info.value.problem


# --------------------------------------------------------------------------- fixtures


def make_pdf(path: Path, pages: list[list[tuple[str, int]]], title: str | None = None) -> Path:
    """A PDF from (text, font size) lines per page; size >= 14 is set bold like a heading."""
    from fpdf import FPDF

    pdf = FPDF()
    if title:
        pdf.set_title(title)
    for lines in pages:
        pdf.add_page()
        for text, size in lines:
            pdf.set_font("Helvetica", "B" if size >= 14 else "", size)
            pdf.multi_cell(0, size * 0.6, text, new_x="LMARGIN", new_y="NEXT")
    pdf.output(str(path))
    return path


@pytest.fixture
def pdf_file(tmp_path):
    body = "Items can be returned within thirty days of delivery with a receipt. " * 4
    return make_pdf(
        tmp_path / "policy.pdf",
        [
            [("Returns Policy", 20), (body, 11), ("Exceptions", 15), ("Gift cards are final.", 11)],
            [("Sale items are final too.", 11), ("Shipping", 15), ("We ship worldwide.", 11)],
            [("Customs", 13), ("Duties are paid by the buyer.", 11)],
        ],
    )


@pytest.fixture
def docx_file(tmp_path):
    import docx

    d = docx.Document()
    d.add_paragraph("Employee Handbook", style="Title")
    d.add_heading("Leave", level=1)
    d.add_paragraph("Everyone gets 25 days of paid leave.")
    d.add_paragraph("Ask your manager first", style="List Bullet")
    d.add_heading("Sick leave", level=2)
    table = d.add_table(rows=2, cols=2)
    for r, row in enumerate([("Days", "Pay"), ("1-5", "100%")]):
        for c, value in enumerate(row):
            table.cell(r, c).text = value
    d.add_paragraph("Tell HR on the first day.")
    d.add_heading("Travel", level=1)
    d.add_paragraph("Book through the portal.")
    path = tmp_path / "handbook.docx"
    d.save(str(path))
    return path


# --------------------------------------------------------------------------- Markdown


def test_markdown_atx_and_setext_headings_build_paths(tmp_path):
    md = tmp_path / "guide.md"
    md.write_text(
        "Intro before any heading.\n\n"
        "Returns\n=======\n\nWithin 30 days.\n\n"
        "Exceptions\n----------\n\nNo gift cards.\n\n"
        "### Deep *detail* ###\n\nVery deep.\n\n"
        "# Shipping\n\n```bash\n# not a heading\necho hi\n```\n\n"
        "    # indented code, not a heading\n"
    )
    doc = load_file(md)
    assert doc.title == "Returns"
    assert paths(doc) == [
        (),
        ("Returns",),
        ("Returns", "Exceptions"),
        ("Returns", "Exceptions", "Deep detail"),
        ("Shipping",),
    ]
    assert doc.sections[1].text == "Within 30 days."
    shipping = doc.sections[-1].text
    assert "```bash\n# not a heading\necho hi\n```" in shipping
    assert "# indented code, not a heading" in shipping
    assert doc.metadata["format"] == "markdown" and doc.metadata["encoding"] == "utf-8"


def test_markdown_title_falls_back_to_stem_and_front_matter_wins(tmp_path):
    a = tmp_path / "no-h1.md"
    a.write_text("## Only level two\n\ntext\n")
    assert load_file(a).title == "no-h1"
    b = tmp_path / "fm.markdown"
    b.write_text("---\ntitle: 'Front Title'\ntags: [a]\n---\n# Heading One\n\nbody\n")
    doc = load_file(b)
    assert doc.title == "Front Title"
    assert paths(doc) == [("Heading One",)] and "tags" not in doc.text


def test_markdown_thematic_break_after_blank_line_is_not_a_heading(tmp_path):
    md = tmp_path / "hr.md"
    md.write_text("# T\n\npara one\n\n---\n\npara two\n- item\n---\n")
    doc = load_file(md)
    assert paths(doc) == [("T",)]
    assert "para two" in doc.sections[0].text


# --------------------------------------------------------------------------- plain text


def test_txt_paragraphs_title_and_heading_lines(tmp_path):
    txt = tmp_path / "notes.txt"
    txt.write_text(
        "Travel notes\n\nFirst paragraph\nwraps here.\n\n"
        "1.2 Booking rules\n\nBook early.\n\nREFUNDS\n\nAsk within a week.\n"
    )
    doc = load_file(txt)
    assert doc.title == "Travel notes"
    assert paths(doc) == [(), ("1.2 Booking rules",), ("REFUNDS",)]
    assert doc.sections[0].text == "Travel notes\n\nFirst paragraph\nwraps here."


def test_txt_long_first_line_gives_stem_title(tmp_path):
    txt = tmp_path / "memo.txt"
    txt.write_text("word " * 40 + "\n\nsecond\n")
    doc = load_file(txt)
    assert doc.title == "memo"
    assert paths(doc) == [()]


# --------------------------------------------------------------------------- HTML


def test_html_nested_headings_drop_script_style_nav(tmp_path):
    html = tmp_path / "page.html"
    html.write_text(
        "<html><head><title>Handbook Page</title><style>p{color:red}</style></head><body>"
        "<nav>Home | About</nav><h1>Handbook</h1><p>Intro   <b>bold</b> text.</p>"
        "<script>var secret = 1;</script>"
        "<h2>Leave</h2><p>25 days.</p><ul><li>Ask first</li><li>Use the <i>portal</i></li></ul>"
        "<h3>Sick leave</h3><table><tr><th>Days</th><th>Pay</th></tr>"
        "<tr><td>1-5</td><td>100%</td></tr></table>"
        "<h2>Travel</h2><pre>code   kept\n  indented</pre><!-- hidden comment --></body></html>"
    )
    doc = load_file(html)
    assert doc.title == "Handbook Page"
    assert paths(doc) == [
        ("Handbook",),
        ("Handbook", "Leave"),
        ("Handbook", "Leave", "Sick leave"),
        ("Handbook", "Travel"),
    ]
    assert doc.sections[0].text == "Intro bold text."
    assert doc.sections[1].text == "25 days.\n\n- Ask first\n- Use the portal"
    assert doc.sections[2].text == "Days | Pay\n1-5 | 100%"
    assert doc.sections[3].text == "code   kept\n  indented"
    for gone in ("secret", "color", "Home | About", "hidden comment"):
        assert gone not in doc.text


def test_html_title_falls_back_to_first_h1(tmp_path):
    html = tmp_path / "x.htm"
    html.write_text("<body><div><h1>Real Title</h1><p>text</p></div></body>")
    assert load_file(html).title == "Real Title"


# --------------------------------------------------------------------------- PDF


def test_pdf_pages_and_font_size_headings(pdf_file):
    doc = load_file(pdf_file)
    assert doc.title == "Returns Policy"
    got = [(s.path, s.page) for s in doc.sections]
    assert got == [
        (("Returns Policy",), 1),
        (("Returns Policy", "Exceptions"), 1),
        (("Returns Policy", "Exceptions"), 2),  # the heading path carries over the page break
        (("Returns Policy", "Shipping"), 2),
        (("Returns Policy", "Shipping", "Customs"), 3),
    ]
    assert doc.sections[1].text == "Gift cards are final."
    assert "thirty days" in doc.sections[0].text
    assert doc.metadata["format"] == "pdf" and doc.metadata["pages"] == 3
    assert doc.sections[-1].label == "Returns Policy > Shipping > Customs (p. 3)"


def test_pdf_metadata_title_wins(tmp_path):
    path = make_pdf(tmp_path / "t.pdf", [[("Some text here.", 11)]], title="Official Title")
    doc = load_file(path)
    assert doc.title == "Official Title" and paths(doc) == [()]


def test_pdf_encrypted_is_refused(pdf_file, tmp_path):
    import pypdf

    writer = pypdf.PdfWriter(clone_from=pypdf.PdfReader(pdf_file))
    writer.encrypt(user_password="secret", owner_password="owner", algorithm="RC4-128")
    locked = tmp_path / "locked.pdf"
    writer.write(locked)
    assert problem(locked) == "the PDF is encrypted"


def test_pdf_with_only_an_owner_password_opens(pdf_file, tmp_path):
    import pypdf

    writer = pypdf.PdfWriter(clone_from=pypdf.PdfReader(pdf_file))
    writer.encrypt(user_password="", owner_password="owner", algorithm="RC4-128")
    path = tmp_path / "owner.pdf"
    writer.write(path)
    assert paths(load_file(path))[:2] == [("Returns Policy",), ("Returns Policy", "Exceptions")]


def test_pdf_without_text_layer(tmp_path):
    from fpdf import FPDF

    pdf = FPDF()
    pdf.add_page()
    pdf.rect(20, 20, 100, 60, style="F")  # what a scan looks like to a text extractor
    pdf.add_page()
    path = tmp_path / "scan.pdf"
    pdf.output(str(path))
    assert problem(path) == "the PDF has no text layer (scanned?); OCR it first"


@pytest.mark.parametrize(
    "data, expected",
    [
        (b"this is not a pdf at all", "not a valid PDF: no %PDF header"),
        (b"%PDF-1.4 this is not really a pdf", "not a valid PDF: "),
    ],
)
def test_pdf_corrupt(tmp_path, data, expected):
    path = tmp_path / "bad.pdf"
    path.write_bytes(data)
    assert problem(path).startswith(expected)


def test_pdf_truncated_gives_input_error_not_traceback(pdf_file, tmp_path):
    data = pdf_file.read_bytes()
    for cut in (len(data) // 5, len(data) // 2):
        path = tmp_path / f"cut{cut}.pdf"
        path.write_bytes(data[:cut])
        try:
            doc = load_file(path)  # pypdf may recover what is intact; that is fine
            assert doc.sections
        except InputError as e:
            assert e.problem.startswith(("not a valid PDF", "the PDF has no"))


# --------------------------------------------------------------------------- DOCX


def test_docx_headings_tables_lists_and_title(docx_file):
    doc = load_file(docx_file)
    assert doc.title == "Employee Handbook"
    assert paths(doc) == [("Leave",), ("Leave", "Sick leave"), ("Travel",)]
    assert (
        doc.sections[0].text == "Everyone gets 25 days of paid leave.\n\n- Ask your manager first"
    )
    assert doc.sections[1].text == "Days | Pay\n1-5 | 100%\n\nTell HR on the first day."
    assert doc.metadata["format"] == "docx"


def test_docx_core_property_title_wins(tmp_path):
    import docx

    d = docx.Document()
    d.core_properties.title = "From Properties"
    d.add_heading("First Heading", level=1)
    d.add_paragraph("text")
    path = tmp_path / "p.docx"
    d.save(str(path))
    assert load_file(path).title == "From Properties"


def test_docx_corrupt(tmp_path):
    bad = tmp_path / "bad.docx"
    bad.write_bytes(b"this is not a zip file")
    assert problem(bad).startswith("not a valid DOCX file: ")
    other = tmp_path / "zip.docx"
    with zipfile.ZipFile(other, "w") as z:
        z.writestr("hello.txt", "a zip, but not a Word document")
    assert problem(other).startswith("not a valid DOCX file: ")


# --------------------------------------------------------------------------- JSON


def test_json_faq_records_one_section_per_question(tmp_path):
    path = tmp_path / "faq.json"
    path.write_text(
        json.dumps(
            [
                {
                    "question": "How long do refunds take?",
                    "answer": "Five days.",
                    "tags": ["money"],
                },
                {"question": "Can I return gift cards?", "answer": "No."},
            ]
        )
    )
    doc = load_file(path)
    assert paths(doc) == [("How long do refunds take?",), ("Can I return gift cards?",)]
    assert doc.sections[0].text == "How long do refunds take?\n\nFive days.\n\ntags:\n  - money"
    assert doc.title == "faq"


def test_json_generic_object_pretty_text(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(
        json.dumps(
            {
                "title": "Office info",
                "address": {"street": "Main 1", "city": "Oslo"},
                "open": True,
                "people": [{"name": "Ana", "role": "HR"}, {"name": "Bob", "role": "IT"}],
            }
        )
    )
    doc = load_file(path)
    assert doc.title == "Office info"
    assert paths(doc) == [("people", "Ana"), ("people", "Bob"), ()]
    assert doc.sections[0].text == "name: Ana\nrole: HR"
    assert doc.sections[2].text == "address:\n  street: Main 1\n  city: Oslo\nopen: true"


def test_jsonl_records_and_bad_line(tmp_path):
    good = tmp_path / "faq.jsonl"
    good.write_text(
        '{"question": "Q one?", "answer": "A one."}\n\n{"question": "Q two?", "answer": "A two."}\n'
    )
    doc = load_file(good)
    assert paths(doc) == [("Q one?",), ("Q two?",)]
    assert doc.metadata["records"] == 2
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"question": "ok", "answer": "fine"}\n{"a": 1}\n{"question": oops}\n')
    with pytest.raises(InputError) as info:
        load_file(bad)
    assert info.value.line == 3
    assert "invalid JSON on line 3" in str(info.value)
    assert str(info.value).startswith(f"{bad}:3: ")


def test_json_syntax_error_names_line(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text('{\n  "a": 1,\n  "b": \n}\n')
    with pytest.raises(InputError) as info:
        load_file(path)
    assert info.value.line == 4 and "invalid JSON" in info.value.problem


# --------------------------------------------------------------------------- encodings


@pytest.mark.parametrize(
    "encode, encoding",
    [
        (lambda s: s.encode("utf-8"), "utf-8"),
        (lambda s: b"\xef\xbb\xbf" + s.encode("utf-8"), "utf-8-sig"),
        (lambda s: s.encode("utf-16"), "utf-16"),  # BOM, native order
        (lambda s: b"\xfe\xff" + s.encode("utf-16-be"), "utf-16"),
        (lambda s: s.encode("utf-16-le"), "utf-16-le"),  # no BOM: found by NUL positions
        (lambda s: s.encode("utf-16-be"), "utf-16-be"),
        (lambda s: s.encode("cp1252"), "cp1252"),
    ],
)
def test_text_encodings(tmp_path, encode, encoding):
    text = "Café crème policy: “naïve” résumé required."
    path = tmp_path / "enc.txt"
    path.write_bytes(encode(text))
    doc = load_file(path)
    assert doc.text == text and doc.metadata["encoding"] == encoding


def test_latin1_fallback_never_fails():
    text, enc = decode_text(b"caf\xe9 \x81 ok", "x")  # 0x81 is undefined in cp1252
    assert enc == "latin-1" and text.startswith("café")


def test_windows_newlines_normalised(tmp_path):
    path = tmp_path / "crlf.md"
    path.write_bytes(b"# Title\r\n\r\nline one\r\nline two\r\n")
    assert load_file(path).sections[0].text == "line one\nline two"


# --------------------------------------------------------------------------- bad input


def test_empty_and_blank_files(tmp_path):
    empty = tmp_path / "empty.md"
    empty.write_bytes(b"")
    assert problem(empty) == "the file is empty"
    blank = tmp_path / "blank.txt"
    blank.write_text("  \n\n\t\n")
    assert problem(blank) == "the file has no text (only whitespace)"


def test_binary_data_in_text_file(tmp_path):
    path = tmp_path / "binary.txt"
    path.write_bytes(b"\x00\x01\x02garbage\x00\xff" * 50)
    assert problem(path) == "binary data in a text file (NUL bytes)"


def test_file_over_limit_refused_before_reading(tmp_path, monkeypatch):
    big = tmp_path / "big.txt"
    with big.open("wb") as f:
        f.truncate(100 * 1024 * 1024)  # sparse: cheap to make

    def no_reading(*a, **k):
        raise AssertionError("the file was opened")

    monkeypatch.setattr(Path, "open", no_reading)
    assert problem(big) == "file is 100.0 MB, over the 50 MB limit (ingest.max_file_mb)"
    assert "over the 0.5 MB limit" in problem(big, max_bytes=512 * 1024)


def test_unreadable_paths(tmp_path):
    assert problem(tmp_path / "missing.md") == "cannot read: no such file"
    folder = tmp_path / "folder.md"
    folder.mkdir()
    assert problem(folder) == "cannot read: it is a directory"
    link = tmp_path / "dangling.md"
    link.symlink_to(tmp_path / "nowhere.md")
    assert problem(link) == "cannot read: broken symbolic link"


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root reads anything")
def test_permission_denied(tmp_path):
    path = tmp_path / "secret.md"
    path.write_text("# x\n\ny\n")
    path.chmod(0)
    try:
        assert problem(path) == "cannot read: permission denied"
    finally:
        path.chmod(0o600)


def test_unsupported_extension_lists_supported(tmp_path):
    path = tmp_path / "image.xyz"
    path.write_bytes(b"abc")
    msg = problem(path)
    assert msg.startswith("unsupported file type '.xyz' (supported: ")
    assert all(ext in msg for ext in (".md", ".pdf", ".docx", ".jsonl"))
    assert SUPPORTED_EXTENSIONS == {
        ".md",
        ".markdown",
        ".txt",
        ".html",
        ".htm",
        ".pdf",
        ".docx",
        ".json",
        ".jsonl",
    }


def test_extension_is_case_insensitive_and_source_defaults_to_resolved_path(tmp_path):
    path = tmp_path / "UPPER.MD"
    path.write_text("# Up\n\ntext\n")
    doc = load_file(path)
    assert doc.source == str(path.resolve()) and doc.title == "Up"
    named = load_file(path, source="kb/upper.md")
    assert named.source == "kb/upper.md" and named.id != doc.id
    assert named.content_hash == doc.content_hash


@pytest.mark.parametrize("ext", sorted(SUPPORTED_EXTENSIONS))
def test_random_bytes_never_escape_as_tracebacks(tmp_path, ext):
    rng = random.Random(ext)
    for k in range(8):
        path = tmp_path / f"junk{k}{ext}"
        prefix = [b"", b"%PDF-1.7\n", b"PK\x03\x04", b"{", b"<html>"][k % 5]
        path.write_bytes(prefix + bytes(rng.randrange(256) for _ in range(rng.randrange(1, 3000))))
        try:
            load_file(path)
        except InputError:
            pass


def test_a_docx_whose_zip_needs_an_unknown_version_is_an_input_error(tmp_path):
    """Found by the fuzz target: a zip directory claiming 'version needed to extract' 9.8
    made zipfile raise NotImplementedError, which escaped the loader."""
    from tests.ingest.hostile import docx_bytes

    data = bytearray(docx_bytes())
    at = data.find(b"PK\x01\x02")
    while at != -1:  # every central directory entry: version needed (2 bytes after "made by")
        data[at + 6:at + 8] = (98).to_bytes(2, "little")
        at = data.find(b"PK\x01\x02", at + 4)
    path = tmp_path / "future.docx"
    path.write_bytes(bytes(data))
    with pytest.raises(InputError, match="not a valid DOCX file: zip file version 9.8"):
        load_file(path)
