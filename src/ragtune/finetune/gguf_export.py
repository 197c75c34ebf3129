"""PEFT LoRA adapter -> GGUF LoRA file that llama.cpp loads (``--lora``, ``Llama(lora_path=)``).

Follows llama.cpp's ``convert_lora_to_gguf.py`` (checked against the copy vendored in
llama-cpp-python 0.3.36) without needing a llama.cpp checkout:

- metadata ``general.architecture`` (the base's llama.cpp architecture, e.g. ``qwen2``),
  ``general.type = "adapter"``, ``adapter.type = "lora"``, ``adapter.lora.alpha``;
- per adapted weight two tensors named after the base tensor: ``blk.{i}.attn_q.weight.lora_a``
  holding PEFT's ``lora_A`` (rank x in) and ``blk.{i}.attn_q.weight.lora_b`` holding
  ``lora_B`` (out x rank), unchanged in orientation (ggml sees ``ne = [in, rank]`` and
  ``[rank, out]``, which is what ``llama_adapter_lora_init`` checks);
- for Llama/Mistral bases, the rows of ``lora_B`` of q/k are permuted exactly as the base
  q/k weights are when converted (llama.cpp's rope layout); Qwen2/Qwen3 need nothing.

llama.cpp scales each pair by ``user_scale * alpha / rank`` (rank = the pair's own rank),
PEFT by ``alpha / rank`` or, with ``use_rslora``, ``alpha / sqrt(rank)``, with optional
per-module ``rank_pattern`` / ``alpha_pattern``. Whatever PEFT's scale is, the exporter
writes ``adapter.lora.alpha = lora_alpha`` and folds any difference into ``lora_B``, so the
GGUF applies the same ``delta W = scale * B @ A`` as PEFT at ``lora_scale = 1``.

>>> from pathlib import Path
>>> export_gguf_lora(Path("adapters/style"), Path("style.gguf"))     # doctest: +SKIP
PosixPath('style.gguf')

Not supported (a clear :class:`~ragtune.errors.InputError`): DoRA, LoRA biases,
``modules_to_save`` / full weights, embedding LoRA, and base architectures outside
:data:`ARCHITECTURES` (use llama.cpp's own converter for those).
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ragtune.errors import InputError, MissingDependency
from ragtune.jsonl import read_json_object

#: HF ``architectures[0]`` -> (llama.cpp architecture name, q/k rows permuted for rope).
ARCHITECTURES: dict[str, tuple[str, bool]] = {
    "Qwen2ForCausalLM": ("qwen2", False),
    "Qwen3ForCausalLM": ("qwen3", False),
    "LlamaForCausalLM": ("llama", True),
    "MistralForCausalLM": ("llama", True),
}

_MODEL_TYPES = {"qwen2": "Qwen2ForCausalLM", "qwen3": "Qwen3ForCausalLM",
                "llama": "LlamaForCausalLM", "mistral": "MistralForCausalLM"}
DTYPES = ("f32", "f16")
_PREFIX = "base_model.model."
_PAIR = re.compile(r"^(?P<module>.+)\.lora_(?P<ab>[AB])\.weight$")


def pattern_value(patterns: Mapping[str, Any], module: str, default: Any) -> Any:
    """PEFT's ``rank_pattern`` / ``alpha_pattern`` lookup (``peft.utils.other.get_pattern_key``).

    >>> pattern_value({"q_proj": 32}, "model.layers.0.self_attn.q_proj", 16)
    32
    >>> pattern_value({"layers.1.self_attn.q_proj": 32}, "model.layers.0.self_attn.q_proj", 16)
    16
    """
    for key, value in patterns.items():
        if re.match(rf"(.*\.)?({key})$", module):
            return value
    return default


def peft_scale(config: Mapping[str, Any], module: str, rank: int) -> float:
    """The factor PEFT multiplies ``B @ A`` by for ``module`` (``lora_alpha / r`` by default).

    >>> peft_scale({"lora_alpha": 16}, "q_proj", 8)
    2.0
    >>> peft_scale({"lora_alpha": 16, "use_rslora": True}, "q_proj", 16)
    4.0
    """
    alpha = float(pattern_value(config.get("alpha_pattern") or {}, module, config["lora_alpha"]))
    return alpha / (math.sqrt(rank) if config.get("use_rslora") else rank)


def permute_rows(weight: Any, n_head: int) -> Any:
    """Reorder rows of a q/k projection from HF's rope layout to llama.cpp's (numpy array).

    The same transform ``convert_hf_to_gguf.py`` applies to Llama's q/k weights
    (``LlamaModel.permute``); for LoRA it applies to the output side, ``lora_B``.
    """
    rows = weight.shape[0]
    return (weight.reshape(n_head, 2, rows // n_head // 2, *weight.shape[1:])
            .swapaxes(1, 2).reshape(weight.shape))


def base_config_for(adapter_dir: Path) -> dict[str, Any]:
    """The base model's ``config.json`` for an adapter folder, without loading weights.

    Looks at ``run.json``'s ``base_model_path`` (ragtune adapters), then at
    ``adapter_config.json``'s ``base_model_name_or_path`` when it is a local folder.
    """
    candidates = []
    run = adapter_dir / "run.json"
    if run.is_file():
        candidates.append(read_json_object(run).get("base_model_path"))
    candidates.append(read_json_object(adapter_dir / "adapter_config.json").get("base_model_name_or_path"))
    for c in candidates:
        if c and (Path(c) / "config.json").is_file():
            return read_json_object(Path(c) / "config.json")
    raise InputError(str(adapter_dir), "cannot find the base model's config.json (run.json "
                     "base_model_path / adapter_config.json base_model_name_or_path): pass base_config")


def _load_weights(adapter_dir: Path) -> dict[str, Any]:
    """PEFT weights as float32 numpy arrays (bf16 adapters from a GPU run included)."""
    try:
        import torch
    except ImportError:
        raise MissingDependency("torch", "train") from None
    st, binary = adapter_dir / "adapter_model.safetensors", adapter_dir / "adapter_model.bin"
    if st.is_file():
        from safetensors.torch import load_file

        tensors = load_file(str(st), device="cpu")
    elif binary.is_file():
        tensors = torch.load(str(binary), map_location="cpu", weights_only=True)
    else:
        raise InputError(str(adapter_dir), "no adapter_model.safetensors or adapter_model.bin")
    return {k: v.to(torch.float32).numpy() for k, v in tensors.items()}


def _check_config(cfg: Mapping[str, Any], where: str) -> None:
    if str(cfg.get("peft_type", "LORA")).upper() != "LORA":
        raise InputError(where, f"peft_type is {cfg.get('peft_type')!r}; only LORA adapters export to GGUF")
    unsupported = [(cfg.get("use_dora"), "use_dora (DoRA)"), (cfg.get("lora_bias"), "lora_bias"),
                   (cfg.get("modules_to_save"), "modules_to_save"),
                   (cfg.get("trainable_token_indices"), "trainable_token_indices")]
    named = [name for on, name in unsupported if on]
    if named:
        raise InputError(where, f"{', '.join(named)} cannot be expressed as a llama.cpp LoRA; "
                         "merge the adapter instead (ragtune adapters merge)")


def gguf_lora_tensors(weights: Mapping[str, Any], lora_config: Mapping[str, Any],
                      base_config: Mapping[str, Any]) -> tuple[str, list[tuple[str, Any]]]:
    """``(llama.cpp architecture, [(gguf tensor name, float32 array), ...])`` for PEFT weights.

    ``lora_B`` already carries any scale difference between PEFT and llama.cpp (see the
    module docstring), so llama.cpp must be told ``adapter.lora.alpha = lora_alpha``.
    """
    import gguf

    hf_arch = (base_config.get("architectures") or [None])[0] or _MODEL_TYPES.get(
        str(base_config.get("model_type")), f"model_type {base_config.get('model_type')}")
    if hf_arch not in ARCHITECTURES:
        raise InputError(f"base architecture {hf_arch}",
                         f"GGUF export supports {', '.join(sorted(ARCHITECTURES))}; for others run "
                         "llama.cpp's convert_lora_to_gguf.py --base BASE_FOLDER ADAPTER_FOLDER")
    arch, permute = ARCHITECTURES[hf_arch]
    model_arch = next(k for k, v in gguf.MODEL_ARCH_NAMES.items() if v == arch)
    names = gguf.get_tensor_name_map(model_arch, int(base_config["num_hidden_layers"]))
    n_head = int(base_config["num_attention_heads"])
    n_kv = int(base_config.get("num_key_value_heads") or n_head)

    pairs: dict[str, dict[str, Any]] = {}
    for key, array in weights.items():
        m = _PAIR.match(key)
        if not m:
            raise InputError(key, "not a lora_A/lora_B weight (embedding LoRA, biases, DoRA "
                             "magnitudes and full weights cannot be exported to a GGUF LoRA)")
        module = m["module"].removeprefix(_PREFIX)
        pairs.setdefault(module, {})[m["ab"]] = array

    alpha = float(lora_config["lora_alpha"])
    out: list[tuple[str, Any]] = []
    for module in sorted(pairs):
        a, b = pairs[module].get("A"), pairs[module].get("B")
        if a is None or b is None:
            raise InputError(module, "LoRA pair is missing lora_A or lora_B")
        gname = names.get_name(module + ".weight", try_suffixes=(".weight",))
        if gname is None:
            raise InputError(module, f"no llama.cpp {arch} tensor corresponds to this module")
        if gname == "output.weight" and base_config.get("tie_word_embeddings"):
            raise InputError(module, "lm_head is tied to the embeddings in this base model; "
                             "llama.cpp has no separate output tensor to adapt")
        rank = a.shape[0]
        if a.ndim != 2 or b.ndim != 2 or b.shape[1] != rank:
            raise InputError(module, f"lora_A {a.shape} and lora_B {b.shape} do not form a rank-{rank} pair")
        # llama.cpp multiplies by alpha / rank; PEFT by peft_scale: fold the ratio into B.
        factor = peft_scale(lora_config, module, rank) * rank / alpha
        if factor != 1.0:
            b = b * factor
        if permute and gname.endswith(("attn_q.weight", "attn_k.weight")):
            b = permute_rows(b, n_head if gname.endswith("attn_q.weight") else n_kv)
        out.append((gname + ".lora_a", a))
        out.append((gname + ".lora_b", b))
    if not out:
        raise InputError("adapter", "holds no LoRA weights")
    return arch, out


def export_gguf_lora(adapter_dir: Path, out: Path, *, base_config: Mapping[str, Any] | None = None,
                     dtype: str = "f32", name: str | None = None,
                     metadata: Mapping[str, str] | None = None) -> Path:
    """Write the PEFT adapter in ``adapter_dir`` as a GGUF LoRA file ``out`` (atomically).

    ``base_config`` is the base model's ``config.json`` content (default: found through
    ``run.json`` / ``adapter_config.json``, see :func:`base_config_for`). ``dtype`` is
    ``f32`` (llama.cpp's default, exact) or ``f16`` (half the size). ``metadata`` adds
    ``ragtune.*`` string keys (llama.cpp ignores unknown keys).
    """
    try:
        import gguf
        import numpy as np
    except ImportError:
        raise MissingDependency("gguf", "train") from None
    if dtype not in DTYPES:
        raise InputError(dtype, f"GGUF LoRA dtype must be one of {', '.join(DTYPES)}")
    adapter_dir, out = Path(adapter_dir), Path(out)
    config_path = adapter_dir / "adapter_config.json"
    lora_config = read_json_object(config_path)
    _check_config(lora_config, str(config_path))
    base = dict(base_config) if base_config is not None else base_config_for(adapter_dir)
    arch, tensors = gguf_lora_tensors(_load_weights(adapter_dir), lora_config, base)

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.partial")
    np_dtype = np.float32 if dtype == "f32" else np.float16
    writer = gguf.GGUFWriter(str(tmp), arch)
    try:
        writer.add_type(gguf.GGUFType.ADAPTER)
        writer.add_string(gguf.Keys.Adapter.TYPE, "lora")
        writer.add_float32(gguf.Keys.Adapter.LORA_ALPHA, float(lora_config["lora_alpha"]))
        writer.add_name(name or adapter_dir.name)
        writer.add_file_type(gguf.LlamaFileType.ALL_F32 if dtype == "f32" else gguf.LlamaFileType.MOSTLY_F16)
        writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
        for key, value in (metadata or {}).items():
            writer.add_string(f"ragtune.{key}", str(value))
        for tname, array in tensors:
            writer.add_tensor(tname, np.ascontiguousarray(array, dtype=np_dtype))
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
    except BaseException:
        writer.close()
        tmp.unlink(missing_ok=True)
        raise
    writer.close()
    os.replace(tmp, out)
    return out


def read_gguf_lora(path: Path) -> dict[str, Any]:
    """Metadata and tensors of a GGUF LoRA file (for checks and tests).

    Returns ``{"architecture", "type", "adapter_type", "alpha", "metadata": {ragtune.* keys},
    "tensors": {name: numpy array in PEFT orientation}}``.
    """
    import gguf

    reader = gguf.GGUFReader(str(path))

    def scalar(field: Any) -> Any:  # ReaderField.contents() exists only in newer gguf
        raw = field.parts[field.data[0]]
        return bytes(raw).decode("utf-8") if field.types[0] == gguf.GGUFValueType.STRING else raw[0].item()

    def value(key: str) -> Any:
        field = reader.get_field(key)
        return None if field is None else scalar(field)

    meta = {k.removeprefix("ragtune."): scalar(f) for k, f in reader.fields.items()
            if k.startswith("ragtune.")}
    return {
        "architecture": value("general.architecture"), "type": value("general.type"),
        "adapter_type": value(gguf.Keys.Adapter.TYPE), "alpha": value(gguf.Keys.Adapter.LORA_ALPHA),
        "metadata": meta,
        "tensors": {t.name: t.data.reshape([int(n) for n in reversed(t.shape)]) for t in reader.tensors},
    }
