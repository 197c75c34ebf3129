"""Contrastive fine-tuning of the packaged MiniLM on (query, positive, hard negative) triples.

The loss is sentence-transformers' ``MultipleNegativesRankingLoss`` (InfoNCE with scale 20
over cosine): each query must pick its positive among every positive and hard negative of
its batch, the standard recipe for dense retrievers (Henderson et al. 2017; Karpukhin et
al. 2020) and what GPL/GenQ train with. CPU-sized: passages cut at ``max_seq_length``
tokens (128: ICT queries are one sentence, and chunk heads carry the topic), the word
embedding table frozen (half the parameters; a few hundred steps cannot teach it much and
its optimizer update would be most of each step), one pass over the data at most.

Training saves a checkpoint (weights, optimizer, schedule, step) every
``checkpoint_every`` steps, so an interrupted run resumes where it stopped; batches are a
fixed permutation of the examples, so a resumed run sees the same batches as an
uninterrupted one. A ``deadline`` (``time.monotonic()`` value) stops it early, keeping what
it learned.

>>> # train_embedder(examples, Path("model"), EmbedderTrainConfig(steps=200), checkpoint=Path("ckpt"))
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ragtune.embed.local import PACKAGED, resolve_model_path
from ragtune.errors import MissingDependency, ModelError
from ragtune.tune.data import Example


@dataclass(frozen=True)
class EmbedderTrainConfig:
    """How to fine-tune; ``steps = 0`` means one pass over the examples (capped at
    ``max_steps``)."""

    base_model: str = PACKAGED
    steps: int = 0
    max_steps: int = 200
    batch_size: int = 16
    learning_rate: float = 2e-5
    max_seq_length: int = 128
    warmup: float = 0.1
    seed: int = 0
    threads: int | None = None
    checkpoint_every: int = 25

    def __post_init__(self) -> None:
        if self.batch_size < 2:
            raise ValueError(f"batch_size must be at least 2 (in-batch negatives), got {self.batch_size}")
        if self.steps < 0 or self.max_steps < 1:
            raise ValueError("steps must be >= 0 and max_steps >= 1")
        if not 8 <= self.max_seq_length <= 512:
            raise ValueError(f"max_seq_length must be 8..512, got {self.max_seq_length}")

    def planned_steps(self, examples: int) -> int:
        """Steps this config runs on ``examples`` triples.

        >>> EmbedderTrainConfig().planned_steps(1000), EmbedderTrainConfig(steps=7).planned_steps(1000)
        (62, 7)
        """
        return self.steps or max(1, min(self.max_steps, examples // self.batch_size))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _order(n: int, steps: int, batch: int, seed: int) -> list[list[int]]:
    """``steps`` batches of ``batch`` distinct indices: shuffled passes over ``range(n)``.

    >>> _order(5, 3, 2, 0)[0] != _order(5, 3, 2, 1)[0], len(_order(5, 3, 2, 0))
    (True, 3)
    """
    rnd = random.Random(seed)
    flat: list[int] = []
    while len(flat) < steps * batch:
        flat += rnd.sample(range(n), n)
    return [flat[i * batch:(i + 1) * batch] for i in range(steps)]


def load_trainable(base_model: str, max_seq_length: int) -> tuple[Any, list[Any]]:
    """The SentenceTransformer for ``base_model`` on the CPU, word embeddings frozen, and its
    trainable parameters."""
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError:
        raise MissingDependency("sentence-transformers", "local") from None
    os.environ["HF_HUB_OFFLINE"] = "1"
    path = resolve_model_path(base_model)
    try:
        st = SentenceTransformer(path, device="cpu", local_files_only=True)
    except Exception as e:  # noqa: BLE001 - any load failure is a ModelError here
        raise ModelError(f"cannot load embedding model {base_model!r} from {path} offline: "
                         f"{type(e).__name__}: {e}") from None
    st.max_seq_length = max_seq_length
    hf = getattr(st[0], "auto_model", None)
    if hf is not None and hasattr(hf, "get_input_embeddings"):
        for p in hf.get_input_embeddings().parameters():
            p.requires_grad = False
    return st, [p for p in st.parameters() if p.requires_grad]


def train_embedder(examples: Sequence[Example], dest: Path, config: EmbedderTrainConfig, *,
                   checkpoint: Path, deadline: float | None = None,
                   progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """Fine-tune ``config.base_model`` on ``examples`` and save it to ``dest`` (a
    sentence-transformers folder). Returns steps planned and done, seconds, losses, and
    ``stopped`` (``"deadline"`` when the time cap ended it early)."""
    import torch

    try:  # sentence-transformers 6 moved the losses; older versions keep them here
        from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss
    except ImportError:
        from sentence_transformers.losses import MultipleNegativesRankingLoss
    from transformers import get_linear_schedule_with_warmup
    from transformers.utils import logging as hf_logging

    if not examples:
        raise ValueError("no training examples")
    hf_logging.disable_progress_bar()
    started = time.perf_counter()
    steps = config.planned_steps(len(examples))
    batch = min(config.batch_size, len(examples))
    before = torch.get_num_threads()
    torch.set_num_threads(config.threads or max(1, len(os.sched_getaffinity(0))))
    try:
        torch.manual_seed(config.seed)
        st, trainable = load_trainable(config.base_model, config.max_seq_length)
        loss_fn = MultipleNegativesRankingLoss(st)
        optimizer = torch.optim.AdamW(trainable, lr=config.learning_rate, weight_decay=0.01)
        schedule = get_linear_schedule_with_warmup(
            optimizer, num_warmup_steps=max(1, int(steps * config.warmup)), num_training_steps=steps)
        state_file = checkpoint / "state.pt"
        done, losses = 0, []
        if state_file.exists():
            state = torch.load(state_file, weights_only=False)
            st.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            schedule.load_state_dict(state["schedule"])
            done, losses = int(state["step"]), list(state["losses"])
        encode = getattr(st, "preprocess", None) or st.tokenize  # renamed in ST 6
        stopped = None
        st.train()
        for step, idx in enumerate(_order(len(examples), steps, batch, config.seed)):
            if step < done:
                continue
            if deadline is not None and time.monotonic() > deadline:
                stopped = "deadline"
                break
            rows = [examples[i] for i in idx]
            features = [dict(encode([getattr(r, field) for r in rows]))
                        for field in ("query", "positive", "negative")]
            loss = loss_fn(features, None)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(trainable, 1.0)
            optimizer.step()
            schedule.step()
            optimizer.zero_grad(set_to_none=True)
            losses.append(round(loss.item(), 4))
            done = step + 1
            if done % config.checkpoint_every == 0 and done < steps:
                checkpoint.mkdir(parents=True, exist_ok=True)
                tmp = state_file.with_suffix(".tmp")
                torch.save({"model": st.state_dict(), "optimizer": optimizer.state_dict(),
                            "schedule": schedule.state_dict(), "step": done, "losses": losses}, tmp)
                os.replace(tmp, state_file)
            if progress:
                progress(done, steps)
        st.eval()
        st.save(str(dest))
    finally:
        torch.set_num_threads(before)
    return {"steps_planned": steps, "steps": done, "batch_size": batch,
            "examples": len(examples), "seconds": round(time.perf_counter() - started, 1),
            "first_loss": losses[0] if losses else None,
            "last_loss": round(sum(losses[-10:]) / len(losses[-10:]), 4) if losses else None,
            "stopped": stopped}
