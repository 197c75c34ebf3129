"""The ONNX Runtime path of LocalEmbedder: agreement with torch, contract, cache handling."""

from __future__ import annotations

import json
import logging
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from ragtune.embed import onnx as onnx_mod
from ragtune.embed.local import LocalEmbedder
from ragtune.embed.onnx import (
    UnsupportedModel,
    _build_atomically,
    _is_intact,
    _pooling_mode,
    folder_digest,
)

LONG = "The quarterly report covers revenue, costs and the outlook for next year. " * 50
TEXTS = [
    "How many days of annual leave can I carry over?",
    "Employees may carry up to five unused vacation days into the next year.",
    "The printer on the third floor needs a new toner cartridge.",
    "",
    "Ünïcödé text — with dashes, emoji 🙂 and numbers 3.14!",
    LONG,  # ~750 word pieces: both runtimes must cut it at 512 the same way
    LONG[:1200],
]


# --- units: no model needed ---------------------------------------------------------


def test_unknown_runtime_is_refused() -> None:
    with pytest.raises(ValueError, match="runtime must be onnx or torch"):
        LocalEmbedder(runtime="tensorflow")


def test_folder_digest_follows_content(tmp_path: Path) -> None:
    (tmp_path / "a.json").write_text("{}")
    first = folder_digest(tmp_path)
    assert folder_digest(tmp_path) == first
    (tmp_path / "a.json").write_text('{"x": 1}')
    assert folder_digest(tmp_path) != first


def test_atomic_build_leaves_nothing_when_the_build_fails(tmp_path: Path) -> None:
    target = tmp_path / "m" / "model.onnx"

    def broken(tmp: Path) -> None:
        tmp.write_bytes(b"half a model")
        raise RuntimeError("export died")

    with pytest.raises(RuntimeError, match="export died"):
        _build_atomically(target, broken)
    assert list(target.parent.iterdir()) == []


def test_built_file_is_intact_until_changed(tmp_path: Path) -> None:
    target = tmp_path / "model.onnx"
    _build_atomically(target, lambda tmp: tmp.write_bytes(b"a model"))
    assert _is_intact(target)
    target.write_bytes(b"a modeL")
    assert not _is_intact(target)


def _write_modules(folder: Path, pooling: dict[str, bool], extra: list[str] = ()) -> Path:  # type: ignore[assignment]
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
    ] + [{"idx": 2, "name": "2", "path": "2", "type": f"sentence_transformers.models.{t}"} for t in extra]
    (folder / "1_Pooling").mkdir(parents=True)
    (folder / "1_Pooling" / "config.json").write_text(json.dumps(pooling))
    (folder / "modules.json").write_text(json.dumps(modules))
    return folder


def test_pooling_modes_read_from_the_model_folder(tmp_path: Path) -> None:
    assert _pooling_mode(tmp_path) == "mean"  # plain HF folder: sentence-transformers' default
    cls = _write_modules(tmp_path / "cls", {"pooling_mode_cls_token": True})
    assert _pooling_mode(cls) == "cls"
    mx = _write_modules(tmp_path / "max", {"pooling_mode_max_tokens": True})
    with pytest.raises(UnsupportedModel, match="pooling"):
        _pooling_mode(mx)
    dense = _write_modules(tmp_path / "dense", {"pooling_mode_mean_tokens": True}, ["Dense"])
    with pytest.raises(UnsupportedModel, match="Dense"):
        _pooling_mode(dense)


# --- the real packaged model ------------------------------------------------------------


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("ragtune-cache") / "onnx"


@pytest.fixture(scope="module")
def embedders(cache: Path) -> dict[str, LocalEmbedder]:
    """torch fp32 (the reference), ONNX fp32 and ONNX int8, built once for the module."""
    out = {
        "torch": LocalEmbedder(runtime="torch", quantize=False, device="cpu"),
        "fp32": LocalEmbedder(quantize=False, cache_dir=cache, device="cpu"),
        "int8": LocalEmbedder(cache_dir=cache, device="cpu"),
    }
    for e in out.values():
        e.embed_query("warm up")
    return out


@pytest.mark.integration
def test_default_is_onnx_int8(embedders: dict[str, LocalEmbedder]) -> None:
    e = embedders["int8"]
    assert e.active_runtime == "onnx" and e.quantize
    assert LocalEmbedder().runtime == "onnx" and LocalEmbedder().quantize


@pytest.mark.integration
def test_graph_leaves_out_the_slow_fused_cpu_kernels(embedders: dict[str, LocalEmbedder],
                                                     tmp_path: Path) -> None:
    # SkipLayerNorm and BiasGelu were 30% of the int8 model's time (see onnx._fuse); the
    # saved graph must not hold them, nor the graph the session optimises at load.
    import onnx
    import onnxruntime as ort

    from ragtune.embed.onnx import _SLOW_FUSIONS

    path = embedders["int8"]._onnx.path
    saved = {n.op_type for n in onnx.load(str(path)).graph.node}
    assert "QAttention" in saved and "LayerNormalization" in saved and "Gelu" in saved
    options = ort.SessionOptions()
    options.optimized_model_filepath = str(tmp_path / "loaded.onnx")
    ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"],
                         disabled_optimizers=_SLOW_FUSIONS)
    loaded = {n.op_type for n in onnx.load(str(tmp_path / "loaded.onnx")).graph.node}
    for ops in (saved, loaded):
        assert not ops & {"SkipLayerNormalization", "BiasGelu"}, ops


