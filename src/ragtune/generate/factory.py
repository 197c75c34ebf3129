"""Build the generator that ``[generation] backend`` names, from the ``GENERATORS`` registry.

Built in: ``local`` (llama.cpp on a GGUF file, the packaged Qwen by default), ``http`` (any
OpenAI-compatible chat completions server), ``fake`` (scripted, for tests). More register
through the ``ragtune.generators`` entry point group (see :mod:`ragtune.registry`).

>>> from ragtune.config import GenerationSettings
>>> make_generator(GenerationSettings(backend="fake")).name
'fake'
"""

from __future__ import annotations

from pathlib import Path

from ragtune.config import GenerationSettings
from ragtune.generate.base import Generator
from ragtune.registry import Registry

GENERATORS: Registry[Generator] = Registry("generation", "ragtune.generators")


@GENERATORS.register("fake")
def _fake(settings: GenerationSettings, *, lora_path: Path | None = None,
          cache_dir: Path | None = None) -> Generator:
    from ragtune.generate.fake import FakeGenerator

    return FakeGenerator()


@GENERATORS.register("http")
def _http(settings: GenerationSettings, *, lora_path: Path | None = None,
          cache_dir: Path | None = None) -> Generator:
    from ragtune.generate.http import HttpGenerator

    return HttpGenerator.from_settings(settings)


@GENERATORS.register("local")
def _local(settings: GenerationSettings, *, lora_path: Path | None = None,
           cache_dir: Path | None = None) -> Generator:
    from ragtune.generate.llama_cpp import LlamaCppGenerator
    from ragtune.generate.models import resolve_model

    return LlamaCppGenerator(resolve_model(settings.model, cache_dir), n_ctx=settings.context_tokens,
                             threads=settings.threads, max_tokens=settings.max_tokens,
                             temperature=settings.temperature, lora_path=lora_path)


def make_generator(settings: GenerationSettings, *, lora_path: Path | None = None,
                   cache_dir: Path | None = None) -> Generator:
    """Build the backend ``settings`` names.

    ``lora_path`` is a GGUF LoRA adapter for the local backend; ``cache_dir`` is where the
    packaged model is assembled (default: see :mod:`ragtune.generate.models`). Heavy
    imports happen inside the chosen backend, and the local model loads on first use.
    """
    return GENERATORS.create(settings.backend, settings, lora_path=lora_path, cache_dir=cache_dir)
