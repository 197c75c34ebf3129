"""``ragtune raft``: build RAFT training data (then ``ragtune finetune train`` trains on it).

Mounted by :mod:`ragtune.cli.app`. Core errors are left to ``main``, which prints them as one
line with their exit code.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ragtune.cli.common import JsonOpt, WorkspaceOpt, console, err, open_workspace, print_json

raft_app = typer.Typer(no_args_is_help=True, help="Retrieval-augmented fine-tuning (RAFT) data.")


@raft_app.command("build")
def raft_build(
    questions: Annotated[Path | None, typer.Option("--questions", "-q", help="JSONL questions: {question, answer(s), chunk_id or source(s), quote?} or 'ragtune data synth' output (default: one extractive question per chunk).")] = None,
    as_user: Annotated[str | None, typer.Option("--as", help="Build only from documents this user may read (recorded in the lineage).")] = None,
    k: Annotated[int, typer.Option("--k", help="Distractors per example: the retriever's top hits for the question.")] = 4,
    p: Annotated[float, typer.Option("--p", help="Share of training examples that show the oracle chunk.")] = 0.8,
    out_train: Annotated[Path | None, typer.Option(help="Training file (default <workspace>/data/raft_train.jsonl).")] = None,
    out_eval: Annotated[Path | None, typer.Option(help="Eval file (default <workspace>/data/raft_eval.jsonl).")] = None,
    eval_fraction: Annotated[float, typer.Option(help="Share of documents held out for eval (as in 'data synth').")] = 0.2,
    seed: Annotated[int, typer.Option(help="Seed of the document split, oracle choice and source order.")] = 0,
    limit: Annotated[int | None, typer.Option(help="Use at most N questions, spread over documents.")] = None,
    workspace: WorkspaceOpt = None, as_json: JsonOpt = False,
) -> None:
    """Write RAFT chat JSONL: oracle chunk + k hard-negative distractors, quoted reasoning.

    Train with: ragtune finetune train <train file> --adapter NAME --max-length 1024
    """
    from ragtune.finetune.raft import build_raft, load_questions

    ws = open_workspace(workspace)
    data_dir = ws.root / "data"
    report = build_raft(
        ws.store, ws.retriever, ws.principal(as_user),
        load_questions(questions) if questions is not None else None,
        out_train=out_train or data_dir / "raft_train.jsonl",
        out_eval=out_eval or data_dir / "raft_eval.jsonl", k=k, p=p, seed=seed,
        eval_fraction=eval_fraction, limit=limit,
        questions_from=str(questions) if questions is not None else None)
    if as_json:
        print_json(report.to_dict())
        return
    console.print(f"train: {report.train_examples} examples ({report.with_oracle} with the oracle, "
                  f"{report.without_oracle} answering '{_refusal()}') from "
                  f"{len(report.train_documents)} documents -> {report.train_path}", highlight=False)
    console.print(f"eval: {report.eval_examples} examples from {len(report.eval_documents)} "
                  f"documents -> {report.eval_path}", highlight=False)
    dropped = ", ".join(f"{n} {why.replace('_', ' ')}" for why, n in report.dropped.items())
    used = f" ({report.limited_to} used, spread over documents)" if report.limited_to is not None else ""
    console.print(f"{report.questions} questions{used} as '{report.principal}', k={k}, p={p}; "
                  f"{report.mean_distractors} distractors per example on average; "
                  f"dropped: {dropped or 'none'}", highlight=False)
    console.print(f"lineage -> {report.lineage_path}", highlight=False)
    for w in report.warnings:
        err.print(f"[yellow]warning:[/] {w}", highlight=False)


def _refusal() -> str:
    from ragtune.generate.prompts import NOT_FOUND_TEXT

    return NOT_FOUND_TEXT
