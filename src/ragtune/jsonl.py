"""JSON Lines files: read with errors that name file and line, write atomically.

>>> import tempfile, pathlib
>>> p = pathlib.Path(tempfile.mkdtemp()) / "x.jsonl"
>>> write_jsonl_atomic(p, [{"a": 1}, {"a": 2}])
>>> [obj for _, obj in read_jsonl(p)]
[{'a': 1}, {'a': 2}]
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from ragtune.errors import InputError


def read_json_object(path: Path, expected: str = "expected a JSON object") -> dict[str, Any]:
    """The JSON object in ``path``; a missing file, invalid JSON (with its line) or another
    JSON value is an :class:`InputError` naming the file."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(str(path), "file not found") from None
    except json.JSONDecodeError as e:
        raise InputError(str(path), f"not valid JSON ({e.msg})", line=e.lineno) from None
    if not isinstance(data, dict):
        raise InputError(str(path), expected)
    return data


def jsonl_lines(path: Path) -> Iterator[tuple[int, str]]:
    """(line number, text) of the non-blank lines; a missing folder/file or non-UTF-8 text
    is an :class:`InputError` naming the file."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(str(path), "file not found") from None
    except IsADirectoryError:
        raise InputError(str(path), "is a folder, expected a JSONL file") from None
    except UnicodeDecodeError as e:
        raise InputError(str(path), f"not UTF-8 text ({e.reason} at byte {e.start})") from None
    for n, raw in enumerate(text.splitlines(), 1):
        if raw.strip():
            yield n, raw


def read_jsonl(path: Path) -> Iterator[tuple[int, Any]]:
    """(line number, decoded value) per non-blank line; bad JSON names file and line."""
    for n, raw in jsonl_lines(path):
        try:
            yield n, json.loads(raw)
        except json.JSONDecodeError as e:
            raise InputError(str(path), f"not valid JSON ({e.msg} at column {e.colno})",
                             line=n) from None


def write_text_atomic(path: Path, text: str) -> None:
    """Write ``text`` to a temp file renamed over ``path``: a crash never leaves half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_jsonl_atomic(path: Path, rows: Iterable[dict[str, Any]]) -> None:
    """Write ``rows`` as JSON lines, atomically (:func:`write_text_atomic`)."""
    write_text_atomic(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
