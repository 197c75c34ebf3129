"""Which files an ingest reads: folders walked, symbolic links judged, unreadable places kept.

Rules:

- Hidden files and folders (names starting with '.') inside a folder are skipped.
- A symbolic link that resolves outside the folder being ingested (for a file named on the
  command line: outside its own folder) is refused unless ``follow_symlinks``: a link in a
  public folder must not publish a restricted file. A link that stays inside is read as its
  target (the target's path is the document's identity, so nothing is indexed twice).
- Symbolic link loops, broken links, pipes and sockets are reported, never followed.
- A folder that cannot be listed is reported as a failure and remembered in
  :attr:`Walk.unreadable`, so ``--sync`` never takes its documents for deleted files.

>>> import tempfile; from pathlib import Path
>>> d = Path(tempfile.mkdtemp()); _ = (d / "a.md").write_text("# A")
>>> (d / "loop.md").symlink_to(d / "loop.md")
>>> w = walk([d])
>>> [f.path.name for f in w.files], [problem for _, problem in w.failed]
(['a.md'], ['symbolic link loop'])
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from ragtune.ingest.guards import display_path

__all__ = ["Found", "Walk", "walk"]


@dataclass(frozen=True)
class Found:
    """A file to ingest: the path as found, its resolved target, the folder it was found
    under (resolved) and whether it is a link leading outside that folder (followed only with
    ``follow_symlinks``)."""

    path: Path
    target: Path
    root: Path
    outside: bool = False

    @property
    def source(self) -> str:
        """The document's identity: the resolved path, as valid UTF-8."""
        return display_path(self.target)


@dataclass
class Walk:
    files: list[Found] = field(default_factory=list)
    folders: list[Path] = field(default_factory=list)  # resolved folders walked (for --sync)
    failed: list[tuple[str, str]] = field(default_factory=list)  # (path shown, problem)
    unreadable: list[Path] = field(default_factory=list)  # resolved folders not fully listed
    _targets: set[Path] = field(default_factory=set, repr=False)  # each file read once

    def may_remove(self, source: str) -> bool:
        """False for a document under a folder this walk could not list (--sync keeps it)."""
        return not any(source == display_path(d) or source.startswith(display_path(d) + os.sep)
                       for d in self.unreadable)


def walk(paths: Iterable[Path], *, follow_symlinks: bool = False) -> Walk:
    """Expand files and folders into the files to ingest (see the module rules)."""
    w = Walk()
    for p in paths:
        shown = display_path(p)
        try:
            is_dir = p.is_dir()
            exists = is_dir or p.exists() or p.is_symlink()
        except OSError as exc:  # a name too long, a loop in a parent folder...
            w.failed.append((shown, f"cannot read: {exc.strerror or exc}"))
            continue
        if is_dir:
            _walk_folder(p, w, follow_symlinks)
        elif exists:
            _add_file(p, _resolved(p.parent, w, shown), w, follow_symlinks)
        else:
            w.failed.append((shown, "no such file or folder"))
    return w


def _resolved(p: Path, w: Walk, shown: str) -> Path | None:
    try:
        return p.resolve(strict=True)
    except RuntimeError:  # Python 3.11 reports a loop this way
        w.failed.append((shown, "symbolic link loop"))
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            w.failed.append((shown, "symbolic link loop"))
        elif p.is_symlink():
            w.failed.append((shown, "cannot read: broken symbolic link"))
        else:
            w.failed.append((shown, f"cannot read: {exc.strerror or exc}"))
    return None


def _add_file(p: Path, root: Path | None, w: Walk, follow: bool) -> None:
    shown = display_path(p)
    if root is None:
        return
    target = _resolved(p, w, shown)
    if target is None:
        return
    if target in w._targets:  # reached twice (a followed link to an ancestor folder)
        return
    outside = not target.is_relative_to(root)
    if outside and not follow:
        problem = (f"symbolic link to {display_path(target)}, outside {display_path(root)}: "
                   "refused (--follow-symlinks reads it)")
        w.failed.append((shown, problem))
        return
    w._targets.add(target)
    w.files.append(Found(p, target, root, outside))


def _walk_folder(top: Path, w: Walk, follow: bool) -> None:
    root = _resolved(top, w, display_path(top))
    if root is None:
        return
    w.folders.append(root)
    seen_dirs = {_dir_key(root)}

    def unreadable(exc: OSError) -> None:
        where = Path(exc.filename) if exc.filename else top
        w.failed.append((display_path(where),
                         f"cannot read folder: {exc.strerror or exc}; its documents are kept"))
        try:
            w.unreadable.append(where.resolve())
        except (OSError, RuntimeError):
            w.unreadable.append(root)

    for here, dirs, names in os.walk(top, onerror=unreadable, followlinks=follow):
        base = Path(here)
        keep = []
        for d in sorted(x for x in dirs if not x.startswith(".")):
            sub = base / d
            if not sub.is_symlink():
                keep.append(d)
                continue
            target = _resolved(sub, w, display_path(sub))
            if target is None:
                continue
            if target.is_relative_to(root):
                continue  # its files are reached through the real folder
            if not follow:
                problem = (f"symbolic link to the folder {display_path(target)}, outside "
                           f"{display_path(root)}: refused (--follow-symlinks reads it)")
                w.failed.append((display_path(sub), problem))
                continue
            key = _dir_key(target)
            if key in seen_dirs:
                w.failed.append((display_path(sub), "symbolic link loop"))
                continue
            seen_dirs.add(key)
            keep.append(d)
        dirs[:] = keep
        for n in sorted(names):
            if not n.startswith("."):
                _add_file(base / n, root, w, follow)


def _dir_key(p: Path) -> tuple[int, int]:
    st = p.stat()
    return st.st_dev, st.st_ino
