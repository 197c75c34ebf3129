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
from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
from rich.progress import Progress as RichProgress
from rich.table import Table

from ragtune.cli import tables
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
from ragtune.cli.progress import Progress
from ragtune.errors import InputError
from ragtune.evaluate.advise import BUDGETS, DATA_CHANGE

eval_app = typer.Typer(no_args_is_help=True, help="Evaluate retrieval and answers.")

LimitOpt = Annotated[int | None, typer.Option(help="Use only the first N questions.")]
TagOpt = Annotated[list[str] | None, typer.Option("--tag", help="Only questions with this tag (repeatable).")]
JudgeUrlOpt = Annotated[str | None, typer.Option(help="OpenAI-compatible base URL of an LLM judge (e.g. http://127.0.0.1:8000/v1); adds judge_correct.")]
JudgeModelOpt = Annotated[str, typer.Option(help="Judge model name.")]
JudgeKeyOpt = Annotated[str, typer.Option(envvar="RAGTUNE_JUDGE_API_KEY", help="Judge API key.")]
RegexOpt = Annotated[str | None, typer.Option(help="Required answer format (Python regex, re.search); adds format_compliance.")]
SchemaOpt = Annotated[Path | None, typer.Option(help="Required answer format as a JSON schema file; adds format_compliance.")]

# The headline metrics of the terminal tables (the report shows more), by report.COLUMNS key.
SHOWN = ("token_f1", "exact_match", "recall@k", "groundedness", "citation_precision",
         "citation_recall", "correct_refusal_rate", "false_refusal_rate",
         "unsupported_claims_rate", "format_compliance", "latency_p50_s", "latency_p95_s",
         "cost_per_query_usd")
# Short headers for a table with one column per metric; a table turned on its side (one row
# per metric, when the terminal is narrow) uses the report's plain headers.
SHORT = {"token_f1": "F1", "exact_match": "EM", "recall@k": "recall@{k}",
         "groundedness": "grounded", "citation_precision": "citations ok",
         "citation_recall": "cites gold", "correct_refusal_rate": "refuses unansw.",
         "false_refusal_rate": "refuses answ.", "unsupported_claims_rate": "unsupported",
         "format_compliance": "format", "latency_p50_s": "median s", "latency_p95_s": "p95 s",
         "cost_per_query_usd": "$ per 1k"}


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
    """The headline metrics: one row per system when the terminal is wide enough, else one
    row per metric (in a pipe there is no width limit: always one row per system)."""
    from ragtune.evaluate.report import COLUMNS, fmt

    kinds = {key: (head.replace("{k}", str(k)), kind) for key, head, kind in COLUMNS}
    keys = [key for key in SHOWN if any(
        s["metrics"].get(key.replace("@k", f"@{k}")) is not None for s in systems)]
    values = [[fmt(s["metrics"].get(key.replace("@k", f"@{k}")), kinds[key][1]) for key in keys]
              for s in systems]
    return tables.metrics_table(console, [s["name"] for s in systems],
                                [SHORT[key].replace("{k}", str(k)) for key in keys], values,
                                tall_columns=[kinds[key][0] for key in keys])


def _progress(label: str, total: int) -> Progress:
    """Progress with an ETA on stderr, whatever the output mode (see cli/progress.py)."""
    return Progress(label, total, console=err)


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
    with RichProgress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
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
    with _progress(f"eval {system.name}", len(ev)) as bar, _resume_hint(path):
        run = evaluator.run(system, path,
                            progress=lambda d, t, q: bar.update(d, q, fresh=bool(q)))
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

    Writes report.md, a self-contained report.html and report.json into --out. Progress and
    an ETA go to stderr in every mode (a terminal, a pipe, --json). With the packaged models
    on a 2-core CPU expect a few seconds per question and system (see the README).
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
    offsets = {s.name: i * len(ev) for i, s in enumerate(specs)}  # systems run one after another
    with _progress("compare", len(ev) * len(specs)) as bar, _resume_hint(out_dir):
        data = run_compare(ws, ev, specs, out_dir, user=as_user, k=k, index_seconds=index_seconds,
                           amortise_months=amortise_months,
                           judge=_judge(judge_url, judge_model, judge_key, ws.settings.generation.timeout_s),
                           format_regex=_regex(format_regex), format_schema=_schema(format_schema),
                           progress=lambda name, d, t, q: bar.update(
                               offsets[name] + d, f"{name} {q}".strip(), fresh=bool(q)))
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

QUESTIONS = {  # the questionnaire, in the order it is asked (and piped answers are read)
    "data_change": "How often does the knowledge change?",
    "citations": "Must answers cite their sources?",
    "format_required": "Is a specific output format, style or tone required?",
    "prompt_tokens": "Typical prompt length in tokens",
    "monthly_queries": "Expected queries per month",
    "access_control": "Do different users see different documents?",
    "deletion": "Must data be deletable on request?",
    "training_budget": "Training budget?",
    "gpu": "Is a GPU available for training?",
    "labelled_examples": "Labelled examples in the wanted style",
}
# What an empty answer means, as in the terminal's prompts (a yes/no question: no).
DEFAULTS = {"prompt_tokens": 800, "monthly_queries": 10_000, "labelled_examples": 0}
CHOICES = {"data_change": DATA_CHANGE, "training_budget": BUDGETS}


