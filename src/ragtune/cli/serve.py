"""``ragtune serve``: the web app, OpenAI-compatible chat and ragtune's API over the workspace.

Thin: open the workspace, build the app (:func:`ragtune.server.app.create_app`), run it
with uvicorn. With ``--workers N`` each worker process opens the workspace itself.
"""

from __future__ import annotations

import os
from typing import Annotated

import typer

from ragtune.cli.common import WorkspaceOpt, console, open_workspace


def serve(host: Annotated[str | None, typer.Option(help="Address to listen on (default server.host: 127.0.0.1).")] = None,
          port: Annotated[int | None, typer.Option(help="TCP port (default server.port: 8080).")] = None,
          workers: Annotated[int | None, typer.Option(help="Server processes; each loads its own models (default server.workers: 1).")] = None,
          access_log: Annotated[bool, typer.Option("--access-log", help="Log every HTTP request (the audit log already records every question).")] = False,
          workspace: WorkspaceOpt = None) -> None:
    """Serve the workspace: web app at /, OpenAI-compatible /v1, ragtune's /api."""
    try:
        import uvicorn

        from ragtune.server.app import create_app
    except ImportError as e:
        from ragtune.errors import MissingDependency

        raise MissingDependency(e.name or "fastapi", "server") from None
    ws = open_workspace(workspace)
    settings = ws.settings.server
    host = host or settings.host
    port = port or settings.port
    workers = workers or settings.workers
    keys = ws.root / ws.settings.auth.keys_file
    url = f"http://{'127.0.0.1' if host in {'0.0.0.0', '::'} else host}:{port}/"
    console.print(f"ragtune serving {ws.root} at [bold]{url}[/] (OpenAI base URL {url}v1)",
                  highlight=False)
    if not keys.exists() and not ws.settings.auth.anonymous:
        console.print("[yellow]no API keys yet: create one with 'ragtune keys create USER "
                      "--admin' to sign in[/]", highlight=False)
    if workers > 1:
        os.environ["RAGTUNE_HOME"] = str(ws.root)
        uvicorn.run("ragtune.server.app:app_from_env", factory=True, host=host, port=port,
                    workers=workers, log_level="info", access_log=access_log)
    else:
        uvicorn.run(create_app(ws), host=host, port=port, log_level="info",
                    access_log=access_log)
