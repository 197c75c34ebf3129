"""What to do with a question: the router's label turned into a decision a principal may see.

>>> # router = load_router(ws.root, "intents")
>>> # d = decide(router, "How do I reset my VPN token?", routing=ws.settings.routing,
>>> #            principal=ws.principal("bob"), store=ws.store)
>>> # d.kind, d.collections  ->  ('knowledge', ('it',))

The rules, in order:

1. Confidence below ``routing.min_confidence``: retrieve from every collection the
   principal may read (``collections=None``). The classifier's guess is not shown.
2. ``direct`` (answer without retrieval) and ``out_of_scope`` (polite refusal) are kinds
   of their own; ``knowledge`` retrieves from every readable collection.
3. Any other label is a domain route: it retrieves from ``routing.routes[label]``, or from
   the collection named like the label when the route is not listed.
4. Access control: the route keeps only the collections in which the principal can read
   at least one document. When none is left, the decision falls back to every readable
   collection and says exactly what a plain ``knowledge`` decision says, so a principal
   who may not read ``hr`` cannot learn that the question was routed there — nor whether
   a collection exists at all (a route to a missing collection looks the same; operators
   see those with ``ragtune route check``).
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

from ragtune.config import RoutingSettings
from ragtune.errors import ConfigError, InputError, NotFound
from ragtune.route.data import label_kind
from ragtune.route.model import IntentRouter
from ragtune.store.base import Store
from ragtune.types import Principal, Route

log = logging.getLogger(__name__)

ROUTERS_DIR = "routers"
DEFAULT_ROUTER = "intents"
_NAME = re.compile(r"[a-z0-9_-]{1,64}")
# One sentence for every "retrieve from everything you may read" outcome that is not about
# confidence: a plain knowledge label, and a route the principal cannot read.
EVERYTHING = "no specific collection for this question: searching every collection you may read"


def check_router_name(name: str) -> str:
    """Return ``name`` if it can name a router folder, else raise :class:`InputError`."""
    if not _NAME.fullmatch(name):
        raise InputError(name, "router names use only a-z, 0-9, '_' and '-' (at most 64 characters)")
    return name


def router_folder(workspace_root: Path, name: str) -> Path:
    """``<workspace>/routers/<name>``."""
    return Path(workspace_root) / ROUTERS_DIR / check_router_name(name)


def list_routers(workspace_root: Path) -> list[str]:
    root = Path(workspace_root) / ROUTERS_DIR
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if (p / "router.json").is_file())


def load_router(workspace_root: Path, name: str) -> IntentRouter:
    """Load router ``name`` of the workspace; a missing one is :class:`NotFound`, naming the
    routers there and the command that trains one."""
    folder = router_folder(workspace_root, name)
    if not (folder / "router.json").is_file():
        have = ", ".join(list_routers(workspace_root)) or "none"
        raise NotFound(f"no router '{name}' in {folder.parent} (routers: {have}); train one "
                       f"with 'ragtune route train FILE --name {name}'")
    return IntentRouter.load(folder)


def route_collections(label: str, routing: RoutingSettings) -> list[str]:
    """The collections domain route ``label`` retrieves from.

    >>> route_collections("policy", RoutingSettings(routes={"policy": ["policies", "shipping"]}))
    ['policies', 'shipping']
    >>> route_collections("hr", RoutingSettings())
    ['hr']
    """
    return list(routing.routes.get(label, [label]))


def readable_collections(store: Store, principal: Principal) -> set[str]:
    """Collections holding at least one document ``principal`` may read."""
    return {d.collection for d in store.list_documents(principal)}


def decide(router: IntentRouter, question: str, *, routing: RoutingSettings,
           principal: Principal, store: Store) -> Route:
    """Classify ``question`` and apply the rules above; never names an unreadable route."""
    label, confidence, _ = router.predict(question)
    if confidence < routing.min_confidence:
        return Route("knowledge", "knowledge", confidence, None,
                     f"low confidence ({confidence:.2f} < {routing.min_confidence:.2f}): "
                     "searching every collection you may read")
    kind = label_kind(label)
    if kind == "direct":
        return Route(label, kind, confidence, None,
                     f"classified as direct ({confidence:.2f}): answered without retrieval")
    if kind == "out_of_scope":
        return Route(label, kind, confidence, None,
                     f"classified as out of scope ({confidence:.2f})")
    if label == "knowledge":
        return Route("knowledge", "knowledge", confidence, None, EVERYTHING)
    wanted = route_collections(label, routing)
    readable = readable_collections(store, principal)
    allowed = tuple(c for c in wanted if c in readable)
    if not allowed:
        missing = [c for c in wanted if c not in {d.collection for d in store.list_documents(None)}]
        if missing:  # the operator's log names it; the principal's decision does not
            log.warning("route '%s' maps to collections with no documents: %s (see 'ragtune "
                        "route check')", label, ", ".join(missing))
        return Route("knowledge", "knowledge", confidence, None, EVERYTHING)
    return Route(label, "knowledge", confidence, allowed,
                 f"routed to {label} ({confidence:.2f}): searching {', '.join(allowed)}")


def check_routes(router: IntentRouter, routing: RoutingSettings, store: Store) -> list[str]:
    """Problems of the routing settings against the router and the store (operator view).

    A domain label whose collections hold no document at all, a ``routing.routes`` entry
    for a label the router does not have, or one for a built-in kind.
    """
    known = sorted({d.collection for d in store.list_documents(None)})
    problems = []
    for label in router.labels:
        if label_kind(label) != "knowledge" or label == "knowledge":
            continue
        cols = route_collections(label, routing)
        if not cols:
            problems.append(f"routing.routes.{label} is empty: list the collections it searches")
        for c in cols:
            if c in known:
                continue
            how = (f"routing.routes.{label} names collection '{c}'" if label in routing.routes
                   else f"route '{label}' has no routing.routes entry, so it searches "
                        f"collection '{c}'")
            problems.append(f"{how}, which has no documents (collections: "
                            f"{', '.join(known) or 'none — ingest documents first'})")
    for key in routing.routes:
        if key not in router.labels:
            problems.append(f"routing.routes.{key}: the router has no label '{key}' "
                            f"(labels: {', '.join(router.labels)})")
        elif label_kind(key) != "knowledge" or key == "knowledge":
            problems.append(f"routing.routes.{key}: '{key}' is a built-in kind, not a domain "
                            "route; remove the entry")
    return problems


def require_valid_routes(router: IntentRouter, routing: RoutingSettings, store: Store,
                         where: str = "ragtune.toml") -> None:
    """:func:`check_routes`, raising :class:`ConfigError` with every problem in one line."""
    problems = check_routes(router, routing, store)
    if problems:
        raise ConfigError(f"{where}: " + "; ".join(problems))


class Routing:
    """The workspace's router as the hybrid answer mode calls it: ``routing(question, principal)``.

    Loads the router named by ``routing.router`` once, on first use; without one configured,
    every question retrieves from every collection the principal may read.

    >>> from ragtune.config import RoutingSettings
    >>> Routing(Path("."), RoutingSettings(), store=None)("hi", Principal.anonymous()).kind
    'knowledge'
    """

    def __init__(self, workspace_root: Path, settings: RoutingSettings, store: Store | None) -> None:
        self.root = Path(workspace_root)
        self.settings = settings
        self.store = store
        self._router: IntentRouter | None = None

    def __call__(self, question: str, principal: Principal) -> Route:
        if not self.settings.router:
            return Route.unrouted()
        if self._router is None:
            self._router = load_router(self.root, self.settings.router)
        assert self.store is not None
        return decide(self._router, question, routing=self.settings, principal=principal,
                      store=self.store)
