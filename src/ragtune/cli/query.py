"""Commands that query the knowledge base: ``search`` and ``ask``.

Thin: parse, call the Workspace, print. Registered on the root app by :mod:`ragtune.cli.app`.
"""

from __future__ import annotations

from typing import Annotated, Self

import typer
from rich.live import Live
from rich.markup import escape
from rich.text import Text

from ragtune.cli.common import (
    AsOpt,
    JsonOpt,
    WorkspaceOpt,
    console,
    open_workspace,
    print_json,
    require_documents,
    retrieval_mode,
    search_filters,
    shown_path,
)
from ragtune.cli.tables import fit_table
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
    require_documents(ws)
    result = ws.search(query, as_user, k=k, mode=retrieval_mode(mode), filters=search_filters(collection, document, since))
    if as_json:
        print_json({"query": query, "mode": result.mode, "found": result.found,
                     "best_similarity": result.best_similarity,
                     "hits": [h.to_dict() for h in result.hits],
                     "timings": result.timings})
        return
    rows = [[str(h.rank), f"{h.score:.4f}", escape(h.title), escape(h.chunk.section),
             escape(h.chunk.text[:160].replace("\n", " "))] for h in result.hits]
    console.print(fit_table(console, ["#", "score", "document", "section", "text"], rows,
                            fold=["document", "section"], numeric=["#", "score"],
                            optional=["section", "score"]))
    if not result.found:
        console.print("[yellow]Nothing passes the relevance floor: 'ask' would answer "
                      "'not found in the knowledge base'.[/]")


def timing_line(answer: Answer) -> str:
    """One line: total time, where it went, tokens and the model that answered.

    >>> from ragtune.types import Trace
    >>> t = Trace("q", "anonymous", model="qwen2.5-coder-0.5b-instruct-q4_k_m",
    ...           timings={"total_s": 3.21, "retrieve_s": 0.05, "first_token_s": 1.1},
    ...           tokens={"prompt": 412, "completion": 58})
    >>> timing_line(Answer("x", [], False, t))
    '3.2 s (retrieval 0.05 s, first token 1.1 s) · 412 + 58 tokens · qwen2.5-coder-0.5b-instruct-q4_k_m'
    """
    t = answer.trace
    parts = [f"{t.timings.get('total_s', 0.0):.1f} s"]
    detail = []
    if "retrieve_s" in t.timings:
        detail.append(f"retrieval {t.timings['retrieve_s']:.2f} s")
    if "first_token_s" in t.timings:
        detail.append(f"first token {t.timings['first_token_s']:.1f} s")
    if detail:
        parts[0] += f" ({', '.join(detail)})"
    if t.tokens:
        parts.append(f"{t.tokens.get('prompt', 0)} + {t.tokens.get('completion', 0)} tokens")
    elif not any(k in t.timings for k in ("generate_s", "first_token_s")):
        parts.append("no generation")
    model = t.model + (f" + adapter {t.adapter}" if t.adapter else "")
    if model:
        parts.append(model)
    return " · ".join(parts)


def print_answer(answer: Answer) -> None:
    """After the answer text: what the check removed, the route, notes, numbered citations,
    unsupported sentences and one timing line."""
    if answer.trace.removed:
        console.print(f"[dim]{len(answer.trace.removed)} sentence(s) of the model's reply were not "
                      "shown: no retrieved source supports them (see --json: trace.removed)[/]")
    for note in answer.trace.notes:
        if "extractive fallback" in note or "max_tokens" in note or "instruction-like" in note:
            console.print(f"[dim]{escape(note)}[/]", highlight=False)
    route = answer.trace.route
    if route:
        console.print(f"[dim]route: {escape(route['label'])} ({route['kind']}, confidence "
                      f"{route['confidence']:.2f}) — {escape(route['reason'])}[/]", highlight=False)
    for note in answer.trace.notes:
        if "stale" in note:
            console.print(f"[yellow]{escape(note)}[/]", highlight=False)
    if not answer.refused:
        for c in answer.citations:
            mark = "[green]✓[/]" if c.supported else "[red]✗ unsupported[/]"
            console.print(f"  [{c.n}] {mark} [bold]{escape(shown_path(c.document))}[/] — "
                          f"{escape(c.section)}\n      “{escape(c.quote[:200])}”", highlight=False)
        for sentence in answer.unsupported:
            console.print(f"  [red]⚠ not supported by the cited sources:[/] {escape(sentence.text)}",
                          highlight=False)
    if answer.trace.id:
        console.print(f"[dim]answer {answer.trace.id} — rate it: ragtune monitor feedback "
                      f"{answer.trace.id} --up/--down[/]", highlight=False)
    console.print(f"[dim]{escape(timing_line(answer))}[/]", highlight=False, soft_wrap=True)


class AnswerStream:
    """Shows an answer once: in a terminal the checked sentences appear as they pass the
    check and the text is then replaced in place by the final answer (the same text, or the
    extractive fallback); in a pipe only the final answer is written, once."""

    def __init__(self) -> None:
        self.text = ""
        self.live: Live | None = None

    def __enter__(self) -> Self:
        if console.is_terminal:
            self.live = Live(Text(""), console=console, auto_refresh=False,
                             vertical_overflow="visible")
            self.live.__enter__()
        return self

    def token(self, piece: str) -> None:
        self.text += piece
        if self.live is not None:
            self.live.update(Text(self.text), refresh=True)

    def finish(self, answer: Answer) -> None:
        if self.live is not None:
            self.live.update(Text(answer.text), refresh=True)
            self.live.__exit__(None, None, None)
            self.live = None
        else:
            console.print(answer.text, highlight=False, markup=False, soft_wrap=True)

    def __exit__(self, *exc: object) -> None:
        if self.live is not None:  # an error mid-answer: leave what was streamed
            self.live.__exit__(None, None, None)


def ask(question: Annotated[str, typer.Argument()], as_user: AsOpt = None,
        k: Annotated[int | None, typer.Option("-k", help="Sources given to the model.")] = None,
        collection: Annotated[list[str] | None, typer.Option(help="Only this collection (repeatable).")] = None,
        adapter: Annotated[str | None, typer.Option(help="Answer with this LoRA adapter (see 'ragtune adapters list').")] = None,
        mode: Annotated[str | None, typer.Option(help="base | rag | finetuned | hybrid (default: answer.mode in ragtune.toml).")] = None,
        workspace: WorkspaceOpt = None, as_json: JsonOpt = False) -> None:
    """Answer a question from the knowledge base, with checked citations.

    The answer streams once; then come its numbered citations and one line with the time
    it took. An empty knowledge base is an error (exit 1) that says how to fill it.
    """
    ws = open_workspace(workspace)
    if (mode or ws.settings.answer.mode) in {"rag", "hybrid"}:
        require_documents(ws)
    filters = search_filters(collection, None, None)
    if as_json:
        answer = ws.ask(question, as_user, mode=mode, adapter=adapter, k=k, filters=filters)
        print_json(answer.to_dict())
        return
    with AnswerStream() as shown:
        answer = ws.ask(question, as_user, mode=mode, adapter=adapter, k=k, filters=filters,
                        on_token=shown.token)
        shown.finish(answer)
    print_answer(answer)
