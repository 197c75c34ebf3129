"""API keys: created by ``ragtune keys create``, sent as ``Authorization: Bearer rtk_...``,
stored only as hashes.

A key is ``rtk_<id>_<secret>``: the id finds its record, the secret (32 random bytes) is
never stored, only the sha256 of the whole key (a random 256-bit secret needs no slow
hash: there is nothing to guess). Records live in ``<workspace>/keys.json`` (mode 0600),
rewritten atomically under a lock, and re-read whenever the file changes, so a key revoked
from the command line stops working in a running server at its next request.

>>> import tempfile, pathlib
>>> keys = KeyStore(pathlib.Path(tempfile.mkdtemp()) / "keys.json")
>>> record, token = keys.create("ana", expires_s=90 * 86400)
>>> keys.verify(token).user, keys.verify(token + "x")
('ana', None)
>>> _ = keys.revoke(record.id)
>>> keys.verify(token) is None
True
"""

from __future__ import annotations

import fcntl
import hashlib
import hmac
import json
import os
import re
import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from ragtune.errors import ConfigError, InputError, NotFound

PREFIX = "rtk"
_USER = re.compile(r"[A-Za-z0-9._@+-]{1,128}")
_DURATION = re.compile(r"(\d+)\s*([smhdwy])")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400, "y": 365 * 86400}


def parse_duration(text: str) -> float | None:
    """Seconds in ``"90d"``, ``"12h"``, ``"2w"`` (s/m/h/d/w/y); ``"never"`` is None.

    >>> parse_duration("90d"), parse_duration("never")
    (7776000.0, None)
    """
    text = text.strip().lower()
    if text in {"never", "none", ""}:
        return None
    m = _DURATION.fullmatch(text)
    if not m or int(m.group(1)) == 0:
        raise InputError("--expires", f"must be a duration like 90d, 12h or 2w (or 'never'), "
                                      f"got {text!r}")
    return float(int(m.group(1)) * _UNIT_S[m.group(2)])


def _digest(token: str) -> str:
    return "sha256:" + hashlib.sha256(token.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class ApiKey:
    """One key's record (no secret)."""

    id: str
    user: str
    admin: bool
    hash: str
    created: float
    expires: float | None = None
    revoked: float | None = None

    def active(self, now: float | None = None) -> bool:
        now = time.time() if now is None else now
        return self.revoked is None and (self.expires is None or now < self.expires)

    def public(self) -> dict[str, Any]:
        """What may be shown: everything but the hash."""
        data = asdict(self)
        data.pop("hash")
        data["active"] = self.active()
        return data


class KeyStore:
    """The workspace's API keys (``keys.json``)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._cache: tuple[tuple[int, int, int], dict[str, ApiKey]] | None = None
        self._mutex = threading.Lock()

    # ------------------------------------------------------------------ reading
    def _stat(self) -> tuple[int, int, int] | None:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return None
        return (st.st_mtime_ns, st.st_size, st.st_ino)

    def _load(self) -> dict[str, ApiKey]:
        stamp = self._stat()
        if stamp is None:
            return {}
        with self._mutex:
            if self._cache is not None and self._cache[0] == stamp:
                return self._cache[1]
            try:
                data = json.loads(self.path.read_text(encoding="utf-8"))
                keys = {k["id"]: ApiKey(**k) for k in data.get("keys", [])}
            except (json.JSONDecodeError, TypeError, KeyError) as e:
                raise ConfigError(f"{self.path}: not a ragtune key file ({e}); restore it "
                                  "from a backup or delete it and create new keys") from None
            self._cache = (stamp, keys)
            return keys

    def list(self) -> list[ApiKey]:
        return sorted(self._load().values(), key=lambda k: k.created)

    def verify(self, token: str) -> ApiKey | None:
        """The active key ``token`` is, or None (unknown, wrong, expired or revoked alike)."""
        parts = token.split("_", 2)
        if len(parts) != 3 or parts[0] != PREFIX:
            return None
        key = self._load().get(parts[1])
        if key is None or not hmac.compare_digest(key.hash, _digest(token)):
            return None
        return key if key.active() else None

    # ------------------------------------------------------------------ writing
    @contextmanager
    def _locked(self) -> Iterator[dict[str, ApiKey]]:
        """The current keys, under an exclusive lock; written back atomically on exit."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(str(self.path) + ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            keys = dict(self._load())
            yield keys
            tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
            body = json.dumps({"keys": [asdict(k) for k in sorted(keys.values(),
                                                                   key=lambda k: k.created)]},
                              indent=1)
            fdw = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fdw, "w", encoding="utf-8") as f:
                f.write(body)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        finally:
            os.close(fd)

    def create(self, user: str, *, admin: bool = False,
               expires_s: float | None = None) -> tuple[ApiKey, str]:
        """A new key for ``user``: its record and the token (shown once, never stored)."""
        if not _USER.fullmatch(user):
            raise InputError("user", "user names use letters, digits and . _ @ + - "
                                     f"(at most 128 characters), got {user!r}")
        if expires_s is not None and expires_s <= 0:
            raise InputError("expires", f"must be positive, got {expires_s}")
        key_id = secrets.token_hex(6)
        token = f"{PREFIX}_{key_id}_{secrets.token_urlsafe(32)}"
        now = time.time()
        record = ApiKey(key_id, user, admin, _digest(token), now,
                        None if expires_s is None else now + expires_s)
        with self._locked() as keys:
            keys[key_id] = record
        return record, token

    def revoke(self, key_id: str) -> ApiKey:
        """Revoke one key by id (kept, marked revoked, for the audit trail)."""
        with self._locked() as keys:
            if key_id not in keys:
                raise NotFound(f"no API key with id {key_id!r} (see 'ragtune keys list')")
            keys[key_id] = replace(keys[key_id], revoked=keys[key_id].revoked or time.time())
            return keys[key_id]

    def revoke_user(self, user: str) -> list[ApiKey]:
        """Revoke every active key of ``user``."""
        with self._locked() as keys:
            mine = [k for k in keys.values() if k.user == user and k.revoked is None]
            if not mine:
                raise NotFound(f"user {user!r} has no active API key")
            now = time.time()
            for k in mine:
                keys[k.id] = replace(k, revoked=now)
            return [keys[k.id] for k in mine]
