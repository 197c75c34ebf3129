"""Who may use an adapter: only principals who may read everything it was trained on.

A fine-tuned model can repeat what it learned, so an adapter trained on documents one user
may read (``raft build --as ana``, ``data synth --as ana``) must not answer anyone else.
The adapter's lineage lists the documents of its training data; each restricted document
contributes the groups it was readable by. A principal may use the adapter when it can read
every one of them: by the groups recorded at training time *and* by the document's groups
in the store now (the stricter of both wins, so a document restricted after training
restricts its adapters too).

>>> from ragtune.types import Principal
>>> required = [("hr",), ("hr", "legal")]
>>> can_use(required, Principal("ana", frozenset({"hr"})))
True
>>> can_use(required, Principal("bob", frozenset({"legal"})))
False
>>> can_use([], Principal.anonymous())
True
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ragtune.errors import AccessDenied
from ragtune.finetune.adapters import AdapterInfo
from ragtune.finetune.freshness import lineage_documents
from ragtune.store.base import Store
from ragtune.types import Principal

GroupSets = list[tuple[str, ...]]


def can_use(required: Sequence[tuple[str, ...]], principal: Principal) -> bool:
    """True when ``principal`` may read a document of each group set in ``required``."""
    return all(principal.can_read(groups) for groups in required)


def with_groups(lineage: dict[str, Any] | None, store: Store) -> dict[str, Any] | None:
    """``lineage`` with each document's current groups recorded (``"groups": [...]``), so the
    adapter stays restricted even after its documents are deleted from the store."""
    if not lineage:
        return lineage
    for doc in lineage_documents(lineage):
        info = _find(doc, store)
        if info is not None:
            doc["groups"] = sorted(set(doc.get("groups") or ()) | set(info.groups))
    return lineage


def required_groups(info: AdapterInfo, store: Store | None) -> GroupSets:
    """One group set per restricted training document: recorded ones, joined by the
    document's groups in the store now."""
    out: set[tuple[str, ...]] = set()
    for doc in lineage_documents(info.lineage):
        recorded = tuple(sorted(set(doc.get("groups") or ())))
        current = _find(doc, store) if store is not None else None
        for groups in (recorded, tuple(sorted(current.groups)) if current else ()):
            if groups:
                out.add(groups)
    return sorted(out)


def check_adapter_access(info: AdapterInfo, principal: Principal, store: Store | None) -> None:
    """Raise :class:`AccessDenied` when ``principal`` may not use adapter ``info``. The
    message names no document: which ones are restricted is itself restricted."""
    if not can_use(required_groups(info, store), principal):
        raise AccessDenied(
            f"adapter '{info.name}' was trained on documents that '{principal.user}' may not "
            "read, so it may not answer you (ask in mode 'rag', or ask an admin for access)")


def _find(doc: dict[str, Any], store: Store | None) -> Any:
    """The store's document for a lineage entry (by id, else by source), as an admin sees it."""
    if store is None:
        return None
    for ref in (doc.get("doc_id") or doc.get("id"), doc.get("source")):
        if ref:
            info = store.get_document(str(ref))
            if info is not None:
                return info
    return None
