"""``ragtune store``: check a store's integrity (any backend) and migrate one to PostgreSQL.

    ragtune store check
    ragtune store migrate --to postgresql://ragtune@db/ragtune [--switch]
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Annotated

import tomli_w
import typer

from ragtune.cli.common import JsonOpt, WorkspaceOpt, console, err, open_workspace, print_json
from ragtune.errors import ConfigError

store_app = typer.Typer(no_args_is_help=True, help="Check or migrate the workspace's store.")


@store_app.command("check")
def check(workspace: WorkspaceOpt = None, as_json: JsonOpt = False) -> None:
    """Integrity of the store, whatever its backend; exit code 1 when a problem is found."""
    ws = open_workspace(workspace)
    problems = ws.store.integrity_check()
    stats = ws.store.stats()
    if as_json:
        print_json({"backend": ws.settings.store.backend, "documents": stats.get("documents"),
                    "chunks": stats.get("chunks"), "problems": problems})
    elif problems:
        for p in problems:
            err.print(f"[red]problem:[/] {p}", highlight=False)
    else:
        console.print(f"ok: {ws.settings.store.backend} store, {stats.get('documents')} documents, "
                      f"{stats.get('chunks')} chunks", highlight=False)
    if problems:
        raise typer.Exit(1)


@store_app.command("migrate")
def migrate(to: Annotated[str, typer.Option("--to", help="postgresql://user@host/db[?schema=name]")],
            switch: Annotated[bool, typer.Option(
                "--switch", help="After a verified copy, point ragtune.toml's \\[store] at it.")] = False,
            workspace: WorkspaceOpt = None, as_json: JsonOpt = False) -> None:
    """Copy the workspace's store into PostgreSQL without re-embedding, then verify the counts.

    Documents keep their ids, version history and ACLs, chunks their vectors; traces and the
    ingest log come along. Running it again copies only what changed.
    """
    if not to.startswith(("postgres://", "postgresql://")):
        raise ConfigError(f"--to must be a postgresql:// URL, got {to!r}")
    from ragtune.store.bm25 import BM25Params
    from ragtune.store.postgres import PostgresStore
    from ragtune.store.transfer import copy_store

    ws = open_workspace(workspace)
    # the copy analyses text as the workspace does (its terms are re-made from the text)
    target = PostgresStore(to, bm25=BM25Params.from_settings(ws.settings.store),
                           quoted_phrases=ws.settings.store.quoted_phrases)
    with ws.store.write_lock(), target.write_lock(exclusive=True):
        report = copy_store(ws.store, target,
                            progress=None if as_json else _progress)
    target.close()
    if as_json:
        print_json(report)
    else:
        console.print(f"copied {report['copied']} of {report['documents']} documents "
                      f"and {report['traces']} traces to {target.location}",
                      highlight=False)
        for p in report["problems"]:
            err.print(f"[red]problem:[/] {p}", highlight=False)
    if report["problems"]:
        raise typer.Exit(1)
    if switch:
        path = ws.root / "ragtune.toml"
        data = tomllib.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
        data["store"] = {"backend": "postgres", "url": to}
        path.write_text(tomli_w.dumps(data), encoding="utf-8")
        if not as_json:
            console.print(f"{path}: \\[store] now uses postgres", highlight=False)


def _progress(done: int, total: int) -> None:
    if done == total or done % 100 == 0:
        err.print(f"  {done}/{total} documents", highlight=False)


@store_app.command("local-postgres")
def local_postgres(data: Annotated[Path, typer.Option("--data", help="Data folder (created if new).")] = Path("pgdata"),
                   port: Annotated[int, typer.Option("--port", help="TCP port on 127.0.0.1.")] = 55432) -> None:
    """Run a throwaway PostgreSQL with pgvector on 127.0.0.1 until Ctrl-C (for trying the
    postgres backend; needs pip install 'ragtune[postgres,pgserver]'). Not for production."""
    import signal
    import time

    from ragtune.store.pg_local import LocalPostgres

    def stop(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    # Ctrl-C and SIGTERM both stop the database cleanly, also when this process was started
    # with SIGINT ignored (a background job of a non-interactive shell: Python then keeps
    # the inherited SIG_IGN instead of raising KeyboardInterrupt)
    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    server = LocalPostgres(data, port=port)
    console.print(f"url = \"{server.start()}\"", highlight=False)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
