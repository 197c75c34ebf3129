"""LlamaCppGenerator: argument checks always; real generation on the packaged Qwen 0.5B GGUF.

The integration tests use the packaged model from the default cache (assembled once,
~5 s, then reused) and skip when llama-cpp-python is not installed.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from ragtune.config import GenerationSettings
from ragtune.errors import MissingDependency, ModelError
from ragtune.generate.base import Generator
from ragtune.generate.citations import attribute_uncited, check_answer, parse_markers
from ragtune.generate.factory import make_generator
from ragtune.generate.llama_cpp import (
    LlamaCppGenerator,
    lora_generator,
    missing_cpu_features,
    runnable_here,
)
from ragtune.generate.models import resolve_model
from ragtune.generate.prompts import NOT_FOUND_TEXT, build_rag_messages
from ragtune.types import Chunk, Hit


def _hit(n: int, title: str, section: str, text: str) -> Hit:
    chunk = Chunk(id=f"ch_{n}", doc_id=f"doc_{n}", text=text, section=section, ordinal=0, tokens=40)
    return Hit(chunk=chunk, score=1.0 / n, document=f"{title.lower()}.md", title=title, rank=n)


HITS = [
    _hit(1, "Shipping", "Delivery times", "Standard shipping takes 3 to 7 business days. "
         "Express shipping costs $14.99 and arrives the next business day."),
    _hit(2, "Returns", "Return window", "Customers may return most items within 30 days of "
         "delivery for a full refund. Gift cards are final sale and cannot be returned."),
    _hit(3, "Warranty", "Coverage", "Electronics carry a 2-year limited warranty covering "
         "manufacturing defects. Accidental damage is not covered."),
]


def test_missing_model_file(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="nope.gguf: GGUF model file not found"):
        LlamaCppGenerator(tmp_path / "nope.gguf")


def test_missing_lora_and_bad_args(tmp_path: Path) -> None:
    model = tmp_path / "m.gguf"
    model.write_bytes(b"GGUF")
    with pytest.raises(ModelError, match="lora.gguf: GGUF LoRA adapter file not found"):
        LlamaCppGenerator(model, lora_path=tmp_path / "lora.gguf")
    with pytest.raises(ModelError, match="max_tokens"):
        LlamaCppGenerator(model, max_tokens=0)
    g = LlamaCppGenerator(model, threads=0)
    assert g.threads >= 1 and g.name == "m" and isinstance(g, Generator)


def test_lora_generator_checks_the_adapter_file(tmp_path: Path) -> None:
    model = tmp_path / "m.gguf"
    model.write_bytes(b"GGUF")
    with pytest.raises(ModelError, match="style.gguf: GGUF LoRA adapter file not found"):
        lora_generator(model, tmp_path / "style.gguf")
    (tmp_path / "style.gguf").write_bytes(b"PK\x03\x04")
    with pytest.raises(ModelError, match="style.gguf: not a GGUF file"):
        lora_generator(model, tmp_path / "style.gguf")
    folder = tmp_path / "support-style"
    folder.mkdir()
    (folder / "adapter.gguf").write_bytes(b"GGUF")
    g = lora_generator(model, folder / "adapter.gguf", scale=0.5, max_tokens=9)
    assert (g.name, g.lora_scale, g.max_tokens) == ("m+support-style", 0.5, 9)
    assert lora_generator(model, folder / "adapter.gguf", name="x").name == "m+x"


def test_missing_llama_cpp_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model = tmp_path / "m.gguf"
    model.write_bytes(b"GGUF")
    monkeypatch.setitem(sys.modules, "llama_cpp", None)  # makes `import llama_cpp` fail
    with pytest.raises(MissingDependency, match=r"llama-cpp-python.*ragtune\[local\]"):
        LlamaCppGenerator(model).complete([{"role": "user", "content": "hi"}])


def _require_llama_cpp() -> None:
    """Skip unless llama-cpp-python is installed and compiled for this CPU."""
    pytest.importorskip("llama_cpp")
    problem = runnable_here()
    if problem:
        pytest.skip(problem)


def test_missing_cpu_features() -> None:
    info = "CPU : SSE3 = 1 | AVX = 1 | AVX_VNNI = 1 | AVX2 = 1 | AVX512_BF16 = 0 | LLAMAFILE = 1 |"
    assert missing_cpu_features(info, {"pni", "avx", "avx2"}) == ["AVX_VNNI"]
    assert missing_cpu_features(info, {"pni", "avx", "avx2", "avx_vnni"}) == []


def test_unloadable_model(tmp_path: Path) -> None:
    _require_llama_cpp()
    model = tmp_path / "broken.gguf"
    model.write_bytes(b"GGUF" + b"\x00" * 64)
    with pytest.raises(ModelError, match="broken.gguf: llama.cpp cannot load the model"):
        LlamaCppGenerator(model).count_tokens("hi")


# ---------------------------------------------------------------- real model

@pytest.fixture(scope="module")
def qwen() -> Iterator[LlamaCppGenerator]:
    _require_llama_cpp()
    yield LlamaCppGenerator(resolve_model("qwen2.5-0.5b"), n_ctx=2048, max_tokens=80)


@pytest.mark.integration
@pytest.mark.slow
def test_grounded_answer_cites_its_source(qwen: LlamaCppGenerator) -> None:
    c = qwen.complete(build_rag_messages("How many days do customers have to return an item?", HITS))
    assert "30" in c.text
    # The 0.5B model often answers from the right source but forgets its [n] marker; the
    # pipeline attributes such sentences to the source that supports them.
    text, _ = attribute_uncited(c.text, HITS)
    assert 2 in parse_markers(text), text
    cites, _ = check_answer(text, HITS)
    assert any(x.n == 2 and x.supported for x in cites), (c.text, cites)
    assert c.prompt_tokens > qwen.count_tokens(HITS[0].chunk.text) * 3
    assert 0 < c.completion_tokens <= 80
    assert 0 < c.timings["first_token_s"] < c.timings["total_s"]


@pytest.mark.integration
@pytest.mark.slow
def test_stream_matches_complete_and_refuses_off_topic(qwen: LlamaCppGenerator) -> None:
    msgs = build_rag_messages("What is the CEO's favourite colour?", HITS)
    pieces = list(qwen.stream(msgs, max_tokens=30))
    assert len(pieces) > 1
    streamed = qwen.last_completion
    assert streamed is not None and streamed.text == "".join(pieces)
    again = qwen.complete(msgs, max_tokens=30)  # greedy: the same text again
    assert again.text == streamed.text
    assert again.prompt_tokens == streamed.prompt_tokens
    # Either the model refuses, or whatever it invents is flagged as unsupported.
    _, checks = check_answer(again.text, HITS)
    assert NOT_FOUND_TEXT in again.text or (checks and not any(x.supported for x in checks)), again.text


@pytest.mark.integration
def test_prompt_longer_than_context(qwen: LlamaCppGenerator) -> None:
    small = LlamaCppGenerator(qwen.model_path, n_ctx=128)
    with pytest.raises(ModelError, match=r"prompt is \d+ tokens but the context window .* is \d+"):
        small.complete([{"role": "user", "content": "word " * 600}])
    assert qwen.count_tokens("hello world") == 2


@pytest.mark.integration
def test_factory_builds_local(qwen: LlamaCppGenerator) -> None:
    g = make_generator(GenerationSettings(backend="local", model=str(qwen.model_path),
                                          context_tokens=1024, max_tokens=7, threads=1))
    assert isinstance(g, LlamaCppGenerator)
    assert (g.n_ctx, g.max_tokens, g.threads, g.temperature) == (1024, 7, 1, 0.0)


@pytest.mark.integration
def test_lora_for_another_architecture_is_a_clear_error(qwen: LlamaCppGenerator, tmp_path: Path) -> None:
    """llama.cpp refuses a LoRA made for a Llama base; the error names the adapter file."""
    gguf = pytest.importorskip("gguf")
    import numpy as np

    lora = tmp_path / "llama-lora.gguf"
    w = gguf.GGUFWriter(str(lora), "llama")
    w.add_type(gguf.GGUFType.ADAPTER)
    w.add_string(gguf.Keys.Adapter.TYPE, "lora")
    w.add_float32(gguf.Keys.Adapter.LORA_ALPHA, 16.0)
    w.add_tensor("blk.0.attn_q.weight.lora_a", np.zeros((8, 896), np.float32))
    w.add_tensor("blk.0.attn_q.weight.lora_b", np.zeros((896, 8), np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    g = lora_generator(qwen.model_path, lora, n_ctx=256, threads=1)
    with pytest.raises(ModelError, match=r"llama-lora.gguf: llama.cpp cannot apply this LoRA adapter"):
        g.count_tokens("hi")


@pytest.mark.integration
@pytest.mark.slow
def test_a_stream_closed_early_frees_the_model_and_reports_length(qwen: LlamaCppGenerator) -> None:
    msgs = build_rag_messages("How many days do customers have to return an item?", HITS)
    stream = qwen.stream(msgs, max_tokens=40)
    first = [next(stream) for _ in range(3)]
    stream.close()  # what the answer pipeline does once the answer is complete
    assert len(first) == 3
    cut = qwen.complete(msgs, max_tokens=4)  # the lock was released: a new generation runs
    assert cut.finish_reason == "length" and cut.completion_tokens <= 4
    assert qwen.complete(msgs, max_tokens=200).finish_reason == "stop"
