"""Coverage-guided fuzz target for the loaders and the chunker (atheris, i.e. libFuzzer).

Each input is one file: its first byte picks the format (.md, .txt, .html, .pdf, .docx,
.json, .jsonl), the rest is the file's bytes. The file is loaded under small limits and
chunked. A bad file must become an :class:`~ragtune.errors.InputError`; anything else that
escapes (an exception, a chunk over its bound, a NUL or a lone surrogate in stored text) is
a crash, and libFuzzer saves the input that caused it.

    python tests/fuzz/fuzz_loaders.py -max_total_time=60 -max_len=65536 CORPUS_DIR

ragtune and the parsers it drives (pypdf, python-docx, BeautifulSoup) are instrumented, so
inputs that reach new branches of either are kept and mutated further.
"""

from __future__ import annotations

import sys
from pathlib import Path

import atheris

with atheris.instrument_imports():
    import bs4  # noqa: F401 - instrumented for coverage
    import docx  # noqa: F401
    import pypdf  # noqa: F401

    from ragtune.errors import InputError
    from ragtune.ingest import chunking, loaders
    from ragtune.ingest.guards import Limits

EXTENSIONS = sorted(loaders.SUPPORTED_EXTENSIONS)
LIMITS = Limits(max_bytes=1 << 20, max_pages=20, max_depth=64,
                max_unzipped_bytes=16 << 20, max_seconds=30)
MAX_TOKENS = 64


def extension_byte(ext: str) -> bytes:
    """The first byte that selects ``ext`` (for seed files)."""
    return bytes([EXTENSIONS.index(ext)])


def test_one_input(data: bytes) -> None:
    if not data:
        return
    ext = EXTENSIONS[data[0] % len(EXTENSIONS)]
    try:
        doc = loaders.load_bytes(data[1:], Path("fuzz" + ext), source="fuzz", limits=LIMITS)
    except InputError as e:
        assert "\n" not in e.problem, e.problem
        return
    for s in doc.sections:
        assert s.text and "\x00" not in s.text
        s.text.encode("utf-8")  # no lone surrogates reach the store
    for c in chunking.chunk_document(doc, max_tokens=MAX_TOKENS, overlap=8):
        assert c.tokens <= MAX_TOKENS and c.text, c


def main() -> None:
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
