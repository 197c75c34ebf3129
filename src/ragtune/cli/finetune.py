"""Fine-tuning command groups: ``ragtune data``, ``ragtune finetune`` and ``ragtune adapters``.

Mounted by :mod:`ragtune.cli.app`. Core errors (:class:`~ragtune.errors.RagtuneError`) are
not caught here: ``main`` prints them as one line with their exit code. Adapters live in
``<workspace>/adapters/<name>``. Heavy packages (torch, transformers, peft) are imported
inside the commands that need them.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table

from ragtune.cli.common import JsonOpt, WorkspaceOpt, console, err, open_workspace, print_json
from ragtune.errors import InputError
from ragtune.jsonl import read_json_object

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # no command here may reach the hub

data_app = typer.Typer(no_args_is_help=True, help="Check, convert and synthesise fine-tuning data.")
finetune_app = typer.Typer(no_args_is_help=True, help="Train, evaluate and probe LoRA adapters.")
adapters_app = typer.Typer(no_args_is_help=True, help="List, inspect, merge and export adapters.")


AdapterOpt = Annotated[str, typer.Option("--adapter", "-a", help="Adapter name.")]
LimitOpt = Annotated[int | None, typer.Option(help="Use only the first N examples.")]
MaxTokOpt = Annotated[int, typer.Option("--max-tokens", help="Most tokens per generation.")]


def _registry(workspace: Path | None) -> Any:
    from ragtune.finetune.adapters import AdapterRegistry

    return AdapterRegistry(open_workspace(workspace).root / "adapters")


def _age(ts: float) -> str:
    s = max(0.0, time.time() - ts)
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if s >= size:
            return f"{s / size:.0f} {unit} ago"
    return f"{s:.0f} s ago"


def _duration(seconds: float) -> str:
    s = round(seconds)
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


# ================================================================ data


@data_app.command("validate")
def data_validate(
    file: Annotated[Path, typer.Argument(help="Chat JSONL file.")],
    base: Annotated[str | None, typer.Option(help="Count tokens with this model's tokenizer and chat template.")] = None,
    max_tokens: Annotated[int | None, typer.Option("--max-tokens", help="Training max_length: longer examples are errors.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Check a chat JSONL file: every problem with its line, counts, token statistics.

    Exits with code 2 when there is any error (warnings alone exit 0).
    """
    from ragtune.finetune.dataset import validate_dataset

    tokenizer = None
    if base:
        from transformers import AutoTokenizer

        from ragtune.finetune.train import resolve_base_folder

        tokenizer = AutoTokenizer.from_pretrained(str(resolve_base_folder(base)[0]))
    report = validate_dataset(file, tokenizer=tokenizer, max_tokens=max_tokens)
    if as_json:
        print_json(report.to_dict())
    else:
        c, t = report.counts, report.token_stats
        console.print(f"[bold]{file}[/]: {c['examples']} examples on {c['lines']} lines "
                      f"({c['invalid_lines']} invalid), {c['trained_assistant_messages']} trained "
                      f"assistant messages, {c['duplicates']} duplicates", highlight=False)
        console.print(f"tokens per example ({report.token_counter}): min {t['min']}, mean "
                      f"{t['mean']}, p95 {t['p95']}, max {t['max']}; one epoch = "
                      f"{report.epoch_tokens:,} tokens", highlight=False)
        for issue in report.errors:
            console.print(f"[red]error[/] {issue} [dim]({issue.code})[/]", highlight=False)
        for issue in report.warnings:
            console.print(f"[yellow]warning[/] {issue} [dim]({issue.code})[/]", highlight=False)
        verdict = "[green]OK[/]" if report.ok else f"[red]{len(report.errors)} errors[/]"
        console.print(f"{verdict}, {len(report.warnings)} warnings")
    if not report.ok:
        raise typer.Exit(2)


@data_app.command("convert")
def data_convert(
    src: Annotated[Path, typer.Argument(help="Alpaca or ShareGPT data (JSONL or a JSON array).")],
    dst: Annotated[Path, typer.Argument(help="Chat JSONL file to write.")],
    fmt: Annotated[str, typer.Option("--format", help="auto, alpaca, sharegpt or chat.")] = "auto",
    as_json: JsonOpt = False,
) -> None:
    """Convert Alpaca or ShareGPT records to chat JSONL (nothing is written on an error)."""
    from ragtune.finetune.dataset import convert_file

    result = convert_file(src, dst, fmt)
    if as_json:
        print_json(result)
    else:
        console.print(f"converted {result['examples']} {result['format']} records to {result['dst']}",
                      highlight=False)


