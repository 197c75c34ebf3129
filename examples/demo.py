"""The ragtune demo: the seed story on the sample knowledge base, fully offline.

1. ingest the Northwind knowledge base, one collection per folder (restricted HR documents
   for the `hr` group only),
2. ask three questions and print answers with numbered, checked citations,
3. show access control: the same restricted question as two users,
4. update the returns policy to v2, re-sync, and show the answer change,
5. fine-tune a support-style LoRA adapter (capped steps) and compare the format compliance
   of the base model and the adapter on held-out prompts,
6. train the intent router and answer in hybrid mode (route → retrieve → adapter),
7. the bake-off: base, RAG, adapter and hybrid on the same eval questions, with the
   recommendation derived from the measurements (report.md / report.html / report.json),
8. ``ragtune monitor`` on the demo's own answers: quality, the stale adapter (step 4 changed
   a document it learnt from), knowledge gaps (monitor.html).
9. how to open the web app on the demo workspace (ragtune serve, an admin key made for it).

Run with ``make demo`` (or ``.venv/bin/python examples/demo.py [--workspace DIR]``).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
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
COLLECTIONS = ["policies", "shipping", "manuals", "it", "hr", "expenses"]
# Intent labels (examples/intents/intents.jsonl) -> collections; labels not listed map to
# the collection of the same name.
ROUTES = {"policy": ["policies", "shipping"]}
ADAPTER = "support-style"
# Capped so the demo fits its budget on 2 cores; see docs/finetuning.md for a full run.
TRAIN_ARGS = ["--max-steps", "24", "--batch-size", "4", "--lr", "1e-3", "--rank", "16",
              "--alpha", "32", "--max-length", "256"]
HELDOUT_PROMPTS = 10
ROUTE_QUESTIONS = [("Hi! Thanks for your help earlier.", None),
                   ("What is the capital of Australia?", None),
                   ("How do I reset my VPN password?", None),
                   ("What is the salary band for a senior engineer?", "bob")]
HYBRID_QUESTION = "How long is the warranty on Ridgeline tents?"
# A spread of topics and formats, two of them unanswerable from the knowledge base; none
# about the returns policy, which step 4 changed.
COMPARE_IDS = ["q007", "q022", "q031", "q046", "q055", "q070", "q088", "q097"]
COMPARE_SYSTEMS = f"base,rag,finetuned:{ADAPTER},hybrid:{ADAPTER}"


def ingest(ws: Workspace, path: Path, label: str, **kw) -> float:
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
    return report.seconds


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


def ragtune(ws: Workspace, *args: str) -> None:
    """Run a ragtune command as a user would (its own progress bars and tables)."""
    console.print(f"[bold]$ ragtune {' '.join(args)}[/]", highlight=False)
    env = dict(os.environ, RAGTUNE_HOME=str(ws.root), COLUMNS=str(console.width))
    subprocess.run([sys.executable, "-m", "ragtune.cli", *args], env=env, check=True)


def format_compliance(ws: Workspace) -> None:
    """Base model vs adapter on held-out support prompts: does the answer end with
    [Source: document, section] as the team's examples do?"""
    from ragtune.finetune.evaluate import DEFAULT_FORMAT_REGEX

    rows = [json.loads(x) for x in (HERE / "finetune" / "heldout_prompts.jsonl")
            .read_text(encoding="utf-8").splitlines() if x.strip()][:HELDOUT_PROMPTS]
    prompts = [[m for m in r["messages"] if m["role"] != "assistant"] for r in rows]
    rate = {}
    for label, generator in (("base", ws.generator), (ADAPTER, ws.adapters.generator(ADAPTER))):
        ok, example = 0, ""
        with Progress(TextColumn(f"[bold]{label}"), BarColumn(), MofNCompleteColumn(),
                      TimeElapsedColumn(), console=console) as bar:
            for messages in bar.track(prompts):
                text = generator.complete(messages, max_tokens=90).text.strip()
                ok += bool(re.search(DEFAULT_FORMAT_REGEX, text))
                example = example or text
        rate[label] = ok / len(prompts)
        console.print(f"  {label}: [bold]{ok}/{len(prompts)}[/] answers end with "
                      f"[Source: document, section] — e.g. “{example[:160]}”", highlight=False)
    console.print(Panel(f"format compliance on {len(prompts)} held-out prompts: base "
                        f"{rate['base']:.0%} → adapter {rate[ADAPTER]:.0%}", expand=False))


def configure_routing(ws: Workspace) -> Workspace:
    """Point the workspace at the trained router and map intent labels to collections."""
    config = ws.root / "ragtune.toml"
    text = config.read_text(encoding="utf-8")
    text = text.replace('router = ""', 'router = "intents"', 1)
    routes = "".join(f"{label} = {json.dumps(cols)}\n" for label, cols in ROUTES.items())
    text = text.replace("[routing.routes]\n", "[routing.routes]\n" + routes, 1)
    config.write_text(text, encoding="utf-8")
    fresh = Workspace.open(ws.root)
    fresh.embedder, fresh.generator = ws.embedder, ws.generator  # keep the loaded models
    return fresh


