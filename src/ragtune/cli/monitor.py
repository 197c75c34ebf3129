"""``ragtune monitor``: freshness, live answer quality, knowledge gaps and drift, from the
records every answer leaves in the store.

    ragtune monitor [--since 7d] [--json] [--html FILE] [--dataset train.jsonl]
    ragtune monitor check [--webhook URL]      exit 3 when an [monitor.alerts] threshold is crossed
    ragtune monitor gaps --export gaps.jsonl   the failed questions by topic, as an eval-set stub
    ragtune monitor feedback ID --down -m "wrong date"
    ragtune monitor purge [--older-than 90d]

Records are read as ``--as USER``: a user sees the records of their own questions, an admin
everyone's (the operator's view: ``--as`` one of ``access.admins``). Anonymous questions
belong to no one, so without ``--as`` no record is shown.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
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

if TYPE_CHECKING:
    from ragtune.types import Principal
    from ragtune.workspace import Workspace

ALERT_EXIT = 3  # distinct from 1 and 2, which are ragtune's own errors

monitor_app = typer.Typer(invoke_without_command=True, help=(
    "Monitor live answers: freshness, quality, knowledge gaps, drift and alerts."))

SinceOpt = Annotated[str | None, typer.Option(
    help="Window: a duration back from now (7d, 12h) or an ISO date; compared with the window "
         "of the same length before it (default monitor.period).")]
UntilOpt = Annotated[str | None, typer.Option(help="End of the window (ISO date; default now).")]


def _viewer(ws: Workspace, as_user: str | None) -> Principal:
    """The principal the records are read as; says so when that is not the operator's view."""
    principal = ws.principal(as_user)
    if not principal.admin:
        err.print(f"note: as {principal.user} you see "
                  + ("no answer records (anonymous questions belong to no one)"
                     if as_user is None else "only the records of your own questions")
                  + "; pass --as an admin for every record", highlight=False)
    return principal


def _report(ws: Workspace, since: str | None, until: str | None, as_user: str | None,
            **kw: Any) -> tuple[dict[str, Any], Any, Any]:
    from ragtune.monitor.health import monitor_report
    from ragtune.monitor.records import window_bounds

    start, end = window_bounds(since, until, ws.settings.monitor.period)
    return monitor_report(ws, since=start, until=end, principal=_viewer(ws, as_user), **kw)


def print_report(report: dict[str, Any]) -> None:
    """The report as the terminal shows it: quality table, then the summary lines."""
    from ragtune.monitor.report import pct, summary_lines

    quality = report["quality"]["overall"]
    table = Table("metric", "this window", "answers", "previous", "change", "p")
    for name, e in quality.items():
        change = "n/a" if e["change"] is None else f"{e['change'] * 100:+.1f} pts"
        p = "n/a" if e["p_value"] is None else f"{e['p_value']:.3g}" + (" *" if e["significant"] else "")
        table.add_row(name.replace("_", " "), pct(e["value"]), str(e["n"]), pct(e["previous"]),
                      change, p)
    console.print(table)
    for line in summary_lines(report):
        style = "red" if line.startswith("ALERT") else None
        console.print(line, style=style, highlight=False)


@monitor_app.callback()
def monitor(ctx: typer.Context, since: SinceOpt = None, until: UntilOpt = None,
            html: Annotated[Path | None, typer.Option("--html", help="Also write the report as a self-contained HTML page.")] = None,
            dataset: Annotated[Path | None, typer.Option(help="A chat JSONL training set to check: near-duplicates, label conflicts, source balance.")] = None,
            eval_data: Annotated[Path | None, typer.Option("--eval-data", help="Its eval file (chat JSONL or eval set): train/eval overlap.")] = None,
            as_user: AsOpt = None, workspace: WorkspaceOpt = None, as_json: JsonOpt = False) -> None:
    """Report on the answers of a window against the window before it."""
    if ctx.invoked_subcommand is not None:
        return
    from ragtune.monitor.report import render_html

    ws = open_workspace(workspace)
    report, _, _ = _report(ws, since, until, as_user, dataset=dataset, eval_dataset=eval_data)
    if html is not None:
        html.parent.mkdir(parents=True, exist_ok=True)
        html.write_text(render_html(report), encoding="utf-8")
    if as_json:
        print_json(report)
        return
    print_report(report)
    if html is not None:
        console.print(f"report: {html}", highlight=False)


