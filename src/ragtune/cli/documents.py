"""Commands that manage the knowledge base: ``init``, ``ingest``, ``rm``, ``docs``, ``status``.

Thin: parse, call the Workspace, print. Registered on the root app by :mod:`ragtune.cli.app`.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

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
           group: Annotated[list[str] | None, typer.Option("--group", help="Restrict to this group (repeatable).")] = None,
           sync: Annotated[bool, typer.Option("--sync", help="Also remove documents whose files no longer exist under the folders.")] = False,
           exclude: Annotated[list[str] | None, typer.Option("--exclude", help="Leave out files matching this .gitignore-style pattern, e.g. 'restricted/' or '*.txt' (repeatable).")] = None,
           workspace: WorkspaceOpt = None, as_json: JsonOpt = False) -> None:
    """Add or update documents; unchanged files cost nothing.

    Folders are walked for Markdown, HTML, PDF, DOCX, text and JSON files; other types
    (images, stylesheets, scripts...) are skipped and counted, and files matched by a
    .gitignore or .ragtuneignore in the folder, or by --exclude, are left out. Exit code 1
    only when a document failed to load.
    """
    ws = open_workspace(workspace)
    with Progress(TextColumn("[bold]ingest"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), TextColumn("{task.description}"),
                  console=err, disable=as_json, transient=False) as bar:
        task = bar.add_task("", total=None)

        def progress(done: int, total: int, current: str) -> None:
            bar.update(task, completed=done, total=total, description=Path(current).name)

        report = ws.ingest(paths, collection=collection, groups=group or (), sync=sync,
                           exclude=exclude or (), progress=progress)
    if as_json:
        print_json(report.to_dict())
    else:
        for path, problem in report.failed:
            err.print(f"[red]failed[/] {escape(shown_path(path))}: {escape(problem)}",
                      highlight=False, soft_wrap=True)
        console.print(
            f"{len(report.added)} added, {len(report.updated)} updated, "
            f"{len(report.unchanged)} unchanged, {len(report.removed)} removed, "
            f"{len(report.failed)} failed — {report.chunks_embedded} chunks embedded "
            f"in {report.seconds:.1f} s", highlight=False)
        left_out = report.left_out.summary()
        if left_out:
            console.print(f"[dim]{escape(left_out)}[/]", highlight=False, soft_wrap=True)
        hint = report.left_out.hint()
        if hint:
            console.print(f"[dim]{escape(hint)}[/]", highlight=False, soft_wrap=True)
    if report.failed:
        raise typer.Exit(1)


def rm(document: Annotated[str, typer.Argument(help="Document id, source or file path.")],
       workspace: WorkspaceOpt = None) -> None:
    """Delete a document: text, vectors, index entries and history, in one transaction."""
    info = open_workspace(workspace).remove(document)
    console.print(f"removed {info.source} ({info.chunks} chunks, {info.version} versions)")


def docs(as_user: AsOpt = None,
         all_: Annotated[bool, typer.Option("--all", help="Every document, whatever its groups (operator view).")] = False,
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
        empty = not all_ and ws.store.stats()["documents"] > 0
        console.print("no documents you may read (try --as USER, or --all as the operator)"
                      if empty else EMPTY_HINT, highlight=False)
        return
    headers = ["title", "collection", "groups", "version", "chunks", "updated", "source"]
    rows = [[escape(d.title), escape(d.collection), escape(",".join(d.groups)) or "public",
             str(d.version), str(d.chunks), ago(d.updated_at), escape(shown_path(d.source))]
            for d in infos]
    console.print(fit_table(console, headers, rows, fold=["source", "title"],
                            numeric=["version", "chunks"],
                            optional=["chunks", "version", "collection", "updated", "groups"]))


def _generation(ws: Any) -> str:
    from ragtune.generate.models import describe_model

    g = ws.settings.generation
    return f"{g.backend}: {describe_model(g.model) if g.backend == 'local' else g.model}"


def current_failures(ws: Any, limit: int = 10) -> list[dict[str, Any]]:
    """Files whose latest ingest failed (newest first): a file that failed once and went in
    later is no longer a problem."""
    latest: dict[str, Any] = {}
    for e in ws.store.ingest_log(2000):  # newest first
        latest.setdefault(e.source, e)
    return [{"source": e.source, "message": e.message, "ts": e.ts}
            for e in latest.values() if e.status == "failed"][:limit]


def status(workspace: WorkspaceOpt = None, as_json: JsonOpt = False) -> None:
    """Workspace summary: documents, chunks, size, models, recent ingest problems.

    --json prints the same as numbers (times as Unix seconds) for scripts.
    """
    ws = open_workspace(workspace)
    info = ws.status()
    info["recent_failures"] = current_failures(ws)
    if as_json:
        print_json(info)
        return
    summary = fit_table(console, ["", ""], [
        ["workspace", escape(shown_path(info["workspace"]))],
        ["documents", (f"{info['documents']} ({info.get('restricted_documents', 0)} restricted "
                       "to groups)")],
        ["chunks", str(info["chunks"])],
        ["store", (f"{escape(shown_path(str(info['path'])))} ({human_size(info['size_bytes'])}, "
                   f"schema {info['schema_version']})")],
        ["last ingest", when(info["last_ingest"])],
        ["embedding", escape(info["embedding"])],
        ["generation", escape(_generation(ws))],
    ], fold=[""])
    summary.show_header = False
    console.print(summary)
    if info["documents"] == 0:
        console.print(EMPTY_HINT, highlight=False)
    if info["collections"]:
        console.print(fit_table(console, ["collection", "documents"],
                                [[escape(c), str(n)] for c, n in sorted(info["collections"].items())],
                                numeric=["documents"]))
    failures = info["recent_failures"]
    if failures:
        console.print(fit_table(
            console, ["when", "file", "problem"],
            [[ago(f["ts"]), escape(shown_path(f["source"])), escape(f["message"])] for f in failures],
            fold=["file", "problem"], optional=["when"],
            title=f"files that failed to ingest ({len(failures)}, newest first)"))
