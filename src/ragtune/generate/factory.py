"""make_generator: the configured Generator backend, chosen by ``generation.backend``.

>>> from ragtune.config import GenerationSettings
>>> make_generator(GenerationSettings(backend="fake")).name
'fake'
"""

from __future__ import annotations

from pathlib import Path

from ragtune.config import GenerationSettings
from ragtune.generate.base import Generator


def make_generator(settings: GenerationSettings, *, lora_path: Path | None = None,
                   cache_dir: Path | None = None) -> Generator:
    """Build the backend ``settings`` names: ``local`` (llama.cpp), ``http`` or ``fake``.

    ``lora_path`` is a GGUF LoRA adapter for the local backend; ``cache_dir`` is where the
    packaged model is assembled (default: see :mod:`ragtune.generate.models`). Heavy
    imports happen inside the chosen backend, and the local model loads on first use.
    """
    if settings.backend == "fake":
        from ragtune.generate.fake import FakeGenerator

        return FakeGenerator()
    if settings.backend == "http":
        from ragtune.generate.http import HttpGenerator

        return HttpGenerator(settings.base_url, settings.model, api_key=settings.api_key,
                             timeout=settings.timeout_s, max_tokens=settings.max_tokens,
                             temperature=settings.temperature)
    from ragtune.generate.llama_cpp import LlamaCppGenerator
    from ragtune.generate.models import resolve_model

    return LlamaCppGenerator(resolve_model(settings.model, cache_dir), n_ctx=settings.context_tokens,
                             threads=settings.threads, max_tokens=settings.max_tokens,
                             temperature=settings.temperature, lora_path=lora_path)
