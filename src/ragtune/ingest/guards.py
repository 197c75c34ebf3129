"""Guards that refuse a hostile or pathological file early and cheaply, with a reason.

A file is parsed under :class:`Limits` (from ``[ingest]`` in ragtune.toml): a size limit
checked before reading, a nesting-depth limit checked by a linear scan before a recursive
parser sees the text, a decompressed-size limit checked from a DOCX's zip directory before
anything is unpacked, a page limit, and a wall-clock limit on parsing and chunking one file.
What a library prints or logs while it reads a file is captured, so it ends up in that file's
message instead of on the terminal.

>>> json_depth_exceeds('{"a": [[1]], "b": "[[[[["}', 3)
False
>>> json_depth_exceeds('[[[[1]]]]', 3)
True
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import signal
import sys
import threading
import time
import warnings
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from ragtune.config import IngestSettings
from ragtune.errors import InputError

_MB = 1024 * 1024
# A zip entry that inflates more than this many times is a bomb, not a document part
# (Word's XML parts deflate 5-20x; images and fonts hardly at all).
MAX_ZIP_RATIO = 200
MAX_ZIP_ENTRIES = 10_000


@dataclass(frozen=True)
class Limits:
    """The per-file limits every loader honours (see :class:`~ragtune.config.IngestSettings`)."""

    max_bytes: int = 50 * _MB
    max_pages: int = 5000
    max_depth: int = 128
    max_unzipped_bytes: int = 500 * _MB
    max_seconds: float = 600.0
    text_types: tuple[str, ...] = ()  # further types read as plain text (".rst")

    @classmethod
    def from_settings(cls, s: IngestSettings) -> Limits:
        return cls(max_bytes=int(s.max_file_mb * _MB), max_pages=s.max_pages,
                   max_depth=s.max_depth, max_unzipped_bytes=int(s.max_unzipped_mb * _MB),
                   max_seconds=s.max_seconds, text_types=tuple(s.text_types))


def json_depth_exceeds(text: str, limit: int) -> bool:
    """True when brackets outside strings nest deeper than ``limit`` (one linear pass;
    ``json.loads`` recurses per level and a few hundred levels exhaust Python's stack)."""
    if text.count("[") + text.count("{") <= limit:  # fast path for ordinary files
        return False
    depth, in_string, escaped = 0, False, False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            if depth > limit:
                return True
        elif ch in "]}":
            depth -= 1
    return False


def check_zip(data: bytes, where: str, limits: Limits) -> None:
    """Refuse a zip (DOCX) whose directory promises a bomb, before unpacking anything.

    The directory's sizes are what the members inflate to; zipfile itself stops reading a
    member at its declared size, so a lying directory cannot smuggle more past this check.
    """
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            infos = z.infolist()
    # NotImplementedError: a directory claiming a zip version this zipfile cannot read (found
    # by the fuzz target)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError) as exc:
        raise InputError(where, f"not a valid DOCX file: {short(exc)}") from None
    if len(infos) > MAX_ZIP_ENTRIES:
        raise InputError(where, f"the DOCX holds {len(infos)} files (more than "
                                f"{MAX_ZIP_ENTRIES}): refused as a zip bomb")
    total = sum(i.file_size for i in infos)
    if total > limits.max_unzipped_bytes:
        raise InputError(where, f"the DOCX unpacks to {total / _MB:.0f} MB, over the "
                                f"{limits.max_unzipped_bytes / _MB:g} MB limit "
                                "(ingest.max_unzipped_mb): refused as a zip bomb")
    for i in infos:
        if i.file_size > _MB and i.file_size > MAX_ZIP_RATIO * max(i.compress_size, 1):
            raise InputError(where, f"'{i.filename}' in the DOCX inflates "
                                    f"{i.file_size // max(i.compress_size, 1)}x: refused as a "
                                    "zip bomb")


class _Overtime(BaseException):
    """Raised by the timer inside a loader; a BaseException so that libraries' broad
    ``except Exception`` blocks cannot swallow it."""


@contextlib.contextmanager
def time_limit(seconds: float, where: str) -> Iterator[None]:
    """Raise InputError when the block runs longer than ``seconds``.

    Enforced with a SIGALRM timer when called on the main thread (the CLI): the timer
    interrupts pure-Python parsing (pypdf, BeautifulSoup, our chunker) between bytecodes.
    On other threads signals cannot be used and the block runs unbounded.
    """
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "setitimer"):
        yield
        return

    def on_alarm(signum: int, frame: object) -> None:
        raise _Overtime

    previous = signal.signal(signal.SIGALRM, on_alarm)
    started = time.monotonic()
    their_delay, their_interval = signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    except _Overtime:
        raise InputError(where, f"parsing took longer than {seconds:g} s (ingest.max_seconds): "
                                "refused") from None
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        if their_delay:  # a caller's own timer keeps running, less the time spent here
            left = max(their_delay - (time.monotonic() - started), 0.001)
            signal.setitimer(signal.ITIMER_REAL, left, their_interval)