@pytest.mark.integration
@pytest.mark.parametrize(("key", "floor"), [("fp32", 0.999), ("int8", 0.98)])
def test_matches_torch_fp32(embedders: dict[str, LocalEmbedder], key: str, floor: float) -> None:
    ref = embedders["torch"].embed_documents(TEXTS)
    got = embedders[key].embed_documents(TEXTS)
    cos = (ref * got).sum(axis=1)
    real = [i for i, t in enumerate(TEXTS) if t]
    assert cos[real].min() > floor, cos
    # The empty text is only [CLS] [SEP]: int8 rounding weighs most there (~0.973 measured).
    assert cos[TEXTS.index("")] > floor - 0.02, cos


@pytest.mark.integration
@pytest.mark.parametrize("key", ["fp32", "int8"])
def test_contract(embedders: dict[str, LocalEmbedder], key: str) -> None:
    e = embedders[key]
    v = e.embed_documents(TEXTS)
    assert v.shape == (len(TEXTS), 384) and v.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(v, e.embed_documents(TEXTS))  # same batch, same bits
    q = e.embed_query(TEXTS[0])
    assert q.shape == (384,) and q.dtype == np.float32
    np.testing.assert_allclose(q, e.embed_documents([TEXTS[0]])[0], atol=1e-5)
    assert float(q @ v[0]) > 0.97  # in a batch: int8's per-batch activation scale moves it
    assert e.embed_documents([]).shape == (0, 384)


@pytest.mark.integration
def test_parallel_batches_match_one_at_a_time(cache: Path) -> None:
    """Batches run two at a time land in input order, bit-identical to a serial run."""
    texts = [f"{t} (variant {i})" for i in range(5) for t in TEXTS if t]
    parallel = LocalEmbedder(cache_dir=cache, batch_size=2, threads=2, device="cpu")
    serial = LocalEmbedder(cache_dir=cache, batch_size=2, threads=1, device="cpu")
    got = parallel.embed_documents(texts)
    assert parallel._onnx.workers == 2 and serial.active_runtime == "onnx"
    assert len(texts) > 2 * 2  # more batches than workers: the pool really runs
    np.testing.assert_array_equal(got, serial.embed_documents(texts))
    for i in (0, len(texts) // 2, len(texts) - 1):  # row i is text i's vector
        assert float(got[i] @ serial.embed_documents([texts[i]])[0]) > 0.97


@pytest.mark.integration
def test_count_tokens_needs_no_torch_model(embedders: dict[str, LocalEmbedder]) -> None:
    e = embedders["int8"]
    assert e.count_tokens("hello world") == 2
    assert e.count_tokens("word " * 700) == 700  # not capped at 512
    assert e._model is None  # the SentenceTransformer was never loaded
    assert e.count_tokens(LONG) == embedders["torch"].count_tokens(LONG)


@pytest.mark.integration
def test_second_construction_reuses_the_cache(
    embedders: dict[str, LocalEmbedder], cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = sorted(cache.rglob("*.onnx"))
    assert [f.name for f in files] == ["model.int8.onnx", "model.onnx"]
    before = {f: f.stat().st_mtime_ns for f in files}

    def no_rebuild(*args: object) -> None:
        raise AssertionError("the cached model was rebuilt")

    monkeypatch.setattr(onnx_mod, "export_onnx", no_rebuild)
    monkeypatch.setattr(onnx_mod, "quantize_onnx", no_rebuild)
    monkeypatch.setitem(sys.modules, "onnx", None)  # building would need it; loading must not
    e = LocalEmbedder(cache_dir=cache, device="cpu")
    assert e.active_runtime == "onnx"
    np.testing.assert_array_equal(
        e.embed_documents(TEXTS[:3]), embedders["int8"].embed_documents(TEXTS[:3])
    )
    assert {f: f.stat().st_mtime_ns for f in files} == before


@pytest.mark.integration
def test_corrupt_cached_file_is_rebuilt(
    embedders: dict[str, LocalEmbedder], cache: Path, tmp_path: Path
) -> None:
    copy = tmp_path / "onnx"
    shutil.copytree(cache, copy)
    int8 = next(copy.rglob("model.int8.onnx"))
    with int8.open("r+b") as f:  # flip bytes in the middle of the weights
        f.seek(int8.stat().st_size // 2)
        f.write(b"\xff" * 64)
    assert not _is_intact(int8)
    e = LocalEmbedder(cache_dir=copy, device="cpu")
    assert e.active_runtime == "onnx" and _is_intact(int8)
    np.testing.assert_allclose(
        e.embed_documents(TEXTS[:3]), embedders["int8"].embed_documents(TEXTS[:3]), atol=1e-6
    )


@pytest.mark.integration
def test_without_onnx_and_no_cache_falls_back_to_torch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setitem(sys.modules, "onnx", None)
    e = LocalEmbedder(quantize=False, cache_dir=tmp_path, device="cpu")
    with caplog.at_level(logging.WARNING, logger="ragtune.embed.local"):
        assert e.active_runtime == "torch"
    assert "torch instead of ONNX Runtime" in caplog.text and "'onnx' package" in caplog.text
    assert e.embed_query("hello").shape == (384,)
