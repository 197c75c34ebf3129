"""LlamaCppGenerator: a local GGUF model through llama-cpp-python, CPU by default.

The prompt is built with the chat template stored in the GGUF file. Decoding is greedy
(temperature 0) unless asked otherwise, so the same question gives the same answer.

>>> from ragtune.generate.models import resolve_model
>>> g = LlamaCppGenerator(resolve_model("qwen2.5-0.5b"))              # doctest: +SKIP
>>> g.complete([{"role": "user", "content": "Say hi."}]).timings      # doctest: +SKIP
{'first_token_s': 0.21, 'total_s': 0.6, 'tokens_per_s': 14.2}

A fine-tuned LoRA adapter exported to GGUF (``ragtune adapters export NAME --format gguf``)
is applied on top of the base model with ``lora_path`` (see :func:`lora_generator`).

The model loads on first use (about 1 s for the packaged 0.5B model). One instance
generates one reply at a time (llama.cpp contexts are not thread-safe); a lock serialises
callers, and a half-read stream holds it until it is exhausted or closed.
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ragtune.errors import MissingDependency, ModelError
from ragtune.generate.base import Completion

_TOO_LONG = re.compile(r"Requested tokens \((\d+)\) exceed context window of (\d+)")

# llama.cpp feature name (llama_print_system_info) -> Linux /proc/cpuinfo flag.
_CPU_FLAGS = {
    "SSE3": "pni", "SSSE3": "ssse3", "AVX": "avx", "AVX_VNNI": "avx_vnni", "AVX2": "avx2",
    "F16C": "f16c", "FMA": "fma", "BMI2": "bmi2", "AVX512": "avx512f",
    "AVX512_VBMI": "avx512vbmi", "AVX512_VNNI": "avx512_vnni", "AVX512_BF16": "avx512_bf16",
    "AMX_INT8": "amx_int8",
}


def missing_cpu_features(system_info: str, cpu_flags: set[str]) -> list[str]:
    """Instruction sets llama.cpp was compiled with that this CPU lacks.

    A build with ``GGML_NATIVE=OFF`` and explicit ``-DGGML_AVX_VNNI=ON`` (for example) dies
    with SIGILL on a CPU without AVX-VNNI, killing the whole process; checking first turns
    that into an error message.

    >>> missing_cpu_features("CPU : AVX = 1 | AVX_VNNI = 1 | AVX512_BF16 = 0 |", {"avx"})
    ['AVX_VNNI']
    """
    compiled = re.findall(r"([A-Z0-9_]+) = 1", system_info)
    return [f for f in compiled if f in _CPU_FLAGS and _CPU_FLAGS[f] not in cpu_flags]


def _linux_cpu_flags() -> set[str] | None:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.partition(":")[2].split())
    except OSError:
        pass
    return None  # not Linux (or no flags line): nothing to check against


def runnable_here() -> str | None:
    """Why the installed llama-cpp-python cannot run on this CPU, or None if it can.

    Raises MissingDependency when llama-cpp-python is not installed at all.
    """
    try:
        import llama_cpp
    except ImportError:
        raise MissingDependency("llama-cpp-python", "local") from None
    flags = _linux_cpu_flags()
    if flags is None:
        return None
    missing = missing_cpu_features(llama_cpp.llama_print_system_info().decode("utf-8", "replace"), flags)
    if not missing:
        return None
    off = " ".join(f"-DGGML_{f}=OFF" for f in missing)
    return (
        f"llama-cpp-python was compiled for CPU instructions this machine lacks "
        f"({', '.join(missing)}) and would crash; reinstall it for this CPU: "
        f'CMAKE_ARGS="-DGGML_NATIVE=OFF {off} ..." pip install --force-reinstall '
        "--no-cache-dir llama-cpp-python==0.3.36 (or build with -DGGML_NATIVE=ON)"
    )


class LlamaCppGenerator:
    """A Generator running a GGUF chat model in-process with llama.cpp."""

    def __init__(self, model_path: Path, *, n_ctx: int = 4096, threads: int = 0,
                 max_tokens: int = 200, temperature: float = 0.0,
                 lora_path: Path | None = None, lora_scale: float = 1.0) -> None:
        self.model_path = Path(model_path)
        if not self.model_path.is_file():
            raise ModelError(f"{self.model_path}: GGUF model file not found")
        if lora_path is not None and not Path(lora_path).is_file():
            raise ModelError(f"{lora_path}: GGUF LoRA adapter file not found")
        if n_ctx < 64:
            raise ModelError(f"n_ctx must be >= 64, got {n_ctx}")
        if max_tokens < 1:
            raise ModelError(f"max_tokens must be >= 1, got {max_tokens}")
        self.n_ctx = n_ctx
        self.threads = threads or os.cpu_count() or 1
        self.max_tokens = max_tokens
        self.temperature = temperature
        self.lora_path = Path(lora_path) if lora_path else None
        self.lora_scale = lora_scale
        self.name = self.model_path.stem + (f"+{self.lora_path.stem}" if self.lora_path else "")
        self.last_completion: Completion | None = None
        self._llm: Any = None
        self._lock = threading.RLock()

    # ------------------------------------------------------------------ model
    @property
    def llm(self) -> Any:
        """The loaded ``llama_cpp.Llama`` (loaded on first access)."""
        if self._llm is None:
            with self._lock:
                if self._llm is None:
                    self._llm = self._load()
        return self._llm

    def _load(self) -> Any:
        try:
            from llama_cpp import Llama
        except ImportError:
            raise MissingDependency("llama-cpp-python", "local") from None
        problem = runnable_here()
        if problem:
            raise ModelError(problem)
        try:
            llm = Llama(
                model_path=str(self.model_path),
                n_ctx=self.n_ctx,
                n_threads=self.threads,
                n_threads_batch=self.threads,
                lora_path=str(self.lora_path) if self.lora_path else None,
                lora_scale=self.lora_scale,
                verbose=False,
            )
        except (ValueError, RuntimeError, OSError) as e:
            if self.lora_path and "LoRA" in str(e):
                raise ModelError(
                    f"{self.lora_path}: llama.cpp cannot apply this LoRA adapter to "
                    f"{self.model_path.name} (not a GGUF LoRA, or made for another base model "
                    "or architecture): re-export it with ragtune adapters export NAME --format gguf"
                ) from None
            raise ModelError(f"{self.model_path}: llama.cpp cannot load the model: {e}") from None
        # llama-cpp-python 0.3.36 compares the adapter pointer with None, so an adapter that
        # llama.cpp rejects (wrong architecture or shapes) comes back as a NULL pointer and
        # the model silently answers without it. A NULL ctypes pointer is falsy: check it.
        if self.lora_path and not getattr(llm, "_lora_adapter", True):
            llm.close()
            raise ModelError(
                f"{self.lora_path}: llama.cpp cannot apply this LoRA adapter to "
                f"{self.model_path.name} ({llm.metadata.get('general.architecture', '?')}): it "
                "was made for another base model or architecture; export it from an adapter "
                "trained on this model (ragtune adapters export NAME --format gguf)")
        return llm

    def count_tokens(self, text: str) -> int:
        """Tokens of ``text`` in the model's own vocabulary (no BOS token)."""
        return len(self.llm.tokenize(text.encode("utf-8"), add_bos=False, special=False))

    # ------------------------------------------------------------------ generation
    def complete(self, messages: list[dict[str, str]], *, max_tokens: int | None = None,
                 temperature: float | None = None) -> Completion:
        for _ in self.stream(messages, max_tokens=max_tokens, temperature=temperature):
            pass  # the stream sets last_completion (text, counts, timings) when it ends
        if self.last_completion is None:  # pragma: no cover - stream always sets it
            raise ModelError(f"{self.model_path.name}: generation returned nothing")
        return self.last_completion

    def stream(self, messages: list[dict[str, str]], *, max_tokens: int | None = None,
               temperature: float | None = None) -> Iterator[str]:
        """Yield text pieces (about one per token); ``last_completion`` is set at the end."""
        llm = self.llm
        with self._lock:
            start = time.perf_counter()
            first: float | None = None
            prompt_tokens = 0
            pieces: list[str] = []
            finish: str | None = None
            chunks = llm.create_chat_completion(
                messages=messages,
                stream=True,
                max_tokens=self.max_tokens if max_tokens is None else max_tokens,
                temperature=self.temperature if temperature is None else temperature,
            )
            try:
                for chunk in chunks:
                    finish = chunk["choices"][0].get("finish_reason") or finish
                    piece = chunk["choices"][0]["delta"].get("content")
                    if not piece:
                        continue
                    if first is None:
                        first = time.perf_counter() - start
                        # The prompt has just been evaluated and the first token sampled
                        # (not yet evaluated), so the context holds exactly the prompt.
                        prompt_tokens = llm.n_tokens
                    pieces.append(piece)
                    yield piece
            except ValueError as e:
                raise self._context_error(e) from None
            finally:
                if hasattr(chunks, "close"):
                    chunks.close()  # a reader that stopped early ends llama.cpp's generation too
            total = time.perf_counter() - start
            text = "".join(pieces)
            n_out = self.count_tokens(text) if text else 0
            timings = {"first_token_s": total if first is None else first, "total_s": total}
            if first is not None and n_out > 1 and total > first:
                timings["tokens_per_s"] = (n_out - 1) / (total - first)
            self.last_completion = Completion(
                text=text,
                prompt_tokens=prompt_tokens or llm.n_tokens,
                completion_tokens=n_out,
                timings=timings,
                finish_reason=finish,
            )

    def _context_error(self, e: ValueError) -> ModelError:
        m = _TOO_LONG.search(str(e))
        if m:
            return ModelError(
                f"{self.model_path.name}: the prompt is {m.group(1)} tokens but the context "
                f"window (n_ctx, generation.context_tokens) is {m.group(2)}: give fewer or "
                "shorter sources (retrieval.top_k) or raise generation.context_tokens"
            )
        return ModelError(f"{self.model_path.name}: generation failed: {e}")


