"""Who may answer with an adapter: an adapter may have memorised the documents it was
trained on, so it is offered only to principals who may read all of them.

Read from the adapter's lineage (``run.json``): every lineage document still in the store
must be readable by the principal; and when the training data was built as a principal
(RAFT records its user and groups), the asker must be in each of those groups, since
documents deleted since may have been restricted to them. An adapter without lineage
(hand-written data) names no documents and is open to everyone. Admins may use any.

>>> from ragtune.finetune.adapters import AdapterInfo
>>> from ragtune.types import Principal
>>> info = AdapterInfo("raft", "qwen", {}, {}, 0.0, None,
...                    lineage={"principal": {"user": "ana", "groups": ["hr"]}, "documents": []})
>>> may_use(info, None, Principal("bob", frozenset({"it"}))), may_use(info, None, Principal("ana", frozenset({"hr"})))
(False, True)
"""

from __future__ import annotations

from ragtune.finetune.adapters import AdapterInfo
from ragtune.finetune.freshness import lineage_documents
from ragtune.store.base import Store
from ragtune.types import Principal


def may_use(info: AdapterInfo, store: Store | None, principal: Principal) -> bool:
    """True when ``principal`` may see answers written by adapter ``info``."""
    if principal.admin:
        return True
    lineage = info.lineage if isinstance(info.lineage, dict) else {}
    built_as = lineage.get("principal")
    if isinstance(built_as, dict):
        groups = {str(g) for g in built_as.get("groups") or []}
        if not groups <= principal.groups:
            return False
    for rec in lineage_documents(lineage):
        ref = rec.get("doc_id") or rec.get("id") or rec.get("source")
        doc = store.get_document(str(ref)) if store is not None else None
        if doc is None and rec.get("source") and store is not None:
            doc = store.get_document(str(rec["source"]))
        if doc is not None and not principal.can_read(doc.groups):
            return False
    return True
