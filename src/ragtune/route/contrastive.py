"""Contrastive fine-tuning of a sentence encoder on labelled questions, the SetFit way.

SetFit (Tunstall et al., 2022) trains on pairs of examples: cosine pushed to 1 for two
questions with the same label, to 0 otherwise. Here every pair inside a batch counts (a
batch of 28 questions gives 378 pairs for the price of encoding 28), batches hold a few
questions of each of several labels so that every batch has positive pairs, and positive
and negative pairs weigh the same, as SetFit's balanced pair sampling does.

>>> # fine_tune_body(train_examples, labels, Path("body"), config=RouterTrainConfig(), seed=0)
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ragtune.embed.local import resolve_model_path
from ragtune.errors import MissingDependency, ModelError
from ragtune.route.data import IntentExample

if TYPE_CHECKING:
    from ragtune.route.model import RouterTrainConfig
    from ragtune.types import ProgressFn


def pair_loss(embeddings: Any, labels: Any) -> Any:
    """SetFit's cosine-similarity loss over every pair in a batch, classes balanced.

    Mean squared distance of each pair's cosine to 1 (same label) or 0 (different
    labels); the positive and the negative pairs are averaged separately and added, so
    the ~1:6 ratio of positives with seven labels does not drown them.

    >>> import torch
    >>> e = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    >>> float(pair_loss(e, torch.tensor([0, 0, 1])))   # already perfect
    0.0
    >>> # the positive pair (1, 2) is orthogonal: 1.0; one of the two negative pairs,
    >>> # (0, 1), is identical: 0.5 on average
    >>> float(pair_loss(e, torch.tensor([0, 1, 1])))
    1.5
    """
    import torch

    e = torch.nn.functional.normalize(embeddings, dim=-1)
    cos = e @ e.T
    same = (labels[:, None] == labels[None, :]).float()
    off_diagonal = 1.0 - torch.eye(len(labels), device=e.device)
    pos = same * off_diagonal
    neg = 1.0 - same
    pos_loss = ((cos - 1.0) ** 2 * pos).sum() / pos.sum().clamp(min=1.0)
    neg_loss = (cos**2 * neg).sum() / neg.sum().clamp(min=1.0)
    return pos_loss + neg_loss


class _BatchSampler:
    """Batches of ``per_label`` questions from each of several labels, cycling through all.

    Every label is visited in turn and every question of a label before any repeats, so
    a bounded number of steps still sees the whole training set evenly.
    """

    def __init__(self, labels: Sequence[int], batch_size: int, per_label: int, seed: int) -> None:
        import random

        self._rnd = random.Random(seed)
        self._by_label: dict[int, list[int]] = {}
        for i, y in enumerate(labels):
            self._by_label.setdefault(y, []).append(i)
        self._queues: dict[int, list[int]] = {y: [] for y in self._by_label}
        self._label_queue: list[int] = []
        self.per_label = per_label
        self.labels_per_batch = max(2, batch_size // per_label)

    def _draw(self, queue: list[int], members: list[int], k: int) -> list[int]:
        """``k`` distinct members, continuing ``queue`` (shuffled cycles, used from the end)."""
        if len(queue) < k:
            left = set(queue)
            fresh = self._rnd.sample(members, len(members))
            fresh.sort(key=lambda i: i not in left)  # still queued: used last in the new cycle
            queue[:0] = fresh
        return [queue.pop() for _ in range(k)]

    def next(self) -> list[int]:
        labels = list(self._by_label)
        chosen = self._draw(self._label_queue, labels, min(self.labels_per_batch, len(labels)))
        batch: list[int] = []
        for y in chosen:
            members = self._by_label[y]
            batch += self._draw(self._queues[y], members, min(self.per_label, len(members)))
        return batch


def fine_tune_body(examples: Sequence[IntentExample], labels: Sequence[str], dest: Path, *,
                   config: RouterTrainConfig, seed: int,
                   progress: ProgressFn | None = None) -> dict[str, Any]:
    """Contrastively fine-tune ``config.base_model`` on ``examples``; save it to ``dest``.

    Returns ``{"steps", "seconds", "first_loss", "last_loss"}``. The word-embedding table
    stays frozen: it is half the parameters, ~100 questions cannot teach it much, and its
    optimizer update would be most of each step's time.
    """
    try:
        import torch
        from sentence_transformers import SentenceTransformer
    except ImportError:
        raise MissingDependency("sentence-transformers", "local") from None
    from transformers import get_linear_schedule_with_warmup
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # the CLI shows its own progress
    started = time.perf_counter()
    os.environ["HF_HUB_OFFLINE"] = "1"
    path = resolve_model_path(config.base_model)
    before = torch.get_num_threads()
    torch.set_num_threads(config.threads or max(1, len(os.sched_getaffinity(0)) - 1))
    try:
        torch.manual_seed(seed)
        try:
            st = SentenceTransformer(path, device="cpu", local_files_only=True)
        except Exception as e:  # noqa: BLE001 - any load failure is a ModelError here
            raise ModelError(f"cannot load the router's base model {config.base_model!r} from "
                             f"{path} offline: {type(e).__name__}: {e}") from None
        st.max_seq_length = config.max_seq_length
        hf = getattr(st[0], "auto_model", None)
        if hf is not None and hasattr(hf, "get_input_embeddings"):
            for p in hf.get_input_embeddings().parameters():
                p.requires_grad = False
        trainable = [p for p in st.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(trainable, lr=config.learning_rate, weight_decay=0.01)
        schedule = get_linear_schedule_with_warmup(
            optimizer, num_warmup_steps=max(1, config.steps // 10), num_training_steps=config.steps)
        index = {label: i for i, label in enumerate(labels)}
        y = torch.tensor([index[e.label] for e in examples])
        sampler = _BatchSampler(y.tolist(), config.batch_size, config.per_label, seed)
        encode = getattr(st, "preprocess", None) or st.tokenize  # renamed in ST 6
        losses: list[float] = []
        st.train()
        for step in range(config.steps):
            batch = sampler.next()
            features = encode([examples[i].text for i in batch])
            out = st(dict(features))["sentence_embedding"]
            loss = pair_loss(out, y[batch])
            loss.backward()
            torch.nn.utils.clip_grad_norm_(trainable, 1.0)
            optimizer.step()
            schedule.step()
            optimizer.zero_grad(set_to_none=True)
            losses.append(loss.item())
            if progress:
                progress(step + 1, config.steps, "fine-tune")
        st.eval()
        st.save(str(dest))
    finally:
        torch.set_num_threads(before)
    return {"steps": config.steps, "seconds": round(time.perf_counter() - started, 2),
            "first_loss": round(losses[0], 4) if losses else None,
            "last_loss": round(losses[-1], 4) if losses else None}