def lora_generator(model_path: Path, adapter_gguf: Path, *, name: str | None = None,
                   scale: float = 1.0, **options: Any) -> LlamaCppGenerator:
    """A :class:`LlamaCppGenerator` answering with a GGUF LoRA adapter on a GGUF base model.

    ``adapter_gguf`` is what ``ragtune adapters export NAME --format gguf`` writes (by default
    ``<workspace>/adapters/NAME/adapter.gguf``; ``AdapterRegistry.gguf_for`` finds it and
    checks it was trained on ``model_path``). ``scale`` multiplies the adapter's effect
    (1.0 = as trained, like PEFT); ``options`` are LlamaCppGenerator's (n_ctx, threads,
    max_tokens, temperature). ``name`` (default: the adapter file's folder) becomes part
    of :attr:`LlamaCppGenerator.name`. Each generator holds its own copy of the base model
    in memory (llama-cpp-python does not memory-map the model when a LoRA is given).

    >>> g = lora_generator(resolve_model("qwen2.5-0.5b"),                  # doctest: +SKIP
    ...                    Path(".ragtune/adapters/support-style/adapter.gguf"))
    >>> g.name                                                           # doctest: +SKIP
    'qwen2.5-coder-0.5b-instruct-q4_k_m+support-style'
    """
    adapter_gguf = Path(adapter_gguf)
    if not adapter_gguf.is_file():
        raise ModelError(f"{adapter_gguf}: GGUF LoRA adapter file not found")
    with open(adapter_gguf, "rb") as f:
        if f.read(4) != b"GGUF":
            raise ModelError(f"{adapter_gguf}: not a GGUF file (it does not start with 'GGUF')")
    gen = LlamaCppGenerator(model_path, lora_path=adapter_gguf, lora_scale=scale, **options)
    label = name or (adapter_gguf.parent.name if adapter_gguf.stem == "adapter" else adapter_gguf.stem)
    gen.name = f"{gen.model_path.stem}+{label}"
    return gen
