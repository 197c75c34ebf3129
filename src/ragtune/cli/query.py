"""Commands that query the knowledge base: ``search`` and ``ask``.

Thin: parse, call the Workspace, print. Registered on the root app by :mod:`ragtune.cli.app`.
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from ragtune.cli.common import (
    AsOpt,
    JsonOpt,
    WorkspaceOpt,
    console,
    open_workspace,
    print_json,
    retrieval_mode,
    search_filters,
)
from ragtune.types import Answer


def search(query: Annotated[str, typer.Argument()], as_user: AsOpt = None,
           k: Annotated[int, typer.Option("-k", help="Results.")] = 5,
           mode: Annotated[str | None, typer.Option(help="fused (dense + BM25), dense or lexical ('hybrid' is the old name of fused).")] = None,
           collection: Annotated[list[str] | None, typer.Option(help="Only this collection (repeatable).")] = None,
           document: Annotated[list[str] | None, typer.Option(help="Only this document (repeatable).")] = None,
           since: Annotated[str | None, typer.Option(help="Only documents updated since (ISO date).")] = None,
           workspace: WorkspaceOpt = None, as_json: JsonOpt = False) -> None:
    """Retrieve chunks without generating an answer."""
    ws = open_workspace(workspace)
    result = ws.search(query, as_user, k=k, mode=retrieval_mode(mode), filters=search_filters(collection, document, since))
    if as_json:
        print_json({"query": query, "mode": result.mode, "found": result.found,
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


def print_answer(answer: Answer, *, streamed: bool) -> None:
    """Answer text (unless streamed already), numbered citations and flagged sentences."""
    if not streamed:
        console.print(answer.text)
    else:
        console.print()  # the stream showed the checked text, markers included
    if answer.trace.removed:
        console.print(f"[dim]{len(answer.trace.removed)} sentence(s) of the model's reply were not "
                      "shown: no retrieved source supports them (see --json: trace.removed)[/]")
    for note in answer.trace.notes:
        if "extractive fallback" in note or "max_tokens" in note or "instruction-like" in note:
            console.print(f"[dim]{escape(note)}[/]", highlight=False)
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


def ask(question: Annotated[str, typer.Argument()], as_user: AsOpt = None,
        k: Annotated[int | None, typer.Option("-k", help="Sources given to the model.")] = None,
        collection: Annotated[list[str] | None, typer.Option(help="Only this collection (repeatable).")] = None,
        adapter: Annotated[str | None, typer.Option(help="Answer with this LoRA adapter (see 'ragtune adapters list').")] = None,
        mode: Annotated[str | None, typer.Option(help="base | rag | finetuned | hybrid (default: answer.mode in ragtune.toml).")] = None,
        workspace: WorkspaceOpt = None, as_json: JsonOpt = False) -> None:
    """Answer a question from the knowledge base, with checked citations."""
    ws = open_workspace(workspace)
    on_token = None if as_json else (lambda t: console.print(t, end="", highlight=False, markup=False))
    answer = ws.ask(question, as_user, mode=mode, adapter=adapter, k=k,
                    filters=search_filters(collection, None, None), on_token=on_token)
    if as_json:
        print_json(answer.to_dict())
    else:
        print_answer(answer, streamed=True)
