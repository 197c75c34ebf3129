"""The int8 forward for frozen base layers: close to fp32, exact fp32 gradients path, undoable."""

from __future__ import annotations

from pathlib import Path

import pytest

from ragtune.finetune.int8_base import int8_matmul_available, quantize_frozen_linears, restore

pytestmark = pytest.mark.skipif(not int8_matmul_available(), reason="no torch._int_mm here")


def _lora_model(folder: Path):  # type: ignore[no-untyped-def]
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(folder)
    model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0,
                                             target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM"))
    for name, p in model.named_parameters():  # non-zero B, so LoRA A gets a gradient
        if "lora_B" in name:
            torch.nn.init.normal_(p, std=0.02)
    return model.train()  # the int8 forward is for training steps only (dropout is 0 here)


def _run(model, ids):  # type: ignore[no-untyped-def]
    model.zero_grad()
    logits = model(input_ids=ids, use_cache=False).logits
    logits.float().logsumexp(-1).sum().backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    return logits.detach(), grads


def test_int8_forward_is_close_and_restore_is_exact(tiny_model_dir: Path) -> None:
    import torch
    import torch.nn.functional as F

    model = _lora_model(tiny_model_dir)
    ids = torch.arange(5, 45)[None]
    want, want_grads = _run(model, ids)
    assert quantize_frozen_linears(model) == 2 * 7  # 2 layers x q k v o gate up down
    got, got_grads = _run(model, ids)
    assert not torch.equal(got, want)  # the int8 path really ran
    assert F.cosine_similarity(got[0], want[0]).min() > 0.99
    assert set(got_grads) == set(want_grads) and all("lora_" in n for n in got_grads)
    for name, g in got_grads.items():
        assert F.cosine_similarity(g.flatten(), want_grads[name].flatten(), dim=0) > 0.95, name
    with torch.no_grad():  # eval mode (validation loss, generation) is the exact fp32 product
        torch.testing.assert_close(model.eval()(input_ids=ids, use_cache=False).logits, want)
    model.train()
    assert restore(model) == 14
    again, _ = _run(model, ids)
    torch.testing.assert_close(again, want)


def test_short_inputs_and_trainable_layers_stay_fp32(tiny_model_dir: Path) -> None:
    import torch

    model = _lora_model(tiny_model_dir)
    ids = torch.arange(5, 15)[None]  # 10 rows: below _int_mm's minimum
    with torch.no_grad():
        want = model(input_ids=ids, use_cache=False).logits
        quantize_frozen_linears(model)
        got = model(input_ids=ids, use_cache=False).logits
    torch.testing.assert_close(got, want)
    assert not any(hasattr(m, "_ragtune_wq_t") for n, m in model.named_modules() if "lora_" in n)
    assert not hasattr(model.get_output_embeddings(), "_ragtune_wq_t")
