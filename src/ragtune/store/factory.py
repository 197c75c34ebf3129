"""Open the store that ``[store] backend`` names, from the ``STORES`` registry.

Built in: ``sqlite`` (one embedded file, ``<workspace>/store.db`` unless ``store.path``
says otherwise), ``postgres`` (``store.url``, a PostgreSQL with pgvector) and ``chroma``
(embedded in ``<workspace>/chroma``, or a Chroma server at ``store.url``); docs/stores.md. Server and vector-database backends register here too, and third-party
ones through the ``ragtune.stores`` entry point group (see :mod:`ragtune.registry`). Nothing
above the store knows which backend it talks to: every backend passes the same contract
suite (``tests/contracts/store.py``).

>>> import tempfile
>>> from ragtune.config import StoreSettings
>>> store = open_store(StoreSettings(), Path(tempfile.mkdtemp()))
>>> store.count_documents()
0
"""

from __future__ import annotations

from pathlib import Path

from ragtune.config import StoreSettings
from ragtune.registry import Registry
from ragtune.store.base import Store

STORES: Registry[Store] = Registry("store", "ragtune.stores")


@STORES.register("sqlite")
def _sqlite(settings: StoreSettings, workspace_root: Path) -> Store:
    from ragtune.store.bm25 import BM25Params
    from ragtune.store.sqlite import SQLiteStore

    path = Path(settings.path or "store.db")
    return SQLiteStore(path if path.is_absolute() else Path(workspace_root) / path,
                       bm25=BM25Params.from_settings(settings),
                       quoted_phrases=settings.quoted_phrases)


@STORES.register("postgres")
def _postgres(settings: StoreSettings, workspace_root: Path) -> Store:
    from ragtune.store.postgres import open_postgres  # psycopg loads only when chosen

    return open_postgres(settings, workspace_root)


@STORES.register("chroma")
def _chroma(settings: StoreSettings, workspace_root: Path) -> Store:
    from ragtune.store.chroma import open_chroma  # chromadb loads only when chosen

    return open_chroma(settings, workspace_root)


def open_store(settings: StoreSettings, workspace_root: Path) -> Store:
    """The store ``settings`` names, for the workspace at ``workspace_root``."""
    return STORES.create(settings.backend, settings, workspace_root)
