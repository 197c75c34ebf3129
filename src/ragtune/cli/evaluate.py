"""Evaluation commands: ``eval retrieval``, ``eval qa``, ``eval synth``, ``compare``, ``advise``.

``eval_app`` is mounted as ``ragtune eval``; ``compare`` and ``advise`` are top-level
commands (see :mod:`ragtune.cli.app`). Core errors are not caught here: ``main`` prints them
as one line with their exit code. A regression check that fails exits with code 1 after
printing which metric failed.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

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
    retrieval_mode,
)
from ragtune.errors import InputError

eval_app = typer.Typer(no_args_is_help=True, help="Evaluate retrieval and answers.")

LimitOpt = Annotated[int | None, typer.Option(help="Use only the first N questions.")]
TagOpt = Annotated[list[str] | None, typer.Option("--tag", help="Only questions with this tag (repeatable).")]
JudgeUrlOpt = Annotated[str | None, typer.Option(help="OpenAI-compatible base URL of an LLM judge (e.g. http://127.0.0.1:8000/v1); adds judge_correct.")]
JudgeModelOpt = Annotated[str, typer.Option(help="Judge model name.")]
JudgeKeyOpt = Annotated[str, typer.Option(envvar="RAGTUNE_JUDGE_API_KEY", help="Judge API key.")]
RegexOpt = Annotated[str | None, typer.Option(help="Required answer format (Python regex, re.search); adds format_compliance.")]
SchemaOpt = Annotated[Path | None, typer.Option(help="Required answer format as a JSON schema file; adds format_compliance.")]

SHOWN = (("token_f1", "F1", "points"), ("exact_match", "EM", "points"),
         ("recall@k", "recall@k", "pct"), ("groundedness", "grounded", "pct"),
         ("citation_precision", "cit. prec.", "pct"), ("citation_recall", "cit. rec.", "pct"),
         ("correct_refusal_rate", "refuses unansw.", "pct"),
         ("false_refusal_rate", "refuses answ.", "pct"),
         ("unsupported_claims_rate", "unsupported", "pct"), ("format_compliance", "format", "pct"),
         ("latency_p50_s", "p50 s", "sec"), ("latency_p95_s", "p95 s", "sec"),
         ("cost_per_query_usd", "$/query", "usd"))




def _evalset(file: Path, limit: int | None, tags: list[str] | None) -> Any:
    from ragtune.evaluate.evalset import load_evalset, subset

    ev = load_evalset(file)
    return subset(ev, tags=tags or (), limit=limit) if (limit is not None or tags) else ev


def _judge(url: str | None, model: str, key: str, timeout: float) -> Any:
    if not url:
        return None
    from ragtune.generate.http import HttpGenerator

    return HttpGenerator(url, model, api_key=key, timeout=timeout, max_tokens=5)


def _schema(path: Path | None) -> dict[str, Any] | None:
    if path is None:
        return None
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise InputError(str(path), f"cannot read the schema: {e.strerror or e}") from None
    except json.JSONDecodeError as e:
        raise InputError(str(path), f"not valid JSON ({e.msg})", e.lineno) from None
    if not isinstance(value, dict):
        raise InputError(str(path), "a JSON schema must be an object")
    return value


def _regex(pattern: str | None) -> str | None:
    if pattern is not None:
        try:
            re.compile(pattern)
        except re.error as e:
            raise InputError("--format-regex", f"not a valid regex: {e}") from None
    return pattern


def metrics_table(systems: list[dict[str, Any]], k: int) -> Table:
    """A Rich table of the headline metrics, one row per system."""
    from ragtune.evaluate.report import fmt

    cols = [(key.replace("@k", f"@{k}"), head.replace("@k", f"@{k}"), kind) for key, head, kind in SHOWN]
    cols = [c for c in cols if any(s["metrics"].get(c[0]) is not None for s in systems)]
    table = Table("system", *[c[1] for c in cols])
    for s in systems:
        table.add_row(s["name"], *[fmt(s["metrics"].get(c[0]), c[2]) for c in cols])
    return table


def _bar(disable: bool) -> Progress:
    return Progress(TextColumn("[bold]{task.fields[system]}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), TextColumn("{task.description}"), console=err,
                    disable=disable)


@contextmanager
def _resume_hint(where: Path) -> Iterator[None]:
    """On Ctrl-C, say that the answers so far are kept and how to go on."""
    try:
        yield
    except KeyboardInterrupt:
        err.print(f"[yellow]interrupted:[/] answers so far are kept in {where}; run the same "
                  "command again to resume", highlight=False)
        raise


# ================================================================ eval retrieval

@eval_app.command("retrieval")
def eval_retrieval(beir: Annotated[Path, typer.Option("--beir", help="BEIR folder: corpus.jsonl, queries.jsonl, qrels/test.tsv.")],
                   modes: Annotated[str, typer.Option(help="Comma-separated: dense,lexical,fused ('hybrid' is the old name of fused).")] = "dense,lexical,fused",
                   workspace: WorkspaceOpt = None, as_json: JsonOpt = False) -> None:
    """nDCG@10, Recall@10/100 and MRR@10 of dense, BM25 and fused retrieval on a BEIR set."""
    from ragtune.evaluate.retrieval import evaluate_beir
    from ragtune.workspace import Workspace, default_root

    root = default_root(workspace)
    ws = Workspace(root) if (root / "ragtune.toml").exists() else Workspace(root, settings=None)
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=err, disable=as_json) as bar:
        task = bar.add_task("index", total=None)

        def progress(done: int, total: int, stage: str) -> None:
            bar.update(task, description=stage, completed=done, total=total)

        results = evaluate_beir(beir, ws.embedder, ws.settings,
                               modes=[retrieval_mode(m.strip()) or m for m in modes.split(",")],
                                progress=progress)
    if as_json:
        print_json(results)
        return
    table = Table("mode", *results["metrics"][next(iter(results["metrics"]))].keys())
    for mode, metrics in results["metrics"].items():
        table.add_row(mode, *(f"{v:.4f}" for v in metrics.values()))
    console.print(table)
    pairs = Table("A vs B", "wins", "ties", "losses", "mean ΔnDCG@10", "95% CI", "")
    for c in results["comparisons"]:
        real = c["ci_low"] > 0 or c["ci_high"] < 0
        pairs.add_row(f"{c['a']} vs {c['b']}", str(c["wins"]), str(c["ties"]), str(c["losses"]),
                      f"{c['mean_diff']:+.4f}", f"[{c['ci_low']:+.4f}, {c['ci_high']:+.4f}]",
                      "real" if real else "noise (CI holds 0)")
    console.print(pairs)
    console.print(f"{results['queries']} queries, {results['documents']} documents, "
                  f"indexed in {results['index_s']:.1f} s")


# ================================================================ eval qa

def eval_qa(
    file: Annotated[Path, typer.Argument(help="Eval set: JSONL (id, question, answers, sources, answerable, tags) or a BEIR folder (retrieval only).")],
    mode: Annotated[str | None, typer.Option(help="base, rag, finetuned or hybrid (default: answer.mode).")] = None,
    adapter: Annotated[str | None, typer.Option(help="LoRA adapter (finetuned/hybrid; with rag: a RAFT adapter).")] = None,
    as_user: AsOpt = None,
    k: Annotated[int | None, typer.Option("-k", help="Cut-off of recall@k (default retrieval.top_k).")] = None,
    out: Annotated[Path | None, typer.Option(help="Per-question JSONL (default <workspace>/eval/<set>-<system>.jsonl); an existing file is resumed.")] = None,
    report: Annotated[Path | None, typer.Option(help="Also write report.json/.md/.html into this folder (a later --baseline).")] = None,
    restart: Annotated[bool, typer.Option("--restart", help="Discard answers from an earlier run instead of resuming.")] = False,
    baseline: Annotated[Path | None, typer.Option(help="report.json to compare with (same system, or its only one).")] = None,
    fail_under: Annotated[list[str] | None, typer.Option("--fail-under", help="METRIC=VALUE: exit 1 if METRIC is below VALUE; VALUE may be 'baseline' or 'baseline-0.02'. Repeatable.")] = None,
    fail_over: Annotated[list[str] | None, typer.Option("--fail-over", help="METRIC=VALUE: exit 1 if METRIC is above VALUE (latency, cost, unsupported_claims_rate...). Repeatable.")] = None,
    tolerance: Annotated[float, typer.Option(help="With --baseline and no thresholds: the drop allowed in each quality metric.")] = 0.02,
    judge_url: JudgeUrlOpt = None, judge_model: JudgeModelOpt = "gpt-4o-mini", judge_key: JudgeKeyOpt = "",
    format_regex: RegexOpt = None, format_schema: SchemaOpt = None,
    limit: LimitOpt = None, tag: TagOpt = None,
    workspace: WorkspaceOpt = None, as_json: JsonOpt = False,
) -> None:
    """Answer every question of an eval set with one system and score it."""
    from ragtune.evaluate.compare import build_report_data, setup_costs
    from ragtune.evaluate.costs import index_setup
    from ragtune.evaluate.qa import QAEvaluator, SystemSpec, regression_check
    from ragtune.evaluate.report import load_report, write_reports

    ws = open_workspace(workspace)
    ev = _evalset(file, limit, tag)
    answer = ws.settings.answer
    mode = mode or answer.mode
    if adapter is None and mode in {"finetuned", "hybrid"}:
        adapter = answer.adapter or None
    system = SystemSpec.from_mode(mode, adapter)
    base_report = load_report(baseline) if baseline else None
    evaluator = QAEvaluator(ws, ev, user=as_user, k=k,
                            judge=_judge(judge_url, judge_model, judge_key, ws.settings.generation.timeout_s),
                            format_regex=_regex(format_regex), format_schema=_schema(format_schema))
    path = out or ws.root / "eval" / f"{Path(ev.path).stem}-{system.name.replace(':', '_')}.jsonl"
    if restart and path.exists():
        path.unlink()
    with _bar(as_json) as bar, _resume_hint(path):
        task = bar.add_task("", total=len(ev), system=system.name)
        run = evaluator.run(system, path, progress=lambda d, t, q: bar.update(
            task, completed=d, total=t, description=q))
    data = build_report_data(ws, ev, [run], {system.name: setup_costs(
        ws, system, index_setup(ws.store).to_dict())}, user=as_user, k=evaluator.k,
        with_recommendation=False)
    written = write_reports(data, report) if report else None
    failures, checks = regression_check(run.metrics, fail_under or [], fail_over or [],
                                        baseline=base_report, system=system.name,
                                        tolerance=tolerance)
    if as_json:
        print_json({"system": system.to_dict(), "metrics": run.metrics, "answers_file": str(path),
                     "resumed": run.resumed, "warnings": run.warnings, "checks": checks,
                     "failures": failures,
                     "reports": {k_: str(v) for k_, v in (written or {}).items()}})
    else:
        console.print(metrics_table(data["systems"], evaluator.k))
        console.print(f"{len(ev)} questions ({ev.answerable} answerable, {ev.unanswerable} "
                      f"unanswerable); {run.resumed} resumed from {path}", highlight=False)
        for w in run.warnings:
            err.print(f"[yellow]warning:[/] {w}", highlight=False)
        if written:
            console.print(f"reports: {written['md']}, {written['html']}, {written['json']}",
                          highlight=False)
        for c in checks:
            mark = "[green]ok[/]" if c["ok"] else "[red]FAIL[/]"
            console.print(f"{mark} {c['text']}", highlight=False)
    if failures:
        raise typer.Exit(1)


def eval_synth(
    out: Annotated[Path, typer.Option(help="Eval JSONL to write.")] = Path("eval.jsonl"),
    as_user: Annotated[str | None, typer.Option("--as", help="Use only documents this user may read.")] = None,
    eval_fraction: Annotated[float, typer.Option(help="Share of documents held out (must match 'data synth').")] = 0.2,
    seed: Annotated[int, typer.Option(help="Seed of the document split (must match 'data synth').")] = 0,
    per_chunk: Annotated[int, typer.Option(help="Questions per chunk.")] = 1,
    use_llm: Annotated[bool, typer.Option("--use-llm/--no-llm", help="Ask the workspace's generator to write questions (default: deterministic extraction).")] = False,
    limit_chunks: Annotated[int | None, typer.Option(help="Use at most N chunks, spread over documents.")] = None,
    workspace: WorkspaceOpt = None, as_json: JsonOpt = False,
) -> None:
    """Write an eval set from the documents 'data synth' holds out (the same split).

    No adapter trained on 'data synth' training data is then graded on what it saw.
    """
    from ragtune.evaluate.evalset import synth_evalset

    ws = open_workspace(workspace)
    result = synth_evalset(ws.store, principal=ws.principal(as_user), out=out,
                           eval_fraction=eval_fraction, seed=seed, per_chunk=per_chunk,
                           generator=ws.generator if use_llm else None, limit_chunks=limit_chunks)
    if as_json:
        print_json(result)
        return
    console.print(f"{result['questions']} questions from {len(result['eval']['documents'])} "
                  f"held-out documents -> {out}", highlight=False)
    console.print(f"split: {result['split']['rule']} (eval_fraction {eval_fraction}, seed {seed})",
                  highlight=False)
    for w in result["warnings"]:
        err.print(f"[yellow]warning:[/] {w}", highlight=False)


eval_app.command("qa")(eval_qa)
eval_app.command("synth")(eval_synth)


# ================================================================ compare

def print_compare(data: dict[str, Any]) -> None:
    """The compare table and the recommendation, as the terminal shows them."""
    console.print(metrics_table(data["systems"], data["k"]))
    rec = data.get("recommendation")
    if rec:
        console.print(f"\n[bold green]Recommendation:[/] [bold]{rec['headline']}[/]", highlight=False)
        for r in rec["reasons"]:
            console.print(f"  • {r}", highlight=False)
        for c in rec["caveats"]:
            console.print(f"  [yellow]caveat:[/] {c}", highlight=False)


def compare_command(
    eval_file: Annotated[Path, typer.Option("--eval", help="Eval set (JSONL or BEIR folder).")],
    systems: Annotated[str, typer.Option(help="Comma-separated: base, rag, finetuned:A, hybrid:A, raft:B.")] = "base,rag",
    out: Annotated[Path | None, typer.Option(help="Folder for answers-*.jsonl and report.md/.html/.json (default <workspace>/compare/<set>). Answers already there are resumed.")] = None,
    restart: Annotated[bool, typer.Option("--restart", help="Discard answers from an earlier run instead of resuming.")] = False,
    as_user: AsOpt = None,
    k: Annotated[int | None, typer.Option("-k", help="Cut-off of recall@k (default retrieval.top_k).")] = None,
    index_seconds: Annotated[float | None, typer.Option(help="Measured index build time (default: estimated from the ingest log).")] = None,
    amortise_months: Annotated[float, typer.Option(help="Months over which set-up cost is spread in the break-even chart.")] = 12.0,
    judge_url: JudgeUrlOpt = None, judge_model: JudgeModelOpt = "gpt-4o-mini", judge_key: JudgeKeyOpt = "",
    format_regex: RegexOpt = None, format_schema: SchemaOpt = None,
    limit: LimitOpt = None, tag: TagOpt = None,
    workspace: WorkspaceOpt = None, as_json: JsonOpt = False,
) -> None:
    """Run every system on the same questions; report with a measured recommendation.

    Writes report.md, a self-contained report.html and report.json into --out.
    """
    from ragtune.evaluate.compare import answers_path, parse_systems, run_compare
    from ragtune.evaluate.report import write_reports

    if amortise_months <= 0:
        raise InputError("--amortise-months", f"must be > 0, got {amortise_months}")
    ws = open_workspace(workspace)
    specs = parse_systems(systems)
    ev = _evalset(eval_file, limit, tag)
    out_dir = out or ws.root / "compare" / Path(ev.path).stem
    if restart:
        for s in specs:
            answers_path(out_dir, s).unlink(missing_ok=True)
    with _bar(as_json) as bar, _resume_hint(out_dir):
        tasks = {s.name: bar.add_task("", total=len(ev), system=s.name) for s in specs}
        data = run_compare(ws, ev, specs, out_dir, user=as_user, k=k, index_seconds=index_seconds,
                           amortise_months=amortise_months,
                           judge=_judge(judge_url, judge_model, judge_key, ws.settings.generation.timeout_s),
                           format_regex=_regex(format_regex), format_schema=_schema(format_schema),
                           progress=lambda name, d, t, q: bar.update(
                               tasks[name], completed=d, total=t, description=q))
    paths = write_reports(data, out_dir)
    if as_json:
        print_json({"reports": {k_: str(v) for k_, v in paths.items()},
                     "systems": [{"name": s["name"], "metrics": s["metrics"], "setup": s["setup"]}
                                 for s in data["systems"]],
                     "break_even": data["break_even"], "recommendation": data["recommendation"],
                     "warnings": data["warnings"]})
        return
    print_compare(data)
    console.print(f"\nreports: {paths['md']}\n         {paths['html']}\n         {paths['json']}",
                  highlight=False)


# ================================================================ advise

def _ask_choice(text: str, choices: tuple[str, ...]) -> str:
    while True:
        value = typer.prompt(f"{text} [{'/'.join(choices)}]").strip().lower()
        if value in choices:
            return value
        err.print(f"please answer one of: {', '.join(choices)}")


def advise_command(
    data_change: Annotated[str | None, typer.Option(help="How often the knowledge changes: never, monthly, weekly, daily.")] = None,
    citations: Annotated[bool | None, typer.Option("--citations/--no-citations", help="Answers must cite their sources.")] = None,
    format_required: Annotated[bool | None, typer.Option("--format/--no-format", help="A required output format, style or tone.")] = None,
    prompt_tokens: Annotated[int | None, typer.Option(help="Typical prompt length in tokens (instructions + context).")] = None,
    monthly_queries: Annotated[int | None, typer.Option(help="Expected queries per month.")] = None,
    access_control: Annotated[bool | None, typer.Option("--access-control/--no-access-control", help="Different users may see different documents.")] = None,
    deletion: Annotated[bool | None, typer.Option("--deletion/--no-deletion", help="Data must be deletable on request (privacy, retention).")] = None,
    training_budget: Annotated[str | None, typer.Option(help="none, small (hours on a laptop) or large (GPU days).")] = None,
    gpu: Annotated[bool | None, typer.Option("--gpu/--no-gpu", help="A GPU is available for training.")] = None,
    labelled_examples: Annotated[int | None, typer.Option(help="Labelled question/answer examples in the wanted style.")] = None,
    report: Annotated[Path | None, typer.Option(help="A compare report.json to reconcile the advice with.")] = None,
    interactive: Annotated[bool | None, typer.Option("--interactive/--no-interactive", help="Ask for missing answers (default: when stdin is a terminal and --json is not given).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Recommend RAG, fine-tuning or hybrid from your situation, with reasons and next steps."""
    from ragtune.evaluate.advise import BUDGETS, DATA_CHANGE, LABEL, Answers, advise, reconcile
    from ragtune.evaluate.report import load_report

    given: dict[str, Any] = {
        "data_change": data_change, "citations": citations, "format_required": format_required,
        "prompt_tokens": prompt_tokens, "monthly_queries": monthly_queries,
        "access_control": access_control, "deletion": deletion,
        "training_budget": training_budget, "gpu": gpu, "labelled_examples": labelled_examples}
    if interactive is None:
        interactive = sys.stdin.isatty() and not as_json
    if interactive:
        prompts: dict[str, Any] = {
            "data_change": lambda: _ask_choice("How often does the knowledge change?", DATA_CHANGE),
            "citations": lambda: typer.confirm("Must answers cite their sources?"),
            "format_required": lambda: typer.confirm("Is a specific output format, style or tone required?"),
            "prompt_tokens": lambda: typer.prompt("Typical prompt length in tokens", default=800, type=int),
            "monthly_queries": lambda: typer.prompt("Expected queries per month", default=10_000, type=int),
            "access_control": lambda: typer.confirm("Do different users see different documents?"),
            "deletion": lambda: typer.confirm("Must data be deletable on request?"),
            "training_budget": lambda: _ask_choice("Training budget?", BUDGETS),
            "gpu": lambda: typer.confirm("Is a GPU available for training?"),
            "labelled_examples": lambda: typer.prompt("Labelled examples in the wanted style", default=0, type=int),
        }
        for key, ask in prompts.items():
            if given[key] is None:
                given[key] = ask()
    answers = Answers(**given)
    advice = advise(answers)
    if report is not None:
        advice.reconciliation = reconcile(advice, load_report(report), answers)
    if as_json:
        print_json({"answers": answers.to_dict(), **advice.to_dict()})
        return
    console.print(f"[bold green]Recommendation:[/] [bold]{LABEL[advice.choice]}[/]  "
                  f"(points: " + ", ".join(f"{k_} {v}" for k_, v in advice.scores.items()) + ")",
                  highlight=False)
    for r in advice.fired:
        pts = ", ".join(f"{k_} {v:+d}" for k_, v in r.points.items())
        console.print(f"  • {r.reason} [dim]({r.when}: {pts})[/]", highlight=False)
    if advice.unanswered:
        console.print(f"[dim]not answered (no effect): {', '.join(advice.unanswered)}[/]",
                      highlight=False)
    if advice.reconciliation:
        console.print("\n[bold]Against the measurements:[/]")
        for n in advice.reconciliation["notes"]:
            console.print(f"  • {n}", highlight=False)
    console.print("\n[bold]Next:[/]")
    for step in advice.next_steps:
        console.print(f"  {step}", highlight=False, markup=False)
