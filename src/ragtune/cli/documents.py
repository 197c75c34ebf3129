"""Commands that manage the knowledge base: ``init``, ``ingest``, ``rm``, ``docs``, ``status``.

Thin: parse, call the Workspace, print. Registered on the root app by :mod:`ragtune.cli.app`.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
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
from ragtune.errors import RagtuneError
from ragtune.ingest.guards import one_line


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
           group: Annotated[list[str] | None, typer.Option("--group", help="Restrict to this group (repeatable). Without --group or --public, documents keep the groups they have.")] = None,
           public: Annotated[bool, typer.Option("--public", help="Make the documents readable by everyone (removes their groups).")] = False,
           sync: Annotated[bool, typer.Option("--sync", help="Also remove documents whose files are gone from the folders.")] = False,
           follow_symlinks: Annotated[bool, typer.Option("--follow-symlinks", help="Read symbolic links that lead outside the folder (the document gets the stricter of both places' groups).")] = False,
           workspace: WorkspaceOpt = None, as_json: JsonOpt = False) -> None:
    """Add or update documents; unchanged files cost nothing."""
    from ragtune.ingest.report import IngestReport

    if public and group:
        raise typer.BadParameter("give --group or --public, not both")
    ws = open_workspace(workspace)
    report = IngestReport()  # filled as the run goes: printed even if the run stops
    try:
        with Progress(TextColumn("[bold]ingest"), BarColumn(), DownloadColumn(),
                      TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(),
                      TextColumn("{task.description}"),
                      console=err, disable=as_json, transient=False) as bar:
            task = bar.add_task("", total=None)

            def progress(done: int, total: int, current: str) -> None:
                bar.update(task, completed=done, total=total,
                           description=escape(one_line(current.rsplit("/", 1)[-1])))

            ws.ingest(paths, collection=collection, groups=() if public else group, sync=sync,
                      follow_symlinks=follow_symlinks, progress=progress, report=report)
    except RagtuneError as e:
        if as_json:
            print_json({**report.to_dict(), "error": str(e)})
        raise
    if as_json:
        print_json(report.to_dict())
    else:
        for path, problem in report.failed:
            err.print(f"[red]failed[/] {escape(one_line(path))}: {escape(problem)}", highlight=False)
        for path, said in report.warnings:
            err.print(f"[yellow]warning[/] {escape(one_line(path))}: {escape(said)}", highlight=False)
        for line in report.group_changes():
            console.print(f"[yellow]groups changed[/] {escape(one_line(line))}", highlight=False)
        console.print(
            f"{len(report.added)} added, {len(report.updated)} updated, "
            f"{len(report.unchanged)} unchanged, {len(report.removed)} removed, "
            f"{len(report.failed)} failed, {len(report.regrouped)} changed groups — "
            f"{report.chunks_embedded} chunks embedded in {report.seconds:.1f} s")
    if report.failed:
        raise typer.Exit(1)


def rm(document: Annotated[str, typer.Argument(help="Document id, source or file path.")],
       workspace: WorkspaceOpt = None) -> None:
    """Delete a document: text, vectors, index entries and history, in one transaction."""
    ws = open_workspace(workspace)
    info = ws.remove(document)
    name = escape(one_line(info.source))
    if ws.store.pending_deletions():
        console.print(f"removed {name} from the index, but its text is still on disk: another "
                      "process is reading the store. It is erased when that read ends, by the "
                      "next ragtune command; 'ragtune status' (as an admin) shows "
                      "erasure_pending until then.", highlight=False)
        raise typer.Exit(3)
    console.print(f"removed {name} ({info.chunks} chunks, {info.version} versions; erased "
                  "from disk)", highlight=False)


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
        table.add_row(escape(one_line(d.title)), escape(d.collection),
                      escape(",".join(d.groups)) or "public", str(d.version), str(d.chunks),
                      fresh, escape(one_line(d.source)))
    console.print(table)


def status(as_user: AsOpt = None, workspace: WorkspaceOpt = None, as_json: JsonOpt = False) -> None:
    """Workspace summary: documents, chunks, models; size and recent ingest problems for admins."""
    ws = open_workspace(workspace)
    info = ws.status(as_user)
    if as_json:
        print_json(info)
        return
    for key, value in info.items():
        console.print(f"[bold]{key}[/]: {escape(one_line(str(value), 2000))}", highlight=False)