@data_app.command("synth")
def data_synth(
    as_user: Annotated[str | None, typer.Option("--as", help="Use only documents this user may read.")] = None,
    out_train: Annotated[Path | None, typer.Option(help="Training file (default <workspace>/data/synth_train.jsonl).")] = None,
    out_eval: Annotated[Path | None, typer.Option(help="Eval file (default <workspace>/data/synth_eval.jsonl).")] = None,
    use_llm: Annotated[bool, typer.Option("--use-llm/--no-llm", help="Ask the workspace's generator to write questions and answers (default: deterministic extraction).")] = False,
    limit_chunks: Annotated[int | None, typer.Option(help="Use at most N chunks, spread over documents.")] = None,
    per_chunk: Annotated[int, typer.Option(help="Examples per chunk.")] = 1,
    eval_fraction: Annotated[float, typer.Option(help="Share of documents held out for eval.")] = 0.2,
    seed: Annotated[int, typer.Option(help="Seed of the document split.")] = 0,
    workspace: WorkspaceOpt = None, as_json: JsonOpt = False,
) -> None:
    """Write training and eval examples from the knowledge base, split by document."""
    from ragtune.finetune.synth import synth_examples

    ws = open_workspace(workspace)
    data_dir = ws.root / "data"
    result = synth_examples(
        ws.store, principal=ws.principal(as_user),
        out_train=out_train or data_dir / "synth_train.jsonl",
        out_eval=out_eval or data_dir / "synth_eval.jsonl", per_chunk=per_chunk,
        eval_fraction=eval_fraction, seed=seed, generator=ws.generator if use_llm else None,
        limit_chunks=limit_chunks)
    if as_json:
        print_json(result)
        return
    for name in ("train", "eval"):
        part = result[name]
        console.print(f"{name}: {part['examples']} examples from {len(part['documents'])} documents "
                      f"-> {part['path']}", highlight=False)
    console.print(f"method {result['method']}, {result['chunks_used']} chunks "
                  f"({result['chunks_without_example']} gave no example, "
                  f"{result['llm_fallbacks']} LLM fallbacks)", highlight=False)
    for w in result["warnings"]:
        err.print(f"[yellow]warning:[/] {w}", highlight=False)


# ================================================================ finetune


