"""The ragtune demo: the seed story on the sample knowledge base, fully offline.

1. ingest the Northwind knowledge base (restricted HR documents for the `hr` group only),
2. ask three questions and print answers with numbered, checked citations,
3. show access control: the same restricted question as two users,
4. update the returns policy to v2, re-sync, and show the answer change.

Run with ``make demo`` (or ``.venv/bin/python examples/demo.py [--workspace DIR]``).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.panel import Panel
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.rule import Rule

from ragtune.workspace import Workspace

HERE = Path(__file__).resolve().parent
console = Console()

QUESTIONS = [
    "How many days do customers have to return an item?",
    "How do I reset my VPN password?",
    "What is the daily meal allowance when travelling for work?",
]
RESTRICTED_QUESTION = "What is the salary band for a senior engineer?"
UPDATED_FILE = "policies/returns-policy.md"


def ingest(ws: Workspace, path: Path, label: str, **kw) -> None:
    with Progress(TextColumn(f"[bold]{label}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), TextColumn("{task.description}"), console=console) as bar:
        task = bar.add_task("", total=None)
        report = ws.ingest([path], progress=lambda d, t, c: bar.update(
            task, completed=d, total=t, description=Path(c).name), **kw)
    for p, problem in report.failed:
        console.print(f"[red]failed[/] {p}: {problem}")
    console.print(f"  {len(report.added)} added, {len(report.updated)} updated, "
                  f"{len(report.unchanged)} unchanged, {len(report.removed)} removed — "
                  f"{report.chunks_embedded} chunks embedded in {report.seconds:.1f} s")


def ask(ws: Workspace, question: str, user: str | None = None) -> str:
    who = f" [dim](as {user})[/]" if user else ""
    console.print(f"\n[bold cyan]Q:[/] {question}{who}")
    console.print("[bold green]A:[/] ", end="")
    answer = ws.ask(question, user, on_token=lambda t: console.print(t, end="", markup=False,
                                                                     highlight=False))
    console.print()
    for c in answer.citations:
        mark = "[green]✓[/]" if c.supported else "[red]✗ unsupported[/]"
        console.print(f"   [{c.n}] {mark} {Path(c.document).name} — {c.section}", highlight=False)
        console.print(f"       “{c.quote[:160]}”", style="dim", highlight=False)
    for s in answer.unsupported:
        console.print(f"   [yellow]⚠ not supported by its sources:[/] {s.text}", highlight=False)
    t = answer.trace.timings
    console.print(f"   [dim]retrieval {t.get('retrieve_s', 0) * 1000:.0f} ms · first token "
                  f"{t.get('first_token_s', 0):.1f} s · total {t.get('total_s', 0):.1f} s[/]")
    return answer.text


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workspace", type=Path, help="where to build the demo (default: a temp dir)")
    args = ap.parse_args()
    base = args.workspace or Path(tempfile.mkdtemp(prefix="ragtune-demo-"))
    if base.exists():
        shutil.rmtree(base)
    kb, restricted = base / "kb", base / "restricted"
    # Copies: the demo edits a policy file. Restricted documents live in their own folder so
    # a --sync of the public folder never sees them as public.
    shutil.copytree(HERE / "kb", kb, ignore=shutil.ignore_patterns("restricted"))
    if (HERE / "kb" / "restricted").exists():
        shutil.copytree(HERE / "kb" / "restricted", restricted)
    started = time.perf_counter()

    console.print(Rule("[bold]ragtune demo — Northwind Outfitters knowledge base"))
    ws = Workspace.init(base / "workspace", overrides={
        "access": {"users": {"ana": ["hr"], "bob": ["it"]}}})
    console.print(f"workspace: {ws.root}")

    console.print(Rule("1. Ingest"))
    ingest(ws, kb, "public", sync=True)
    if restricted.exists():
        ingest(ws, restricted, "restricted (group hr)", groups=["hr"], collection="hr")

    console.print(Rule("2. Ask, with citations"))
    before = ask(ws, QUESTIONS[0])
    for q in QUESTIONS[1:]:
        ask(ws, q)

    console.print(Rule("3. Access control: restricted HR documents"))
    ask(ws, RESTRICTED_QUESTION, "bob")
    ask(ws, RESTRICTED_QUESTION, "ana")

    console.print(Rule("4. Update a policy: returns policy v2"))
    shutil.copy(HERE / "updates" / Path(UPDATED_FILE).name, kb / UPDATED_FILE)
    ingest(ws, kb, "re-sync", sync=True)
    after = ask(ws, QUESTIONS[0])
    console.print(Panel(f"[bold]before:[/] {before}\n[bold]after:[/]  {after}",
                        title="The answer follows the document", expand=False))
    console.print(f"\n[dim]demo finished in {time.perf_counter() - started:.0f} s; "
                  f"workspace kept at {ws.root}[/]")
    return 0


if __name__ == "__main__":
    sys.exit(main())
