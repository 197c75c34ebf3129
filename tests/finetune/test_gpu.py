"""Fine-tuning on CUDA: LoRA in bf16, QLoRA on a 4-bit base, resume, serving, GGUF export.

Marked ``gpu``: skipped with a reason where torch sees no CUDA GPU. On a GPU machine the
shared ``trained_adapter`` fixture itself trains on the GPU, so these tests check that run.
Rerun them with the command in docs/finetuning.md ("Tests on a GPU").
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import numpy as np
import pytest

from ragtune.finetune.train import TrainConfig, TrainingInterrupted, train_adapter

from .conftest import ALL_LINEAR, MARKER, STYLE_STEPS, style_examples
from .test_gguf_export import GGUF_NAMES

pytestmark = pytest.mark.gpu

HELD_OUT = [r["messages"][0]["content"] for r in style_examples(6, seed=2024)]


def _style(base: Path, **kw: object) -> TrainConfig:
    """The shared fixture's recipe (all linear layers, rank 16) with changes."""
    opts = {"base_model": str(base), "target_modules": ALL_LINEAR, "rank": 16, "alpha": 32,
            "max_steps": STYLE_STEPS, "learning_rate": 2e-2, "batch_size": 8, "max_length": 128,
            "eval_steps": 40, "save_steps": 40, "early_stopping_patience": 0}
    return TrainConfig(**(opts | kw))  # type: ignore[arg-type]


def test_lora_trains_in_bf16_on_the_gpu_with_packing(trained_adapter) -> None:
    result, steps = trained_adapter
    run = result.run
    assert run["device"] == "cuda" and run["dtype"] == "bfloat16", run
    assert run["device_name"] != "cpu" and run["peak_gpu_mb"] > 0
    assert run["train_tokens_per_s"] > 0 and steps[-1][0] == run["steps"]
    # padding-free packing survives the move to CUDA (the bf16 exactness check passed)
    assert run["batching"].startswith("packed") and "causal attention per example" in run["batching"]
    # the CPU-only int8 base is not used on CUDA, and run.json says so
    assert run["int8_base_layers"] == 0 and any("CPU-only" in n for n in run["notes"])
    assert run["loss_curve"][-1][1] < run["loss_curve"][0][1] / 2


def test_qlora_trains_on_a_4bit_base(tiny_model_dir: Path, style_data: Path, tmp_path: Path) -> None:
    import bitsandbytes as bnb

    from ragtune.finetune.train import load_base_model

    base = load_base_model(str(tiny_model_dir), qlora=True)
    four_bit = [n for n, m in base.model.named_modules() if isinstance(m, bnb.nn.Linear4bit)]
    assert len(four_bit) == 2 * 7 and all(".layers." in n for n in four_bit)  # lm_head stays bf16
    assert base.model.device.type == "cuda"
    del base

    run = train_adapter(_style(tiny_model_dir, qlora=True), style_data, tmp_path / "q").run
    assert run["dtype"] == "nf4 base (bitsandbytes 4-bit), bfloat16 compute"
    assert run["device"] == "cuda" and run["peak_gpu_mb"] > 0 and run["steps"] == STYLE_STEPS
    assert run["batching"].startswith("packed")
    assert run["loss_curve"][-1][1] < 0.6 * run["loss_curve"][0][1] and run["val_loss"] is not None
    assert not run["gradient_checkpointing_active"]  # PEFT's k-bit preparation would switch it on


def test_interrupt_and_resume_on_the_gpu(tiny_model_dir: Path, style_data: Path, tmp_path: Path) -> None:
    cfg = _style(tiny_model_dir, max_steps=6, batch_size=4, eval_steps=3, save_steps=3)

    def ctrl_c_at_3(step, total, loss, tps, eta) -> None:
        if step == 3:
            os.kill(os.getpid(), signal.SIGINT)

    with pytest.raises(TrainingInterrupted, match="--resume"):
        train_adapter(cfg, style_data, tmp_path / "r", on_step=ctrl_c_at_3)
    assert (tmp_path / "r.partial" / "checkpoints" / "checkpoint-3").is_dir()
    resumed = train_adapter(cfg, style_data, tmp_path / "r", resume=True).run
    straight = train_adapter(cfg, style_data, tmp_path / "s").run
    assert resumed["device"] == "cuda" and resumed["steps"] == 6
    losses = dict(map(tuple, straight["loss_curve"]))
    for step, loss in resumed["loss_curve"]:
        assert loss == pytest.approx(losses[step], rel=2e-2)  # bf16 kernels: close, not bitwise
    assert resumed["train_tokens"] == straight["train_tokens"]