@finetune_app.command("train")
def finetune_train(
    file: Annotated[Path, typer.Argument(help="Chat JSONL training file.")],
    adapter: AdapterOpt,
    base: Annotated[str | None, typer.Option(help="Base model: 'qwen2.5-0.5b', a .gguf file or an HF folder (default: generation.model).")] = None,
    rank: Annotated[int | None, typer.Option(help="LoRA rank r (default 8).")] = None,
    alpha: Annotated[int | None, typer.Option(help="LoRA alpha (default 16).")] = None,
    dropout: Annotated[float | None, typer.Option(help="LoRA dropout (default 0.05).")] = None,
    target_modules: Annotated[str | None, typer.Option(help="Comma-separated module names (default q_proj,k_proj,v_proj,o_proj).")] = None,
    epochs: Annotated[float | None, typer.Option(help="Passes over the data (default 1).")] = None,
    max_steps: Annotated[int | None, typer.Option(help="Optimizer steps (overrides --epochs).")] = None,
    lr: Annotated[float | None, typer.Option("--lr", help="Peak learning rate (default 2e-4).")] = None,
    batch_size: Annotated[int | None, typer.Option(help="Examples per batch (default 4).")] = None,
    grad_accum: Annotated[int | None, typer.Option(help="Batches per optimizer step (default 1).")] = None,
    max_length: Annotated[int | None, typer.Option(help="Tokens per example (default 512).")] = None,
    seed: Annotated[int | None, typer.Option(help="Random seed (default 0).")] = None,
    qlora: Annotated[bool, typer.Option("--qlora", help="4-bit base model (CUDA + bitsandbytes).")] = False,
    gradient_checkpointing: Annotated[bool, typer.Option("--gradient-checkpointing", help="Recompute activations in the backward pass: less memory for large bases, ~30% more compute.")] = False,
    int8_base: Annotated[bool, typer.Option("--int8-base/--fp32-base", help="CPU: the frozen base's forward in int8 for the first --int8-share of the steps (default where this CPU's int8 product is faster than fp32, i.e. with VNNI; those steps ~30% faster), or fp32 throughout.")] = True,
    int8_share: Annotated[float | None, typer.Option(help="Share of the steps run with the int8 forward (default 0.75); the rest run in fp32.")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue an interrupted run from its last checkpoint.")] = False,
    workspace: WorkspaceOpt = None, as_json: JsonOpt = False,
) -> None:
    """Train a LoRA adapter into <workspace>/adapters/NAME, with live progress."""
    from ragtune.finetune.access import with_groups
    from ragtune.finetune.adapters import AdapterRegistry
    from ragtune.finetune.raft import training_lineage
    from ragtune.finetune.train import TrainConfig, train_adapter

    ws = open_workspace(workspace)
    registry = AdapterRegistry(ws.root / "adapters")
    out = registry.path_for(adapter)
    base = base or ws.settings.generation.model
    if Path(base).expanduser().exists():
        base = str(Path(base).expanduser().resolve())  # run.json must name it from anywhere
    given = {"rank": rank, "alpha": alpha, "dropout": dropout, "epochs": epochs,
             "max_steps": max_steps, "learning_rate": lr, "batch_size": batch_size,
             "grad_accum": grad_accum, "max_length": max_length, "seed": seed,
             "int8_share": int8_share}
    options: dict[str, Any] = {k: v for k, v in given.items() if v is not None}
    if target_modules:
        options["target_modules"] = tuple(m.strip() for m in target_modules.split(",") if m.strip())
    config = TrainConfig(base_model=base, qlora=qlora, int8_base=int8_base,
                         gradient_checkpointing=gradient_checkpointing, **options)
    # RAFT's <file>.lineage.json, else per-line metadata; with each document's groups, so
    # only those who may read all of them can use the adapter (finetune/access.py)
    lineage = with_groups(training_lineage(file), ws.store)
    columns = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("loss {task.fields[loss]}"), TextColumn("{task.fields[tps]} tok/s"),
               TextColumn("ETA {task.fields[eta]}"))
    with Progress(*columns, console=err, disable=as_json) as bar:
        task = bar.add_task("loading", total=None, loss="-", tps="-", eta="-")

        def on_step(step: int, total: int, loss: float, tps: float, eta: float) -> None:
            bar.update(task, description="train", completed=step, total=total,
                       loss=f"{loss:.4f}", tps=f"{tps:,.0f}", eta=_duration(eta))

        result = train_adapter(config, file, out, on_step=on_step, resume=resume, lineage=lineage)
    run = result.run
    if as_json:
        print_json(run | {"adapter_dir": str(result.adapter_dir)})
        return
    last = run["loss_curve"][-1][1] if run["loss_curve"] else None
    console.print(f"adapter [bold]{adapter}[/] -> {result.adapter_dir}", highlight=False)
    console.print(
        f"{run['steps']} steps ({run['epochs_done']} epochs{', stopped early' if run['stopped_early'] else ''}) "
        f"in {_duration(run['duration_s'])}; loss {run['loss_curve'][0][1]:.4f} -> {last:.4f}"
        + (f", validation loss {run['val_loss']:.4f}" if run["val_loss"] is not None else "")
        + f"; {run['train_tokens_per_s']} tokens/s on {run.get('device_name', run['device'])}"
        + (f" ({run['dtype']})" if run.get("dtype") else "")
        + (f"; peak GPU memory {run['peak_gpu_mb']:.0f} MB" if run.get("peak_gpu_mb") else "")
        + f"; peak RSS {run['peak_rss_mb']:.0f} MB",
        highlight=False)
    for note in run.get("notes") or []:
        console.print(f"[dim]note: {escape(note)}[/]", highlight=False)
    console.print(f"data: {run['dataset']['train_examples']} train / {run['dataset']['val_examples']} "
                  f"validation examples ({run['batching']})"
                  + (f"; lineage: {len(lineage['documents'])} documents" if lineage else ""),
                  highlight=False)


def _generator(workspace: Path | None, adapter: str, max_tokens: int) -> tuple[Any, Any]:
    from ragtune.finetune.hf_generator import HFGenerator

    registry = _registry(workspace)
    info = registry.get(adapter)
    return HFGenerator(info.base_model, adapters_root=registry.root, max_tokens=max_tokens), info