def _parse_answer(key: str, text: str) -> Any:
    """A piped answer in the type of its question; ValueError names what is expected."""
    text = text.strip().lower()
    if key in CHOICES:
        choices = CHOICES[key]
        if text not in choices:
            raise ValueError(f"one of {', '.join(choices)}")
        return text
    if key in DEFAULTS:
        if not text:
            return DEFAULTS[key]
        try:
            return int(text.replace(",", "").replace("_", ""))
        except ValueError:
            raise ValueError("a whole number") from None
    if text in {"", "n", "no", "false", "0"}:
        return False
    if text in {"y", "yes", "true", "1"}:
        return True
    raise ValueError("y or n")


def _read_piped_answers(given: dict[str, Any]) -> None:
    """Fill the unanswered questions from stdin, one line each, in questionnaire order,
    until the input ends; each answer taken is echoed on stderr."""
    line_no = 0
    for key, question in QUESTIONS.items():
        if given[key] is not None:
            continue
        line = sys.stdin.readline()
        if not line:
            break  # the piped answers ran out: the rest stay unanswered
        line_no += 1
        try:
            given[key] = _parse_answer(key, line)
        except ValueError as e:
            raise InputError(f"stdin line {line_no}", f"{question} expects {e}, got "
                                                       f"{line.strip()!r}") from None
        shown = {True: "yes", False: "no"}.get(given[key], given[key])
        err.print(f"{question} {shown}", highlight=False, markup=False)


def _ask_choice(text: str, choices: tuple[str, ...]) -> str:
    while True:
        value = typer.prompt(f"{text} [{'/'.join(choices)}]").strip().lower()
        if value in choices:
            return value
        err.print(f"please answer one of: {', '.join(choices)}")


def _stdin_has_answers(wait_s: float = 2.0) -> bool:
    """Whether piped stdin has something to read (answers, or the end of input) within
    ``wait_s``: an open pipe nobody writes to must not hang the command."""
    try:
        import select

        ready, _, _ = select.select([sys.stdin], [], [], wait_s)
    except (OSError, ValueError, TypeError):  # no select on this stream (Windows, a test double)
        return True
    return bool(ready)


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
    interactive: Annotated[bool | None, typer.Option("--interactive/--no-interactive", help="Ask for missing answers (default: in a terminal unless --json; from piped input, one answer per line, always).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Recommend RAG, fine-tuning or hybrid from your situation, with reasons and next steps.

    Missing answers are asked in a terminal, or read one per line from piped input in the
    order of the questions (printf 'weekly\\ny\\nn\\n' | ragtune advise). With nothing
    answered it says there is no basis to decide (exit 0).
    """
    from ragtune.evaluate.advise import LABEL, Answers, advise, reconcile
    from ragtune.evaluate.report import load_report

    given: dict[str, Any] = {
        "data_change": data_change, "citations": citations, "format_required": format_required,
        "prompt_tokens": prompt_tokens, "monthly_queries": monthly_queries,
        "access_control": access_control, "deletion": deletion,
        "training_budget": training_budget, "gpu": gpu, "labelled_examples": labelled_examples}
    piped = not sys.stdin.isatty()
    if interactive is None:
        interactive = piped or not as_json
    if interactive and piped:
        if _stdin_has_answers():
            _read_piped_answers(given)
    elif interactive:
        for key, question in QUESTIONS.items():
            if given[key] is not None:
                continue
            if key in CHOICES:
                given[key] = _ask_choice(question, CHOICES[key])
            elif key in DEFAULTS:
                given[key] = typer.prompt(question, default=DEFAULTS[key], type=int)
            else:
                given[key] = typer.confirm(question)
    answers = Answers(**given)
    advice = advise(answers)
    if report is not None:
        advice.reconciliation = reconcile(advice, load_report(report), answers)
    if as_json:
        print_json({"answers": answers.to_dict(), **advice.to_dict()})
        return
    if advice.choice is None:
        console.print(f"[bold yellow]No basis to decide:[/] {advice.no_basis}.", highlight=False)
    else:
        console.print(f"[bold green]Recommendation:[/] [bold]{LABEL[advice.choice]}[/]  "
                      f"(points: " + ", ".join(f"{k_} {v}" for k_, v in advice.scores.items())
                      + ")", highlight=False)
        if advice.tied:
            console.print(f"[dim]tied with {', '.join(LABEL[t] for t in advice.tied)}: "
                          f"{LABEL[advice.choice]} is cheaper to start and to undo[/]",
                          highlight=False)
    for r in advice.fired:
        pts = ", ".join(f"{k_} {v:+d}" for k_, v in r.points.items())
        console.print(f"  • {r.reason} [dim]({r.when}: {pts})[/]", highlight=False)
    if advice.unanswered:
        console.print(f"[dim]not answered (no effect): {', '.join(advice.unanswered)}[/]",
                      highlight=False)
    if advice.reconciliation:
        console.print("\n[bold]Against the measurements:[/]" if advice.choice else
                      "\n[bold]The measurements:[/]")
        for n in advice.reconciliation["notes"]:
            console.print(f"  • {n}", highlight=False)
    console.print("\n[bold]Next:[/]" if advice.choice else "\n[bold]To get a basis:[/]")
    for step in advice.next_steps:
        console.print(f"  {step}", highlight=False, markup=False)
