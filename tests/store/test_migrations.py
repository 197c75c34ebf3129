"""Schema migrations: a fresh store opened by two connections at once is migrated once."""

from __future__ import annotations

import sqlite3
import threading

from ragtune.store.migrations import MIGRATIONS, _statements, migrate
from ragtune.store.sqlite import SQLiteStore


def test_a_second_opener_waiting_on_the_lock_sees_the_first_ones_schema(tmp_path) -> None:
    path = str(tmp_path / "s.db")
    first = sqlite3.connect(path, timeout=10, isolation_level=None, check_same_thread=False)
    second = sqlite3.connect(path, timeout=10, isolation_level=None, check_same_thread=False)
    first.execute("BEGIN IMMEDIATE")  # the first opener is mid-migration
    result: dict[str, object] = {}

    def open_second() -> None:
        try:
            result["version"] = migrate(second, path)  # reads version 0, then waits on the lock
        except Exception as e:  # noqa: BLE001 - the test reports it
            result["error"] = e

    # A real barrier: the second opener's trace callback fires as it starts BEGIN IMMEDIATE,
    # i.e. once it has read version 0 and is about to wait on the first one's lock.
    at_lock = threading.Event()
    second.set_trace_callback(lambda sql: at_lock.set() if "BEGIN IMMEDIATE" in sql else None)
    thread = threading.Thread(target=open_second)
    thread.start()
    assert at_lock.wait(10)
    for statement in _statements(MIGRATIONS[0]):
        first.execute(statement)
    first.execute(f"PRAGMA user_version = {len(MIGRATIONS)}")
    first.execute("COMMIT")
    thread.join(10)
    assert result == {"version": len(MIGRATIONS)}
    assert SQLiteStore(path).count_documents() == 0


def test_statements_keep_trigger_bodies_whole() -> None:
    parts = _statements("CREATE TABLE t (x);\nCREATE TRIGGER a AFTER INSERT ON t BEGIN\n"
                        "  INSERT INTO t VALUES (1);\n  DELETE FROM t;\nEND;\n")
    assert len(parts) == 2 and parts[1].endswith("END;")


def test_opening_at_once_from_many_threads(tmp_path) -> None:
    errors: list[Exception] = []

    def open_store() -> None:
        try:
            SQLiteStore(tmp_path / "m.db").count_documents()
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=open_store) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == []
