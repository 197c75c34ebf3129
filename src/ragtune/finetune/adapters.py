"""The adapter registry: finished LoRA adapters under one folder, with their lineage.

An adapter is a folder ``<root>/<name>/`` holding PEFT files (``adapter_config.json`` +
weights) and ``run.json`` (base model and hash, dataset hash, options, metrics, lineage)
written by :func:`ragtune.finetune.train.train_adapter`. A folder without both files (an
unfinished ``<name>.partial`` run, anything else) is not an adapter.

>>> import tempfile, pathlib
>>> reg = AdapterRegistry(pathlib.Path(tempfile.mkdtemp()))
>>> reg.list()
[]
>>> reg.get("Bad Name")
Traceback (most recent call last):
...
ragtune.errors.InputError: Bad Name: adapter names use only a-z, 0-9, '_' and '-' (at most 64 characters)

Export formats:

- ``peft``: a plain PEFT folder: ``adapter_config.json``, ``adapter_model.safetensors``,
  the lineage ``run.json``, the model card ``README.md`` and ``loss.png`` (not the GGUF copy
  or anything else). Load it with ``PeftModel.from_pretrained(base, folder)`` or serve it
  with vLLM (``--enable-lora --lora-modules NAME=folder``); small (a few MB) but needs the
  base model.
- ``merged``: the base model with the adapter merged into its weights
  (``merge_and_unload``) plus the tokenizer: a standalone Hugging Face model folder that
  any transformers-compatible server loads without PEFT.
- ``gguf``: a GGUF LoRA file for llama.cpp (:mod:`ragtune.finetune.gguf_export`); by default
  ``<adapter folder>/adapter.gguf``, where :meth:`AdapterRegistry.gguf_for` finds it so the
  local llama.cpp generator can answer with the adapter.
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ragtune.errors import InputError, NotFound
from ragtune.types import file_sha256

_NAME = re.compile(r"[a-z0-9_-]{1,64}")


def check_name(name: str) -> str:
    """Return ``name`` if it is a valid adapter name, else raise :class:`InputError`."""
    if not _NAME.fullmatch(name):
        raise InputError(name, "adapter names use only a-z, 0-9, '_' and '-' (at most 64 characters)")
    return name


@dataclass(frozen=True)
class AdapterInfo:
    """A finished adapter as listed by the registry."""

    name: str
    base_model: str
    dataset: dict[str, Any]
    metrics: dict[str, Any]
    created_at: float
    path: Path
    lineage: Any = None
    base_model_hash: str = ""  # identity of the exact base weights it was trained on

    @property
    def system_prompt(self) -> str | None:
        """The system prompt it was trained with ("" = none); None when not recorded (older
        adapters), meaning the default one."""
        if "system_prompt" not in self.dataset:
            return None
        return self.dataset.get("system_prompt") or ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "base_model": self.base_model, "dataset": self.dataset,
            "metrics": self.metrics, "created_at": self.created_at, "path": str(self.path),
            "lineage": self.lineage,
        }


def _info(folder: Path) -> AdapterInfo | None:
    run_file, cfg = folder / "run.json", folder / "adapter_config.json"
    if not (run_file.is_file() and cfg.is_file()) or not _NAME.fullmatch(folder.name):
        return None
    try:
        run = json.loads(run_file.read_text(encoding="utf-8"))
    except json.JSONDecodeError:
        return None
    metrics = {k: run.get(k) for k in ("val_loss", "steps", "train_tokens_per_s", "duration_s",
                                       "peak_rss_mb", "stopped_early")}
    return AdapterInfo(
        name=folder.name, base_model=str(run.get("base_model", "")),
        dataset=dict(run.get("dataset") or {}), metrics=metrics,
        created_at=float(run.get("created_at", 0.0)), path=folder, lineage=run.get("lineage"),
        base_model_hash=str(run.get("base_model_hash") or ""),
    )


class AdapterRegistry:
    """Finished adapters in ``root``: list, get, remove, merge, export."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def path_for(self, name: str) -> Path:
        """Where ``train_adapter`` should write an adapter called ``name``."""
        return self.root / check_name(name)

    def list(self) -> list[AdapterInfo]:
        if not self.root.is_dir():
            return []
        found = (_info(p) for p in sorted(self.root.iterdir()) if p.is_dir())
        return [i for i in found if i is not None]

    def get(self, name: str) -> AdapterInfo:
        info = _info(self.path_for(name))
        if info is None:
            known = ", ".join(i.name for i in self.list()) or "none"
            raise NotFound(f"no finished adapter named {name!r} in {self.root} (known: {known})")
        return info

    def run_digest(self, name: str) -> str | None:
        """sha256 of the adapter's ``run.json`` (None if it has none): changes whenever the
        adapter is retrained, so evaluation runs can tell one training from another."""
        run_file = self.path_for(name) / "run.json"
        return file_sha256(run_file) if run_file.exists() else None

    def remove(self, name: str) -> None:
        shutil.rmtree(self.get(name).path)

    def load(self, name: str) -> tuple[Any, Any]:
        """``(PeftModel, tokenizer)`` for inference: the base model with the adapter on top."""
        from peft import PeftModel

        from ragtune.finetune.train import load_base_model

        info = self.get(name)
        base = load_base_model(info.base_model)
        model = PeftModel.from_pretrained(base.model, str(info.path))
        return model.eval(), base.tokenizer

    def merge(self, name: str, out_dir: Path) -> Path:
        """Merge the adapter into its base model; save model + tokenizer to ``out_dir``."""
        out_dir = Path(out_dir)
        if out_dir.exists() and any(out_dir.iterdir()):
            raise InputError(str(out_dir), "output folder exists and is not empty")
        model, tokenizer = self.load(name)
        merged = model.merge_and_unload()
        tmp = out_dir.with_name(out_dir.name + ".partial")
        shutil.rmtree(tmp, ignore_errors=True)
        merged.save_pretrained(str(tmp))
        tokenizer.save_pretrained(str(tmp))
        run = json.loads((self.get(name).path / "run.json").read_text(encoding="utf-8"))
        (tmp / "ragtune_merged.json").write_text(json.dumps({"adapter": name, "run": run}, indent=2))
        if out_dir.exists():
            out_dir.rmdir()
        tmp.rename(out_dir)
        return out_dir

    def export(self, name: str, out_dir: Path | None = None, fmt: str = "peft") -> Path:
        """Write the adapter as ``peft`` (folder copy), ``merged`` (standalone model) or
        ``gguf`` (llama.cpp LoRA file; ``out_dir`` may then be a ``.gguf`` path or omitted)."""
        if fmt == "gguf":
            return self.export_gguf(name, out_dir)
        if fmt not in {"peft", "merged"}:
            raise InputError(fmt, "export format must be 'peft', 'merged' or 'gguf'")
        if out_dir is None:
            raise InputError(fmt, f"exporting as {fmt} needs an output folder")
        if fmt == "merged":
            return self.merge(name, out_dir)
        out_dir = Path(out_dir)
        if out_dir.exists() and any(out_dir.iterdir()):
            raise InputError(str(out_dir), "output folder exists and is not empty")
        src = self.get(name).path
        files = [src / f for f in PEFT_FILES if (src / f).is_file()]
        if not any(f.name.startswith("adapter_model.") for f in files):
            raise InputError(str(src), "no adapter_model.safetensors (or .bin) to export")
        tmp = out_dir.with_name(out_dir.name + ".partial")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        for f in files:
            shutil.copy2(f, tmp / f.name)
        if out_dir.exists():
            out_dir.rmdir()
        tmp.rename(out_dir)
        return out_dir

    def export_gguf(self, name: str, out: Path | None = None, *, dtype: str = "f32") -> Path:
        """Write the adapter as a GGUF LoRA for llama.cpp and return its path.

        ``out`` is a ``.gguf`` file, a folder (``<folder>/<name>.gguf``) or None:
        ``<adapter folder>/adapter.gguf``. The file records the base model and its hash
        (``ragtune.base_model``, ``ragtune.base_model_hash``) beside llama.cpp's keys.
        """
        from ragtune.finetune.gguf_export import base_config_for, export_gguf_lora

        info = self.get(name)
        if out is None:
            target = info.path / ADAPTER_GGUF
        else:
            target = Path(out) if Path(out).suffix == ".gguf" else Path(out) / f"{name}.gguf"
        run = json.loads((info.path / "run.json").read_text(encoding="utf-8"))
        try:
            base_config = base_config_for(info.path)
        except InputError:  # the cached HF copy of the base is gone: rebuild it (never downloads)
            from ragtune.finetune.train import resolve_base_folder

            folder, _ = resolve_base_folder(info.base_model)
            base_config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
        meta = {"adapter": name, "base_model": info.base_model,
                "base_model_hash": str(run.get("base_model_hash", ""))}
        return export_gguf_lora(info.path, target, base_config=base_config, dtype=dtype,
                                name=name, metadata=meta)

    def gguf_for(self, name: str, base_gguf: Path) -> Path | None:
        """``<adapter folder>/adapter.gguf`` if it exists and was trained on ``base_gguf``.

        "Trained on" means ``run.json``'s ``base_model_hash`` is the sha256 of that very
        file (the packaged model, or any .gguf used as ``--base``): then llama.cpp applies
        the adapter to exactly the weights it learned on. Otherwise None: serve the adapter
        with transformers + PEFT instead. The hash is read from a ``<file>.sha256`` sidecar
        when there is one (the packaged model has), else computed once per file (~1 s/GB).
        """
        info = self.get(name)
        lora = info.path / ADAPTER_GGUF
        if not lora.is_file():
            return None
        run = json.loads((info.path / "run.json").read_text(encoding="utf-8"))
        return lora if run.get("base_model_hash") == "sha256:" + _gguf_sha256(Path(base_gguf)) else None


ADAPTER_GGUF = "adapter.gguf"
# What a PEFT loader (PeftModel.from_pretrained, vLLM's LoRA loader) reads, and the lineage.
PEFT_FILES = ("adapter_config.json", "adapter_model.safetensors", "adapter_model.bin",
              "run.json", "README.md", "loss.png")
_SHA_CACHE: dict[tuple[str, int, int], str] = {}


def _gguf_sha256(path: Path) -> str:
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _SHA_CACHE:
        sidecar = path.with_name(path.name + ".sha256")
        digest = sidecar.read_text(encoding="ascii").strip() if sidecar.is_file() else ""
        if not re.fullmatch(r"[0-9a-f]{64}", digest):
            digest = file_sha256(path)
        _SHA_CACHE[key] = digest
    return _SHA_CACHE[key]
