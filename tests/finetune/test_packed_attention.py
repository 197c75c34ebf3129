"""Per-example causal attention for packed rows: same logits and gradients as one at a time."""

from __future__ import annotations

from pathlib import Path

import pytest

from ragtune.finetune.packed_attention import NAME, segments, use_packed_attention
from ragtune.finetune.train import packing_is_exact

LENGTHS = (6, 11, 4)


def _model(folder: Path, kv_heads: int | None = None):  # type: ignore[no-untyped-def]
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(folder)
    if kv_heads is not None:  # grouped-query attention, as in Qwen2.5 (14 heads, 2 kv heads)
        config.num_key_value_heads = kv_heads
        import torch

        torch.manual_seed(0)
        return AutoModelForCausalLM.from_config(config, attn_implementation="sdpa")
    return AutoModelForCausalLM.from_pretrained(folder, attn_implementation="sdpa")


def _rows() -> list[dict[str, list[int]]]:
    return [{"input_ids": list(range(5 + i, 5 + i + n)), "labels": list(range(5 + i, 5 + i + n))}
            for i, n in enumerate(LENGTHS)]


def test_segments_split_where_positions_restart() -> None:
    import torch

    assert segments(torch.tensor([[0, 1, 2, 0, 1, 0]])) == [(0, 3), (3, 5), (5, 6)]
    assert segments(torch.tensor([[0, 1, 2, 3]])) == [(0, 4)]
    assert segments(torch.tensor([[3, 4, 0, 1]])) == [(0, 2), (2, 4)]  # a cut-off first example


@pytest.mark.parametrize("kv_heads", [None, 2])
def test_packed_logits_and_gradients_match_one_example_at_a_time(
        tiny_model_dir: Path, kv_heads: int | None) -> None:
    import torch
    from transformers import DataCollatorWithFlattening

    model = _model(tiny_model_dir, kv_heads)
    assert use_packed_attention(model) and model.config._attn_implementation == NAME
    assert packing_is_exact(model)
    batch = DataCollatorWithFlattening()(_rows())
    packed = model(input_ids=batch["input_ids"], position_ids=batch["position_ids"],
                   use_cache=False).logits[0]
    packed.sum().backward()
    grads_packed = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad()
    alone = torch.cat([model(input_ids=torch.tensor([r["input_ids"]]), use_cache=False).logits[0]
                       for r in _rows()])
    alone.sum().backward()
    torch.testing.assert_close(packed, alone, atol=1e-4, rtol=1e-4)
    assert grads_packed
    for name, p in model.named_parameters():
        if p.grad is not None:
            torch.testing.assert_close(grads_packed[name], p.grad, atol=1e-4, rtol=1e-3, msg=name)


def test_a_padding_mask_goes_to_stock_sdpa(tiny_model_dir: Path) -> None:
    """Padded batches (the non-packed path, evaluation) give what plain sdpa gives."""
    import torch

    ids = torch.tensor([[5, 6, 7, 8, 9], [5, 6, 7, 0, 0]])
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]])
    stock = _model(tiny_model_dir)
    ours = _model(tiny_model_dir)
    assert use_packed_attention(ours)
    with torch.no_grad():
        want = stock(input_ids=ids, attention_mask=mask, use_cache=False).logits
        got = ours(input_ids=ids, attention_mask=mask, use_cache=False).logits
    torch.testing.assert_close(got[0], want[0])
    torch.testing.assert_close(got[1, :3], want[1, :3])


def test_sliding_window_models_keep_their_attention(tiny_model_dir: Path) -> None:
    model = _model(tiny_model_dir)
    model.config.use_sliding_window = True
    assert not use_packed_attention(model)
    assert model.config._attn_implementation == "sdpa"
