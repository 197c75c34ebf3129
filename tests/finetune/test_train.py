"""Real LoRA training on a tiny random Llama: learning, artefacts, resume, interruption."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest

from ragtune.errors import ConfigError, InputError
from ragtune.finetune.int8_base import int8_matmul_faster
from ragtune.finetune.train import TrainConfig, TrainingInterrupted, train_adapter

from .conftest import ALL_LINEAR, MARKER, STYLE_STEPS, style_examples, write_jsonl


def _int8_here() -> bool:
    """The int8 frozen-base forward is used: CPU training where torch._int_mm beats fp32."""
    import torch

    return int8_matmul_faster() and not torch.cuda.is_available()


def _loss_rel() -> float:
    """Resumed vs straight losses: bit-for-bit on a CPU; bf16 kernels on CUDA are not."""
    import torch

    return 2e-2 if torch.cuda.is_available() else 1e-4


def _generate(model, tok, question: str) -> str:
    import torch

    enc = tok.apply_chat_template([{"role": "user", "content": question}], add_generation_prompt=True,
                                  return_tensors="pt", return_dict=True)
    with torch.no_grad():
        out = model.generate(**enc, max_new_tokens=40, do_sample=False, pad_token_id=tok.pad_token_id)
    return tok.decode(out[0, enc["input_ids"].shape[1]:], skip_special_tokens=True).strip()


def _small(base: Path, **kw) -> TrainConfig:
    opts = {"base_model": str(base), "max_steps": 6, "batch_size": 4, "max_length": 96,
            "eval_steps": 3, "save_steps": 3, "early_stopping_patience": 0, "learning_rate": 1e-2}
    return TrainConfig(**(opts | kw))


def test_training_teaches_the_answer_format(trained_adapter, tiny_model_dir: Path) -> None:
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    result, _ = trained_adapter
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    held_out = [r["messages"][0]["content"] for r in style_examples(12, seed=12345)]
    assert not any(_generate(base, tok, q).endswith(MARKER) for q in held_out[:3])
    model = PeftModel.from_pretrained(base, str(result.adapter_dir)).eval()
    answers = [_generate(model, tok, q) for q in held_out]
    assert all(a.endswith(MARKER) for a in answers), answers


def test_run_record_and_progress(trained_adapter, style_data: Path) -> None:
    result, steps = trained_adapter
    out = result.adapter_dir
    assert {"adapter_config.json", "adapter_model.safetensors", "run.json", "loss.png"} <= {
        p.name for p in out.iterdir()}
    assert not out.with_name(out.name + ".partial").exists() and not (out / "checkpoints").exists()
    run = json.loads((out / "run.json").read_text())
    assert run == json.loads(json.dumps(result.run))
    assert run["steps"] == STYLE_STEPS and len(run["loss_curve"]) == STYLE_STEPS
    assert run["loss_curve"][-1][1] < run["loss_curve"][0][1]
    assert run["val_loss"] is not None and [s for s, _ in run["val_curve"]][:3] == [40, 80, 120]
    assert run["dataset"]["examples"] == 120 and run["dataset"]["val_examples"] == 12
    assert run["base_model_hash"].startswith("folder:") and run["dataset"]["hash"]
    assert run["config"]["target_modules"] == list(ALL_LINEAR)
    assert run["batching"].startswith("packed") and run["train_tokens_per_s"] > 0
    assert "causal attention per example" in run["batching"]
    if _int8_here():  # CPU default: int8 base forward for the first 75% of steps
        assert run["int8_base_layers"] == 2 * 7 and run["int8_steps"] == round(STYLE_STEPS * 0.75)
        assert "int8 forward in 14 frozen base layers for 75% of the steps" in run["batching"]
    elif not __import__("torch").cuda.is_available():  # a CPU whose int8 product is slower
        assert run["int8_base_layers"] == 0 and run["int8_steps"] == 0
        assert any("not faster than fp32" in n for n in run["notes"]), run["notes"]
    assert run["lineage"] == {"documents": [{"source": "handbook.md", "version": 3}]}
    assert run["peak_rss_mb"] > 50
    assert run["processes"] == 1 and run["dtype"] in {"float32", "bfloat16", "float16"}
    assert (run["peak_gpu_mb"] is None) == (run["device"] == "cpu")
    assert (out / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # on_step(step, total, loss, tokens_per_s, eta_s) after every step
    assert [s[0] for s in steps] == list(range(1, STYLE_STEPS + 1))
    assert all(s[1] == STYLE_STEPS and s[3] > 0 and s[4] >= 0 for s in steps)
    assert steps[-1][4] == 0


def test_interrupt_leaves_no_finished_adapter_and_resume_matches(
        tiny_model_dir: Path, style_data: Path, tmp_path: Path) -> None:
    cfg = _small(tiny_model_dir)

    def ctrl_c_at_3(step, total, loss, tps, eta) -> None:
        if step == 3:
            os.kill(os.getpid(), signal.SIGINT)

    out = tmp_path / "ad"
    with pytest.raises(TrainingInterrupted, match="--resume") as err:
        train_adapter(cfg, style_data, out, on_step=ctrl_c_at_3)
    assert "step 3" in str(err.value)
    assert not out.exists()
    partial = tmp_path / "ad.partial"
    assert (partial / "checkpoints" / "checkpoint-3").is_dir() and not (partial / "run.json").exists()
    from ragtune.finetune.adapters import AdapterRegistry

    assert AdapterRegistry(tmp_path).list() == []

    with pytest.raises(ConfigError, match="unfinished run"):
        train_adapter(cfg, style_data, out)
    with pytest.raises(ConfigError, match="changed options: learning_rate"):
        train_adapter(_small(tiny_model_dir, learning_rate=1e-3), style_data, out, resume=True)

    resumed = train_adapter(cfg, style_data, out, resume=True)
    assert resumed.run["steps"] == 6 and not partial.exists()
    straight = train_adapter(cfg, style_data, tmp_path / "straight")
    losses = dict(map(tuple, straight.run["loss_curve"]))
    for step, loss in resumed.run["loss_curve"]:
        assert loss == pytest.approx(losses[step], rel=_loss_rel())
    assert resumed.run["val_loss"] == pytest.approx(straight.run["val_loss"], rel=_loss_rel())
    # the int8 -> fp32 switch (after 4 of 6 steps) happens at the same step when resumed
    assert resumed.run["int8_steps"] == straight.run["int8_steps"] == (4 if _int8_here() else 0)
    with pytest.raises(ConfigError, match="already exists"):
        train_adapter(cfg, style_data, out)


def test_early_stopping_on_validation_loss(tiny_model_dir: Path, style_data: Path, tmp_path: Path) -> None:
    # A huge learning rate makes validation loss worse after the first evaluation.
    cfg = _small(tiny_model_dir, max_steps=40, eval_steps=2, save_steps=2,
                 early_stopping_patience=2, learning_rate=3.0)
    run = train_adapter(cfg, style_data, tmp_path / "es").run
    assert run["stopped_early"] and run["steps"] < 40
    assert len(run["val_curve"]) >= 3


def test_fp32_base_option_turns_the_int8_forward_off(
        tiny_model_dir: Path, style_data: Path, tmp_path: Path) -> None:
    run = train_adapter(_small(tiny_model_dir, max_steps=3, int8_base=False), style_data,
                        tmp_path / "fp32").run
    assert run["int8_base_layers"] == 0 and run["int8_steps"] == 0
    assert "int8" not in run["batching"] and run["val_loss"] is not None


def test_gradient_checkpointing_gives_the_same_losses(
        tiny_model_dir: Path, style_data: Path, tmp_path: Path) -> None:
    plain = train_adapter(_small(tiny_model_dir, max_steps=3, int8_base=False), style_data,
                          tmp_path / "plain").run
    ckpt = train_adapter(_small(tiny_model_dir, max_steps=3, int8_base=False, gradient_checkpointing=True),
                         style_data, tmp_path / "ckpt").run
    assert ckpt["gradient_checkpointing_active"] and not plain["gradient_checkpointing_active"]
    for (s1, a), (s2, b) in zip(plain["loss_curve"], ckpt["loss_curve"], strict=True):
        assert s1 == s2 and a == pytest.approx(b, rel=_loss_rel())


def test_padded_path_still_trains(tiny_model_dir: Path, style_data: Path, tmp_path: Path) -> None:
    run = train_adapter(_small(tiny_model_dir, packing=False, max_steps=3), style_data, tmp_path / "p").run
    assert run["batching"].startswith("padded") and run["steps"] == 3


def test_qlora_without_cuda_is_a_config_error(tiny_model_dir: Path, style_data: Path, tmp_path: Path) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("CUDA present")
    with pytest.raises(ConfigError, match="--qlora needs a CUDA GPU"):
        train_adapter(_small(tiny_model_dir, qlora=True), style_data, tmp_path / "q")
    assert not (tmp_path / "q.partial").exists()


def test_bad_data_and_bad_options(tiny_model_dir: Path, tmp_path: Path) -> None:
    bad = write_jsonl(tmp_path / "bad.jsonl", style_examples(12))
    bad.write_text(bad.read_text() + "{oops\n")
    with pytest.raises(InputError) as err:
        train_adapter(_small(tiny_model_dir), bad, tmp_path / "x")
    assert err.value.line == 13 and not (tmp_path / "x.partial").exists()
    few = write_jsonl(tmp_path / "few.jsonl", style_examples(5))
    with pytest.raises(InputError, match="at least 10"):
        train_adapter(_small(tiny_model_dir), few, tmp_path / "x")
    with pytest.raises(ConfigError, match="val_fraction > 0"):
        TrainConfig(base_model="m", val_fraction=0.0)
    with pytest.raises(ConfigError, match="rank"):
        TrainConfig(base_model="m", rank=0)
    from ragtune.errors import ModelError
    from ragtune.finetune.train import load_base_model

    with pytest.raises(ModelError, match="no such model folder"):
        load_base_model(str(tmp_path / "nothing"))
    with pytest.raises(ModelError, match="never downloads"):
        load_base_model("nobody/no-such-model")
