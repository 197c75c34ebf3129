"""Adapter serving: the one interface the answer modes call to answer with a LoRA adapter.

``AdapterServing.served(name)`` gives everything an answer needs from adapter ``name``: a
:class:`~ragtune.generate.base.Generator` that answers with it, the system prompt it was
trained with, how to read its replies (a RAFT adapter reasons before its ``Answer:``), and
whether the documents it learned from have changed since (its freshness). Adapter facts come
from the :class:`~ragtune.finetune.adapters.AdapterRegistry` only.

Which engine serves an adapter:

* ``generation.backend = "local"`` and the adapter was trained on the very GGUF file the
  workspace generates with: llama.cpp with the adapter exported once to ``adapter.gguf`` in
  its folder. It decodes ~2.5x faster than transformers on a CPU and needs ~0.5 GB instead
  of ~2.5 GB (bench/adapter_serving.py).
* ``generation.backend = "http"``: the OpenAI-compatible server at ``generation.base_url``,
  asked for the adapter by model name (its own name, or ``generation.adapter_models[name]``):
  vLLM with ``--enable-lora --lora-modules NAME=FOLDER`` (the folder ``ragtune adapters
  export NAME --format peft`` writes), llama.cpp's server with a ``model_alias`` + ``lora_path``
  model. The base model answers under ``generation.model`` (hybrid mode's stale topics).
* Otherwise transformers + PEFT (:class:`~ragtune.finetune.hf_generator.HFGenerator`), one
  base model per base shared by all its adapters, so switching adapters does not reload it.

>>> import tempfile
>>> from ragtune.config import GenerationSettings
>>> serving = AdapterServing(Path(tempfile.mkdtemp()), GenerationSettings(backend="fake"), store=None)
>>> serving.served("missing", Principal.anonymous())
Traceback (most recent call last):
...
ragtune.errors.NotFound: no finished adapter named 'missing' in ... (known: none)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ragtune.config import GenerationSettings
from ragtune.errors import RagtuneError
from ragtune.finetune.access import can_use, check_adapter_access, required_groups
from ragtune.finetune.adapters import AdapterInfo, AdapterRegistry
from ragtune.finetune.freshness import Freshness, adapter_freshness, base_identity
from ragtune.finetune.raft_quotes import final_answer, is_raft_adapter
from ragtune.generate.base import Generator
from ragtune.store.base import Store
from ragtune.types import Principal


@dataclass(frozen=True)
class ServedAdapter:
    """What answering with one adapter needs."""

    name: str
    info: AdapterInfo
    generator: Generator
    system_prompt: str | None  # None: the default system prompt (not recorded at training)
    conclusion: Callable[[str], str] | None  # the shown part of a reply (RAFT: after 'Answer:')
    freshness: Callable[[], Freshness]  # read when asked: the store changes between questions


class AdapterServing:
    """Serves the adapters of one workspace's registry (``<workspace>/adapters``)."""

    def __init__(self, adapters_root: Path, generation: GenerationSettings,
                 store: Store | None) -> None:
        self.registry = AdapterRegistry(adapters_root)
        self.generation = generation
        self.store = store
        # base model -> HFGenerator; 'lora:NAME' -> llama.cpp with that adapter's GGUF LoRA;
        # 'http:NAME' -> the server's model for that adapter
        self._generators: dict[str, Generator] = {}

    def served(self, adapter: str, principal: Principal) -> ServedAdapter:
        """Adapter ``adapter`` ready to answer ``principal``: a missing one is
        :class:`NotFound`; one trained on documents ``principal`` may not read is
        :class:`AccessDenied` (see :mod:`ragtune.finetune.access`)."""
        info = self.registry.get(adapter)
        check_adapter_access(info, principal, self.store)
        return ServedAdapter(
            name=adapter, info=info, generator=self.generator(adapter),
            system_prompt=info.system_prompt,
            conclusion=final_answer if is_raft_adapter(info) else None,
            freshness=lambda: self.freshness(adapter))

    def usable(self, adapter: str, principal: Principal) -> bool:
        """Whether ``principal`` may use ``adapter`` (to list only what a caller may pick)."""
        return can_use(required_groups(self.registry.get(adapter), self.store), principal)

    def freshness(self, adapter: str) -> Freshness:
        """Which documents ``adapter`` was trained on changed or went since."""
        return adapter_freshness(self.registry.get(adapter), self.store)

    def generator(self, adapter: str) -> Generator:
        """A generator answering with ``adapter`` (the http server, llama.cpp when it fits,
        else PEFT)."""
        if self.generation.backend == "http":
            key = f"http:{adapter}"
            if key not in self._generators:
                from ragtune.generate.http import HttpGenerator

                self._generators[key] = HttpGenerator.from_settings(self.generation, adapter=adapter)
            return self._generators[key]
        gen = self._lora_generator(adapter)
        if gen is not None:
            return gen
        from ragtune.finetune.hf_generator import HFGenerator

        info = self.registry.get(adapter)
        hf = self._generators.get(info.base_model)
        if not isinstance(hf, HFGenerator):
            g = self.generation
            hf = HFGenerator(info.base_model, adapters_root=self.registry.root,
                             max_tokens=g.max_tokens, temperature=g.temperature, threads=g.threads)
            self._generators[info.base_model] = hf
        hf.use_adapter(adapter)
        return hf

    def _lora_generator(self, adapter: str) -> Generator | None:
        """llama.cpp with the adapter's GGUF LoRA, when the adapter fits the workspace's GGUF."""
        g = self.generation
        if g.backend != "local":
            return None
        key = f"lora:{adapter}"
        if key in self._generators:
            return self._generators[key]
        from ragtune.generate.llama_cpp import lora_generator
        from ragtune.generate.models import resolve_model

        base_gguf = resolve_model(g.model)
        lora = self.registry.gguf_for(adapter, base_gguf)
        if lora is None:
            if self.registry.get(adapter).base_model_hash != base_identity(str(base_gguf)):
                return None  # trained on another base: transformers + PEFT checks and says so
            try:
                self.registry.export_gguf(adapter)
            except RagtuneError:
                return None
            lora = self.registry.gguf_for(adapter, base_gguf)
            if lora is None:
                return None
        gen = lora_generator(base_gguf, lora, name=adapter, n_ctx=g.context_tokens,
                             threads=g.threads, max_tokens=g.max_tokens, temperature=g.temperature)
        self._generators[key] = gen
        return gen
