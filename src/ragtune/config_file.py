"""Edit a workspace's ``ragtune.toml`` in place: users, their groups and the admins.

The file is read and written with tomlkit, which keeps comments, blank lines and the order
of everything it does not touch. A change is checked by loading the result as
:class:`~ragtune.config.Settings` before the file is replaced (atomically), so a command can
never leave a ragtune.toml that the next command refuses.

>>> import tempfile
>>> path = Path(tempfile.mkdtemp()) / "ragtune.toml"
>>> _ = path.write_text("# my settings\\n[access]\\nadmins = []\\n\\n[access.users]\\n")
>>> add_user(path, "ana", ["hr"])
(['hr'], False)
>>> print(path.read_text())
# my settings
[access]
admins = []
<BLANKLINE>
[access.users]
ana = ["hr"]
<BLANKLINE>
>>> remove_user(path, "ana") is None
True
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ragtune.config import Settings
from ragtune.errors import ConfigError, InputError, NotFound


def _load(path: Path) -> Any:
    import tomlkit
    from tomlkit.exceptions import TOMLKitError

    try:
        return tomlkit.parse(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise ConfigError(f"{path}: cannot read: {e.strerror or e}") from None
    except TOMLKitError as e:
        raise ConfigError(f"{path}: not valid TOML: {e}") from None


def _save(path: Path, doc: Any) -> None:
    import tomlkit

    text = tomlkit.dumps(doc)
    Settings.from_dict(doc.unwrap(), source=str(path))  # refuse to write what would not load
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _access(doc: Any) -> tuple[Any, Any]:
    """The ``[access]`` table and its ``users`` table, created when missing."""
    import tomlkit

    if "access" not in doc:
        doc.add("access", tomlkit.table())
    access = doc["access"]
    if "users" not in access:
        access.add("users", tomlkit.table())
    return access, access["users"]


def _check_name(kind: str, value: str) -> str:
    value = value.strip()
    if not value:
        raise InputError(kind, "must not be empty")
    if any(c.isspace() for c in value) or any(ord(c) < 32 for c in value):
        raise InputError(kind, f"must not contain spaces or control characters, got {value!r}")
    return value


def add_user(path: Path, name: str, groups: Sequence[str] = (), *,
             admin: bool = False) -> tuple[list[str], bool]:
    """Add ``name`` with ``groups`` (merged into any it has); return (groups, is admin)."""
    import tomlkit

    name = _check_name("user name", name)
    new = [_check_name("group", g) for g in groups]
    doc = _load(path)
    access, users = _access(doc)
    have = [str(g) for g in users.get(name, [])]
    merged = have + [g for g in dict.fromkeys(new) if g not in have]
    if (name not in users and (merged or not admin)) or (name in users and merged != have):
        array = tomlkit.array()
        array.extend(merged)
        users[name] = array
    admins = access.get("admins")
    if admin:
        if admins is None:
            access["admins"] = tomlkit.array()
            admins = access["admins"]
        if name not in admins:
            admins.append(name)
    _save(path, doc)
    return merged, name in (admins or [])


def remove_user(path: Path, name: str, groups: Sequence[str] = ()) -> list[str] | None:
    """Remove ``groups`` from ``name`` (the groups left are returned), or with no groups the
    user entirely, from the users and the admins (None is returned)."""
    import tomlkit

    doc = _load(path)
    access, users = _access(doc)
    admins = access.get("admins") or []
    if name not in users and name not in admins:
        known = ", ".join(sorted({*users, *admins})) or "none"
        raise NotFound(f"no user '{name}' in {path} (users: {known})")
    if groups:
        have = [str(g) for g in users.get(name, [])]
        missing = [g for g in groups if g not in have]
        if missing:
            raise NotFound(f"user '{name}' is not in group(s) {', '.join(missing)} "
                           f"(groups: {', '.join(have) or 'none'})")
        left = [g for g in have if g not in groups]
        array = tomlkit.array()
        array.extend(left)
        users[name] = array
        _save(path, doc)
        return left
    if name in users:
        del users[name]
    if name in admins:
        admins.remove(name)
    _save(path, doc)
    return None


def set_setting(path: Path, area: str, key: str, value: Any) -> None:
    """Set ``[area] key = value`` (``ragtune tune`` points ``[embedding] model`` at an
    adapted embedder), creating the table when missing; checked like every edit here."""
    import tomlkit

    doc = _load(path)
    if area not in doc:
        doc.add(area, tomlkit.table())
    doc[area][key] = value
    _save(path, doc)
