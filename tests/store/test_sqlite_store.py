"""The SQLite store: the Store contract suite in three set-ups, plus SQLite's own behaviour
(the batch writer lock, schema versions, a damaged file)."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from ragtune.errors import StoreError
from ragtune.store.base import Store
from ragtune.store.sqlite import SQLiteStore
from tests.contracts.store import StoreContract


class TestSQLiteInMemory(StoreContract):
    @pytest.fixture
    def store(self):
        s = SQLiteStore(":memory:")
        yield s
        s.close()


class TestSQLiteFile(StoreContract):
    @pytest.fixture
    def store(self, tmp_path: Path):
        s = SQLiteStore(tmp_path / "store.db")
        yield s
        s.close()

    def reopen(self, store: Store) -> Store | None:
        assert isinstance(store, SQLiteStore)
        return SQLiteStore(store.path)

    def leftover_bytes(self, store: Store) -> bytes | None:
        # secure_delete + the WAL checkpoint after a delete: no copy of the text lingers
        assert isinstance(store, SQLiteStore)
        folder = Path(store.path).parent
        return b"".join(p.read_bytes() for p in folder.glob("store.db*") if p.is_file())


class TestSQLiteInt8Scan(TestSQLiteFile):
    """The large-store dense path (store/vector_scan.py), forced on a small store."""

    @pytest.fixture
    def store(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
        monkeypatch.setattr("ragtune.store.sqlite.MIN_ROWS", 0)
        s = SQLiteStore(tmp_path / "store.db")
        yield s
        s.close()


def test_second_writer_waits_then_fails_clearly(tmp_path):
    one, two = SQLiteStore(tmp_path / "s.db"), SQLiteStore(tmp_path / "s.db")
    entered = threading.Event()
    release = threading.Event()

    def hold() -> None:
        with one.write_lock():
            entered.set()
            release.wait(5)

    t = threading.Thread(target=hold)
    t.start()
    entered.wait(5)
    with (pytest.raises(StoreError, match=r"another ragtune process \(pid \d+\) is writing"),
          two.write_lock(timeout=0.3)):
        pass
    release.set()
    t.join()
    with two.write_lock(timeout=1):  # free again: the waiter gets it
        pass


def test_newer_schema_is_refused(tmp_path):
    SQLiteStore(tmp_path / "s.db").close()
    db = sqlite3.connect(tmp_path / "s.db")
    db.execute("PRAGMA user_version = 99")
    db.commit()
    db.close()
    with pytest.raises(StoreError, match="newer than this ragtune knows"):
        SQLiteStore(tmp_path / "s.db")


def test_not_a_database_is_a_clear_error(tmp_path):
    bad = tmp_path / "s.db"
    bad.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError, match="cannot open the store"):
        SQLiteStore(bad)


def test_factory_opens_sqlite_by_name_and_refuses_unknown_backends(tmp_path):
    from ragtune.config import StoreSettings
    from ragtune.errors import ConfigError
    from ragtune.store.factory import open_store

    store = open_store(StoreSettings(backend="sqlite", path="data/kb.db"), tmp_path)
    assert isinstance(store, SQLiteStore) and Path(store.path) == tmp_path / "data" / "kb.db"
    with pytest.raises(ConfigError, match="unknown store backend 'nosuch' .known: .*sqlite"):
        open_store(StoreSettings(backend="nosuch"), tmp_path)
