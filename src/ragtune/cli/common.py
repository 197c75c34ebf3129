"""What every ragtune command group shares: the ``--workspace/--as/--json`` options, the two
consoles, JSON printing, opening the workspace and the search filter options.

A command module imports these instead of defining its own, so ``--json`` prints the same
way and ``--workspace`` means the same folder everywhere::

    from ragtune.cli.common import JsonOpt, WorkspaceOpt, open_workspace, print_json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

from ragtune.store.base import SearchFilter

if TYPE_CHECKING:
    from ragtune.workspace import Workspace

WorkspaceOpt = Annotated[Path | None, typer.Option("--workspace", "-w", envvar="RAGTUNE_HOME",
                                                   help="Workspace folder (default ./.ragtune).")]
AsOpt = Annotated[str | None, typer.Option("--as", help="Act as this user (see [access.users]).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]

console = Console()
err = Console(stderr=True)


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
