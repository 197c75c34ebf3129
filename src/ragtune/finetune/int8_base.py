"""An int8 forward for the frozen base model's linear layers during LoRA training on a CPU.

LoRA trains a few million parameters; the time goes into the frozen base's matrix
products. On a CPU with AVX-512 VNNI, ``torch._int_mm`` runs 2.9x the fp32 GEMM (518 vs
180 GOPS measured on 2 cores, 840x896x4864), so the forward pass of every frozen
``nn.Linear`` in the decoder layers runs in int8: weights per output channel, activations
per token (each token's own scale, so packed examples still cannot affect each other).
Without VNNI (an AVX2-only CPU, as some AMD EPYC hosts) ``torch._int_mm`` falls back to a
slow kernel: 30x *slower* than the fp32 GEMM on such a host (1.2 s vs 0.04 s for
400x896x4864), which made CPU training ~20x slower there; :func:`int8_matmul_faster`
measures both once per process and training uses int8 only where it wins.
The backward pass (the gradient flowing to the LoRA weights below) uses the exact fp32
weights. Like QLoRA's 4-bit base, the adapter learns on a slightly perturbed base, so the
int8 forward is used only while a module is in training mode: evaluation (validation loss,
generation) always runs the exact fp32 product, and the trainer switches it off for good
(:func:`restore`) for the last steps of a run so the adapter finishes on the base it is
served with (``TrainConfig.int8_share``).

>>> import torch
>>> lin = torch.nn.Linear(64, 32).requires_grad_(False)
>>> x = torch.randn(40, 64)
>>> want = lin(x)
>>> quantize_frozen_linears(torch.nn.ModuleDict({"layers": torch.nn.ModuleList([lin])}))
1
>>> bool(torch.nn.functional.cosine_similarity(lin(x), want).min() > 0.999)
True
"""

from __future__ import annotations

import functools
import types
from typing import Any

_MIN_ROWS = 17  # _int_mm needs more than 16 rows; a shorter input runs fp32


def int8_matmul_available() -> bool:
    """True when ``torch._int_mm`` works here (CPU int8 GEMM)."""
    import torch

    try:
        a = torch.ones(_MIN_ROWS, 8, dtype=torch.int8)
        return bool(torch._int_mm(a, torch.ones(8, 8, dtype=torch.int8))[0, 0] == 8)
    except (RuntimeError, AttributeError):
        return False


@functools.cache
def int8_matmul_faster() -> bool:
    """True when ``torch._int_mm`` works here and beats the fp32 product on a decoder-sized
    GEMM (best of 3 each; measured once per process, ~0.1 s on a host without VNNI).

    The two kernels differ by 2-3x one way (VNNI) or ~30x the other (AVX2 only), so the
    answer does not flip with the noise of a shared machine."""
    import time

    import torch

    if not int8_matmul_available():
        return False
    rows, inner, out = 64, 896, 896
    x, w = torch.randn(rows, inner), torch.randn(out, inner)
    xq = torch.randint(-127, 127, (rows, inner), dtype=torch.int8)
    wq = torch.randint(-127, 127, (inner, out), dtype=torch.int8)

    def best(f: Any) -> float:
        f()  # warm up (first-call allocation)
        times = []
        for _ in range(3):
            t = time.perf_counter()
            f()
            times.append(time.perf_counter() - t)
        return min(times)

    return best(lambda: torch._int_mm(xq, wq)) < best(lambda: x @ w.T)


def _function() -> Any:
    import torch

    class Int8Linear(torch.autograd.Function):
        """y = x W^T + b with an int8 product; dy/dx with the fp32 weight."""

        @staticmethod
        def forward(ctx: Any, x: Any, wq_t: Any, w_scale: Any, weight: Any, bias: Any) -> Any:
            rows = x.reshape(-1, x.shape[-1])
            scale = rows.abs().amax(dim=1, keepdim=True).clamp_min(1e-8) / 127.0
            xq = torch.round(rows / scale).to(torch.int8)
            y = torch._int_mm(xq, wq_t).to(rows.dtype).mul_(scale * w_scale)
            if bias is not None:
                y.add_(bias)
            ctx.save_for_backward(weight)
            return y.reshape(*x.shape[:-1], y.shape[-1])

        @staticmethod
        def backward(ctx: Any, grad: Any) -> Any:
            (weight,) = ctx.saved_tensors
            return grad @ weight, None, None, None, None

    return Int8Linear


def _int8_forward(self: Any, x: Any) -> Any:
    import torch.nn.functional as F

    # eval mode (validation, generation) is always the exact fp32 product
    if not self.training or x.numel() // x.shape[-1] < _MIN_ROWS or x.dtype != self.weight.dtype:
        return F.linear(x, self.weight, self.bias)
    return self._ragtune_int8_fn.apply(x, self._ragtune_wq_t, self._ragtune_w_scale,
                                       self.weight, self.bias)


def quantize_frozen_linears(model: Any) -> int:
    """Give every frozen fp32 ``nn.Linear`` under a ``layers`` module an int8 forward.

    Trainable layers (LoRA A/B), the embeddings and the output head are left alone; shapes
    that are not multiples of 8 stay fp32. Returns how many layers were switched.
    """
    import torch

    fn = _function()
    count = 0
    for name, module in model.named_modules():
        if (type(module) is not torch.nn.Linear or module.weight.requires_grad
                or module.weight.dtype != torch.float32 or ".layers." not in f".{name}."
                or module.in_features % 8 or module.out_features % 8):
            continue
        w = module.weight.detach()
        scale = w.abs().amax(dim=1).clamp_min(1e-8) / 127.0
        module._ragtune_wq_t = torch.round(w / scale[:, None]).to(torch.int8).t().contiguous()
        module._ragtune_w_scale = scale
        module._ragtune_int8_fn = fn
        module.forward = types.MethodType(_int8_forward, module)
        count += 1
    return count


def restore(model: Any) -> int:
    """Undo :func:`quantize_frozen_linears` (fp32 forward again); returns layers restored."""
    count = 0
    for module in model.modules():
        if hasattr(module, "_ragtune_wq_t"):
            del module.forward, module._ragtune_wq_t, module._ragtune_w_scale, module._ragtune_int8_fn
            count += 1
    return count
