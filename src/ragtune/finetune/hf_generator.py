"""HFGenerator: a transformers chat model that serves LoRA adapters by name, switching in place.

The base model loads once (on first use); adapters are added to it with PEFT multi-adapter
support, so moving between adapters (or back to the plain base model) costs a flag flip,
not a reload:

>>> g = HFGenerator("qwen2.5-0.5b", adapters_root=Path(".ragtune/adapters"))   # doctest: +SKIP
>>> g.complete([{"role": "user", "content": "Return window?"}]).text  # doctest: +SKIP
>>> g.use_adapter("support-style")  # first use reads the adapter      # doctest: +SKIP
>>> g.use_adapter(None)             # later switches load nothing      # doctest: +SKIP

``base_model`` is anything :func:`ragtune.finetune.train.load_base_model` accepts: the
packaged name ``qwen2.5-0.5b``, a .gguf file (dequantised once into a cached HF folder), a
model folder, or a Hugging Face id already in the local cache. Prompts are rendered with
the tokenizer's chat template; decoding is greedy at temperature 0.

One instance generates one reply at a time: a lock serialises callers, and a half-read
stream holds it until it is exhausted or closed (as in the llama.cpp backend).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ragtune.errors import ConfigError, ModelError
from ragtune.generate.base import Completion

_CURRENT: Any = object()  # "keep whatever adapter is active" for HFGenerator.activated


class HFGenerator:
    """A Generator on a transformers model, with named LoRA adapters from a registry folder."""

    def __init__(self, base_model: str, *, adapters_root: Path | None = None,
                 max_tokens: int = 200, temperature: float = 0.0, threads: int = 0) -> None:
        if max_tokens < 1:
            raise ConfigError(f"max_tokens must be >= 1, got {max_tokens}")
        if temperature < 0:
            raise ConfigError(f"temperature must be >= 0, got {temperature}")
        self.base_model = str(base_model)
        self.adapters_root = Path(adapters_root) if adapters_root is not None else None
        self.max_tokens = max_tokens
        self.temperature = temperature
        self.threads = threads
        self.adapter: str | None = None
        self.last_completion: Completion | None = None
        self._base: Any = None  # ragtune.finetune.train.BaseModel
        self._peft: Any = None  # PeftModel wrapping the base model, once an adapter is loaded
        self._loaded: dict[str, Path] = {}
        self._lock = threading.RLock()

    @property
    def name(self) -> str:
        return f"hf:{self.base_model}" + (f"+{self.adapter}" if self.adapter else "")

    # ------------------------------------------------------------------ model
    @property
    def base(self) -> Any:
        """The loaded :class:`~ragtune.finetune.train.BaseModel` (loaded on first access)."""
        if self._base is None:
            with self._lock:
                if self._base is None:
                    from ragtune.finetune.train import load_base_model

                    if self.threads > 0:
                        import torch

                        torch.set_num_threads(self.threads)  # process-wide: torch has no per-model setting
                    self._base = load_base_model(self.base_model)
                    self._base.model.eval()
        return self._base

    @property
    def tokenizer(self) -> Any:
        return self.base.tokenizer

    @property
    def loaded_adapters(self) -> list[str]:
        return sorted(self._loaded)

    def _registry(self) -> Any:
        from ragtune.finetune.adapters import AdapterRegistry

        if self.adapters_root is None:
            raise ConfigError("this generator has no adapters_root, so it cannot load adapters by name")
        return AdapterRegistry(self.adapters_root)

    def _check_base(self, name: str, folder: Path) -> None:
        """Refuse an adapter trained on another base model: its weights would be meaningless."""
        try:
            run = json.loads((folder / "run.json").read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as e:
            raise ModelError(f"{folder / 'run.json'}: cannot read the adapter's run record: {e}") from None
        theirs, ours = run.get("base_model_hash"), self.base.hash
        same_folder = bool(run.get("base_model_path")) and (
            Path(run["base_model_path"]).resolve() == Path(self.base.path).resolve())
        if theirs != ours and not same_folder:
            raise ModelError(
                f"adapter '{name}' was trained on base model '{run.get('base_model')}' ({theirs}), "
                f"but this generator serves '{self.base_model}' ({ours}); load it with its own base")

    def use_adapter(self, name: str | None) -> None:
        """Generate with adapter ``name`` from now on (None: the plain base model).

        The first use of a name reads its weights into the shared base model; later
        switches only change which adapter is active.
        """
        with self._lock:
            if name is None:
                self.adapter = None
                return
            if name not in self._loaded:
                folder = self._registry().get(name).path
                self._check_base(name, folder)
                try:
                    if self._peft is None:
                        from peft import PeftModel

                        self._peft = PeftModel.from_pretrained(
                            self.base.model, str(folder), adapter_name=name).eval()
                    else:
                        self._peft.load_adapter(str(folder), adapter_name=name)
                except (OSError, ValueError, RuntimeError, KeyError) as e:
                    raise ModelError(f"{folder}: cannot load adapter '{name}': {e}") from None
                self._loaded[name] = folder
            self._peft.set_adapter(name)
            self.adapter = name

    @contextmanager
    def activated(self, adapter: str | None = _CURRENT) -> Iterator[Any]:
        """Hold the lock and yield the model to call with ``adapter`` active (default: current).

        The previous adapter is restored on exit. Evaluation uses this to score base and
        adapter on the same loaded weights.
        """
        with self._lock:
            before = self.adapter
            if adapter is not _CURRENT:
                self.use_adapter(adapter)
            try:
                if self._peft is None:
                    yield self.base.model
                elif self.adapter is None:
                    with self._peft.disable_adapter():
                        yield self._peft
                else:
                    yield self._peft
            finally:
                if adapter is not _CURRENT:
                    self.use_adapter(before)

    # ------------------------------------------------------------------ generation
    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def complete(self, messages: list[dict[str, str]], *, max_tokens: int | None = None,
                 temperature: float | None = None) -> Completion:
        for _ in self.stream(messages, max_tokens=max_tokens, temperature=temperature):
            pass  # the stream sets last_completion when it ends
        assert self.last_completion is not None
        return self.last_completion

    def stream(self, messages: list[dict[str, str]], *, max_tokens: int | None = None,
               temperature: float | None = None) -> Iterator[str]:
        """Yield text pieces as they are decoded; ``last_completion`` is set at the end."""
        from transformers import StoppingCriteriaList, TextIteratorStreamer

        tok = self.tokenizer
        limit = self.max_tokens if max_tokens is None else max_tokens
        temp = self.temperature if temperature is None else temperature
        with self.activated() as model:
            start = time.perf_counter()
            try:
                enc = tok.apply_chat_template(messages, add_generation_prompt=True,
                                              return_tensors="pt", return_dict=True)
            except Exception as e:  # noqa: BLE001 — template errors come in many types
                raise ModelError(f"{self.base_model}: cannot render the chat template: {e}") from None
            enc = {k: v.to(model.device) for k, v in enc.items()}
            n_prompt = int(enc["input_ids"].shape[1])
            streamer = TextIteratorStreamer(tok, skip_prompt=True, skip_special_tokens=True)
            kwargs: dict[str, Any] = dict(enc, max_new_tokens=limit, streamer=streamer,
                                          pad_token_id=tok.pad_token_id or tok.eos_token_id)
            kwargs |= {"do_sample": True, "temperature": temp} if temp > 0 else {
                "do_sample": False, "temperature": None, "top_p": None, "top_k": None}
            result: dict[str, Any] = {}
            stop = threading.Event()  # set when the reader closes the stream early
            kwargs["stopping_criteria"] = StoppingCriteriaList([_stop_when(stop)])

            def run() -> None:
                try:
                    result["ids"] = model.generate(**kwargs)
                except BaseException as e:  # noqa: BLE001 — re-raised in the caller's thread
                    result["error"] = e
                    streamer.end()  # unblock the reader: generate died before finishing

            worker = threading.Thread(target=run, name="hf-generate", daemon=True)
            worker.start()
            first: float | None = None
            pieces: list[str] = []
            try:
                for piece in streamer:
                    if not piece:
                        continue
                    if first is None:
                        first = time.perf_counter() - start
                    pieces.append(piece)
                    yield piece
            finally:
                stop.set()  # no-op after a full read; cuts generation short on close()
                worker.join()
            if "error" in result:
                raise ModelError(f"{self.name}: generation failed: {result['error']}") from None
            total = time.perf_counter() - start
            n_out = int(result["ids"].shape[1]) - n_prompt
            timings = {"first_token_s": total if first is None else first, "total_s": total}
            if first is not None and n_out > 1 and total > first:
                timings["tokens_per_s"] = (n_out - 1) / (total - first)
            self.last_completion = Completion(text="".join(pieces).strip(), prompt_tokens=n_prompt,
                                              completion_tokens=n_out, timings=timings,
                                              finish_reason="length" if n_out >= limit else "stop")


def _stop_when(event: threading.Event) -> Any:
    """A transformers stopping criterion that fires when ``event`` is set."""
    import torch
    from transformers import StoppingCriteria

    class StopWhen(StoppingCriteria):
        def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
            return torch.full((input_ids.shape[0],), event.is_set(), dtype=torch.bool,
                              device=input_ids.device)

    return StopWhen()