@finetune_app.command("eval")
def finetune_eval(
    adapter: AdapterOpt,
    data: Annotated[Path, typer.Option("--data", help="Held-out chat JSONL file.")],
    format_regex: Annotated[str | None, typer.Option(help="Required format (re.search); default: the [Source: title, section] citation.")] = None,
    json_schema: Annotated[Path | None, typer.Option(help="JSON schema file the output must satisfy (instead of a regex).")] = None,
    limit: LimitOpt = None, max_tokens: MaxTokOpt = 200,
    workspace: WorkspaceOpt = None, as_json: JsonOpt = False,
) -> None:
    """Base model vs adapter on held-out data: loss, exact match, token F1, format compliance."""
    from ragtune.finetune.evaluate import evaluate_adapter

    schema = None
    if json_schema is not None:
        schema = read_json_object(json_schema, "a JSON schema must be an object")
    gen, _ = _generator(workspace, adapter, max_tokens)
    result = evaluate_adapter(gen, adapter, data, format_regex=format_regex, json_schema=schema,
                              limit=limit)
    if as_json:
        print_json(result)
        return
    m = result["metrics"]
    table = Table("metric", "base", adapter, "delta", title=f"{result['examples']} examples from {data}")
    for key in ("loss", "perplexity", "exact_match", "token_f1", "format_compliance",
                "mean_completion_tokens", "tokens_per_s"):
        fmt = (lambda v: "-" if v is None else f"{v:.4f}" if isinstance(v, float) else str(v))
        table.add_row(key, fmt(m["base"][key]), fmt(m["adapter"][key]), fmt(m["delta"].get(key)))
    console.print(table)
    f = result["format"]
    console.print(f"format: {f.get('pattern') or 'JSON schema (' + f['validator'] + ')'}", highlight=False)


@finetune_app.command("probe")
def finetune_probe(
    adapter: AdapterOpt,
    data: Annotated[Path | None, typer.Option("--data", help="Training file (default: the one recorded in run.json).")] = None,
    min_overlap_tokens: Annotated[int, typer.Option(help="Verbatim run (whitespace tokens) that counts as memorised.")] = 20,
    limit: LimitOpt = None, max_tokens: MaxTokOpt = 200,
    workspace: WorkspaceOpt = None, as_json: JsonOpt = False,
) -> None:
    """Replay training prompts: how much does the adapter recite verbatim, and any personal data?"""
    from ragtune.finetune.probe import probe_memorisation

    gen, info = _generator(workspace, adapter, max_tokens)
    path = data or Path(str(info.dataset.get("path", "")))
    if not path.is_file():
        raise InputError(str(path), "training file not found: pass --data")
    r = probe_memorisation(gen, adapter, path, min_overlap_tokens=min_overlap_tokens, limit=limit)
    if as_json:
        print_json(r)
        return
    pii = r["personal_data"]
    console.print(f"{r['memorised']} of {r['examples']} training prompts ({r['memorised_share']:.0%}) "
                  f"reproduced verbatim; mean overlap {r['mean_overlap_tokens']} tokens "
                  f"({r['mean_overlap_share']:.0%} of the answer)\nrule: {r['rule']}", highlight=False)
    console.print(f"personal data in {pii['generations_with_personal_data']} generations "
                  f"{pii['kinds'] or ''} ({pii['found_in_training_data']} also in the training data)",
                  highlight=False)
    table = Table("line", "overlap", "generated (longest verbatim run)")
    for w in r["worst"]:
        table.add_row(str(w["line"]), f"{w['overlap_tokens']}/{w['answer_tokens']}", w["overlap_text"][:120])
    console.print(table)


# ================================================================ adapters


def _freshness(ws: Any, infos: list[Any]) -> dict[str, Any]:
    from ragtune.finetune.freshness import adapter_freshness

    return {i.name: adapter_freshness(i, ws.store) for i in infos}


@adapters_app.command("list")
def adapters_list(workspace: WorkspaceOpt = None, as_json: JsonOpt = False) -> None:
    """Finished adapters with base model, data, metrics, age, and whether they are stale.

    STALE names the documents the adapter was trained on that have changed or been deleted
    since (from its lineage); '-' means the data had no document lineage.
    """
    from ragtune.finetune.adapters import AdapterRegistry

    ws = open_workspace(workspace)
    infos = AdapterRegistry(ws.root / "adapters").list()
    fresh = _freshness(ws, infos)
    if as_json:
        print_json([i.to_dict() | {"freshness": fresh[i.name].to_dict()} for i in infos])
        return
    table = Table("name", "base", "data", "val loss", "steps", "age", "stale")
    for i in infos:
        d, m, f = i.dataset, i.metrics, fresh[i.name]
        data = f"{Path(str(d.get('path', '?'))).name} ({d.get('examples', '?')} ex)"
        val = "-" if m.get("val_loss") is None else f"{m['val_loss']:.4f}"
        stale = ("[red]STALE[/] " + escape(f.summary())) if f.stale else (
            "fresh" if f.tracked else "-")
        table.add_row(i.name, Path(i.base_model).name or i.base_model, data, val,
                      str(m.get("steps")), _age(i.created_at), stale)
    console.print(table)


