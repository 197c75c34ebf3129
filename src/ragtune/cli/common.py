"""What every ragtune command group shares: the ``--workspace/--as/--json`` options, the two
consoles, JSON printing, opening the workspace and the search filter options.

A command module imports these instead of defining its own, so ``--json`` prints the same
way and ``--workspace`` means the same folder everywhere::

    from ragtune.cli.common import JsonOpt, WorkspaceOpt, open_workspace, print_json
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console, ConsoleDimensions

from ragtune.store.base import SearchFilter

if TYPE_CHECKING:
    from ragtune.workspace import Workspace

WorkspaceOpt = Annotated[Path | None, typer.Option("--workspace", "-w", envvar="RAGTUNE_HOME",
                                                   help="Workspace folder (default ./.ragtune).")]
AsOpt = Annotated[str | None, typer.Option("--as", help="Act as this user (see 'ragtune users list').")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]

# Output that is not a terminal (a file, a pipe, another program) is never wrapped: Rich
# would otherwise cut lines at the width of whatever terminal started the pipeline (80
# columns by default), splitting paths and numbers. Tables then take their natural width.
PIPE_WIDTH = 10_000


class CliConsole(Console):
    """A Rich console that wraps to the terminal's width in a terminal and not at all when
    its output is piped or redirected::

        console = CliConsole()            # stdout
        err = CliConsole(stderr=True)     # progress, warnings, errors
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if "width" not in kwargs:
            self._width = None  # read $COLUMNS when printing, not once at import

    @property
    def size(self) -> ConsoleDimensions:
        dims = Console.size.fget(self)  # type: ignore[attr-defined]
        return dims if self.is_terminal else ConsoleDimensions(PIPE_WIDTH, dims.height)

    @size.setter
    def size(self, new_size: tuple[int, int]) -> None:
        Console.size.fset(self, new_size)  # type: ignore[attr-defined]


console = CliConsole()
err = CliConsole(stderr=True)


EMPTY_HINT = ("the knowledge base is empty: add documents with 'ragtune ingest FOLDER' "
              "(try the sample: ragtune ingest examples/kb --exclude restricted/)")


def shown_path(path: str) -> str:
    """A path as a person wants to read it: relative to the current folder when inside it.

    >>> shown_path(os.path.join(os.getcwd(), "docs", "a.md")) == os.path.join("docs", "a.md")
    True
    >>> shown_path("/elsewhere/a.md")
    '/elsewhere/a.md'
    """
    try:
        rel = os.path.relpath(path)
    except ValueError:  # another drive (Windows)
        return path
    return path if rel.startswith("..") else rel


def require_documents(ws: Workspace) -> None:
    """Exit 1 with how to fill it when the knowledge base has no document at all (a question
    would only ever get 'not found')."""
    if ws.store.stats()["documents"] == 0:
        err.print(f"[yellow]nothing to search:[/] {EMPTY_HINT}", highlight=False, soft_wrap=True)
        raise typer.Exit(1)


def print_json(data: Any) -> None:
    """Machine output: indented JSON on stdout (non-ASCII kept, anything else via ``str``)."""
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")


def open_workspace(workspace: Path | None) -> Workspace:
    """The existing workspace at ``workspace`` (or the default); a missing one is a clear error."""
    from ragtune.workspace import Workspace

    return Workspace.open(workspace)


def search_filters(collection: list[str] | None, document: list[str] | None,
                   since: str | None) -> SearchFilter | None:
    """The ``--collection/--document/--since`` options as a SearchFilter (None: no filter)."""
    if not (collection or document or since):
        return None
    since_ts = None
    if since:
        from datetime import datetime

        try:
            since_ts = datetime.fromisoformat(since).timestamp()
        except ValueError:
            raise typer.BadParameter(f"--since must be an ISO date like 2026-01-31, got {since!r}") from None
    return SearchFilter(collections=tuple(collection or ()), documents=tuple(document or ()),
                        since=since_ts)


def retrieval_mode(mode: str | None) -> str | None:
    """``--mode`` of a search, with the old name ``hybrid`` taken as ``fused`` and a note said."""
    from ragtune.config import RETRIEVAL_MODE_ALIASES

    if mode in RETRIEVAL_MODE_ALIASES:
        err.print(f"note: retrieval mode '{mode}' is now called '{RETRIEVAL_MODE_ALIASES[mode]}' "
                  "('hybrid' names the router + adapter answer mode)", highlight=False)
        return RETRIEVAL_MODE_ALIASES[mode]
    return mode
