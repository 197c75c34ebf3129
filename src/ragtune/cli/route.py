"""``ragtune route``: train an intent router, try it on a question, check its routes.

Mounted by :mod:`ragtune.cli.app`. Routers live in ``<workspace>/routers/<name>``; hybrid
answers use the one named by ``routing.router`` in ragtune.toml. Core errors are not caught
here: ``main`` prints them as one line with their exit code.
"""

from __future__ import annotations

import os
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
)

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # no command here may reach the hub

route_app = typer.Typer(no_args_is_help=True,
                        help="Train and try the intent router (direct / out of scope / which "
                             "collections).")


NameOpt = Annotated[str | None, typer.Option("--name", help="Router name (default: routing.router, "
                                                            "else 'intents').")]


def _router_name(ws: Any, name: str | None) -> str:
    from ragtune.route.policy import DEFAULT_ROUTER

    return name or ws.settings.routing.router or DEFAULT_ROUTER


def print_report(report: dict[str, Any]) -> None:
    """Accuracy, macro-F1, per-label scores and the confusion matrix as Rich tables."""
    m = report.get("metrics")
    t = report["training"]
    counts = report["counts"]
    console.print(f"{counts['total']} examples, {len(report['labels'])} labels: "
                  f"{sum(counts['train'].values())} train, "
                  f"{sum(counts['validation'].values())} validation (seed {t['seed']}); "
                  f"trained in {t['seconds']:.1f} s ({t['steps']} contrastive steps "
                  f"{t['fine_tune_s']:.1f} s, export {t['export_s']:.1f} s)", highlight=False)
    if not m:
        console.print("[yellow]no validation split (--val-fraction 0): nothing to score[/]")
        return
    console.print(f"validation accuracy [bold]{m['accuracy']:.3f}[/], macro-F1 "
                  f"[bold]{m['macro_f1']:.3f}[/] on {m['examples']} held-out questions"
                  + (" (the saved router was then retrained on every example)"
                     if t.get("refit") else ""))
    per = Table("label", "kind", "precision", "recall", "F1", "support", title="per label")
    for label, s in m["per_label"].items():
        per.add_row(label, report["kinds"][label], f"{s['precision']:.2f}", f"{s['recall']:.2f}",
                    f"{s['f1']:.2f}", str(s["support"]))
    console.print(per)
    labels = m["confusion"]["labels"]
    cm = Table("true \\ predicted", *labels, title="confusion matrix (validation)")
    for label, row in zip(labels, m["confusion"]["matrix"], strict=True):
        cm.add_row(label, *(f"[bold]{v}[/]" if i == j and v else (str(v) if v else "[dim]·[/]")
                            for j, v in enumerate(row) for i in [labels.index(label)]))
    console.print(cm)


@route_app.command("train")
def route_train(
    file: Annotated[Path, typer.Argument(help="Labelled questions: JSONL of {\"text\", \"label\"}.")],
    name: Annotated[str, typer.Option("--name", help="Router name.")] = "intents",
    seed: Annotated[int, typer.Option(help="Seed of the split and the training.")] = 0,
    val_fraction: Annotated[float, typer.Option("--val-fraction", help="Share of each label held out for validation (0 = none).")] = 0.2,
    steps: Annotated[int | None, typer.Option(help="Contrastive fine-tuning steps (0 = base model, no fine-tuning).")] = None,
    refit: Annotated[bool, typer.Option("--refit", help="After validating, retrain on every example.")] = False,
    workspace: WorkspaceOpt = None, as_json: JsonOpt = False,
) -> None:
    """Fine-tune an intent router on labelled questions; report validation scores."""
    from dataclasses import replace

    from ragtune.route.data import load_intents
    from ragtune.route.model import IntentRouter, RouterTrainConfig
    from ragtune.route.policy import check_router_name, router_folder

    check_router_name(name)
    ws = open_workspace(workspace)
    examples = load_intents(file)
    config = RouterTrainConfig(refit=refit)
    if steps is not None:
        if steps < 0:
            raise typer.BadParameter(f"--steps must be >= 0, got {steps}")
        config = replace(config, steps=steps)
    if not 0.0 <= val_fraction < 1.0:
        raise typer.BadParameter(f"--val-fraction must be in [0, 1), got {val_fraction}")
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=err, disable=as_json) as bar:
        task = bar.add_task("load", total=None)

        def progress(done: int, total: int, stage: str) -> None:
            bar.update(task, description=stage, completed=done, total=total)

        router, report = IntentRouter.train(examples, seed=seed, val_fraction=val_fraction,
                                            config=config, source=str(file), progress=progress)
    folder = router.save(router_folder(ws.root, name))
    if as_json:
        print_json({"name": name, "path": str(folder), **report})
        return
    for w in report["warnings"]:
        err.print(f"[yellow]warning[/] {w}", highlight=False)
    print_report(report)
    console.print(f"saved router [bold]{name}[/] to {folder}", highlight=False)
    if ws.settings.routing.router != name:
        console.print(f'to route with it, set [bold]routing.router = "{name}"[/] in '
                      f"{ws.root / 'ragtune.toml'} (and map labels to collections under "
                      "\\[routing.routes]); check with 'ragtune route check'", highlight=False)


