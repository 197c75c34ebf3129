"""Where a training run executes: the CPU, or one CUDA device per process, and its rank.

Everything in training that differs between a laptop and a GPU box is decided here once:
the device and dtype the base model loads with, the QLoRA requirements, peak GPU memory,
and, under ``torchrun`` / ``accelerate launch`` (``RANK`` / ``WORLD_SIZE`` / ``LOCAL_RANK``
set), which process writes files and how the others wait for it.

>>> p = Placement(device="cpu", index=0, rank=0, world_size=1)
>>> p.is_main, p.distributed, p.dtype_name(qlora=False)
(True, False, 'float32')

On CUDA the base loads in bf16 (fp16 on GPUs without bf16) on the process's own device
(``LOCAL_RANK``); the LoRA weights stay fp32 (PEFT's default) and the Trainer runs under
autocast. On a CPU everything is fp32.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from ragtune.errors import ConfigError, MissingDependency

T = TypeVar("T")


def _env_int(name: str, default: int) -> int:
    try:
        return int(os.environ.get(name, default))
    except ValueError:
        raise ConfigError(f"environment variable {name} must be an integer, "
                          f"got {os.environ.get(name)!r}") from None


@dataclass(frozen=True)
class Placement:
    """This process's device (``cuda`` / ``cpu``), CUDA index, rank and number of processes."""

    device: str
    index: int
    rank: int
    world_size: int

    @property
    def is_main(self) -> bool:
        """The one process that writes the adapter folder and ``run.json``."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def cuda(self) -> bool:
        return self.device == "cuda"

    def torch_dtype(self) -> Any:
        import torch

        if not self.cuda:
            return torch.float32
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16

    def dtype_name(self, *, qlora: bool) -> str:
        """What run.json records as ``dtype``."""
        name = str(self.torch_dtype()).removeprefix("torch.")
        return f"nf4 base (bitsandbytes 4-bit), {name} compute" if qlora else name

    def load_kwargs(self, *, qlora: bool) -> dict[str, Any]:
        """Keyword arguments for ``AutoModelForCausalLM.from_pretrained``."""
        kwargs: dict[str, Any] = {"dtype": self.torch_dtype()}
        if self.cuda:
            kwargs["device_map"] = {"": self.index}  # the whole model on this process's GPU
        if qlora:
            from transformers import BitsAndBytesConfig

            kwargs["quantization_config"] = BitsAndBytesConfig(
                load_in_4bit=True, bnb_4bit_quant_type="nf4",
                bnb_4bit_compute_dtype=self.torch_dtype())
        return kwargs

    def device_name(self) -> str:
        """``cpu`` or the GPU's name (``NVIDIA H200``)."""
        if not self.cuda:
            return "cpu"
        import torch

        return str(torch.cuda.get_device_name(self.index))

    # ------------------------------------------------------------ memory
    def reset_peak_memory(self) -> None:
        if self.cuda:
            import torch

            torch.cuda.reset_peak_memory_stats(self.index)

    def peak_memory_mb(self) -> float | None:
        """Peak memory PyTorch allocated on this process's GPU since the last reset (None on CPU)."""
        if not self.cuda:
            return None
        import torch

        return round(torch.cuda.max_memory_allocated(self.index) / 2**20, 1)

    # ------------------------------------------------------------ several processes
    def init_process_group(self) -> None:
        """Join the process group of a multi-process launch (no-op for one process).

        Uses accelerate's shared state, the same one the Trainer uses, so the group is
        created once with the backend it would pick (NCCL on CUDA, gloo on CPU).
        """
        if self.distributed:
            from accelerate import PartialState

            PartialState(cpu=not self.cuda)

    def main_first(self, on_main: Callable[[], T], on_others: Callable[[], T]) -> T:
        """Run ``on_main`` on rank 0; the other ranks run ``on_others`` once it succeeded.

        An error on rank 0 (an adapter that already exists, say) is raised on every rank
        with its message instead of leaving them waiting.
        """
        if not self.distributed:
            return on_main()
        import torch.distributed as dist

        self.init_process_group()
        outcome: list[Any] = [None]
        value: Any = None
        if self.is_main:
            try:
                value = on_main()
            except Exception as e:  # any failure: the other ranks must not wait forever
                outcome = [(type(e).__name__, str(e))]
                dist.broadcast_object_list(outcome, src=0)
                raise
        dist.broadcast_object_list(outcome, src=0)
        if outcome[0] is not None:
            name, message = outcome[0]
            raise ConfigError(f"rank 0 failed ({name}): {message}")
        return value if self.is_main else on_others()

    def wait_for_everyone(self) -> None:
        if self.distributed:
            import torch.distributed as dist

            dist.barrier()

    def sum_over_ranks(self, value: int) -> int:
        """``value`` summed over all processes (itself for one process)."""
        if not self.distributed:
            return value
        import torch
        import torch.distributed as dist

        t = torch.tensor([value], dtype=torch.int64,
                         device=f"cuda:{self.index}" if self.cuda else "cpu")
        dist.all_reduce(t)
        return int(t.item())


def detect() -> Placement:
    """This process's placement from CUDA availability and the launcher's environment.

    >>> import os
    >>> os.environ.get("WORLD_SIZE") is None or detect().world_size >= 1
    True
    """
    import torch

    world = _env_int("WORLD_SIZE", 1)
    rank = _env_int("RANK", 0)
    local = _env_int("LOCAL_RANK", 0)
    if world < 1 or not 0 <= rank < world:
        raise ConfigError(f"RANK={rank} and WORLD_SIZE={world} do not describe a process of a launch")
    if torch.cuda.is_available():
        if local >= torch.cuda.device_count():
            raise ConfigError(f"LOCAL_RANK={local} but only {torch.cuda.device_count()} CUDA "
                              "devices are visible to this process")
        return Placement(device="cuda", index=local, rank=rank, world_size=world)
    return Placement(device="cpu", index=0, rank=rank, world_size=world)


def avoid_cudnn_attention() -> None:
    """Keep PyTorch's scaled-dot-product attention off the cuDNN backend, process-wide.

    torch 2.1x puts cuDNN attention first on Hopper/Blackwell, and cuDNN builds an
    execution plan for every new tensor shape (hundreds of ms each, forward and backward).
    Training sees a new shape with every example length (packed attention runs per
    example) and generation one with every decoded token. Measured on an H200 (torch 2.11,
    cuDNN on): a 2-layer test model trained at 734 tokens/s, a 494M Qwen2 LoRA ran at
    0.21x the plain Trainer's tokens/s, and a second run over the same example lengths
    (plans cached) at 0.78x. Flash and memory-efficient attention need no plan.
    """
    import torch

    torch.backends.cuda.enable_cudnn_sdp(False)


def check_qlora(placement: Placement) -> None:
    """QLoRA needs CUDA and bitsandbytes; say so before anything loads."""
    if not placement.cuda:
        raise ConfigError("--qlora needs a CUDA GPU (bitsandbytes 4-bit); none found")
    try:
        import bitsandbytes  # noqa: F401
    except ImportError:
        raise MissingDependency("bitsandbytes", "gpu") from None
