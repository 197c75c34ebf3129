"""The intent classifier: a SetFit-style fine-tuned sentence encoder and a linear head.

Training (:meth:`IntentRouter.train`) follows SetFit (Tunstall et al., 2022):

1. Contrastive fine-tuning of the packaged all-MiniLM-L6-v2 body on pairs of labelled
   questions (:mod:`ragtune.route.contrastive`): cosine pushed to 1 for two questions
   with the same label, to 0 otherwise. A bounded number of steps (20 batches of 28)
   keeps training on ~100 questions short on a laptop CPU.
2. The fine-tuned body is exported to ONNX (the project's exporter, :mod:`ragtune.embed.onnx`)
   so that routing one question costs a few milliseconds and never imports torch.
3. A multinomial logistic-regression head (scikit-learn) is fitted on the ONNX embeddings
   of the training questions: train, validation and serving see the very same vectors.

A stratified, seeded validation split is held out from both steps and scored (accuracy,
macro-F1, per-label figures, confusion matrix).

>>> from ragtune.route.data import load_intents
>>> router, report = IntentRouter.train(load_intents("examples/intents/intents.jsonl"))  # doctest: +SKIP
>>> router.predict("My VPN keeps dropping")                                              # doctest: +SKIP
('it', 0.93, {'direct': 0.01, ..., 'it': 0.93, ...})
>>> router.save(Path(".ragtune/routers/intents"))                                        # doctest: +SKIP

A saved router is a folder: ``router.json`` (labels, kinds, metrics, confusion matrix, data
digest, base model, training settings), ``head.npz`` (the head's weights, no pickle),
``body/`` (the fine-tuned sentence-transformers model) and ``onnx/`` (its ONNX export).
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ragtune.embed.local import PACKAGED, resolve_model_path
from ragtune.errors import InputError, MissingDependency, ModelError, NotFound
from ragtune.route.contrastive import fine_tune_body
from ragtune.route.data import (
    IntentExample,
    check_labels,
    examples_sha256,
    label_kind,
    score,
    stratified_split,
)
from ragtune.types import ProgressFn

log = logging.getLogger(__name__)

FORMAT = 1  # router.json layout version
RUNTIMES = ("onnx", "torch")


@dataclass(frozen=True)
class RouterTrainConfig:
    """How a router is trained. The defaults were chosen on examples/intents (see bench/)."""

    base_model: str = PACKAGED
    steps: int = 20  # contrastive steps; 0 = keep the base model as it is (no fine-tuning)
    batch_size: int = 28
    per_label: int = 4  # questions of one label in a batch: every batch has positive pairs
    learning_rate: float = 2e-5
    head_c: float = 10.0  # inverse L2 strength; C=1 on unit vectors gives flat probabilities
    runtime: str = "onnx"
    # int8 ONNX body: half the CPU time per question (4.7 vs 9.1 ms on one core, measured
    # by bench/route_latency.py) at the same held-out accuracy
    quantize: bool = True
    max_seq_length: int = 128
    # torch threads while training; default: all cores but one. On a busy 2-core machine
    # two OpenMP threads that wait for each other made each step several times slower.
    threads: int | None = None
    refit: bool = False  # after validating, retrain on every example

    def __post_init__(self) -> None:
        if self.steps < 0:
            raise ValueError(f"steps must be >= 0, got {self.steps}")
        if self.batch_size < 2:
            raise ValueError(f"batch_size must be at least 2, got {self.batch_size}")
        if self.per_label < 2:
            raise ValueError(f"per_label must be at least 2, got {self.per_label}")
        if self.learning_rate <= 0 or self.head_c <= 0:
            raise ValueError("learning_rate and head_c must be greater than 0")
        if self.runtime not in RUNTIMES:
            raise ValueError(f"runtime must be onnx or torch, got {self.runtime!r}")
        if self.max_seq_length < 8:
            raise ValueError(f"max_seq_length must be at least 8, got {self.max_seq_length}")


# ---------------------------------------------------------------- encoder and head


class _Encoder:
    """The body at serving time: ONNX Runtime (default) or sentence-transformers.

    Questions are encoded one at a time: int8 ONNX picks its activation scale per batch,
    and one at a time is how questions arrive, so training sees serving's vectors.
    """

    def __init__(self, body: Path, *, runtime: str, quantize: bool, max_seq_length: int,
                 threads: int | None, onnx_dir: Path) -> None:
        self.runtime = runtime
        self._onnx: Any = None
        self._st: Any = None
        if runtime == "onnx":
            from ragtune.embed.onnx import OnnxEncoder, UnsupportedModel

            try:
                self._onnx = OnnxEncoder(body, quantize=quantize, max_seq_length=max_seq_length,
                                         threads=threads, cache_dir=onnx_dir)
                return
            except UnsupportedModel as e:
                log.warning("routing with torch instead of ONNX Runtime: %s", e)
                self.runtime = "torch"
        try:
            import torch
            from sentence_transformers import SentenceTransformer
        except ImportError:
            raise MissingDependency("sentence-transformers", "local") from None
        if threads:
            torch.set_num_threads(threads)
        try:
            self._st = SentenceTransformer(str(body), device="cpu", local_files_only=True)
        except Exception as e:  # noqa: BLE001
            raise ModelError(f"cannot load the router body {body}: {type(e).__name__}: {e}") from None
        self._st.max_seq_length = max_seq_length

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        if self._onnx is not None:
            return np.concatenate([self._onnx.encode([t], batch_size=1) for t in texts])
        v = self._st.encode(list(texts), batch_size=1, convert_to_numpy=True,
                            normalize_embeddings=True, show_progress_bar=False)
        return np.asarray(v, dtype=np.float32)


@dataclass(frozen=True)
class LinearHead:
    """Multinomial logistic regression as plain arrays: ``softmax(x @ coef.T + intercept)``.

    >>> h = LinearHead(np.array([[1.0, 0.0]]), np.array([0.0]))   # binary: one row
    >>> h.proba(np.array([[0.0, 5.0]])).round(2).tolist()
    [[0.5, 0.5]]
    """

    coef: np.ndarray  # (labels, dim), or (1, dim) for two labels as scikit-learn stores it
    intercept: np.ndarray

    @classmethod
    def fit(cls, x: np.ndarray, y: Sequence[int], *, c: float, seed: int) -> LinearHead:
        try:
            from sklearn.linear_model import LogisticRegression  # type: ignore[import-untyped]
        except ImportError:
            raise MissingDependency("scikit-learn", "local") from None
        clf = LogisticRegression(C=c, max_iter=5000, random_state=seed).fit(x, list(y))
        if list(clf.classes_) != list(range(len(clf.classes_))):
            raise ModelError("router head: training labels are not 0..n-1")  # cannot happen
        return cls(clf.coef_.astype(np.float64), clf.intercept_.astype(np.float64))

    def proba(self, x: np.ndarray) -> np.ndarray:
        z = x.astype(np.float64) @ self.coef.T + self.intercept
        if self.coef.shape[0] == 1:  # binary: P(second label) = sigmoid(z)
            z = np.concatenate([np.zeros_like(z), z], axis=1)
        z -= z.max(axis=1, keepdims=True)
        p = np.exp(z)
        return p / p.sum(axis=1, keepdims=True)


# ---------------------------------------------------------------- the router


class IntentRouter:
    """A trained intent classifier: ``predict(text) -> (label, confidence, probabilities)``."""

    def __init__(self, folder: Path, info: dict[str, Any], head: LinearHead,
                 encoder: _Encoder, workdir: Any = None) -> None:
        self.folder = folder  # where body/ and onnx/ live (a temp folder until saved)
        self.info = info  # the router.json content
        self.labels: list[str] = list(info["labels"])
        self.head = head
        self._encoder = encoder
        self._workdir = workdir  # a TemporaryDirectory kept alive while we use its files

    @property
    def runtime(self) -> str:
        return self._encoder.runtime

    def kind(self, label: str) -> str:
        return label_kind(label)

    def predict(self, text: str) -> tuple[str, float, dict[str, float]]:
        """(label, confidence, probability per label) for one question."""
        if not text or not text.strip():
            raise InputError("question", "empty question")
        return self.predict_many([text])[0]

    def predict_many(self, texts: Sequence[str]) -> list[tuple[str, float, dict[str, float]]]:
        if not texts:
            return []
        probs = self.head.proba(self._encoder.encode(texts))
        out = []
        for row in probs:
            i = int(row.argmax())
            out.append((self.labels[i], float(row[i]),
                        {label: float(p) for label, p in zip(self.labels, row, strict=True)}))
        return out

    # ------------------------------------------------------------ training
    @classmethod
    def train(cls, examples: Sequence[IntentExample], *, seed: int = 0,
              val_fraction: float = 0.2, config: RouterTrainConfig | None = None,
              source: str | None = None,
              progress: ProgressFn | None = None) -> tuple[IntentRouter, dict[str, Any]]:
        """Fine-tune, fit the head, score on a held-out split; returns (router, report).

        Raises :class:`InputError` for data it cannot learn from (one label, a label with
        one example). The report is the router's ``router.json`` content.
        """
        config = config or RouterTrainConfig()
        started = time.perf_counter()
        warnings = check_labels(examples, source or "training data")
        labels = sorted({e.label for e in examples})
        train, val = stratified_split(examples, val_fraction, seed)
        router, timings = cls._fit(train, labels, config=config, seed=seed, progress=progress)
        metrics = None
        if val:
            predicted = [p[0] for p in router.predict_many([e.text for e in val])]
            metrics = score(labels, [e.label for e in val], predicted)
        if config.refit and val:
            router, timings = cls._fit(list(examples), labels, config=config, seed=seed,
                                       progress=progress)
        info = router.info
        info.update({
            "metrics": metrics,
            "counts": {"train": dict(sorted(Counter(e.label for e in train).items())),
                       "validation": dict(sorted(Counter(e.label for e in val).items())),
                       "total": len(examples)},
            "data": {"examples_sha256": examples_sha256(examples), "examples": len(examples),
                     "source": source},
            "training": {**asdict(config), "seed": seed, "val_fraction": val_fraction,
                         **timings, "seconds": round(time.perf_counter() - started, 2)},
            "warnings": warnings,
        })
        return router, info

    @classmethod
    def _fit(cls, examples: Sequence[IntentExample], labels: list[str], *, config: RouterTrainConfig,
             seed: int, progress: ProgressFn | None) -> tuple[IntentRouter, dict[str, float]]:
        workdir = tempfile.TemporaryDirectory(prefix="ragtune-router-")
        folder = Path(workdir.name)
        body = folder / "body"
        if config.steps:
            tuned = fine_tune_body(examples, labels, body, config=config, seed=seed,
                                   progress=progress)
        else:  # no fine-tuning: the base model's own vectors (a baseline to compare with)
            shutil.copytree(resolve_model_path(config.base_model), body)
            tuned = {"steps": 0, "seconds": 0.0, "first_loss": None, "last_loss": None}
        t = time.perf_counter()
        if progress:
            progress(0, 1, "export")
        onnx_log = logging.getLogger("ragtune.embed.onnx")
        level = onnx_log.level
        onnx_log.setLevel(logging.ERROR)  # "exporting ... (once)" is expected here, not news
        try:
            encoder = _Encoder(body, runtime=config.runtime, quantize=config.quantize,
                               max_seq_length=config.max_seq_length, threads=1,
                               onnx_dir=folder / "onnx")
        finally:
            onnx_log.setLevel(level)
        export_s = time.perf_counter() - t
        if progress:
            progress(1, 1, "export")
        t = time.perf_counter()
        index = {label: i for i, label in enumerate(labels)}
        x = encoder.encode([e.text for e in examples])
        head = LinearHead.fit(x, [index[e.label] for e in examples], c=config.head_c, seed=seed)
        info = {
            "format": FORMAT,
            "labels": labels,
            "kinds": {label: label_kind(label) for label in labels},
            "base_model": config.base_model,
            "runtime": encoder.runtime,
            "quantize": config.quantize,
            "max_seq_length": config.max_seq_length,
            "created_at": time.time(),
        }
        timings = {"fine_tune_s": tuned["seconds"], "first_loss": tuned["first_loss"],
                   "last_loss": tuned["last_loss"], "export_s": round(export_s, 2),
                   "head_s": round(time.perf_counter() - t, 2)}
        return cls(folder, info, head, encoder, workdir), timings

    # ------------------------------------------------------------ persistence
    def save(self, folder: Path | str) -> Path:
        """Write the router to ``folder`` (replacing one there) all at once; returns it.

        The new router is assembled beside ``folder`` and renamed into place, so a reader
        sees the old router or the new one, never half of one.
        """
        folder = Path(folder)
        folder.parent.mkdir(parents=True, exist_ok=True)
        stage = folder.parent / f".{folder.name}.tmp-{uuid.uuid4().hex[:8]}"
        try:
            if self.folder.resolve() != folder.resolve():
                for part in ("body", "onnx"):
                    if (self.folder / part).exists():
                        shutil.copytree(self.folder / part, stage / part)
            else:  # saving in place: only the small files change
                shutil.copytree(self.folder, stage)
            np.savez(stage / "head.npz", coef=self.head.coef, intercept=self.head.intercept)
            (stage / "router.json").write_text(
                json.dumps(self.info, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
            old = None
            if folder.exists():
                old = folder.parent / f".{folder.name}.old-{uuid.uuid4().hex[:8]}"
                folder.rename(old)
            stage.rename(folder)
            if old is not None:
                shutil.rmtree(old, ignore_errors=True)
        finally:
            shutil.rmtree(stage, ignore_errors=True)
        return folder

    @classmethod
    def load(cls, folder: Path | str, *, threads: int | None = 1) -> IntentRouter:
        """Load a router saved by :meth:`save`.

        ``threads``: ONNX Runtime threads (None = every core). One is the default: a
        question of ~15 tokens takes as long on two threads (7.8 vs 8.1 ms p50 measured on
        2 cores) for 15% more CPU, which retrieval and generation can use instead.
        """
        folder = Path(folder)
        meta = folder / "router.json"
        if not meta.is_file():
            raise NotFound(f"no router at {folder} (train one with 'ragtune route train')")
        try:
            info = json.loads(meta.read_text(encoding="utf-8"))
            with np.load(folder / "head.npz", allow_pickle=False) as z:
                head = LinearHead(z["coef"], z["intercept"])
        except (OSError, ValueError, KeyError) as e:
            raise ModelError(f"{folder}: router files are damaged ({e}); train it again") from None
        if info.get("format") != FORMAT:
            raise ModelError(f"{meta}: router format {info.get('format')!r} is not {FORMAT}; "
                             "train it again with this version")
        n = len(info["labels"])
        if head.coef.shape[0] not in ({1} if n == 2 else {n}):
            raise ModelError(f"{folder}: head.npz has {head.coef.shape[0]} rows for {n} labels")
        encoder = _Encoder(folder / "body", runtime=info.get("runtime", "onnx"),
                           quantize=bool(info.get("quantize")),
                           max_seq_length=int(info.get("max_seq_length", 128)),
                           threads=threads, onnx_dir=folder / "onnx")
        return cls(folder, info, head, encoder)