@route_app.command("test")
def route_test(
    question: Annotated[str, typer.Argument(help="The question to route.")],
    as_user: AsOpt = None, name: NameOpt = None,
    scores: Annotated[bool, typer.Option("--scores", help="Also print every label's probability (operator view: names every route).")] = False,
    workspace: WorkspaceOpt = None, as_json: JsonOpt = False,
) -> None:
    """Show where a question would go, as a user would see it."""
    from ragtune.route.policy import decide, load_router, require_valid_routes

    ws = open_workspace(workspace)
    principal = ws.principal(as_user)
    router = load_router(ws.root, _router_name(ws, name))
    require_valid_routes(router, ws.settings.routing, ws.store, where=str(ws.root / "ragtune.toml"))
    decision = decide(router, question, routing=ws.settings.routing, principal=principal,
                      store=ws.store)
    probs = router.predict(question)[2] if scores else None
    if as_json:
        out = decision.to_dict()
        if probs is not None:
            out["scores"] = {k: round(v, 4) for k, v in sorted(probs.items(), key=lambda kv: -kv[1])}
        print_json(out)
        return
    where = ("every collection you may read" if decision.collections is None
             else ", ".join(decision.collections))
    if decision.kind != "knowledge":
        where = "no retrieval"
    console.print(f"[bold]{decision.kind}[/] (label {decision.label}, confidence "
                  f"{decision.confidence:.2f}) → {where}", highlight=False)
    console.print(f"[dim]{decision.reason}[/]", highlight=False)
    if probs is not None:
        table = Table("label", "probability", title="classifier scores (operator view)")
        for label, p in sorted(probs.items(), key=lambda kv: -kv[1]):
            table.add_row(label, f"{p:.3f}")
        console.print(table)


@route_app.command("check")
def route_check(name: NameOpt = None, workspace: WorkspaceOpt = None,
                as_json: JsonOpt = False) -> None:
    """Check the router's labels against routing.routes and the workspace's collections.

    Exits with code 2 when a route names a collection with no documents, or a routes entry
    names a label the router does not have.
    """
    from ragtune.route.data import label_kind
    from ragtune.route.policy import check_routes, load_router, route_collections

    ws = open_workspace(workspace)
    router_name = _router_name(ws, name)
    router = load_router(ws.root, router_name)
    routing = ws.settings.routing
    problems = check_routes(router, routing, ws.store)
    known = {d.collection for d in ws.store.list_documents(None)}
    rows: list[dict[str, Any]] = []
    for label in router.labels:
        kind = label_kind(label)
        cols = route_collections(label, routing) if kind == "knowledge" and label != "knowledge" else None
        rows.append({"label": label, "kind": kind, "collections": cols,
                     "missing": [c for c in cols or () if c not in known]})
    if as_json:
        print_json({"router": router_name, "configured": routing.router == router_name,
                     "min_confidence": routing.min_confidence, "routes": rows,
                     "problems": problems, "metrics": router.info.get("metrics")})
    else:
        table = Table("label", "kind", "searches", title=f"router {router_name}")
        for r in rows:
            if r["collections"] is None:
                searches = "every readable collection" if r["kind"] == "knowledge" else "no retrieval"
            else:
                searches = ", ".join(f"[red]{c} (no documents)[/]" if c in r["missing"] else c
                                     for c in r["collections"])
            table.add_row(r["label"], r["kind"], searches)
        console.print(table)
        if routing.router != router_name:
            console.print(f'[yellow]not in use:[/] routing.router is "{routing.router}"; set '
                          f'routing.router = "{router_name}" to route with it', highlight=False)
        for p in problems:
            console.print(f"[red]problem[/] {p}", highlight=False)
        if not problems:
            console.print("[green]OK[/]: every route searches collections that exist")
    if problems:
        raise typer.Exit(2)
