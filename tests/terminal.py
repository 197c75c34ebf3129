"""Run the real ``ragtune`` entry point in-process, as a person at an 80-column terminal or as
a pipe, and read what a terminal would show.

``ragtune(..., tty=True)`` runs :func:`ragtune.cli.app.main` inside Typer's CliRunner
isolation with ``TTY_COMPATIBLE=1`` and ``COLUMNS=80`` (Rich then draws for a terminal of
80 columns: live updates, cursor moves, wrapping); ``tty=False`` is a pipe started from
such a terminal (``COLUMNS=80`` still set, ``TTY_COMPATIBLE=0``). :func:`screen` replays the
control sequences Rich writes (cursor up, erase line, carriage return) into the lines a
terminal would end up showing, so "printed once" can be checked on the screen, not on the
byte stream.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path

from typer.testing import CliRunner

from tests.conftest import FAKE

# The fake models, as environment overrides (the workspace's ragtune.toml is left alone).
FAKE_ENV = {"RAGTUNE_EMBEDDING_BACKEND": FAKE["embedding"]["backend"],
            "RAGTUNE_GENERATION_BACKEND": FAKE["generation"]["backend"],
            "RAGTUNE_RETRIEVAL_MIN_SIMILARITY": str(FAKE["retrieval"]["min_similarity"])}

_CSI = re.compile(r"\x1b\[([0-9;?]*)([A-Za-z])")


@dataclass
class Run:
    code: int
    stdout: str
    stderr: str

    @property
    def lines(self) -> list[str]:
        return [line for line in screen(self.stdout) if line.strip()]


def ragtune(*args: str | Path, home: Path | None = None, tty: bool, columns: int = 80,
            input: str | None = None, env: dict[str, str] | None = None) -> Run:
    """``ragtune ARGS`` through the real ``main`` (usage errors, exit codes and all)."""
    from ragtune.cli.app import main

    e = {"COLUMNS": str(columns), "TTY_COMPATIBLE": "1" if tty else "0", "NO_COLOR": "1",
         "TERM": "xterm-256color", "LINES": "50", **FAKE_ENV, **(env or {})}
    if home is not None:
        e["RAGTUNE_HOME"] = str(home)
    runner = CliRunner()
    code = 0
    with runner.isolation(input=input, env=e) as (out, err, _):
        try:
            main([str(a) for a in args])
        except SystemExit as exit_:
            code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
        sys.stdout.flush()
        sys.stderr.flush()
        stdout = out.getvalue().decode("utf-8", "replace")
        stderr = err.getvalue().decode("utf-8", "replace")
    return Run(code, stdout, stderr)


def screen(text: str) -> list[str]:
    """The lines a terminal shows after ``text`` (cursor up, erase line, CR; styles dropped).

    >>> screen("abc\\r\\x1b[2Kxy\\n\\x1b[1mbold\\x1b[0m")
    ['xy', 'bold']
    >>> screen("one\\ntwo\\n\\x1b[1A\\x1b[2K\\x1b[1A\\x1b[2Kthree\\n")
    ['three', '', '']
    """
    lines = [""]
    row = col = 0
    pos = 0
    for m in _CSI.finditer(text + "\x1b[0m"):
        for ch in text[pos:m.start()]:
            if ch == "\n":
                row += 1
                col = 0
                if row == len(lines):
                    lines.append("")
            elif ch == "\r":
                col = 0
            else:
                line = lines[row].ljust(col)
                lines[row] = line[:col] + ch + line[col + 1:]
                col += 1
        pos = m.end()
        arg, cmd = m.group(1), m.group(2)
        n = int(arg) if arg.isdigit() else 1
        if cmd == "A":
            row = max(0, row - n)
        elif cmd == "B":
            row += n
            while row >= len(lines):
                lines.append("")
        elif cmd == "K":
            lines[row] = "" if arg in {"2"} else lines[row][:col]
        elif cmd == "G":
            col = n - 1
        # colours, cursor show/hide and the rest change nothing on the screen
    return [line.rstrip() for line in lines]
