"""Options every ragtune command group shares (the main CLI and its sub-apps import these,
so ``--workspace``, ``--as`` and ``--json`` mean the same everywhere)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

WorkspaceOpt = Annotated[Path | None, typer.Option("--workspace", "-w", envvar="RAGTUNE_HOME",
                                                   help="Workspace folder (default ./.ragtune).")]
AsOpt = Annotated[str | None, typer.Option("--as", help="Act as this user (see [access.users]).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]
