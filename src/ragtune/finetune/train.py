"""LoRA / QLoRA training of a chat model on chat JSONL, with PEFT and ``transformers.Trainer``.

>>> cfg = TrainConfig(base_model="models/tiny", max_steps=30, eval_steps=10, save_steps=10)
>>> cfg.rank, cfg.packing
(8, True)
>>> TrainConfig(base_model="x", save_steps=15, eval_steps=10)
Traceback (most recent call last):
...
ragtune.errors.ConfigError: save_steps=15 must be a multiple of eval_steps=10 when early_stopping_patience > 0 (the best checkpoint must have been evaluated)

``train_adapter(cfg, "data.jsonl", Path("adapters/style"))`` trains into
``adapters/style.partial/`` (checkpoints under ``checkpoints/``) and renames it to
``adapters/style/`` only when training finished, so an interrupted or failed run is never
mistaken for a finished adapter; ``resume=True`` continues from its last checkpoint.

Throughput: with ``packing=True`` (default) each batch is *padding-free*: examples are
concatenated into one row with ``position_ids`` restarting at 0 for each example
(``transformers.DataCollatorWithFlattening``), and attention runs causally per example
(:mod:`ragtune.finetune.packed_attention`) rather than through a block-diagonal mask over
the whole row; ``packing_is_exact`` checks on the loaded model that packed examples do not
see each other, and falls back to padded, length-grouped batches when they would.
Independently, logits are computed only at positions that have a label
(``logits_to_keep``), which skips most of the vocabulary projection for prompt tokens.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import resource
import shutil
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ragtune.errors import ConfigError, InputError, ModelError, RagtuneError
from ragtune.finetune.dataset import (
    MIN_EXAMPLES,
    as_dicts,
    dataset_hash,
    load_chat_jsonl,
    split_examples,
)
from ragtune.finetune.hardware import Placement, avoid_cudnn_attention, check_qlora, detect
from ragtune.finetune.int8_base import int8_matmul_faster, quantize_frozen_linears, restore
from ragtune.finetune.packed_attention import use_packed_attention
from ragtune.types import ChatExample, file_sha256

StepCallback = Callable[[int, int, float, float, float], None]
"""``on_step(step, total_steps, loss, tokens_per_s, eta_s)``, called after every optimizer step."""


def _h(text: str, **kw: Any) -> Any:
    return field(metadata={"help": text}, **kw)


@dataclass(frozen=True)
class TrainConfig:
    """Every training option; recorded in the adapter's ``run.json``."""

    base_model: str = _h("local folder, Hugging Face id already in the cache, or a .gguf file")
    rank: int = _h("LoRA rank r", default=8)
    alpha: int = _h("LoRA alpha (scale = alpha / rank)", default=16)
    dropout: float = _h("LoRA dropout", default=0.05)
    target_modules: tuple[str, ...] = _h(
        "module names LoRA adapts", default=("q_proj", "k_proj", "v_proj", "o_proj"))
    epochs: float = _h("passes over the training set (ignored when max_steps > 0)", default=1.0)
    max_steps: int = _h("optimizer steps; -1 = use epochs", default=-1)
    learning_rate: float = _h("peak learning rate (linear decay)", default=2e-4)
    batch_size: int = _h("examples per device batch", default=4)
    grad_accum: int = _h("batches per optimizer step", default=1)
    max_length: int = _h("tokens per example; longer examples are truncated", default=512)
    val_fraction: float = _h("share of examples held out for validation loss", default=0.1)
    early_stopping_patience: int = _h(
        "stop after this many evaluations without a better validation loss (0 = off)", default=2)
    eval_steps: int = _h("evaluate validation loss every N steps", default=50)
    save_steps: int = _h("write a resumable checkpoint every N steps", default=50)
    seed: int = _h("random seed (split, init, order)", default=0)
    qlora: bool = _h("4-bit base model (bitsandbytes, CUDA only)", default=False)
    gradient_checkpointing: bool = _h(
        "recompute activations in the backward pass: less memory for large bases and long "
        "examples, ~30% more compute", default=False)
    packing: bool = _h("padding-free batches (position ids reset per example)", default=True)
    group_by_length: bool = _h("batch similar lengths together when not packing", default=True)
    int8_base: bool = _h(
        "CPU only: the frozen base layers' forward runs in int8 during the first int8_share "
        "of the steps (finetune/int8_base.py; those steps ~30% faster); evaluation and the "
        "remaining steps run in fp32", default=True)
    int8_share: float = _h(
        "share of the steps whose forward runs in int8 when int8_base is on; the rest run in "
        "fp32 so the adapter finishes on the exact base it is served with", default=0.75)

    def __post_init__(self) -> None:
        object.__setattr__(self, "target_modules", tuple(self.target_modules))
        checks = [
            (bool(self.base_model), "base_model is required"),
            (self.rank >= 1, f"rank must be >= 1, got {self.rank}"),
            (self.alpha > 0, f"alpha must be > 0, got {self.alpha}"),
            (0 <= self.dropout < 1, f"dropout must be in [0, 1), got {self.dropout}"),
            (0 <= self.int8_share <= 1, f"int8_share must be in [0, 1], got {self.int8_share}"),
            (bool(self.target_modules), "target_modules must name at least one module"),
            (self.max_steps > 0 or self.epochs > 0,
             f"epochs must be > 0 when max_steps <= 0 (epochs={self.epochs}, max_steps={self.max_steps})"),
            (self.learning_rate > 0, f"learning_rate must be > 0, got {self.learning_rate}"),
            (self.batch_size >= 1, f"batch_size must be >= 1, got {self.batch_size}"),
            (self.grad_accum >= 1, f"grad_accum must be >= 1, got {self.grad_accum}"),
            (self.max_length >= 16, f"max_length must be >= 16, got {self.max_length}"),
            (0 <= self.val_fraction < 1, f"val_fraction must be in [0, 1), got {self.val_fraction}"),
            (self.eval_steps >= 1 and self.save_steps >= 1, "eval_steps and save_steps must be >= 1"),
            (self.early_stopping_patience >= 0, "early_stopping_patience must be >= 0"),
            (self.early_stopping_patience == 0 or self.val_fraction > 0,
             (f"early_stopping_patience={self.early_stopping_patience} needs val_fraction > 0 "
              "(there is no validation loss to watch); set early_stopping_patience=0")),
            (self.early_stopping_patience == 0 or self.save_steps % self.eval_steps == 0,
             (f"save_steps={self.save_steps} must be a multiple of eval_steps={self.eval_steps} "
              "when early_stopping_patience > 0 (the best checkpoint must have been evaluated)")),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["target_modules"] = list(self.target_modules)
        return d


@dataclass(frozen=True)
class TrainResult:
    """What a finished run produced; ``run`` is the content of ``run.json``."""

    adapter_dir: Path
    run: dict[str, Any]

    @property
    def val_loss(self) -> float | None:
        return self.run.get("val_loss")


class TrainingInterrupted(RagtuneError):
    """Training stopped on Ctrl-C after saving a checkpoint; the message says how to resume."""

    exit_code = 130


# ---------------------------------------------------------------- base model


@dataclass
class BaseModel:
    """A loaded base model: ``path`` is the HF folder it came from, ``hash`` its identity."""

    model: Any
    tokenizer: Any
    path: Path
    hash: str


def folder_hash(folder: Path) -> str:
    """Cheap identity of a model folder: config.json bytes plus weight file names and sizes."""
    import hashlib

    h = hashlib.sha256()
    cfg = folder / "config.json"
    if cfg.exists():
        h.update(cfg.read_bytes())
    for p in sorted(folder.iterdir()):
        if p.suffix in {".safetensors", ".bin", ".gguf", ".pt"}:
            h.update(f"{p.name}:{p.stat().st_size}".encode())
    return h.hexdigest()


def gguf_cache_dir(gguf: Path, digest: str) -> Path:
    """Where the HF copy of a GGUF file is cached: ``$RAGTUNE_CACHE/hf-from-gguf/...``,
    else a ``.ragtune-cache`` folder beside the GGUF, else ``~/.cache/ragtune``."""
    name = f"{gguf.stem}-{digest[:12]}"
    if os.environ.get("RAGTUNE_CACHE"):
        return Path(os.environ["RAGTUNE_CACHE"]) / "hf-from-gguf" / name
    if os.access(gguf.parent, os.W_OK):
        return gguf.parent / ".ragtune-cache" / name
    return Path.home() / ".cache" / "ragtune" / "hf-from-gguf" / name


def convert_gguf(gguf: Path) -> tuple[Path, str]:
    """Dequantise a GGUF file into a cached HF folder (once: ~45 s for a 0.5B model).

    A GGUF-loaded model refuses ``save_pretrained`` and the Trainer ("quantized with gguf");
    it is plain fp32 after dequantisation, so the quantizer marks are removed before saving.
    """
    digest = file_sha256(gguf)
    folder = gguf_cache_dir(gguf, digest)
    if (folder / "config.json").exists():
        return folder, digest
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    except ImportError as e:
        from ragtune.errors import MissingDependency

        raise MissingDependency("gguf", "train") from e
    except Exception as e:
        raise ModelError(f"{gguf}: cannot load this GGUF with transformers: {e}") from e
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(str(tmp))
    tok.save_pretrained(str(tmp))
    os.replace(tmp, folder)
    return folder, digest


def resolve_base_folder(name: str) -> tuple[Path, str]:
    """``(HF folder, identity)`` for a base model name, without loading any weights.

    ``name`` is the packaged model's name (``qwen2.5-0.5b`` and its aliases), a .gguf file
    (converted once and cached, see :func:`convert_gguf`), a model folder, or a Hugging Face
    id already in the local cache. Never downloads.
    """
    from ragtune.generate.models import PACKAGED_ALIASES, packaged_model_path

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if name.strip().lower() in PACKAGED_ALIASES:
        name = str(packaged_model_path())
    path = Path(name).expanduser()
    if path.suffix == ".gguf":
        if not path.is_file():
            raise ModelError(f"{path}: GGUF file not found")
        folder, digest = convert_gguf(path)
        return folder, "sha256:" + digest
    if path.is_dir():
        return path, "folder:" + folder_hash(path)
    if re.fullmatch(r"[\w.-]+/[\w.-]+", name) and not path.exists():
        try:
            from huggingface_hub import snapshot_download

            source = Path(snapshot_download(name, local_files_only=True))
        except Exception:  # noqa: BLE001
            raise ModelError(f"{name}: not a folder, a .gguf file, or a model in the local "
                             "Hugging Face cache (ragtune never downloads)") from None
        return source, "folder:" + folder_hash(source)
    raise ModelError(f"{name}: no such model folder or .gguf file")


def load_base_model(name: str, *, qlora: bool = False, placement: Placement | None = None) -> BaseModel:
    """Load a causal LM and its tokenizer from a folder, a .gguf file or the local HF cache.

    Never downloads: a Hugging Face id must already be in the cache. See
    :func:`resolve_base_folder` for the names accepted. On CUDA the model loads in bf16 on
    this process's GPU (``LOCAL_RANK``), with ``qlora`` as 4-bit NF4; on a CPU in fp32
    (:mod:`ragtune.finetune.hardware`).
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    source, ident = resolve_base_folder(name)
    placement = placement or detect()
    if placement.cuda:
        avoid_cudnn_attention()  # a plan per new shape: see its docstring
    model = AutoModelForCausalLM.from_pretrained(str(source), **placement.load_kwargs(qlora=qlora))
    tokenizer = AutoTokenizer.from_pretrained(str(source))
    if not getattr(tokenizer, "chat_template", None):
        raise ModelError(f"{name}: the tokenizer has no chat template; pick a chat/instruct model")
    return BaseModel(model=model, tokenizer=tokenizer, path=source, hash=ident)


# ---------------------------------------------------------------- tokenisation


def _render(tokenizer: Any, messages: list[dict[str, str]], gen_prompt: bool = False) -> str:
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=gen_prompt)


def tokenize_example(tokenizer: Any, example: ChatExample, max_length: int) -> dict[str, list[int]] | None:
    """Token ids and labels for one conversation, rendered with the model's chat template.

    Labels are -100 everywhere except the tokens of assistant turns (content and the
    template's end-of-turn marker) whose weight is not 0. Assistant spans are found by
    rendering the conversation up to each assistant turn with and without it: the text
    between "prompt + generation prompt" and "prompt + answer" is what the model must
    produce. Returns None when truncation to ``max_length`` leaves nothing to learn.
    """
    msgs = as_dicts(example)
    full = _render(tokenizer, msgs)
    spans: list[tuple[int, int]] = []
    for i, m in enumerate(example.messages):
        if m.role != "assistant" or m.weight == 0:
            continue
        prefix = _render(tokenizer, msgs[:i], gen_prompt=True)
        upto = _render(tokenizer, msgs[: i + 1])
        if not (upto.startswith(prefix) and full.startswith(upto)):
            raise ModelError(
                "the chat template does not render conversations incrementally, so assistant "
                f"turns cannot be located (example on line {example.line})"
            )
        spans.append((len(prefix), len(upto)))
    enc = tokenizer(full, add_special_tokens=False, return_offsets_mapping=True)
    ids = list(enc["input_ids"])[:max_length]
    offsets = list(enc["offset_mapping"])[:max_length]
    labels = [
        tok if any(a <= start < b for a, b in spans) else -100
        for tok, (start, _end) in zip(ids, offsets, strict=True)
    ]
    if all(x == -100 for x in labels):
        return None
    return {"input_ids": ids, "labels": labels, "attention_mask": [1] * len(ids)}


# ---------------------------------------------------------------- packing


def packing_is_exact(model: Any, atol: float = 1e-3) -> bool:
    """True when two examples packed in one row give the same logits as run separately.

    Cheap (two short forward passes); guards against architectures whose attention ignores
    restarting ``position_ids`` and would let packed examples see each other. ``atol``
    holds for fp32 weights; a bf16/fp16 model (CUDA) is compared relative to the size of
    its logits instead (2%: half-precision rounding differs between a 9-token and a
    16-token row, while leaking attention shifts logits by far more).
    """
    import torch

    vocab = model.config.vocab_size
    gen = torch.Generator().manual_seed(0)
    device = model.device
    a = torch.randint(3, vocab, (1, 7), generator=gen).to(device)
    b = torch.randint(3, vocab, (1, 9), generator=gen).to(device)
    pos = torch.cat([torch.arange(7), torch.arange(9)])[None].to(device)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            # use_cache=False as in training: with a KV cache, transformers skips the
            # packed-sequence detection and the examples would attend to each other.
            sep = torch.cat([model(input_ids=a, use_cache=False).logits,
                             model(input_ids=b, use_cache=False).logits], dim=1)
            packed = model(input_ids=torch.cat([a, b], dim=1), position_ids=pos,
                           use_cache=False).logits
    finally:
        model.train(was_training)
    sep, packed = sep.float(), packed.float()
    if model.dtype in (torch.bfloat16, torch.float16):
        atol = 0.02 * float(sep.abs().max())
    return bool(torch.allclose(sep, packed, atol=atol))


def make_trainer_class() -> type:
    """A ``Trainer`` computing the loss from logits at labelled positions only.

    Same loss as the default (mean cross-entropy over label tokens), but the vocabulary
    projection runs only where a label exists; it also counts non-padding training tokens.
    """
    import torch
    import torch.nn.functional as F
    from transformers import Trainer

    class SparseLossTrainer(Trainer):
        tokens_seen = 0

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):  # type: ignore[override]
            labels = inputs.pop("labels")
            targets = labels[:, 1:]
            keep = torch.zeros_like(labels, dtype=torch.bool)
            keep[:, :-1] = targets != -100
            if model.training:
                mask = inputs.get("attention_mask")
                self.tokens_seen += int(mask.sum()) if mask is not None else labels.numel()
            # Positions any row needs, as a 1-D index: every transformers 5.x slices hidden
            # states with it (a 2-D boolean mask only from 5.2x on). A packed batch is one
            # row, so nothing is wasted; padded rows keep the union of their positions.
            cols = keep.any(dim=0).nonzero().squeeze(1)
            outputs = model(**inputs, logits_to_keep=cols, use_cache=False)
            logits = outputs.logits[keep[:, cols]]  # (labelled tokens, vocab), row-major
            loss = F.cross_entropy(logits.float(), targets[targets != -100], reduction="sum")
            if num_items_in_batch is not None and model.training:
                loss = loss / num_items_in_batch
                self.loss_is_scaled_for_ga = True
            else:
                loss = loss / max(1, int(keep.sum()))
                self.loss_is_scaled_for_ga = False
            return (loss, outputs) if return_outputs else loss

    return SparseLossTrainer


# ---------------------------------------------------------------- progress and Ctrl-C


def _checkpointing_args(arguments: type, on: bool) -> dict[str, Any]:
    """TrainingArguments for gradient checkpointing, named as this transformers names them.

    transformers 5.2x renamed ``gradient_checkpointing`` to ``activation_checkpointing``.
    Non-reentrant checkpointing works with a frozen base whose inputs need no gradient.
    """
    if not on:
        return {}
    fields = getattr(arguments, "__dataclass_fields__", {})
    name = "activation_checkpointing" if "activation_checkpointing" in fields else "gradient_checkpointing"
    return {name: True, f"{name}_kwargs": {"use_reentrant": False}}


def _checkpointing_on(model: Any) -> bool:
    """Whether the model recomputes activations (renamed in transformers 5.2x, like the args)."""
    for name in ("is_activation_checkpointing", "is_gradient_checkpointing"):
        if hasattr(type(model), name):
            return bool(getattr(model, name))
    return False


def _progress_name(rank: int) -> str:
    """Checkpointed time and token count of one process (each rank counts its own tokens)."""
    return "ragtune_progress.json" if rank == 0 else f"ragtune_progress.rank{rank}.json"


def _make_callback(on_step: StepCallback | None, stop: threading.Event, timing: dict[str, float],
                   progress_file: str = "ragtune_progress.json") -> Any:
    from transformers import TrainerCallback

    class Progress(TrainerCallback):
        t_begin = 0.0

        def on_step_begin(self, args, state, control, **kw):  # type: ignore[no-untyped-def]
            self.t_begin = time.perf_counter()

        def on_step_end(self, args, state, control, **kw):  # type: ignore[no-untyped-def]
            timing["train_s"] += time.perf_counter() - self.t_begin
            if stop.is_set():  # Ctrl-C: checkpoint this step, then stop cleanly
                control.should_save = True
                control.should_training_stop = True

        def on_log(self, args, state, control, logs=None, **kw):  # type: ignore[no-untyped-def]
            if stop.is_set():  # also here: on_step below may be where Ctrl-C arrived
                control.should_save = True
                control.should_training_stop = True
            if on_step is None or not logs or "loss" not in logs:
                return
            trainer = timing.get("trainer_ref")
            tokens = getattr(trainer, "tokens_seen", 0) + timing["tokens_before"]
            tps = tokens / timing["train_s"] if timing["train_s"] else 0.0
            done = max(1, state.global_step - timing["step_before"])
            eta = (state.max_steps - state.global_step) * (timing["train_s"] - timing["train_before"]) / done
            on_step(state.global_step, state.max_steps, float(logs["loss"]), tps, max(0.0, eta))
            if stop.is_set():
                control.should_save = True
                control.should_training_stop = True

        def on_save(self, args, state, control, **kw):  # type: ignore[no-untyped-def]
            ckpt = Path(args.output_dir) / f"checkpoint-{state.global_step}"
            trainer = timing.get("trainer_ref")
            progress = {"train_s": timing["train_s"],
                        "tokens": getattr(trainer, "tokens_seen", 0) + timing["tokens_before"]}
            if ckpt.is_dir():
                (ckpt / progress_file).write_text(json.dumps(progress))

    return Progress()


def _int8_steps(max_steps: int, share: float) -> int:
    """How many of the first steps run with the int8 forward."""
    return round(max_steps * share)


def _make_int8_switch(model: Any, share: float) -> Any:
    """A callback that removes the int8 forward once ``share`` of the steps are done.

    The last steps then train on the exact fp32 base, so the adapter ends where it will be
    served. A resumed run past that step switches before its first step.
    """
    from transformers import TrainerCallback

    class Int8Switch(TrainerCallback):
        on = True

        def on_step_begin(self, args, state, control, **kw):  # type: ignore[no-untyped-def]
            if self.on and state.global_step >= _int8_steps(state.max_steps, share):
                restore(model)
                self.on = False

    return Int8Switch()


# ---------------------------------------------------------------- the run


def _last_checkpoint(ckpt_dir: Path) -> Path | None:
    found = [p for p in ckpt_dir.glob("checkpoint-*") if p.name.split("-")[-1].isdigit()]
    return max(found, key=lambda p: int(p.name.split("-")[-1]), default=None)


def _prepare_dirs(config: TrainConfig, out_dir: Path, resume: bool) -> tuple[Path, Path | None]:
    partial = out_dir.with_name(out_dir.name + ".partial")
    if out_dir.exists():
        raise ConfigError(f"{out_dir} already exists (a finished adapter); remove it or pick another name")
    saved = partial / "train_config.json"
    if resume:
        last = _last_checkpoint(partial / "checkpoints")
        if last is None:
            raise ConfigError(f"nothing to resume: no checkpoint in {partial / 'checkpoints'}")
        before = json.loads(saved.read_text()) if saved.exists() else {}
        changed = sorted(k for k, v in config.to_dict().items() if before.get(k, v) != v)
        if changed:
            raise ConfigError(f"cannot resume {partial} with changed options: {', '.join(changed)}")
        return partial, last
    if partial.exists():
        raise ConfigError(
            f"an unfinished run exists in {partial}; resume it (--resume) or delete that folder"
        )
    (partial / "checkpoints").mkdir(parents=True)
    saved.write_text(json.dumps(config.to_dict(), indent=2))
    return partial, None


def _follow_dirs(out_dir: Path, resume: bool) -> tuple[Path, Path | None]:
    """What ranks other than 0 use once rank 0's :func:`_prepare_dirs` has succeeded."""
    partial = out_dir.with_name(out_dir.name + ".partial")
    return partial, _last_checkpoint(partial / "checkpoints") if resume else None


def shared_system_prompt(examples: list[ChatExample], share: float = 0.9) -> str | None:
    """The system message at least ``share`` of the examples open with, if there is one.

    Recorded in run.json: serving the adapter without it (finetuned mode) would ask a
    question the adapter was never trained on.

    >>> from ragtune.types import ChatMessage
    >>> ex = ChatExample((ChatMessage("system", "Be brief."), ChatMessage("user", "Hi")))
    >>> shared_system_prompt([ex, ex]), shared_system_prompt([])
    ('Be brief.', None)
    """
    counts: dict[str, int] = {}
    for ex in examples:
        if ex.messages and ex.messages[0].role == "system":
            counts[ex.messages[0].content] = counts.get(ex.messages[0].content, 0) + 1
    best = max(counts.items(), key=lambda kv: kv[1], default=None)
    return best[0] if best and best[1] >= share * len(examples) else None


def train_adapter(
    config: TrainConfig,
    data_path: str | Path,
    out_dir: str | Path,
    *,
    on_step: StepCallback | None = None,
    resume: bool = False,
    lineage: dict[str, Any] | None = None,
) -> TrainResult:
    """Train a LoRA adapter on a chat JSONL file and write it to ``out_dir``.

    ``lineage`` (documents and versions the data came from, anything JSON) is stored as is
    in ``run.json``. Raises :class:`InputError` for bad data, :class:`ConfigError` for
    impossible options, :class:`TrainingInterrupted` on Ctrl-C (after a checkpoint).

    Runs on the CPU, or on CUDA when there is a GPU (bf16 base, or 4-bit NF4 with
    ``config.qlora``). Launched by ``torchrun`` / ``accelerate launch``, every process
    trains on its share of each batch and only rank 0 writes the adapter folder and
    ``run.json``; every rank returns the same :class:`TrainResult`.
    """
    placement = detect()
    if config.qlora:
        check_qlora(placement)
    started = time.time()
    data_path, out_dir = Path(data_path), Path(out_dir)
    examples = load_chat_jsonl(data_path)
    if len(examples) < MIN_EXAMPLES:
        raise InputError(str(data_path), f"{len(examples)} examples; at least {MIN_EXAMPLES} are needed")
    partial, last_ckpt = placement.main_first(
        lambda: _prepare_dirs(config, out_dir, resume),
        lambda: _follow_dirs(out_dir, resume))

    from peft import LoraConfig, get_peft_model
    from transformers import DataCollatorForSeq2Seq, DataCollatorWithFlattening, TrainingArguments

    placement.reset_peak_memory()
    base = load_base_model(config.base_model, qlora=config.qlora, placement=placement)
    model, tokenizer = base.model, base.tokenizer
    train_ex, val_ex = split_examples(examples, config.val_fraction, config.seed)
    train_rows = [r for r in (tokenize_example(tokenizer, e, config.max_length) for e in train_ex) if r]
    val_rows = [r for r in (tokenize_example(tokenizer, e, config.max_length) for e in val_ex) if r]
    dropped = len(train_ex) + len(val_ex) - len(train_rows) - len(val_rows)
    if not train_rows:
        raise InputError(str(data_path), f"no example keeps an assistant token within max_length={config.max_length}")

    packed = config.packing and packing_is_exact(model)
    if packed:
        collator: Any = DataCollatorWithFlattening()
        for rows in (train_rows, val_rows):
            for r in rows:
                del r["attention_mask"]
        batching = "packed: padding-free rows, position_ids reset per example"
        stock = model.config._attn_implementation
        if use_packed_attention(model) and packing_is_exact(model):
            batching += ", causal attention per example"
        elif model.config._attn_implementation != stock:  # not exact here: block-diagonal mask
            model.set_attn_implementation(stock)
    else:
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        collator = DataCollatorForSeq2Seq(tokenizer, padding="longest", label_pad_token_id=-100)
        batching = "padded to the longest in batch" + (", length-grouped" if config.group_by_length else "")
        if config.packing:
            batching += " (packing requested but this model's attention ignores position_ids)"

    if config.qlora:
        from peft import prepare_model_for_kbit_training

        # PEFT's default turns gradient checkpointing on: ~30% slower; only when asked
        model = prepare_model_for_kbit_training(
            model, use_gradient_checkpointing=config.gradient_checkpointing)
    from transformers import set_seed

    set_seed(config.seed)  # LoRA A matrices are random: same seed, same adapter
    model = get_peft_model(model, LoraConfig(
        r=config.rank, lora_alpha=config.alpha, lora_dropout=config.dropout,
        target_modules=list(config.target_modules), task_type="CAUSAL_LM"))

    int8_layers = 0
    notes: list[str] = []
    if config.int8_base and config.int8_share > 0 and placement.cuda:
        notes.append("int8_base is CPU-only (torch._int_mm on the CPU); on CUDA the frozen base "
                     f"runs in {placement.dtype_name(qlora=config.qlora)}")
    elif config.int8_base and config.int8_share > 0 and not config.qlora:
        if int8_matmul_faster():
            int8_layers = quantize_frozen_linears(model)  # after get_peft_model: base frozen
            if int8_layers:
                batching += (f", int8 forward in {int8_layers} frozen base layers for "
                             f"{config.int8_share:.0%} of the steps")
        else:
            notes.append("int8_base not used: torch._int_mm is not faster than fp32 on this "
                         "CPU (no VNNI), so the frozen base runs in fp32")

    has_val = bool(val_rows)
    early = has_val and config.early_stopping_patience > 0
    args = TrainingArguments(
        output_dir=str(partial / "checkpoints"),
        num_train_epochs=config.epochs,
        max_steps=config.max_steps,
        learning_rate=config.learning_rate,
        per_device_train_batch_size=config.batch_size,
        per_device_eval_batch_size=config.batch_size,
        gradient_accumulation_steps=config.grad_accum,
        eval_strategy="steps" if has_val else "no",
        eval_steps=config.eval_steps,
        save_strategy="steps",
        save_steps=config.save_steps,
        save_total_limit=2,
        load_best_model_at_end=early,
        metric_for_best_model="eval_loss" if early else None,
        greater_is_better=False if early else None,
        logging_steps=1,
        seed=config.seed,
        bf16=placement.dtype_name(qlora=False) == "bfloat16",
        fp16=placement.dtype_name(qlora=False) == "float16",
        use_cpu=not placement.cuda,
        **_checkpointing_args(TrainingArguments, config.gradient_checkpointing),
        ddp_find_unused_parameters=False,  # every LoRA weight is used in every step
        report_to="none",
        disable_tqdm=True,
        remove_unused_columns=False,
        prediction_loss_only=True,
        train_sampling_strategy="group_by_length" if (config.group_by_length and not packed) else "random",
        dataloader_pin_memory=False,
    )
    stop = threading.Event()
    timing: dict[str, Any] = {"train_s": 0.0, "tokens_before": 0, "train_before": 0.0, "step_before": 0}
    progress_file = _progress_name(placement.rank)
    if last_ckpt is not None and (last_ckpt / progress_file).exists():
        prev = json.loads((last_ckpt / progress_file).read_text())
        timing.update(train_s=prev["train_s"], train_before=prev["train_s"], tokens_before=prev["tokens"],
                      step_before=int(last_ckpt.name.split("-")[-1]))
    callbacks = [_make_callback(on_step, stop, timing, progress_file)]
    if int8_layers:
        callbacks.append(_make_int8_switch(model, config.int8_share))
    if early:
        from transformers import EarlyStoppingCallback

        callbacks.append(EarlyStoppingCallback(early_stopping_patience=config.early_stopping_patience))
    trainer = make_trainer_class()(
        model=model, args=args, train_dataset=train_rows, eval_dataset=val_rows or None,
        data_collator=collator, callbacks=callbacks)
    timing["trainer_ref"] = trainer
    from transformers import PrinterCallback

    trainer.remove_callback(PrinterCallback)  # progress goes through on_step, not stdout

    def _on_sigint(signum: int, frame: Any) -> None:
        if stop.is_set():  # a second Ctrl-C stops at once
            raise KeyboardInterrupt
        stop.set()

    in_main = threading.current_thread() is threading.main_thread()
    old_handler = signal.signal(signal.SIGINT, _on_sigint) if in_main else None
    how = (f"resume with the same command plus --resume "
           f"(Python: train_adapter(..., resume=True)); checkpoints are in {partial / 'checkpoints'}")
    try:
        trainer.train(resume_from_checkpoint=str(last_ckpt) if last_ckpt else None)
    except KeyboardInterrupt:
        trainer._save_checkpoint(trainer.model, trial=None)  # best effort: keep the progress
        raise TrainingInterrupted(
            f"training interrupted at step {trainer.state.global_step}; {how}") from None
    finally:
        if in_main:
            signal.signal(signal.SIGINT, old_handler)
    if stop.is_set():
        raise TrainingInterrupted(
            f"training interrupted at step {trainer.state.global_step}/{trainer.state.max_steps}; {how}")

    restore(model)  # no int8 forward left behind on the model that is saved and evaluated
    val_loss = float(trainer.evaluate()["eval_loss"]) if has_val else None
    tokens = placement.sum_over_ranks(trainer.tokens_seen + timing["tokens_before"])
    history = trainer.state.log_history
    run = {
        "name": out_dir.name,
        "created_at": time.time(),
        "base_model": config.base_model,
        "base_model_path": str(base.path),
        "base_model_hash": base.hash,
        "dataset": {
            "path": str(data_path.resolve()),
            "hash": dataset_hash(data_path),
            "examples": len(examples),
            "train_examples": len(train_rows),
            "val_examples": len(val_rows),
            "dropped_no_assistant_tokens_after_truncation": dropped,
            "truncated": sum(len(r["input_ids"]) == config.max_length for r in train_rows + val_rows),
            "system_prompt": shared_system_prompt(examples),
        },
        "config": config.to_dict(),
        "device": placement.device,
        "device_name": placement.device_name(),
        "dtype": placement.dtype_name(qlora=config.qlora),
        "processes": placement.world_size,
        "batching": batching,
        # read back from the model: the Trainer switched checkpointing on (or did not)
        "gradient_checkpointing_active": _checkpointing_on(model.get_base_model()),
        "int8_base_layers": int8_layers,
        "int8_steps": (min(trainer.state.global_step, _int8_steps(trainer.state.max_steps, config.int8_share))
                       if int8_layers else 0),
        "steps": trainer.state.global_step,
        "epochs_done": round(float(trainer.state.epoch or 0), 3),
        "stopped_early": trainer.state.global_step < trainer.state.max_steps,
        "duration_s": round(time.time() - started, 2),
        "train_time_s": round(timing["train_s"], 3),
        "train_tokens": tokens,  # summed over processes
        "train_tokens_per_s": round(tokens / timing["train_s"], 1) if timing["train_s"] else None,
        "loss_curve": [[h["step"], h["loss"]] for h in history if "loss" in h],
        "val_curve": [[h["step"], h["eval_loss"]] for h in history if "eval_loss" in h],
        "val_loss": val_loss,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        # torch.cuda.max_memory_allocated on rank 0's GPU, loading included (None on a CPU)
        "peak_gpu_mb": placement.peak_memory_mb(),
        "notes": notes,
        "lineage": lineage,
        "versions": _versions(),
    }
    if placement.is_main:
        try:
            _write_adapter(model, partial, out_dir, run)
        finally:
            placement.wait_for_everyone()
        return TrainResult(adapter_dir=out_dir, run=run)
    placement.wait_for_everyone()  # rank 0 writes the adapter; the others return its record
    try:
        run = json.loads((out_dir / "run.json").read_text())
    except FileNotFoundError:
        raise ModelError(f"rank 0 did not finish writing {out_dir}; see its output") from None
    return TrainResult(adapter_dir=out_dir, run=run)


def _write_adapter(model: Any, partial: Path, out_dir: Path, run: dict[str, Any]) -> None:
    """Adapter weights, run.json and loss.png into ``partial``, then the atomic rename."""
    model.save_pretrained(str(partial))
    write_loss_png(partial / "loss.png", run["loss_curve"], run["val_curve"])
    run["loss_plot"] = "loss.png (pure-Python PNG writer)"
    (partial / "run.json").write_text(json.dumps(run, indent=2))
    shutil.rmtree(partial / "checkpoints", ignore_errors=True)  # optimizer states: big, done with
    (partial / "train_config.json").unlink(missing_ok=True)
    os.replace(partial, out_dir)  # the atomic step that makes the adapter "finished"


def _versions() -> dict[str, str]:
    import peft
    import torch
    import transformers

    return {"torch": torch.__version__, "transformers": transformers.__version__, "peft": peft.__version__}


def write_loss_png(path: Path, train: list[list[float]], val: list[list[float]],
                   size: tuple[int, int] = (480, 280)) -> None:
    """A minimal line plot (train loss blue, validation loss red) as PNG, in pure Python.

    matplotlib is not a dependency; this draws axes and polylines with zlib only.
    """
    import struct
    import zlib

    w, h = size
    px = [[(255, 255, 255)] * w for _ in range(h)]
    pad = 30
    points = [p for p in train + val]
    if points:
        xs = [p[0] for p in points]
        ys = [p[1] for p in points]
        x0, x1 = min(xs), max(xs) if max(xs) > min(xs) else min(xs) + 1
        y0, y1 = min(ys), max(ys) if max(ys) > min(ys) else min(ys) + 1

        def to_px(x: float, y: float) -> tuple[int, int]:
            return (pad + round((x - x0) / (x1 - x0) * (w - 2 * pad)),
                    h - pad - round((y - y0) / (y1 - y0) * (h - 2 * pad)))

        def line(a: tuple[int, int], b: tuple[int, int], color: tuple[int, int, int]) -> None:
            n = max(abs(b[0] - a[0]), abs(b[1] - a[1]), 1)
            for i in range(n + 1):
                x = a[0] + (b[0] - a[0]) * i // n
                y = a[1] + (b[1] - a[1]) * i // n
                for dx, dy in ((0, 0), (0, 1), (1, 0)):
                    if 0 <= x + dx < w and 0 <= y + dy < h:
                        px[y + dy][x + dx] = color

        line((pad, h - pad), (w - pad, h - pad), (0, 0, 0))
        line((pad, pad), (pad, h - pad), (0, 0, 0))
        for series, color in ((train, (31, 119, 180)), (val, (214, 39, 40))):
            pts = [to_px(x, y) for x, y in series]
            for a, b in itertools.pairwise(pts):
                line(a, b, color)
            if len(pts) == 1:
                line(pts[0], pts[0], color)
    raw = b"".join(b"\x00" + bytes(c for rgb in row for c in rgb) for row in px)

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
           + chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b""))
    path.write_bytes(png)
