"""Commands that manage the knowledge base: ``init``, ``ingest``, ``rm``, ``docs``, ``status``.

Thin: parse, call the Workspace, print. Registered on the root app by :mod:`ragtune.cli.app`.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from ragtune.cli.common import (
    AsOpt,
    JsonOpt,
    WorkspaceOpt,
    console,
    err,
    open_workspace,
    print_json,
)


def init(workspace: WorkspaceOpt = None,
         embedding: Annotated[str, typer.Option(help="Embedding backend: local, http or fake.")] = "local",
         generation: Annotated[str, typer.Option(help="Generation backend: local, http or fake.")] = "local") -> None:
    """Create a workspace (ragtune.toml + store.db)."""
    from ragtune.workspace import Workspace

    ws = Workspace.init(workspace, overrides={"embedding": {"backend": embedding},
                                              "generation": {"backend": generation}})
    console.print(f"Workspace ready at [bold]{ws.root}[/] (settings: {ws.root / 'ragtune.toml'})")


def ingest(paths: Annotated[list[Path], typer.Argument(help="Files or folders.")],
           collection: Annotated[str, typer.Option(help="Collection to put the documents in.")] = "default",
           group: Annotated[list[str] | None, typer.Option("--group", help="Restrict to this group (repeatable).")] = None,
           sync: Annotated[bool, typer.Option("--sync", help="Also remove documents whose files are gone from the folders.")] = False,
           workspace: WorkspaceOpt = None, as_json: JsonOpt = False) -> None:
    """Add or update documents; unchanged files cost nothing."""
    ws = open_workspace(workspace)
    with Progress(TextColumn("[bold]ingest"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), TextColumn("{task.description}"),
                  console=err, disable=as_json, transient=False) as bar:
        task = bar.add_task("", total=None)

        def progress(done: int, total: int, current: str) -> None:
            bar.update(task, completed=done, total=total, description=Path(current).name)

        report = ws.ingest(paths, collection=collection, groups=group or (), sync=sync,
                           progress=progress)
    if as_json:
        print_json(report.to_dict())
    else:
        for path, problem in report.failed:
            err.print(f"[red]failed[/] {path}: {problem}")
        console.print(
            f"{len(report.added)} added, {len(report.updated)} updated, "
            f"{len(report.unchanged)} unchanged, {len(report.removed)} removed, "
            f"{len(report.failed)} failed — {report.chunks_embedded} chunks embedded "
            f"in {report.seconds:.1f} s")
    if report.failed:
        raise typer.Exit(1)


def rm(document: Annotated[str, typer.Argument(help="Document id, source or file path.")],
       workspace: WorkspaceOpt = None) -> None:
    """Delete a document: text, vectors, index entries and history, in one transaction."""
    info = open_workspace(workspace).remove(document)
    console.print(f"removed {info.source} ({info.chunks} chunks, {info.version} versions)")


def docs(as_user: AsOpt = None,
         all_: Annotated[bool, typer.Option("--all", help="Every document, whatever its groups (operator view; needs --as an admin).")] = False,
         workspace: WorkspaceOpt = None, as_json: JsonOpt = False) -> None:
    """List documents with versions, groups and freshness."""
    ws = open_workspace(workspace)
    infos = ws.documents(as_user, all_users=all_)
    if as_json:
        print_json([{"id": d.id, "source": d.source, "title": d.title, "collection": d.collection,
                      "groups": list(d.groups), "version": d.version, "chunks": d.chunks,
                      "updated_at": d.updated_at,
                      "versions": ws.store.document_versions(d.id)} for d in infos])
        return
    table = Table("title", "collection", "groups", "version", "chunks", "updated", "source")
    now = time.time()
    for d in infos:
        age = now - d.updated_at
        fresh = f"{age / 86400:.0f} d ago" if age > 86400 else f"{age / 3600:.1f} h ago"
        table.add_row(d.title, d.collection, ",".join(d.groups) or "public", str(d.version),
                      str(d.chunks), fresh, d.source)
    console.print(table)


def status(as_user: AsOpt = None, workspace: WorkspaceOpt = None, as_json: JsonOpt = False) -> None:
    """Workspace summary: documents, chunks, models; size and recent ingest problems for admins."""
    ws = open_workspace(workspace)
    info = ws.status(as_user)
    if as_json:
        print_json(info)
        return
    for key, value in info.items():
        console.print(f"[bold]{key}[/]: {value}", highlight=False)
