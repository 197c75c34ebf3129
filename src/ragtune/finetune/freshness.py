"""Adapter freshness: has any document an adapter was trained on changed or gone since?

An adapter's ``run.json`` lineage lists the documents (id, source, version, content hash,
and for RAFT data the collection) its training data came from. Comparing them with the
store says whether the adapter still reflects the knowledge base:

>>> from ragtune.workspace import Workspace                                     # doctest: +SKIP
>>> from ragtune.finetune.adapters import AdapterRegistry                       # doctest: +SKIP
>>> ws = Workspace.open()                                                       # doctest: +SKIP
>>> f = adapter_freshness(AdapterRegistry(ws.adapters_root).get("support"), ws.store)  # doctest: +SKIP
>>> f.stale, f.summary()                                                        # doctest: +SKIP
(True, 'policies/returns-policy.md changed (v1 -> v2)')
>>> f.stale_in(["policies"])    # hybrid mode: is the adapter stale for these collections?  # doctest: +SKIP
['policies/returns-policy.md']

A document counts as *changed* when its content hash differs from the one trained on (or,
for lineage without hashes, its version); *deleted* when the store no longer has it. The
check reads the store as the operator (no principal): staleness is about the adapter, not
about who asks. An adapter without document lineage (hand-written data) is ``tracked =
False`` and never stale: nothing is known to have changed.

Also here: :func:`base_mismatch`, the other reason an adapter cannot serve a generator,
checked without loading any weights.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class ChangedDocument:
    """A lineage document whose content differs now."""

    source: str
    trained_version: int | None
    current_version: int
    collection: str

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "trained_version": self.trained_version,
                "current_version": self.current_version, "collection": self.collection}


@dataclass(frozen=True)
class Freshness:
    """The result of :func:`adapter_freshness`."""

    adapter: str
    tracked: bool  # the lineage names documents
    documents: int = 0  # lineage documents checked
    changed: tuple[ChangedDocument, ...] = ()
    deleted: tuple[str, ...] = ()  # sources
    deleted_collections: dict[str, str | None] = field(default_factory=dict)  # source -> collection
    principal: str | None = None  # who the training data was built as (RAFT lineage)

    @property
    def stale(self) -> bool:
        return bool(self.changed or self.deleted)

    @property
    def stale_sources(self) -> list[str]:
        return sorted([c.source for c in self.changed] + list(self.deleted))

    def stale_in(self, collections: Iterable[str] | None) -> list[str]:
        """Stale documents in ``collections`` (None: any). A deleted document whose collection
        the lineage did not record counts for every collection: it may have been there.

        >>> f = Freshness("a", True, 2, (ChangedDocument("hr/leave.md", 1, 2, "hr"),), ("x.md",))
        >>> f.stale_in(["hr"]), f.stale_in(["it"]), f.stale_in(None)
        (['hr/leave.md', 'x.md'], ['x.md'], ['hr/leave.md', 'x.md'])
        """
        if collections is None:
            return self.stale_sources
        wanted = set(collections)
        out = [c.source for c in self.changed if c.collection in wanted]
        out += [s for s in self.deleted if self.deleted_collections.get(s) in wanted | {None}]
        return sorted(out)

    def summary(self) -> str:
        """One line: what changed, what is gone (``fresh`` / ``no lineage`` otherwise).

        >>> Freshness("a", True, 2, (ChangedDocument("r.md", 1, 2, "default"),), ("x.md",)).summary()
        'r.md changed (v1 -> v2); x.md deleted'
        """
        if not self.tracked:
            return "no lineage"
        if not self.stale:
            return "fresh"
        parts = [f"{c.source} changed (v{c.trained_version if c.trained_version is not None else '?'}"
                 f" -> v{c.current_version})" for c in self.changed]
        parts += [f"{s} deleted" for s in self.deleted]
        return "; ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        return {"adapter": self.adapter, "tracked": self.tracked, "stale": self.stale,
                "documents": self.documents, "changed": [c.to_dict() for c in self.changed],
                "deleted": list(self.deleted), "principal": self.principal,
                "summary": self.summary()}


def lineage_documents(lineage: Any) -> list[dict[str, Any]]:
    """The document records of a lineage (synth, RAFT or hand-written), each with a
    ``source`` or ``doc_id``; anything else is ignored.

    >>> lineage_documents({"documents": [{"source": "a.md", "version": 1}, "junk"]})
    [{'source': 'a.md', 'version': 1}]
    >>> lineage_documents(None)
    []
    """
    docs = lineage.get("documents") if isinstance(lineage, dict) else None
    if not isinstance(docs, list):
        return []
    return [d for d in docs if isinstance(d, dict) and (d.get("doc_id") or d.get("id") or d.get("source"))]


def adapter_freshness(info: Any, store: Any) -> Freshness:
    """Compare an adapter's lineage (:class:`~ragtune.finetune.adapters.AdapterInfo`) with
    the documents in ``store`` now."""
    lineage = info.lineage
    docs = lineage_documents(lineage)
    principal = lineage.get("principal") if isinstance(lineage, dict) else None
    if isinstance(principal, dict):
        principal = principal.get("user")
    if not docs:
        return Freshness(info.name, False, principal=principal)
    current = {d.id: d for d in store.list_documents(None)}
    by_source = {d.source: d for d in current.values()}
    changed: dict[str, ChangedDocument] = {}
    deleted: dict[str, str | None] = {}
    for rec in docs:
        ref = rec.get("doc_id") or rec.get("id")
        source = str(rec.get("source") or ref)
        now = current.get(ref) if ref else None
        now = now or by_source.get(source)
        if now is None:
            deleted[source] = rec.get("collection")
            continue
        trained_hash, trained_version = rec.get("content_hash"), rec.get("version")
        if trained_hash:
            differs = trained_hash != now.content_hash
        else:
            differs = trained_version is not None and trained_version != now.version
        if differs:
            changed[source] = ChangedDocument(source, trained_version, now.version, now.collection)
    return Freshness(info.name, True, len(docs), tuple(changed[s] for s in sorted(changed)),
                     tuple(sorted(deleted)), deleted, principal)


def registry_freshness(adapters_root: Path, store: Any) -> dict[str, Freshness]:
    """Freshness of every finished adapter in ``adapters_root``, by name."""
    from ragtune.finetune.adapters import AdapterRegistry

    return {i.name: adapter_freshness(i, store) for i in AdapterRegistry(adapters_root).list()}


# ---------------------------------------------------------------- base model


def base_identity(name: str) -> str:
    """The identity ``run.json`` records as ``base_model_hash`` for a base model name, computed
    without loading or converting weights (a GGUF file is hashed, a folder fingerprinted)."""
    from ragtune.finetune.train import resolve_base_folder
    from ragtune.generate.models import PACKAGED_ALIASES, packaged_model_path
    from ragtune.types import file_sha256

    path = Path(packaged_model_path() if name.strip().lower() in PACKAGED_ALIASES else name)
    if path.suffix == ".gguf" and path.is_file():
        return "sha256:" + file_sha256(path)
    return resolve_base_folder(str(path))[1]


def base_mismatch(info: Any, base_model: str) -> str | None:
    """None when adapter ``info`` was trained on ``base_model``, else a message saying so.

    LoRA weights are deltas for one base model; on another they give garbage, so a caller
    that would serve the adapter on ``base_model`` (e.g. ``generation.model``) should refuse
    with this message.
    """
    import json

    from ragtune.errors import ModelError

    try:
        run = json.loads((Path(info.path) / "run.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        return f"{Path(info.path) / 'run.json'}: cannot read the adapter's run record ({e})"
    if run.get("base_model") == base_model:
        return None
    try:
        ours = base_identity(base_model)
    except ModelError as e:
        return f"cannot check adapter '{info.name}' against base model '{base_model}': {e}"
    theirs = run.get("base_model_hash")
    if theirs == ours:
        return None
    return (f"adapter '{info.name}' was trained on base model '{run.get('base_model')}' "
            f"({theirs}), not on '{base_model}' ({ours}): LoRA weights only fit the model they "
            f"were trained on; serve it with base '{run.get('base_model')}' or retrain it on "
            f"'{base_model}'")
