"""Which files of a folder are documents, and which are left out and why.

A documentation folder is not only documents: images, stylesheets, scripts and fonts sit
next to the pages. Walking a folder, a file is

- **ignored** when an ignore file says so: ``.gitignore`` and ``.ragtuneignore`` files in
  the folder and its subfolders, with git's rules (pathspec's ``GitIgnoreSpec``: a deeper
  file overrides a shallower one, ``!pattern`` re-includes, ``dir/`` matches folders, a file
  in an ignored folder cannot be re-included); ``.ragtuneignore`` is read after
  ``.gitignore`` in the same folder, so it can re-include what git ignores. ``--exclude``
  patterns act like a ``.ragtuneignore`` at the top of each folder walked. Ignore files
  above the folder walked are not read.
- **skipped** when no loader reads its type (``.png``, ``.css``, ``.js``...): counted per
  type, never a failure. ``[ingest] text_types = [".rst"]`` reads a type as plain text.
- hidden (a name starting with '.'): left out silently, as before.

A file named on the command line is not checked against ignore files (it was asked for),
but a type no loader reads is skipped the same way. :func:`ragtune.ingest.walk.walk` applies
these rules while it walks:

>>> import tempfile
>>> from ragtune.ingest.walk import walk
>>> d = Path(tempfile.mkdtemp())
>>> for name in ("a.md", "logo.png", "site.css", "notes.rst", "drafts/b.md", "drafts/keep.md"):
...     (d / name).parent.mkdir(exist_ok=True); _ = (d / name).write_text("# x")
>>> _ = (d / ".ragtuneignore").write_text("drafts/*\\n!drafts/keep.md\\n")
>>> w = walk([d])
>>> [f.path.relative_to(d).as_posix() for f in w.files]
['a.md', 'drafts/keep.md']
>>> w.left_out.ignored, w.left_out.ignored_folders, sorted(w.left_out.skipped.items())
(1, 0, [('.css', 1), ('.png', 1), ('.rst', 1)])
>>> [f.path.name for f in walk([d], text_types=[".rst"], exclude=["drafts/"]).files]
['a.md', 'notes.rst']
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ragtune.ingest.loaders import SUPPORTED_EXTENSIONS

IGNORE_FILES = (".gitignore", ".ragtuneignore")

# Families of types that are clearly not documents, for the summary line only.
FAMILIES: dict[str, frozenset[str]] = {
    "images": frozenset({".png", ".jpg", ".jpeg", ".gif", ".svg", ".webp", ".ico", ".bmp",
                         ".tif", ".tiff", ".avif", ".heic", ".psd", ".drawio"}),
    "stylesheets": frozenset({".css", ".scss", ".sass", ".less", ".styl"}),
    "scripts": frozenset({".js", ".mjs", ".cjs", ".ts", ".tsx", ".jsx", ".map", ".wasm"}),
    "fonts": frozenset({".woff", ".woff2", ".ttf", ".otf", ".eot"}),
    "media": frozenset({".mp3", ".mp4", ".wav", ".ogg", ".webm", ".mov", ".avi", ".mkv",
                        ".flac", ".m4a"}),
    "archives": frozenset({".zip", ".gz", ".tgz", ".tar", ".bz2", ".xz", ".7z", ".rar",
                           ".jar", ".whl"}),
    "binaries": frozenset({".exe", ".dll", ".so", ".dylib", ".bin", ".o", ".a", ".pyc",
                           ".class", ".db", ".sqlite", ".lock"}),
}


def document_types(text_types: Iterable[str] = ()) -> frozenset[str]:
    """Suffixes ragtune ingests: those with a loader plus ``text_types``."""
    return SUPPORTED_EXTENSIONS | {_suffix(t) for t in text_types}


def _suffix(t: str) -> str:
    t = t.strip().lower()
    return t if t.startswith(".") else f".{t}"


def type_of(path: Path) -> str:
    """A file's type as counted: its lower-case suffix."""
    return path.suffix.lower() or "(no extension)"


@dataclass
class Selection:
    """How many files a walk left out: files and folders ``ignored`` by ignore files or
    ``--exclude`` (an ignored folder is not walked, so its files are not counted), files
    ``skipped`` per type no loader reads."""

    ignored: int = 0
    ignored_folders: int = 0
    skipped: Counter[str] = field(default_factory=Counter)

    def to_dict(self) -> dict[str, Any]:
        return {"ignored_files": self.ignored, "ignored_folders": self.ignored_folders,
                "skipped_types": dict(sorted(self.skipped.items()))}

    def summary(self) -> str | None:
        """One line for people, or None when nothing was left out.

        >>> Selection(ignored=2, skipped=Counter({".png": 3, ".css": 1, ".rst": 2})).summary()
        'skipped 6 files that are not documents (3 images, 2 .rst, 1 stylesheets); ignored 2 files (.gitignore, .ragtuneignore, --exclude)'
        """
        parts = []
        if self.skipped:
            families: Counter[str] = Counter()
            for t, n in self.skipped.items():
                family = next((f for f, types in FAMILIES.items() if t in types), t)
                families[family] += n
            shown = ", ".join(f"{n} {f}" for f, n in
                              sorted(families.items(), key=lambda fn: (-fn[1], fn[0])))
            parts.append(f"skipped {sum(self.skipped.values())} files that are not documents "
                         f"({shown})")
        if self.ignored or self.ignored_folders:
            what = [f"{n} {word}{'' if n == 1 else 's'}" for n, word in
                    ((self.ignored, "file"), (self.ignored_folders, "folder")) if n]
            parts.append(f"ignored {' and '.join(what)} (.gitignore, .ragtuneignore, --exclude)")
        return "; ".join(parts) or None

    def hint(self) -> str | None:
        """How to read the skipped types that may be text, or None.

        >>> Selection(skipped=Counter({".png": 3, ".rst": 2})).hint()
        'to read .rst files as plain text, add text_types = [".rst"] under [ingest] in ragtune.toml'
        """
        textual = sorted(t for t in self.skipped
                         if t.startswith(".") and not any(t in f for f in FAMILIES.values()))
        if not textual:
            return None
        listed = ", ".join(f'"{t}"' for t in textual)
        return (f"to read {', '.join(textual)} files as plain text, add text_types = [{listed}] "
                "under [ingest] in ragtune.toml")



class IgnoreRules:
    """The ignore files met on the way down one walked folder: call :meth:`enter` for each
    folder (top-down) before asking :meth:`ignored` about what is in it."""

    def __init__(self, top: Path, exclude: Sequence[str]) -> None:
        from pathspec import GitIgnoreSpec

        self.top = top
        self.specs: list[tuple[Path, Any]] = []  # (folder, spec), shallowest first
        if exclude:
            self.specs.append((top, GitIgnoreSpec.from_lines(exclude)))

    def enter(self, folder: Path) -> None:
        from pathspec import GitIgnoreSpec

        for name in IGNORE_FILES:
            f = folder / name
            if f.is_file():
                try:
                    lines = f.read_text(encoding="utf-8", errors="replace").splitlines()
                except OSError:
                    continue
                self.specs.append((folder, GitIgnoreSpec.from_lines(lines)))

    def ignored(self, path: Path, is_dir: bool) -> bool:
        verdict = False
        for folder, spec in self.specs:
            if not path.is_relative_to(folder):
                continue
            rel = path.relative_to(folder).as_posix() + ("/" if is_dir else "")
            include = spec.check_file(rel).include
            if include is not None:
                verdict = include
        return verdict
