"""A sentence-transformers model run by ONNX Runtime: about 2x the speed of torch on a CPU.

The model's transformer is exported to ONNX once (torch, legacy TorchScript exporter,
opset 17), its attention/GELU/LayerNorm are fused by ONNX Runtime's BERT optimizer (not
into the slower SkipLayerNorm/BiasGelu kernels), and
for ``quantize=True`` its weights become per-channel int8 (``quantize_dynamic``). Both
files are cached under ``$RAGTUNE_CACHE/onnx`` (or ``~/.cache/ragtune/onnx``) in a folder
keyed by a hash of the model folder, so the next process starts in well under a second
and never imports torch. Each file has a ``.sha256`` beside it; a file that does not
match its digest is rebuilt.

>>> from ragtune.embed.local import resolve_model_path
>>> enc = OnnxEncoder(resolve_model_path("all-MiniLM-L6-v2"))   # doctest: +SKIP
>>> enc.encode(["hello world"]).shape                             # doctest: +SKIP
(1, 384)

Tokenization uses the model folder's fast tokenizer (``tokenizer.json``); texts are sorted
by length and padded per batch, the last hidden state is mean-pooled (or [CLS]-pooled, as
the model's ``1_Pooling`` says) under the attention mask and L2-normalised.

Building the cache needs torch, sentence-transformers and the ``onnx`` package; running
from the cache needs only ``onnxruntime`` and ``tokenizers``. Models this module cannot
reproduce exactly (other pooling modes, Dense layers after pooling, no fast tokenizer)
raise :class:`UnsupportedModel`; the caller falls back to torch.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import warnings
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from ragtune.config import cache_root
from ragtune.errors import ModelError
from ragtune.types import file_sha256

log = logging.getLogger(__name__)

# Bump when the export or quantization recipe changes: old cache entries are then ignored.
RECIPE = 2
# ONNX Runtime session fusions left out: their fused CPU kernels are slower (see _fuse).
_SLOW_FUSIONS = ["SkipLayerNormFusion", "BiasGeluFusion"]
OPSET = 17
# Families whose graph ONNX Runtime's transformer optimizer knows how to fuse.
_FUSABLE = {"bert": "bert", "roberta": "bert", "xlm-roberta": "bert", "distilbert": "bert"}
# sentence-transformers modules that need no code here: pooling is done below, and every
# Embedder output is L2-normalised anyway.
_HANDLED_MODULES = ("Transformer", "Pooling", "Normalize")


class UnsupportedModel(ModelError):
    """This model (or this install) cannot run on ONNX Runtime here; use torch instead."""


def onnx_cache_dir() -> Path:
    """``$RAGTUNE_CACHE/onnx`` or ``~/.cache/ragtune/onnx``."""
    return cache_root() / "onnx"


def folder_digest(folder: Path) -> str:
    """sha256 over every file's relative path and bytes: a changed model gets a new cache.

    >>> import tempfile; d = Path(tempfile.mkdtemp()); _ = (d / "a").write_text("x")
    >>> len(folder_digest(d))
    64
    """
    h = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        h.update(str(path.relative_to(folder)).encode() + b"\0")
        with path.open("rb") as f:
            h.update(hashlib.file_digest(f, "sha256").digest())
    return h.hexdigest()


def _is_intact(path: Path) -> bool:
    """True if ``path`` and its ``.sha256`` sidecar exist and agree."""
    sidecar = path.with_name(path.name + ".sha256")
    try:
        return sidecar.read_text().strip() == file_sha256(path)
    except OSError:
        return False


def _build_atomically(target: Path, build: Callable[[Path], None]) -> None:
    """Run ``build(tmp)`` then move tmp onto ``target`` and write its digest sidecar.

    Readers see the old file, no file, or the whole new one; never a half-written one.
    The sidecar is written last, so a crash in between leaves a file that is rebuilt.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.stem}-", suffix=".onnx")
    os.close(fd)
    tmp = Path(name)
    try:
        build(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes it owner-only; a cache is shareable
        digest = file_sha256(tmp)
        os.replace(tmp, target)
        side_tmp = tmp.with_suffix(".sha256")
        side_tmp.write_text(digest + "\n")
        os.replace(side_tmp, target.with_name(target.name + ".sha256"))
    finally:
        tmp.unlink(missing_ok=True)


def _require_onnx() -> None:
    try:
        import onnx  # noqa: F401
    except ImportError:
        raise UnsupportedModel(
            "exporting the embedding model to ONNX needs the 'onnx' package: "
            "try pip install 'ragtune[local]'"
        ) from None


def export_onnx(model_dir: Path, dest: Path) -> None:
    """Export the transformer of the sentence-transformers model in ``model_dir`` to ``dest``.

    Outputs ``last_hidden_state`` with dynamic batch and sequence axes. Eager attention,
    not SDPA: its graph is the one ONNX Runtime's optimizer recognises and fuses into one
    ``Attention`` op (and ``QAttention`` once quantized), which is where the speed is.
    """
    _require_onnx()
    import torch
    from sentence_transformers import SentenceTransformer

    st = SentenceTransformer(
        str(model_dir),
        device="cpu",
        local_files_only=True,
        model_kwargs={"attn_implementation": "eager"},
    )
    transformer: Any = st[0]  # sentence-transformers' Transformer module
    hf = transformer.auto_model.eval()
    names = list(st.tokenizer.model_input_names)

    class LastHidden(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.hf = hf

        def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
            return self.hf(**dict(zip(names, inputs, strict=True))).last_hidden_state

    dummy = tuple(torch.ones(2, 16, dtype=torch.long) for _ in names)
    axes = {n: {0: "batch", 1: "sequence"} for n in [*names, "last_hidden_state"]}
    with warnings.catch_warnings(), torch.no_grad():
        # the TorchScript exporter is deprecated in torch 2.9+ but still the one whose
        # graph the ONNX Runtime fusions match; its tracer warnings are expected.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            LastHidden(),
            dummy,
            str(dest),
            input_names=names,
            output_names=["last_hidden_state"],
            dynamic_axes=axes,
            opset_version=OPSET,
            do_constant_folding=True,
            dynamo=False,
        )
    model_type = str(getattr(hf.config, "model_type", ""))
    if model_type in _FUSABLE:
        _fuse(dest, _FUSABLE[model_type], hf.config)


def _fuse(path: Path, model_type: str, config: Any) -> None:
    """Fuse attention, GELU and LayerNorm in place (ONNX Runtime's transformer optimizer).

    Not fused: the residual add into LayerNorm (``SkipLayerNormalization``) and the bias
    add into GELU (``BiasGelu``). On CPU those two fused kernels are the slow ones: with
    them, they took 18% and 12% of the int8 MiniLM's time; as ``Add`` + ``LayerNormalization``
    and ``Add`` + ``Gelu`` the same work takes 7% and 7%, and the model runs 1.22-1.26x as
    fast (587 KB chunks, ORT 1.31, AVX-512). The session must not re-fuse them either
    (:data:`_SLOW_FUSIONS`).
    """
    from onnxruntime.transformers.fusion_options import FusionOptions  # type: ignore[import-untyped]
    from onnxruntime.transformers.optimizer import optimize_model  # type: ignore[import-untyped]

    options = FusionOptions(model_type)
    options.enable_skip_layer_norm = False
    options.enable_bias_gelu = False
    # opt_level=1: graph fusions only, stored in the file; the session applies the
    # hardware-specific rest when it loads.
    opt = optimize_model(
        str(path),
        model_type=model_type,
        num_heads=int(config.num_attention_heads),
        hidden_size=int(config.hidden_size),
        opt_level=1,
        optimization_options=options,
    )
    fused = {k: v for k, v in opt.get_fused_operator_statistics().items() if v}
    log.info("fused %s: %s", path.name, fused)
    opt.save_model_to_file(str(path))


def quantize_onnx(src: Path, dest: Path) -> None:
    """Per-channel int8 weights, dynamic int8 activations, for every MatMul and Attention.

    The embedding lookup (``EmbedLayerNormalization``) stays fp32: it is a gather, not a
    matmul, so int8 there saves nothing and only adds rounding.
    """
    _require_onnx()
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic  # type: ignore[import-untyped]

    graph = onnx.load(str(src), load_external_data=False).graph
    keep_fp32 = [n.name for n in graph.node if n.op_type == "EmbedLayerNormalization"]
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # quantize_dynamic logs a "consider pre-processing" notice
    try:
        quantize_dynamic(
            str(src),
            str(dest),
            per_channel=True,
            weight_type=QuantType.QInt8,
            nodes_to_exclude=keep_fp32,
            # fused ops (Attention, BiasGelu) are outside ONNX shape inference: say the type
            extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
        )
    finally:
        root.setLevel(level)


def cached_onnx_model(model_dir: Path, *, quantize: bool, cache_dir: Path | None = None) -> Path:
    """The cached ONNX file for ``model_dir`` (int8 if ``quantize``), built if missing or corrupt.

    >>> from ragtune.embed.local import resolve_model_path
    >>> path = Path(resolve_model_path("all-MiniLM-L6-v2"))
    >>> cached_onnx_model(path, quantize=True).name  # doctest: +SKIP
    'model.int8.onnx'
    """
    import onnxruntime as ort  # type: ignore[import-untyped]

    ort_version = ".".join(ort.__version__.split(".")[:2])
    key = f"{model_dir.name}-{folder_digest(model_dir)[:16]}-r{RECIPE}-ort{ort_version}"
    folder = Path(cache_dir or onnx_cache_dir()) / key
    fp32 = folder / "model.onnx"
    if not _is_intact(fp32):
        log.warning("exporting embedding model %s to ONNX (once): %s", model_dir, fp32)
        _build_atomically(fp32, lambda tmp: export_onnx(model_dir, tmp))
    if not quantize:
        return fp32
    int8 = folder / "model.int8.onnx"
    if not _is_intact(int8):
        log.warning("quantizing embedding model to int8 (once): %s", int8)
        _build_atomically(int8, lambda tmp: quantize_onnx(fp32, tmp))
    return int8


def _pooling_mode(model_dir: Path) -> str:
    """'mean' or 'cls', from the model's sentence-transformers modules; else unsupported."""
    modules_file = model_dir / "modules.json"
    if not modules_file.is_file():
        return "mean"  # a plain Hugging Face model: sentence-transformers mean-pools it
    modules = json.loads(modules_file.read_text())
    pooling = "mean"
    for m in modules:
        kind = str(m.get("type", "")).rsplit(".", 1)[-1]
        if kind not in _HANDLED_MODULES:
            raise UnsupportedModel(f"{modules_file}: module {kind!r} has no ONNX path here")
        if kind == "Transformer" and m.get("path"):
            raise UnsupportedModel(f"{modules_file}: transformer in a sub-folder {m['path']!r}")
        if kind == "Pooling":
            cfg = json.loads((model_dir / m["path"] / "config.json").read_text())
            modes = [k for k, v in cfg.items() if k.startswith("pooling_mode") and v is True]
            if isinstance(cfg.get("pooling_mode"), str):  # sentence-transformers 6 saves one key
                new = {"mean": "mean_tokens", "cls": "cls_token"}.get(cfg["pooling_mode"])
                modes = [f"pooling_mode_{new or cfg['pooling_mode']}"]
            if modes == ["pooling_mode_mean_tokens"]:
                pooling = "mean"
            elif modes == ["pooling_mode_cls_token"]:
                pooling = "cls"
            else:
                raise UnsupportedModel(f"{model_dir / m['path']}: pooling {modes} not supported")
    return pooling


def _fast_tokenizer(model_dir: Path) -> Any:
    """The folder's ``tokenizers.Tokenizer``, with its saved padding/truncation cleared."""
    from tokenizers import Tokenizer

    path = model_dir / "tokenizer.json"
    if path.is_file():
        tok = Tokenizer.from_file(str(path))
    else:
        try:
            from transformers import AutoTokenizer

            tok = AutoTokenizer.from_pretrained(str(model_dir), use_fast=True).backend_tokenizer
        except Exception as e:  # noqa: BLE001 - any failure means: no fast tokenizer
            raise UnsupportedModel(f"{model_dir}: no fast tokenizer ({e})") from None
    # all-MiniLM-L6-v2's tokenizer.json pads and truncates to 128: undo both; we pad per
    # batch and truncate to max_seq_length ourselves.
    tok.no_padding()
    tok.no_truncation()
    return tok


def _max_positions(model_dir: Path) -> int:
    try:
        config = json.loads((model_dir / "config.json").read_text())
    except (OSError, ValueError):
        return 512
    # RoBERTa-style models reserve 2 positions for the padding offset
    offset = 2 if config.get("model_type") in {"roberta", "xlm-roberta"} else 0
    return int(config.get("max_position_embeddings", 512)) - offset


class OnnxEncoder:
    """Tokenize, run the cached ONNX model, pool and normalise; used by LocalEmbedder."""

    def __init__(
        self,
        model_dir: str | Path,
        *,
        quantize: bool = True,
        max_seq_length: int = 512,
        threads: int | None = None,
        cache_dir: Path | None = None,
    ) -> None:
        try:
            import onnxruntime as ort  # type: ignore[import-untyped]
        except ImportError:
            raise UnsupportedModel("onnxruntime is not installed") from None
        self.model_dir = Path(model_dir)
        self.pooling = _pooling_mode(self.model_dir)
        self.tokenizer = _fast_tokenizer(self.model_dir)
        self.max_seq_length = min(max_seq_length, _max_positions(self.model_dir))
        # A second copy that truncates like sentence-transformers (special tokens kept
        # inside the limit); the first stays uncut for count_tokens.
        self._truncating = type(self.tokenizer).from_str(self.tokenizer.to_str())
        self._truncating.enable_truncation(self.max_seq_length)
        self.path = cached_onnx_model(self.model_dir, quantize=quantize, cache_dir=cache_dir)

        # One thread per run, and up to ``workers`` batches run at once (ONNX Runtime
        # releases the GIL): on 2 cores this embeds ~1.3x faster than one run using two
        # threads, whose small per-op work items leave the cores waiting on each other;
        # a single short query is as fast on one thread (3.1 vs 3.2 ms).
        self.workers = max(1, threads or len(os.sched_getaffinity(0)))
        # threads start on first use; daemon-like, they end with the process
        self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="ragtune-embed")
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        try:
            self.session = ort.InferenceSession(
                str(self.path), options, providers=["CPUExecutionProvider"],
                disabled_optimizers=_SLOW_FUSIONS,
            )
        except Exception as e:  # noqa: BLE001 - ORT raises its own exception types
            raise ModelError(f"{self.path}: ONNX Runtime cannot load it: {e}") from None
        self.input_names = [i.name for i in self.session.get_inputs()]
        unknown = set(self.input_names) - {"input_ids", "attention_mask", "token_type_ids"}
        if unknown:
            raise UnsupportedModel(f"{self.path}: unexpected model inputs {sorted(unknown)}")
        self.dimension = int(self.session.get_outputs()[0].shape[-1])

    def encode(self, texts: list[str], batch_size: int = 8) -> np.ndarray:
        """(len(texts), dimension) float32, rows of norm 1, in input order.

        Longest texts first, so each batch pads only to its own longest text; batches run
        ``workers`` at a time.
        """
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        if not texts:
            return out
        ids = [e.ids for e in self._truncating.encode_batch(list(texts))]
        order = np.argsort([-len(i) for i in ids], kind="stable")
        batches = [order[start : start + batch_size] for start in range(0, len(order), batch_size)]

        def run(rows: np.ndarray) -> None:
            width = max(len(ids[r]) for r in rows)
            input_ids = np.zeros((len(rows), width), dtype=np.int64)
            mask = np.zeros((len(rows), width), dtype=np.int64)
            for k, r in enumerate(rows):
                input_ids[k, : len(ids[r])] = ids[r]
                mask[k, : len(ids[r])] = 1
            feed = {"input_ids": input_ids, "attention_mask": mask}
            if "token_type_ids" in self.input_names:
                feed["token_type_ids"] = np.zeros_like(input_ids)
            hidden = self.session.run(None, feed)[0]
            out[rows] = self._pool_rows(hidden, mask)  # disjoint rows: no lock needed

        if len(batches) == 1 or self.workers == 1:
            for rows in batches:
                run(rows)
        else:
            list(self._pool.map(run, batches))  # list(): re-raise a worker's exception
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.where(norms == 0, 1.0, norms)

    def _pool_rows(self, hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
        if self.pooling == "cls":
            return hidden[:, 0]
        m = mask[..., None].astype(np.float32)
        return (hidden * m).sum(axis=1) / np.maximum(m.sum(axis=1), 1e-9)

    def count_tokens(self, text: str) -> int:
        """Word pieces of ``text``, without special tokens and not truncated."""
        return len(self.tokenizer.encode(text, add_special_tokens=False).ids)

