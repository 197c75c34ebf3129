"""LocalEmbedder with the real packaged all-MiniLM-L6-v2 (offline) on torch, fp32 and int8.

The ONNX Runtime path (the default) is tested in test_onnx.py, against these torch vectors.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from ragtune.embed.local import LocalEmbedder, resolve_model_path
from ragtune.errors import ModelError

QUERY = "How many days of annual leave can I carry over?"
CLOSE = "Employees may carry up to five unused vacation days into the next year."
FAR = "The printer on the third floor needs a new toner cartridge."


def test_import_is_cheap_and_construction_loads_nothing() -> None:
    code = (
        "import sys, ragtune.embed.local as m; e = m.LocalEmbedder(); "
        "assert e.dimension == 384 and e._model is None; "
        "print('torch' in sys.modules, 'sentence_transformers' in sys.modules, "
        "'onnxruntime' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False", "False"]


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="batch_size"):
        LocalEmbedder(batch_size=0)


def test_a_file_is_not_a_model_folder(tmp_path) -> None:  # type: ignore[no-untyped-def]
    f = tmp_path / "model.bin"
    f.write_bytes(b"x")
    with pytest.raises(ModelError, match="expected a model folder"):
        resolve_model_path(str(f))


@pytest.fixture(scope="module")
def models() -> dict[bool, LocalEmbedder]:
    """Both torch variants, loaded once for the module (loading costs seconds)."""
    out = {q: LocalEmbedder(runtime="torch", quantize=q, device="cpu") for q in (True, False)}
    for e in out.values():
        e.embed_query("warm up")
    return out


@pytest.mark.integration
@pytest.mark.parametrize("quantize", [True, False])
def test_close_sentences_score_higher(models: dict[bool, LocalEmbedder], quantize: bool) -> None:
    e = models[quantize]
    q = e.embed_query(QUERY)
    close, far = e.embed_documents([CLOSE, FAR])
    assert q @ close > 0.4
    assert q @ close > q @ far + 0.2


@pytest.mark.integration
def test_int8_stays_close_to_fp32(models: dict[bool, LocalEmbedder]) -> None:
    texts = [QUERY, CLOSE, FAR]
    cos = (models[True].embed_documents(texts) * models[False].embed_documents(texts)).sum(1)
    assert cos.min() > 0.95


@pytest.mark.integration
def test_long_text_is_not_cut_at_256_tokens(models: dict[bool, LocalEmbedder]) -> None:
    e = models[False]
    head = "The quarterly report covers revenue and costs. " * 30  # ~270 tokens
    a, b = e.embed_documents([head + "Penguins live in Antarctica.", head + "Rust is fast."])
    assert e._model.max_seq_length == 512
    assert a @ b < 0.9999  # the differing tail was seen


@pytest.mark.integration
def test_count_tokens_uses_the_word_piece_tokenizer(models: dict[bool, LocalEmbedder]) -> None:
    e = models[True]
    assert e.count_tokens("hello world") == 2
    assert e.count_tokens("unbelievably") > 1  # split into word pieces
    assert e.count_tokens("word " * 700) == 700  # not capped at the model's 512


@pytest.mark.integration
def test_unknown_hf_id_fails_offline_with_a_clear_error() -> None:
    for runtime in ("onnx", "torch"):  # onnx finds no cached folder and falls back to torch
        with pytest.raises(ModelError, match="no-such-org/no-such-model.*offline"):
            LocalEmbedder("no-such-org/no-such-model", runtime=runtime).embed_query("x")