@adapters_app.command("show")
def adapters_show(name: Annotated[str, typer.Argument()], workspace: WorkspaceOpt = None) -> None:
    """Everything recorded about an adapter (its run.json), plus its freshness now."""
    from ragtune.finetune.adapters import AdapterRegistry

    ws = open_workspace(workspace)
    info = AdapterRegistry(ws.root / "adapters").get(name)
    run = json.loads((info.path / "run.json").read_text(encoding="utf-8"))
    print_json(run | {"path": str(info.path), "freshness": _freshness(ws, [info])[name].to_dict()})


@adapters_app.command("rm")
def adapters_rm(name: Annotated[str, typer.Argument()], workspace: WorkspaceOpt = None) -> None:
    """Delete an adapter folder."""
    _registry(workspace).remove(name)
    console.print(f"removed adapter {name}")


@adapters_app.command("merge")
def adapters_merge(name: Annotated[str, typer.Argument()],
                   out: Annotated[Path, typer.Argument(help="Empty or new folder.")],
                   workspace: WorkspaceOpt = None) -> None:
    """Merge the adapter into its base model: a standalone Hugging Face model folder."""
    path = _registry(workspace).merge(name, out)
    console.print(f"merged {name} into {path}", highlight=False)


def _serve_hints(info: Any, fmt: str, path: Path) -> list[str]:
    """Commands that serve an exported adapter (printed after ``adapters export``)."""
    run = json.loads((info.path / "run.json").read_text(encoding="utf-8"))
    hf_base = run.get("base_model_path") or info.base_model
    if fmt == "merged":
        return [f"vllm serve {path}"]
    if fmt == "peft":
        rank = int((run.get("config") or {}).get("rank", 8))
        return [f"vllm serve {hf_base} --enable-lora --lora-modules {info.name}={path}"
                + (f" --max-lora-rank {rank}" if rank > 16 else ""),
                ("then in ragtune.toml: [generation] backend = \"http\", base_url = "
                 f"\"http://HOST:8000/v1\", model = \"{hf_base}\""),
                f"and ask with it: ragtune ask QUESTION --mode finetuned --adapter {info.name}"]
    from ragtune.generate.models import PACKAGED_ALIASES, packaged_model_path

    base = info.base_model
    if base.strip().lower() in PACKAGED_ALIASES:
        base = str(packaged_model_path())
    elif not base.endswith(".gguf"):
        base = "BASE.gguf"  # trained on an HF folder: use a GGUF conversion of that model
    return [f"llama-server -m {base} --lora {path}",
            f'python -c "from llama_cpp import Llama; Llama(model_path=\'{base}\', lora_path=\'{path}\')"']


@adapters_app.command("export")
def adapters_export(
    name: Annotated[str, typer.Argument()],
    out: Annotated[Path | None, typer.Argument(help="Folder (peft, merged); .gguf file or folder (gguf, default <adapter>/adapter.gguf).")] = None,
    out_opt: Annotated[Path | None, typer.Option("--out", "-o", help="Same as OUT.")] = None,
    fmt: Annotated[str, typer.Option("--format", help="peft, merged or gguf.")] = "peft",
    dtype: Annotated[str, typer.Option(help="gguf tensor type: f32 (exact) or f16 (half the size).")] = "f32",
    workspace: WorkspaceOpt = None,
) -> None:
    """Export an adapter: PEFT folder, merged model, or GGUF LoRA for llama.cpp."""
    if out is not None and out_opt is not None and out != out_opt:
        raise InputError("--out", f"given twice ({out} and {out_opt})")
    out = out or out_opt
    registry = _registry(workspace)
    if fmt == "gguf":
        path = registry.export_gguf(name, out, dtype=dtype)
    elif fmt in {"peft", "merged"}:
        if out is None:
            raise InputError("OUT", f"exporting as {fmt} needs an output folder")
        path = registry.export(name, out, fmt)
    else:
        raise InputError("--format", f"must be peft, merged or gguf, got {fmt!r}")
    console.print(f"exported {name} ({fmt}) to {path}", highlight=False)
    console.print("serve it with:", highlight=False)
    for line in _serve_hints(registry.get(name), fmt, path):
        console.print(f"  {line}", highlight=False, soft_wrap=True)