class _Capture(logging.Handler):
    def __init__(self, thread: int) -> None:
        super().__init__(logging.WARNING)
        self.thread = thread
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.thread == self.thread:
            name = record.name.split(".")[0]
            self.messages.append(f"{name}: {record.getMessage()}")


class _ThreadTee(io.TextIOBase):
    """Stands in for sys.stdout/sys.stderr: what one thread writes is kept, what the others
    write (a progress bar's refresh thread, the embedding threads) passes through."""

    def __init__(self, real: Any, thread: int) -> None:
        self.real, self.thread, self.kept = real, thread, io.StringIO()

    def write(self, s: str) -> int:
        if threading.get_ident() == self.thread:
            return self.kept.write(s)
        return self.real.write(s)

    def flush(self) -> None:
        self.real.flush()

    def __getattr__(self, name: str) -> Any:  # isatty, encoding, fileno... of the real one
        return getattr(self.real, name)


@contextlib.contextmanager
def captured_output() -> Iterator[list[str]]:
    """Collect what libraries log (WARNING and up), warn or print to stdout/stderr from this
    thread during the block; yields the list the messages are put in. Other threads' output
    is left alone.

    >>> with captured_output() as said:
    ...     logging.getLogger("pypdf._reader").warning("EOF marker not found")
    >>> said
    ['pypdf: EOF marker not found']
    """
    said: list[str] = []
    me = threading.get_ident()
    handler = _Capture(me)
    root = logging.getLogger()
    root.addHandler(handler)
    out, err = _ThreadTee(sys.stdout, me), _ThreadTee(sys.stderr, me)
    warned: list[str] = []
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(out), \
                contextlib.redirect_stderr(err):
            shown = warnings.showwarning

            def show(message: Any, category: type[Warning], *args: Any, **kw: Any) -> None:
                if threading.get_ident() == me:
                    warned.append(f"{category.__name__}: {message}")
                else:
                    shown(message, category, *args, **kw)

            warnings.simplefilter("always")
            warnings.showwarning = show
            yield said
    finally:
        root.removeHandler(handler)
        said.extend(handler.messages)
        said.extend(warned)
        for tee in (out, err):
            said.extend(line.strip() for line in tee.kept.getvalue().splitlines()
                        if line.strip())


def short(exc: BaseException) -> str:
    """One line for a library's exception: its message, else its type name."""
    msg = str(exc).strip().split("\n")[0]
    return msg[:160] or type(exc).__name__


def one_line(text: str, limit: int = 300) -> str:
    """``text`` on one line, control characters shown as escapes, at most ``limit`` chars:
    what a failure message may contain (it is printed and logged).

    >>> one_line("bad\\nthing\\x1b[31m")
    'bad thing\\\\x1b[31m'
    """
    text = " ".join(text.split())
    text = "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii")
                   for c in text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def display_path(path: os.PathLike[str] | str) -> str:
    """A path as text that is always valid UTF-8: bytes that are not UTF-8 (the name came
    from another system) are shown as ``\\xNN`` escapes. Used as the document's source and in
    every message, so a name can be stored, printed and logged.

    >>> display_path(os.fsdecode(b"caf\\xe9.md"))
    'caf\\\\xe9.md'
    """
    return os.fsencode(path).decode("utf-8", errors="backslashreplace")
