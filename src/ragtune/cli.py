"""The ragtune command line: thin — parse, open the workspace, call it, print.

Errors from the core are :class:`~ragtune.errors.RagtuneError` s; ``main`` prints them as
one red line and exits with their code (2 for bad input), never with a traceback.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from ragtune.cli_options import AsOpt, JsonOpt, WorkspaceOpt
from ragtune.errors import RagtuneError
from ragtune.ingest.guards import one_line
from ragtune.store.base import SearchFilter

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Ground a language model in your documents, fine-tune it, and measure which serves you best.")
eval_app = typer.Typer(no_args_is_help=True, help="Evaluate retrieval and answers.")
app.add_typer(eval_app, name="eval")
# The fine-tuning commands live beside their library; torch loads only when they run.
from ragtune.finetune.cli import adapters_app, data_app, finetune_app  # noqa: E402

app.add_typer(data_app, name="data")
app.add_typer(finetune_app, name="finetune")
app.add_typer(adapters_app, name="adapters")
from ragtune.finetune.raft_cli import raft_app  # noqa: E402

app.add_typer(raft_app, name="raft")
from ragtune.route.cli import route_app  # noqa: E402

app.add_typer(route_app, name="route")
# Evaluation: eval qa / eval synth, the compare bake-off and the advise questionnaire.
from ragtune.evaluate.cli import advise_command, compare_command, register_eval_commands  # noqa: E402

register_eval_commands(eval_app)
app.command("compare")(compare_command)
app.command("advise")(advise_command)

console = Console()
err = Console(stderr=True)



def _open(workspace: Path | None):
    from ragtune.workspace import Workspace

    return Workspace.open(workspace)


def _print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")


def _filters(collection: list[str] | None, document: list[str] | None,
             since: str | None) -> SearchFilter | None:
    if not (collection or document or since):
        return None
    since_ts = None
    if since:
        from datetime import datetime

        try:
            since_ts = datetime.fromisoformat(since).timestamp()
        except ValueError:
            raise typer.BadParameter(f"--since must be an ISO date like 2026-01-31, got {since!r}")
    return SearchFilter(collections=tuple(collection or ()), documents=tuple(document or ()),
                        since=since_ts)


@app.command()
def init(workspace: WorkspaceOpt = None,
         embedding: Annotated[str, typer.Option(help="Embedding backend: local, http or fake.")] = "local",
         generation: Annotated[str, typer.Option(help="Generation backend: local, http or fake.")] = "local") -> None:
    """Create a workspace (ragtune.toml + store.db)."""
    from ragtune.workspace import Workspace

    ws = Workspace.init(workspace, overrides={"embedding": {"backend": embedding},
                                              "generation": {"backend": generation}})
    console.print(f"Workspace ready at [bold]{ws.root}[/] (settings: {ws.root / 'ragtune.toml'})")


@app.command()
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
    ws = _open(workspace)
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
            _print_json({**report.to_dict(), "error": str(e)})
        raise
    if as_json:
        _print_json(report.to_dict())
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


@app.command()
def rm(document: Annotated[str, typer.Argument(help="Document id, source or file path.")],
       workspace: WorkspaceOpt = None) -> None:
    """Delete a document: text, vectors, index entries and history, in one transaction."""
    ws = _open(workspace)
    info = ws.remove(document)
    name = escape(one_line(info.source))
    if ws.store.pending_deletions():
        console.print(f"removed {name} from the index, but its text is still on disk: another "
                      "process is reading the store. It is erased when that read ends, by the "
                      "next ragtune command; 'ragtune status' shows erasure_pending until then.",
                      highlight=False)
        raise typer.Exit(3)
    console.print(f"removed {name} ({info.chunks} chunks, {info.version} versions; erased "
                  "from disk)", highlight=False)


@app.command()
def search(query: Annotated[str, typer.Argument()], as_user: AsOpt = None,
           k: Annotated[int, typer.Option("-k", help="Results.")] = 5,
           mode: Annotated[str | None, typer.Option(help="hybrid, dense or lexical.")] = None,
           collection: Annotated[list[str] | None, typer.Option(help="Only this collection (repeatable).")] = None,
           document: Annotated[list[str] | None, typer.Option(help="Only this document (repeatable).")] = None,
           since: Annotated[str | None, typer.Option(help="Only documents updated since (ISO date).")] = None,
           workspace: WorkspaceOpt = None, as_json: JsonOpt = False) -> None:
    """Retrieve chunks without generating an answer."""
    ws = _open(workspace)
    result = ws.search(query, as_user, k=k, mode=mode, filters=_filters(collection, document, since))
    if as_json:
        _print_json({"query": query, "mode": result.mode, "found": result.found,
                     "best_similarity": result.best_similarity,
                     "hits": [h.to_dict() for h in result.hits],
                     "timings": result.timings})
        return
    table = Table("#", "score", "document", "section", "text")
    for h in result.hits:
        table.add_row(str(h.rank), f"{h.score:.4f}", h.title, h.chunk.section,
                      h.chunk.text[:160].replace("\n", " "))
    console.print(table)
    if not result.found:
        console.print("[yellow]Nothing passes the relevance floor: 'ask' would answer "
                      "'not found in the knowledge base'.[/]")


def print_answer(answer: Any, *, streamed: bool) -> None:
    """Answer text (unless streamed already), numbered citations and flagged sentences."""
    if not streamed:
        console.print(answer.text)
    else:
        console.print()
        if any("attributed" in n for n in answer.trace.notes):
            # markers were added after streaming: show the answer as cited
            console.print(f"[dim]with citations:[/] {answer.text}", highlight=False)
    route = answer.trace.route
    if route:
        console.print(f"[dim]route: {route['label']} ({route['kind']}, confidence "
                      f"{route['confidence']:.2f}) — {route['reason']}[/]", highlight=False)
    for note in answer.trace.notes:
        if "stale" in note:
            console.print(f"[yellow]{note}[/]", highlight=False)
    if answer.refused:
        return
    for c in answer.citations:
        mark = "[green]✓[/]" if c.supported else "[red]✗ unsupported[/]"
        console.print(f"  [{c.n}] {mark} [bold]{c.document}[/] — {c.section}\n"
                      f"      “{c.quote[:200]}”", highlight=False)
    for s in answer.unsupported:
        console.print(f"  [red]⚠ not supported by the cited sources:[/] {s.text}", highlight=False)


@app.command()
def ask(question: Annotated[str, typer.Argument()], as_user: AsOpt = None,
        k: Annotated[int | None, typer.Option("-k", help="Sources given to the model.")] = None,
        collection: Annotated[list[str] | None, typer.Option(help="Only this collection (repeatable).")] = None,
        adapter: Annotated[str | None, typer.Option(help="Answer with this LoRA adapter (see 'ragtune adapters list').")] = None,
        mode: Annotated[str | None, typer.Option(help="base | rag | finetuned | hybrid (default: answer.mode in ragtune.toml).")] = None,
        workspace: WorkspaceOpt = None, as_json: JsonOpt = False) -> None:
    """Answer a question from the knowledge base, with checked citations."""
    ws = _open(workspace)
    on_token = None if as_json else (lambda t: console.print(t, end="", highlight=False, markup=False))
    answer = ws.ask(question, as_user, mode=mode, adapter=adapter, k=k,
                    filters=_filters(collection, None, None), on_token=on_token)
    if as_json:
        _print_json(answer.to_dict())
    else:
        print_answer(answer, streamed=True)


@app.command()
def docs(as_user: AsOpt = None,
         all_: Annotated[bool, typer.Option("--all", help="Every document, whatever its groups (operator view).")] = False,
         workspace: WorkspaceOpt = None, as_json: JsonOpt = False) -> None:
    """List documents with versions, groups and freshness."""
    ws = _open(workspace)
    infos = ws.documents(as_user, all_users=all_)
    if as_json:
        _print_json([{"id": d.id, "source": d.source, "title": d.title, "collection": d.collection,
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


@app.command()
def status(workspace: WorkspaceOpt = None, as_json: JsonOpt = False) -> None:
    """Workspace summary: documents, chunks, size, models, recent ingest problems."""
    ws = _open(workspace)
    info = ws.status()
    info["recent_failures"] = [
        {"source": e.source, "message": e.message, "ts": e.ts}
        for e in ws.store.ingest_log(200) if e.status == "failed"][:10]
    if as_json:
        _print_json(info)
        return
    for key, value in info.items():
        console.print(f"[bold]{key}[/]: {escape(one_line(str(value), 2000))}", highlight=False)


@eval_app.command("retrieval")
def eval_retrieval(beir: Annotated[Path, typer.Option("--beir", help="BEIR folder: corpus.jsonl, queries.jsonl, qrels/test.tsv.")],
                   modes: Annotated[str, typer.Option(help="Comma-separated: dense,lexical,hybrid.")] = "dense,lexical,hybrid",
                   workspace: WorkspaceOpt = None, as_json: JsonOpt = False) -> None:
    """nDCG@10, Recall@10/100 and MRR@10 of dense, BM25 and hybrid retrieval on a BEIR set."""
    from ragtune.evaluate.retrieval import evaluate_beir
    from ragtune.workspace import Workspace, default_root

    root = default_root(workspace)
    ws = Workspace(root) if (root / "ragtune.toml").exists() else Workspace(root, settings=None)
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=err, disable=as_json) as bar:
        task = bar.add_task("index", total=None)

        def progress(stage: str, done: int, total: int) -> None:
            bar.update(task, description=stage, completed=done, total=total)

        results = evaluate_beir(beir, ws.embedder, ws.settings, modes=modes.split(","),
                                progress=progress)
    if as_json:
        _print_json(results)
        return
    table = Table("mode", *results["metrics"][next(iter(results["metrics"]))].keys())
    for mode, metrics in results["metrics"].items():
        table.add_row(mode, *(f"{v:.4f}" for v in metrics.values()))
    console.print(table)
    console.print(f"{results['queries']} queries, {results['documents']} documents, "
                  f"indexed in {results['index_s']:.1f} s")


def _quiet_libraries() -> None:
    """ragtune draws its own progress bars; the model libraries' weight-loading bars and
    deprecation warnings would only interleave with them."""
    import os
    import warnings

    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    warnings.filterwarnings("ignore", category=FutureWarning)


def main() -> None:
    _quiet_libraries()
    try:
        # Non-standalone mode returns the code of typer.Exit instead of raising it.
        rc = app(standalone_mode=False)
    except RagtuneError as e:
        err.print(f"[red]error:[/] {e}", highlight=False)
        sys.exit(e.exit_code)
    except typer.Exit as e:
        sys.exit(e.exit_code)
    except typer.Abort:
        err.print("aborted")
        sys.exit(130)
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)
    except Exception as e:  # click usage errors carry their own formatting
        import click

        if isinstance(e, click.exceptions.ClickException):
            e.show()
            sys.exit(e.exit_code)
        raise
    sys.exit(rc if isinstance(rc, int) else 0)


if __name__ == "__main__":
    main()