def bake_off(ws: Workspace, out: Path, index_s: float) -> None:
    from ragtune.cli.evaluate import print_compare
    from ragtune.evaluate.compare import parse_systems, run_compare
    from ragtune.evaluate.evalset import load_evalset, subset
    from ragtune.evaluate.report import write_reports

    questions = subset(load_evalset(HERE / "eval" / "kb_eval.jsonl"), ids=COMPARE_IDS)
    systems = parse_systems(COMPARE_SYSTEMS)
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=console) as bar:
        tasks: dict[str, int] = {}

        def progress(system: str, done: int, total: int, _question: str) -> None:
            if system not in tasks:
                tasks[system] = bar.add_task(system, total=total)
            bar.update(tasks[system], completed=done)

        data = run_compare(ws, questions, systems, out, index_seconds=index_s, progress=progress)
    paths = write_reports(data, out)
    print_compare(data)
    console.print(f"reports: {', '.join(str(p) for p in paths.values())}", highlight=False)


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
        "access": {"users": {"ana": ["hr"], "bob": ["it"]}, "admins": ["ops"]}})
    console.print(f"workspace: {ws.root}")

    console.print(Rule("1. Ingest"))
    index_s = sum(ingest(ws, kb / name, f"{name}", sync=True, collection=name)
                  for name in COLLECTIONS)
    if restricted.exists():
        index_s += ingest(ws, restricted, "restricted (group hr)", groups=["hr"], collection="hr")

    console.print(Rule("2. Ask, with citations"))
    before = ask(ws, QUESTIONS[0])
    for q in QUESTIONS[1:]:
        ask(ws, q)

    console.print(Rule("3. Access control: restricted HR documents"))
    ask(ws, RESTRICTED_QUESTION, "bob")
    ask(ws, RESTRICTED_QUESTION, "ana")

    console.print(Rule("4. Update a policy: returns policy v2"))
    shutil.copy(HERE / "updates" / Path(UPDATED_FILE).name, kb / UPDATED_FILE)
    ingest(ws, kb / "policies", "re-sync policies", sync=True, collection="policies")
    after = ask(ws, QUESTIONS[0])
    console.print(Panel(f"[bold]before:[/] {before}\n[bold]after:[/]  {after}",
                        title="The answer follows the document", expand=False))

    console.print(Rule("5. Fine-tune a support-style adapter (LoRA, CPU)"))
    ragtune(ws, "data", "validate", str(HERE / "finetune" / "support_style.jsonl"))
    ragtune(ws, "finetune", "train", str(HERE / "finetune" / "support_style.jsonl"),
            "--adapter", ADAPTER, *TRAIN_ARGS)
    format_compliance(ws)

    console.print(Rule("6. Intent router + hybrid answers"))
    ragtune(ws, "route", "train", str(HERE / "intents" / "intents.jsonl"))
    ws = configure_routing(ws)
    for question, user in ROUTE_QUESTIONS:
        route = ws.route(question, ws.principal(user))
        who = f" (as {user})" if user else ""
        console.print(f"  {question!r}{who} → [bold]{route.label}[/] ({route.kind}, "
                      f"{route.confidence:.2f}) — {route.reason}", highlight=False)
    answer = ws.ask(HYBRID_QUESTION, mode="hybrid", adapter=ADAPTER)
    console.print(f"\n[bold cyan]Q (hybrid):[/] {HYBRID_QUESTION}\n[bold green]A:[/] {answer.text}",
                  highlight=False)
    console.print(f"   [dim]route {answer.trace.route} · adapter {answer.trace.adapter}[/]",
                  highlight=False)

    console.print(Rule("7. Bake-off: base vs RAG vs adapter vs hybrid"))
    bake_off(ws, ws.root / "compare" / "demo", index_s)  # where the web app's Reports page looks

    console.print(Rule("8. Monitor: this run's answers"))
    # The questions asked above are live traffic; the bake-off's are eval runs, not counted.
    ragtune(ws, "monitor", "--since", "1d", "--as", "ops", "--html", str(base / "monitor.html"))

    console.print(f"\n[dim]demo finished in {time.perf_counter() - started:.0f} s; "
                  f"workspace kept at {ws.root}[/]")
    web_app(ws)
    return 0


def web_app(ws: Workspace) -> None:
    """How to open the web app on the demo workspace, with an admin key made for it."""
    from ragtune.server.keys import KeyStore

    _, token = KeyStore(ws.root / ws.settings.auth.keys_file).create("demo", admin=True)
    console.print(Rule("9. The web app on this workspace"))
    console.print(
        f"  .venv/bin/ragtune serve --workspace {ws.root}\n"
        "  open http://127.0.0.1:8080/ and sign in with this admin key (made for you, shown once):\n"
        f"  {token}\n"
        "  (more keys: .venv/bin/ragtune keys create USER [--admin] --workspace ...; "
        "see docs/server.md)", highlight=False, soft_wrap=True)


if __name__ == "__main__":
    sys.exit(main())
