"""The data / finetune / adapters sub-apps end to end on the tiny model (CliRunner)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from ragtune.cli.finetune import adapters_app, data_app, finetune_app
from ragtune.errors import InputError, NotFound

from ..conftest import EXAMPLES, FAKE
from .conftest import style_examples, write_jsonl

app = typer.Typer()
app.add_typer(data_app, name="data")
app.add_typer(finetune_app, name="finetune")
app.add_typer(adapters_app, name="adapters")
runner = CliRunner()


def cli(*args: str):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture()
def ws(tmp_path: Path):
    from ragtune.workspace import Workspace

    ws = Workspace.init(tmp_path / "ws", overrides=FAKE)
    ws.ingest([EXAMPLES / "kb" / "policies" / p for p in
               ("returns-policy.md", "warranty-policy.md", "price-match.html", "repair-services.md")])
    return ws


def test_data_validate_and_convert(tmp_path: Path, tiny_model_dir: Path) -> None:
    good = write_jsonl(tmp_path / "good.jsonl", style_examples(12))
    r = cli("data", "validate", good)
    assert r.exit_code == 0, r.output
    assert "12 examples" in r.output and "one epoch" in r.output and "OK" in r.output
    bad = tmp_path / "bad.jsonl"
    bad.write_text(good.read_text() + '{"messages": [{"role": "user", "content": "hi"}]}\n')
    r = cli("data", "validate", bad)
    assert r.exit_code == 2 and "line 13: no assistant message" in r.output
    r = cli("data", "validate", good, "--base", tiny_model_dir, "--max-tokens", 20, "--json")
    report = json.loads(r.stdout)
    assert r.exit_code == 2 and report["token_counter"].endswith("chat template")
    assert {e["code"] for e in report["errors"]} == {"too_long"}
    alpaca = tmp_path / "a.json"
    alpaca.write_text(json.dumps([{"instruction": "Say hi", "input": "", "output": "Hi."}]))
    r = cli("data", "convert", alpaca, tmp_path / "chat.jsonl")
    assert r.exit_code == 0 and "1 alpaca records" in r.output
    assert json.loads((tmp_path / "chat.jsonl").read_text())["messages"][1]["content"] == "Hi."
    r = cli("data", "convert", alpaca, tmp_path / "x.jsonl", "--format", "sharegpt")
    assert isinstance(r.exception, InputError)


def test_synth_train_eval_probe_and_manage(ws, tiny_model_dir: Path, tmp_path: Path) -> None:
    r = cli("data", "synth", "-w", ws.root, "--per-chunk", "2", "--eval-fraction", "0.25", "--json")
    assert r.exit_code == 0, r.output
    synth = json.loads(r.stdout)
    train_file = Path(synth["train"]["path"])
    assert train_file.parent == ws.root / "data" and synth["train"]["examples"] >= 10

    r = cli("finetune", "train", train_file, "--adapter", "kb", "-w", ws.root, "--base", tiny_model_dir,
            "--max-steps", 4, "--batch-size", 4, "--max-length", 512, "--lr", "1e-2", "--rank", 4,
            "--target-modules", "q_proj,v_proj")
    assert r.exit_code == 0, r.output
    assert "adapter kb" in r.output and "4 steps" in r.output and "lineage: 3 documents" in r.output
    run = json.loads((ws.root / "adapters" / "kb" / "run.json").read_text())
    assert run["config"]["rank"] == 4 and run["config"]["target_modules"] == ["q_proj", "v_proj"]
    assert {d["version"] for d in run["lineage"]["documents"]} == {1}
    assert run["base_model"] == str(tiny_model_dir.resolve())

    r = cli("adapters", "list", "-w", ws.root, "--json")
    (listed,) = json.loads(r.stdout)
    assert listed["name"] == "kb" and listed["metrics"]["steps"] == 4
    r = cli("adapters", "list", "-w", ws.root)
    assert "kb" in r.output and "synth_train.jsonl" in r.output
    assert json.loads(cli("adapters", "show", "kb", "-w", ws.root).stdout)["steps"] == 4

    r = cli("finetune", "eval", "--adapter", "kb", "--data", synth["eval"]["path"], "-w", ws.root,
            "--limit", 2, "--max-tokens", 12, "--json")
    assert r.exit_code == 0, r.output
    ev = json.loads(r.stdout)
    assert ev["examples"] == 2 and set(ev["metrics"]) == {"base", "adapter", "delta"}
    r = cli("finetune", "eval", "--adapter", "kb", "--data", synth["eval"]["path"], "-w", ws.root,
            "--limit", 1, "--max-tokens", 8)
    assert "format_compliance" in r.output and "perplexity" in r.output
    schema = tmp_path / "s.json"
    schema.write_text("{not json")
    r = cli("finetune", "eval", "--adapter", "kb", "--data", synth["eval"]["path"], "-w", ws.root,
            "--json-schema", schema)
    assert isinstance(r.exception, InputError) and "not valid JSON" in str(r.exception)

    r = cli("finetune", "probe", "--adapter", "kb", "-w", ws.root, "--limit", 2, "--max-tokens", 12,
            "--json")
    assert r.exit_code == 0, r.output
    probe = json.loads(r.stdout)
    assert probe["data"] == str(train_file.resolve()) and probe["examples"] == 2

    r = cli("adapters", "export", "kb", tmp_path / "peft", "-w", ws.root)
    assert r.exit_code == 0 and (tmp_path / "peft" / "adapter_config.json").is_file()
    assert f"vllm serve {run['base_model_path']} --enable-lora --lora-modules kb={tmp_path / 'peft'}" in r.output
    assert "backend = \"http\"" in r.output and "--mode finetuned --adapter kb" in r.output
    assert not (tmp_path / "peft" / "adapter.gguf").exists()  # a plain PEFT folder
    # GGUF LoRA for llama.cpp, written by ragtune itself (tensor details: test_gguf_export.py).
    r = cli("adapters", "export", "kb", "--format", "gguf", "--out", tmp_path / "out", "-w", ws.root)
    assert r.exit_code == 0, r.output
    assert f"--lora {tmp_path / 'out' / 'kb.gguf'}" in r.output and "lora_path=" in r.output
    from ragtune.finetune.gguf_export import read_gguf_lora

    lora = read_gguf_lora(tmp_path / "out" / "kb.gguf")
    assert (lora["architecture"], lora["type"], lora["adapter_type"]) == ("llama", "adapter", "lora")
    assert lora["metadata"]["base_model_hash"] == run["base_model_hash"]
    assert sorted(lora["tensors"]) == sorted(f"blk.{i}.attn_{m}.weight.lora_{ab}" for i in range(2)
                                             for m in "qv" for ab in "ab")
    r = cli("adapters", "export", "kb", "--format", "gguf", "-w", ws.root)  # default: inside the adapter
    assert r.exit_code == 0 and (ws.root / "adapters" / "kb" / "adapter.gguf").is_file()
    r = cli("adapters", "export", "kb", "--format", "gguf", "--dtype", "q4", "-w", ws.root)
    assert isinstance(r.exception, InputError) and "f32, f16" in str(r.exception)
    r = cli("adapters", "export", "kb", "--format", "merged", "-w", ws.root)
    assert isinstance(r.exception, InputError) and "needs an output folder" in str(r.exception)
    r = cli("adapters", "rm", "kb", "-w", ws.root)
    assert r.exit_code == 0 and not (ws.root / "adapters" / "kb").exists()
    assert isinstance(cli("adapters", "show", "kb", "-w", ws.root).exception, NotFound)


def test_train_errors_surface_as_ragtune_errors(ws, tiny_model_dir: Path, tmp_path: Path) -> None:
    few = write_jsonl(tmp_path / "few.jsonl", style_examples(3))
    r = cli("finetune", "train", few, "--adapter", "x", "-w", ws.root, "--base", tiny_model_dir)
    assert isinstance(r.exception, InputError) and "at least 10" in str(r.exception)
    r = cli("finetune", "train", few, "--adapter", "Bad Name", "-w", ws.root)
    assert isinstance(r.exception, InputError)
    shutil.rmtree(ws.root / "adapters", ignore_errors=True)