def test_gradient_checkpointing_on_the_gpu(tiny_model_dir: Path, style_data: Path, tmp_path: Path) -> None:
    run = train_adapter(_style(tiny_model_dir, max_steps=4, gradient_checkpointing=True, qlora=True),
                        style_data, tmp_path / "gc").run
    assert run["gradient_checkpointing_active"] and run["device"] == "cuda"
    assert all(np.isfinite(loss) for _, loss in run["loss_curve"])


def test_hf_generator_serves_the_gpu_adapter_on_cuda(tiny_model_dir: Path, adapters_root: Path) -> None:
    import torch

    from ragtune.finetune.hf_generator import HFGenerator

    gen = HFGenerator(str(tiny_model_dir), adapters_root=adapters_root, max_tokens=40)
    msgs = [[{"role": "user", "content": q}] for q in HELD_OUT]
    before = [gen.complete(m).text for m in msgs]
    gen.use_adapter("style")
    model = gen.base.model
    assert model.device.type == "cuda" and model.dtype == torch.bfloat16
    assert not torch.backends.cuda.cudnn_sdp_enabled()  # no cuDNN plan per decoded token
    styled = [gen.complete(m).text for m in msgs]
    assert not any(a.endswith(MARKER) for a in before)
    assert all(a.endswith(MARKER) for a in styled), styled
    streamed = "".join(gen.stream(msgs[0])).strip()
    assert streamed == styled[0]


def _unpermute_rows(weight: np.ndarray, n_head: int) -> np.ndarray:
    """Inverse of gguf_export.permute_rows (llama.cpp's rope row order back to HF's)."""
    rows = weight.shape[0]
    return (weight.reshape(n_head, rows // n_head // 2, 2, *weight.shape[1:])
            .swapaxes(1, 2).reshape(weight.shape))


def test_gguf_export_of_the_gpu_adapter_matches_peft(trained_adapter, tiny_model_dir: Path,
                                                     tmp_path: Path) -> None:
    """The exported GGUF, applied the way llama.cpp applies it, gives PEFT's logits.

    llama.cpp is not needed: the GGUF's pairs are read back with the ``gguf`` package and
    added to the base weights as ``alpha / rank * B @ A`` (rows back in HF order for q/k);
    that model's logits on the GPU must equal the PEFT model's with the trained adapter.
    """
    import torch
    from peft import PeftModel
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    from ragtune.finetune.gguf_export import export_gguf_lora, read_gguf_lora

    result, _ = trained_adapter
    lora = read_gguf_lora(export_gguf_lora(result.adapter_dir, tmp_path / "style.gguf"))
    assert (lora["architecture"], lora["alpha"]) == ("llama", 32.0)
    peft_weights = load_file(str(result.adapter_dir / "adapter_model.safetensors"))
    a_weights = {k: v for k, v in peft_weights.items() if ".lora_A." in k}
    assert len(lora["tensors"]) == 2 * len(a_weights) == 2 * 2 * 7
    hf_name = {v: k for k, v in GGUF_NAMES.items()}
    projections = {"q_proj": "self_attn", "k_proj": "self_attn", "v_proj": "self_attn",
                   "o_proj": "self_attn", "gate_proj": "mlp", "up_proj": "mlp", "down_proj": "mlp"}

    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32).cuda().eval()
    n_head = base.config.num_attention_heads
    ids = torch.tensor([[5, 17, 42, 99, 7, 120, 3, 64, 200, 11]], device="cuda")
    applied = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32).cuda().eval()
    with torch.no_grad():
        for name, a in lora["tensors"].items():
            if not name.endswith(".lora_a"):
                continue
            stem = name.removesuffix(".weight.lora_a")  # blk.0.attn_q
            layer, gname = int(stem.split(".")[1]), stem.split(".", 2)[2]
            proj = hf_name[gname]
            module = f"base_model.model.model.layers.{layer}.{projections[proj]}.{proj}"
            a_peft = peft_weights[f"{module}.lora_A.weight"].float().numpy()
            assert np.array_equal(a.astype(np.float32), a_peft), name  # lora_a is PEFT's A as is
            b = lora["tensors"][name.removesuffix("_a") + "_b"].astype(np.float32)
            if proj in ("q_proj", "k_proj"):
                b = _unpermute_rows(b, n_head)
            delta = lora["alpha"] / a.shape[0] * torch.from_numpy(b @ a.astype(np.float32))
            layer_module = getattr(applied.model.layers[layer], projections[proj])
            getattr(layer_module, proj).weight += delta.cuda()
        want = PeftModel.from_pretrained(base, str(result.adapter_dir)).eval()(input_ids=ids).logits
        got = applied(input_ids=ids).logits
        plain = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32).cuda()(
            input_ids=ids).logits
    assert (want - plain).abs().max() > 0.1  # the adapter does change the outputs
    torch.testing.assert_close(got, want, atol=2e-3, rtol=1e-3)
