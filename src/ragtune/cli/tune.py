"""``ragtune tune``: adapt the retriever's embedder to the workspace's documents.

Mounted by :mod:`ragtune.cli.app`; the work is :mod:`ragtune.tune` through
``Workspace.tune_retriever``. Every stage shows a bar with an ETA (plain lines when stderr
is not a terminal).
"""

from __future__ import annotations

import os
from typing import Annotated, Any

import typer
from rich.table import Table

from ragtune.cli.common import JsonOpt, WorkspaceOpt, console, err, open_workspace, print_json
from ragtune.cli.progress import Progress

os.environ.setdefault("HF_HUB_OFFLINE", "1")

tune_app = typer.Typer(no_args_is_help=True,
                       help="Adapt the retriever to your documents (no labels needed).")


class StageProgress:
    """A ``ProgressFn`` that shows one :class:`Progress` bar (with ETA) per stage."""

    def __init__(self, enabled: bool) -> None:
        self.enabled, self.stage, self.bar = enabled, "", None

    def __call__(self, done: int, total: int, stage: str) -> None:
        if not self.enabled:
            return
        if stage != self.stage or self.bar is None:
            self.close()
            self.stage = stage
            self.bar = Progress(stage, total, console=err).__enter__()
        self.bar.update(done)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.__exit__(None, None, None)
            self.bar = None


def _print_report(r: dict[str, Any]) -> None:
    d, t = r["documents"], r["training"]
    console.print(f"documents: {d['used']} of {d['in_store']} used, {d['train']} train, "
                  f"{d['held_out']} held out; {r['examples']} training triples; "
                  f"{t['steps']}/{t['steps_planned']} steps in {t['seconds']:.0f} s"
                  + (" (stopped by --max-minutes)" if t.get("stopped") else ""), highlight=False)
    kind = "written questions" if r["options"].get("queries") == "questions" else "ICT sentences"
    table = Table(title=f"held-out documents, {r['current']['queries']} pseudo-queries "
                        f"({kind}, never trained on)")
    for col in ("embedder", "nDCG@10", "MRR@10", "Recall@100"):
        table.add_column(col)
    for label, m in (("current", r["current"]), ("adapted", r["adapted"])):
        table.add_row(f"{label} ({m['embedder']})", f"{m['ndcg@10']:.4f}", f"{m['mrr@10']:.4f}",
                      f"{m['recall@100']:.4f}")
    console.print(table)
    kept, ci = r["decision"]["kept"], r["decision"].get("gain_ci95")
    console.print(("[green]kept[/]: " if kept else "[yellow]not kept[/]: ")
                  + r["decision"]["reason"]
                  + (f" [dim](gain 95% CI {ci[0]:+.4f} to {ci[1]:+.4f})[/]" if ci else ""),
                  highlight=False)
    if r.get("activated"):
        a = r["activated"]
        console.print(f"re-embedded {a['chunks']} chunks; \\[embedding] model = {a['model']}",
                      highlight=False)


@tune_app.command("retriever")
def tune_retriever(
    name: Annotated[str, typer.Option("--name", help="Run name (folder under <workspace>/embedders); "
                                                     "an unfinished run of this name resumes.")] = "",
    resume: Annotated[bool, typer.Option("--resume", help="Continue the newest unfinished run.")] = False,
    max_docs: Annotated[int | None, typer.Option("--max-docs", help="Use at most this many documents "
                                                 "(chosen by hash) for training and evaluation.")] = None,
    max_minutes: Annotated[float | None, typer.Option("--max-minutes", help="Cap the whole run; "
                                                      "training stops early to fit.")] = None,
    steps: Annotated[int, typer.Option("--steps", help="Training steps (0: one pass over the triples, at most 200).")] = 0,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Triples per step.")] = 16,
    held_out: Annotated[float, typer.Option("--held-out", help="Share of documents held out to judge.")] = 0.2,
    min_gain: Annotated[float, typer.Option("--min-gain", help="Held-out nDCG@10 gain needed to keep it.")] = 0.005,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    queries: Annotated[str, typer.Option("--queries", help="Pseudo-queries: 'questions' the chat "
                                         "model writes (~1-2 s each on CPU) or 'ict' (sentences "
                                         "of the chunks, no model).")] = "questions",
    questions: Annotated[int, typer.Option("--questions", help="Train chunks to write a question "
                                           "for (queries = questions).")] = 480,
    eval_questions: Annotated[int, typer.Option("--eval-questions", help="Held-out chunks to write "
                                                "a question for, to judge with.")] = 150,
    no_activate: Annotated[bool, typer.Option("--no-activate", help="Report only: do not re-embed "
                                              "the store or switch embedding.model.")] = False,
    workspace: WorkspaceOpt = None, as_json: JsonOpt = False,
) -> None:
    """Fine-tune the embedder on pseudo-queries from your documents; keep it only if it wins
    on documents it never saw."""
    from ragtune.tune.run import TuneOptions
    from ragtune.tune.train import EmbedderTrainConfig

    options = TuneOptions(name=name, held_out=held_out, seed=seed, max_docs=max_docs,
                          max_minutes=max_minutes, min_gain=min_gain, activate=not no_activate,
                          queries=queries, questions=questions, eval_questions=eval_questions,
                          train=EmbedderTrainConfig(steps=steps, batch_size=batch_size, seed=seed))
    ws = open_workspace(workspace)
    progress = StageProgress(enabled=True)
    try:
        report = ws.tune_retriever(options, resume=resume, progress=progress)
    finally:
        progress.close()
    if as_json:
        print_json(report)
    else:
        _print_report(report)


@tune_app.command("status")
def tune_status(workspace: WorkspaceOpt = None, as_json: JsonOpt = False) -> None:
    """Tune runs: scores, decision, which one is in use, and whether its documents changed."""
    ws = open_workspace(workspace)
    rows = ws.tune_runs()
    if as_json:
        print_json({"embedding_model": ws.settings.embedding.model, "runs": rows})
        return
    console.print(f"\\[embedding] model = {ws.settings.embedding.model}", highlight=False)
    table = Table()
    for col in ("run", "in use", "current → adapted nDCG@10", "kept", "lineage"):
        table.add_column(col)
    for r in rows:
        if not r["finished"]:
            table.add_row(r["name"], "", "unfinished (--resume)", "", "")
            continue
        table.add_row(r["name"], "yes" if r["active"] else "",
                      f"{r['current_ndcg@10']:.4f} → {r['adapted_ndcg@10']:.4f}",
                      "yes" if r["kept"] else "no",
                      ("[yellow]stale[/]: " if r["stale"] else "") + r["freshness"])
    console.print(table)


@tune_app.command("use")
def tune_use(
    model: Annotated[str, typer.Argument(help="A tune run's name, or 'base' for the packaged model.")],
    workspace: WorkspaceOpt = None, as_json: JsonOpt = False,
) -> None:
    """Re-embed the store with a run's embedder (or the base one) and use it."""
    ws = open_workspace(workspace)
    progress = StageProgress(enabled=True)
    try:
        n = ws.use_embedder(model, progress=progress)
    finally:
        progress.close()
    if as_json:
        print_json({"chunks": n, "embedding_model": ws.settings.embedding.model})
    else:
        console.print(f"re-embedded {n} chunks; \\[embedding] model = {ws.settings.embedding.model}",
                      highlight=False)