@monitor_app.command("check")
def check(since: SinceOpt = None, until: UntilOpt = None,
          webhook: Annotated[str | None, typer.Option(help="POST a JSON alert here when a threshold is crossed (default monitor.webhook).")] = None,
          as_user: AsOpt = None, workspace: WorkspaceOpt = None, as_json: JsonOpt = False) -> None:
    """Exit 3 when a monitor.alerts threshold is crossed (for cron and CI)."""
    from ragtune.errors import RagtuneError
    from ragtune.monitor.alerts import Alert, alert_payload, post_webhook

    ws = open_workspace(workspace)
    report, _, _ = _report(ws, since, until, as_user)
    alerts = [Alert(**a) for a in report["alerts"]]
    url = webhook or ws.settings.monitor.webhook
    posted = None
    if alerts and url:
        try:
            posted = post_webhook(url, alert_payload(report, alerts))
        except RagtuneError as e:  # the alerts still decide the exit code
            err.print(f"[red]error:[/] {e}", highlight=False)
    if as_json:
        print_json({"alerts": report["alerts"], "webhook_status": posted,
                    "answers": report["traffic"]["answers"], "period": report["period"]})
    elif alerts:
        for a in alerts:
            console.print(f"[red]ALERT[/] {a.message}", highlight=False)
    else:
        console.print(f"ok: no threshold crossed ({report['traffic']['answers']} live answers)")
    if alerts:
        raise typer.Exit(ALERT_EXIT)


@monitor_app.command("gaps")
def gaps(since: SinceOpt = None, until: UntilOpt = None,
         export: Annotated[Path | None, typer.Option(help="Write the gap questions as an eval-set stub (JSONL for 'ragtune eval qa').")] = None,
         cluster: Annotated[list[int] | None, typer.Option("--cluster", help="Only this cluster rank (repeatable).")] = None,
         as_user: AsOpt = None, workspace: WorkspaceOpt = None, as_json: JsonOpt = False) -> None:
    """The questions the knowledge base failed, clustered by meaning and ranked."""
    from ragtune.monitor.gaps import export_gaps

    ws = open_workspace(workspace)
    report, clusters, records = _report(ws, since, until, as_user)
    section = report["gaps"]
    written = export_gaps(clusters, records, export, cluster or ()) if export else None
    if as_json:
        print_json(section | {"exported": written})
        return
    console.print(f"{section['questions']} gap questions, {section['cluster_count']} topics")
    for c in section["clusters"]:
        if cluster and c["rank"] not in cluster:
            continue
        console.print(f"[bold]#{c['rank']}[/] {c['headline']}", highlight=False)
        for q in c["questions"]:
            console.print(f"    • {q}", highlight=False)
    if export:
        console.print(f"{written} questions written to {export} (answerable: false until the "
                      "knowledge base covers them)", highlight=False)


@monitor_app.command("feedback")
def feedback(trace_id: Annotated[str, typer.Argument(help="The answer record's id (ragtune ask prints it).")],
             up: Annotated[bool, typer.Option("--up/--down", help="Thumbs up or down.")] = True,
             comment: Annotated[str, typer.Option("--comment", "-m", help="What was wrong or right.")] = "",
             as_user: AsOpt = None, workspace: WorkspaceOpt = None) -> None:
    """Rate an answer, as the user who asked it (or an admin)."""
    ws = open_workspace(workspace)
    fb = ws.store.add_feedback(trace_id, ws.principal(as_user), 1 if up else -1, comment)
    console.print(f"recorded thumbs {'up' if fb.rating > 0 else 'down'} on {fb.trace_id}",
                  highlight=False)


@monitor_app.command("purge")
def purge(older_than: Annotated[str | None, typer.Option(help="Delete answer records older than this (default monitor.retention).")] = None,
          as_user: AsOpt = None, workspace: WorkspaceOpt = None, as_json: JsonOpt = False) -> None:
    """Delete old answer records and their feedback (needs --as an admin)."""
    from ragtune.config import parse_duration
    from ragtune.errors import AccessDenied, InputError

    ws = open_workspace(workspace)
    if not ws.principal(as_user).admin:
        raise AccessDenied("deleting answer records needs an admin: pass --as one of "
                           "access.admins")
    keep = older_than or ws.settings.monitor.retention
    if not keep:
        raise InputError("--older-than", "monitor.retention is '' (keep forever): say how old")
    n = ws.store.purge_traces(time.time() - parse_duration(keep, "--older-than"))
    if as_json:
        print_json({"deleted": n, "older_than": keep})
    else:
        console.print(f"deleted {n} answer records older than {keep}")
