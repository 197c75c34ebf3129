"""Commands that manage the knowledge base: ``init``, ``ingest``, ``rm``, ``docs``, ``status``.

Thin: parse, call the Workspace, print. Registered on the root app by :mod:`ragtune.cli.app`.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

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

from ragtune.cli.common import (
    EMPTY_HINT,
    AsOpt,
    JsonOpt,
    WorkspaceOpt,
    console,
    err,
    open_workspace,
    print_json,
    shown_path,
)
from ragtune.cli.tables import fit_table
from ragtune.errors import RagtuneError
from ragtune.ingest.guards import one_line


def ago(ts: float | None, now: float | None = None) -> str:
    """How long ago ``ts`` was, in words a person reads at a glance.

    >>> ago(1000.0, now=1030.0), ago(0, now=7200), ago(0, now=86400 * 3), ago(None)
    ('30 s ago', '2.0 h ago', '3 d ago', 'never')
    """
    if ts is None:
        return "never"
    age = max(0.0, (time.time() if now is None else now) - ts)
    if age < 90:
        return f"{age:.0f} s ago"
    if age < 3600:
        return f"{age / 60:.0f} min ago"
    if age < 86400:
        return f"{age / 3600:.1f} h ago"
    return f"{age / 86400:.0f} d ago"


def when(ts: float | None) -> str:
    """A local date and time with how long ago: ``2026-03-01 14:05 (2.0 h ago)``."""
    if ts is None:
        return "never"
    return f"{time.strftime('%Y-%m-%d %H:%M', time.localtime(ts))} ({ago(ts)})"


def human_size(n: float) -> str:
    """Bytes in the largest unit under 1024.

    >>> human_size(512), human_size(3_500_000)
    ('512 B', '3.3 MB')
    """
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"


def init(workspace: WorkspaceOpt = None,
         embedding: Annotated[str, typer.Option(help="Embedding backend: local, http or fake.")] = "local",
         generation: Annotated[str, typer.Option(help="Generation backend: local, http or fake.")] = "local") -> None:
    """Create a workspace (ragtune.toml + store.db)."""
    from ragtune.workspace import Workspace

    ws = Workspace.init(workspace, overrides={"embedding": {"backend": embedding},
                                              "generation": {"backend": generation}})
    console.print(f"Workspace ready at [bold]{escape(str(ws.root))}[/] (settings: "
                  f"{escape(str(ws.root / 'ragtune.toml'))})", highlight=False)
    console.print("next: ragtune ingest FOLDER, then ragtune ask \"a question\"", highlight=False)


def ingest(paths: Annotated[list[Path], typer.Argument(help="Files or folders.")],
           collection: Annotated[str, typer.Option(help="Collection to put the documents in.")] = "default",
           group: Annotated[list[str] | None, typer.Option("--group", help="Restrict to this group (repeatable). Without --group or --public, documents keep the groups they have.")] = None,
           public: Annotated[bool, typer.Option("--public", help="Make the documents readable by everyone (removes their groups).")] = False,
           sync: Annotated[bool, typer.Option("--sync", help="Also remove documents whose files are gone from the folders (ignored files are not gone).")] = False,
           follow_symlinks: Annotated[bool, typer.Option("--follow-symlinks", help="Read symbolic links that lead outside the folder (the document gets the stricter of both places' groups).")] = False,
           exclude: Annotated[list[str] | None, typer.Option("--exclude", help="Leave out files matching this .gitignore-style pattern, e.g. 'restricted/' or '*.txt' (repeatable).")] = None,
           workspace: WorkspaceOpt = None, as_json: JsonOpt = False) -> None:
    """Add or update documents; unchanged files cost nothing.

    Folders are walked for Markdown, HTML, PDF, DOCX, text and JSON files; other types
    (images, stylesheets, scripts...) are skipped and counted, and files matched by a
    .gitignore or .ragtuneignore in the folder, or by --exclude, are left out. Exit code 1
    only when a document failed to load.
    """
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
                      follow_symlinks=follow_symlinks, exclude=exclude or (),
                      progress=progress, report=report)
    except RagtuneError as e:
        if as_json:
            print_json({**report.to_dict(), "error": str(e)})
        raise
    if as_json:
        print_json(report.to_dict())
    else:
        for path, problem in report.failed:
            err.print(f"[red]failed[/] {escape(one_line(shown_path(path)))}: {escape(problem)}",
                      highlight=False, soft_wrap=True)
        for path, said in report.warnings:
            err.print(f"[yellow]warning[/] {escape(one_line(path))}: {escape(said)}", highlight=False)
        for line in report.group_changes():
            console.print(f"[yellow]groups changed[/] {escape(one_line(line))}", highlight=False)
        console.print(
            f"{len(report.added)} added, {len(report.updated)} updated, "
            f"{len(report.unchanged)} unchanged, {len(report.removed)} removed, "
            f"{len(report.failed)} failed, {len(report.regrouped)} changed groups — "
            f"{report.chunks_embedded} chunks embedded in {report.seconds:.1f} s", highlight=False)
        for line in filter(None, (report.left_out.summary(), report.left_out.hint())):
            console.print(f"[dim]{escape(line)}[/]", highlight=False, soft_wrap=True)
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
    if not infos:
        console.print(EMPTY_HINT if ws.store.stats()["documents"] == 0 else
                      "no documents you may read (try --as USER)", highlight=False)
        return
    headers = ["title", "collection", "groups", "version", "chunks", "updated", "source"]
    rows = [[escape(one_line(d.title)), escape(d.collection),
             escape(",".join(d.groups)) or "public", str(d.version), str(d.chunks),
             ago(d.updated_at), escape(one_line(shown_path(d.source)))] for d in infos]
    console.print(fit_table(console, headers, rows, fold=["source", "title"],
                            numeric=["version", "chunks"],
                            optional=["chunks", "version", "collection", "updated", "groups"]))


def _generation(ws: Any) -> str:
    from ragtune.generate.models import describe_model

    g = ws.settings.generation
    return f"{g.backend}: {describe_model(g.model) if g.backend == 'local' else g.model}"


def status(as_user: AsOpt = None, workspace: WorkspaceOpt = None, as_json: JsonOpt = False) -> None:
    """Workspace summary: documents, chunks, models; size and recent ingest problems for admins.

    --json prints the same as numbers (times as Unix seconds) for scripts.
    """
    ws = open_workspace(workspace)
    info = ws.status(as_user)
    if as_json:
        print_json(info)
        return
    rows = [["workspace", escape(shown_path(info["workspace"]))],
            ["as", escape(info["user"])]]
    docs = str(info["documents"])
    if "restricted_documents" in info:  # the operator's view
        docs += f" ({info['restricted_documents']} restricted to groups)"
    rows += [["documents", docs], ["chunks", str(info["chunks"])]]
    if "size_bytes" in info:
        store = (f"{escape(shown_path(str(info['path'])))} ({human_size(info['size_bytes'])}, "
                 f"schema {info['schema_version']})")
        rows.append(["store", store])
    rows += [["last ingest", when(info["last_ingest"])],
             ["embedding", escape(info["embedding"])], ["generation", escape(_generation(ws))]]
    summary = fit_table(console, ["", ""], rows, fold=[""])
    summary.show_header = False
    console.print(summary)
    if info["documents"] == 0 and ws.store.stats()["documents"] == 0:
        console.print(EMPTY_HINT, highlight=False)
    if info["collections"]:
        console.print(fit_table(console, ["collection", "documents"],
                                [[escape(c), str(n)] for c, n in sorted(info["collections"].items())],
                                numeric=["documents"]))
    failures = info.get("recent_failures") or []
    if failures:
        console.print(fit_table(
            console, ["when", "file", "problem"],
            [[ago(f["ts"]), escape(one_line(shown_path(f["source"]))), escape(f["message"])]
             for f in failures],
            fold=["file", "problem"], optional=["when"],
            title=f"files that failed to ingest ({len(failures)}, newest first)"))
    for key in ("erasure_pending",):
        if info.get(key):
            console.print(f"[yellow]{key}:[/] {escape(one_line(str(info[key]), 2000))}",
                          highlight=False)
