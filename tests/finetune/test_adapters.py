"""The adapter registry: finished-only listing, names, reload, merge and export."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from ragtune.errors import InputError, NotFound
from ragtune.finetune.adapters import AdapterRegistry


@pytest.fixture()
def registry(trained_adapter, tmp_path: Path) -> AdapterRegistry:
    result, _ = trained_adapter
    shutil.copytree(result.adapter_dir, tmp_path / "style")
    (tmp_path / "half.partial" / "checkpoints").mkdir(parents=True)  # unfinished run
    (tmp_path / "no_run").mkdir()
    (tmp_path / "no_run" / "adapter_config.json").write_text("{}")  # PEFT files but no run.json
    return AdapterRegistry(tmp_path)


def _logits(model, tok):
    import torch

    enc = tok.apply_chat_template([{"role": "user", "content": "How do I book my desk?"}],
                                  add_generation_prompt=True, return_tensors="pt", return_dict=True)
    with torch.no_grad():
        return model(**enc).logits


def test_only_finished_adapters_are_listed(registry: AdapterRegistry) -> None:
    (info,) = registry.list()
    assert info.name == "style" and info.path == registry.root / "style"
    assert info.metrics["val_loss"] is not None and info.metrics["steps"] > 0
    assert info.dataset["examples"] == 120 and info.lineage["documents"][0]["version"] == 3
    assert registry.get("style") == info
    json.dumps(info.to_dict())
    with pytest.raises(NotFound, match="known: style"):
        registry.get("half")
    with pytest.raises(InputError, match="a-z, 0-9"):
        registry.get("../style")
    registry.remove("style")
    assert registry.list() == [] and not (registry.root / "style").exists()


def test_reload_reproduces_the_validation_loss(registry: AdapterRegistry, trained_adapter, style_data) -> None:
    from transformers import DataCollatorWithFlattening, TrainingArguments

    from ragtune.finetune.dataset import load_chat_jsonl, split_examples
    from ragtune.finetune.train import make_trainer_class, tokenize_example

    result, _ = trained_adapter
    model, tok = registry.load("style")
    cfg = result.run["config"]
    _, val = split_examples(load_chat_jsonl(style_data), cfg["val_fraction"], cfg["seed"])
    rows = [tokenize_example(tok, e, cfg["max_length"]) for e in val]
    rows = [{"input_ids": r["input_ids"], "labels": r["labels"]} for r in rows]
    args = TrainingArguments(output_dir=str(registry.root / "eval"), report_to="none", use_cpu=True,
                             per_device_eval_batch_size=cfg["batch_size"], prediction_loss_only=True,
                             remove_unused_columns=False)
    trainer = make_trainer_class()(model=model, args=args, eval_dataset=rows,
                                   data_collator=DataCollatorWithFlattening())
    assert trainer.evaluate()["eval_loss"] == pytest.approx(result.run["val_loss"], abs=1e-6)


def test_merge_matches_adapter_outputs(registry: AdapterRegistry, tiny_model_dir: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model, tok = registry.load("style")
    with_adapter = _logits(model, tok)
    base = _logits(AutoModelForCausalLM.from_pretrained(tiny_model_dir), tok)
    assert (with_adapter - base).abs().max() > 1e-2  # the adapter does change the model

    out = registry.export("style", registry.root / "merged", fmt="merged")
    merged = AutoModelForCausalLM.from_pretrained(out)
    assert not any("lora" in n for n, _ in merged.named_parameters())
    merged_logits = _logits(merged, AutoTokenizer.from_pretrained(out))
    assert torch.allclose(merged_logits, with_adapter, atol=1e-4)
    assert json.loads((out / "ragtune_merged.json").read_text())["adapter"] == "style"
    with pytest.raises(InputError, match="not empty"):
        registry.merge("style", out)


def test_export_peft_copy(registry: AdapterRegistry) -> None:
    out = registry.export("style", registry.root / "exported")
    assert {"adapter_config.json", "run.json", "loss.png"} <= {p.name for p in out.iterdir()}
    with pytest.raises(InputError, match="'peft', 'merged' or 'gguf'"):
        registry.export("style", registry.root / "x", fmt="onnx")
