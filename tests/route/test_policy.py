"""The decision policy on a real SQLite workspace: kinds, routes, fallback, access control.

The classifier is replaced by a fixed answer per question to isolate the policy; the real
router runs through the same policy in ``test_model.py`` and ``test_cli.py``.
"""

from __future__ import annotations

import json
import logging

import pytest

from ragtune.config import RoutingSettings
from ragtune.errors import ConfigError, InputError, NotFound
from ragtune.route.policy import (
    EVERYTHING,
    Route,
    check_routes,
    decide,
    load_router,
    require_valid_routes,
)
from ragtune.types import Principal

from .conftest import ROUTES, FixedRouter

ROUTER = FixedRouter({
    "How do I set up the VPN?": ("it", 0.91),
    "What is the salary band for an L3 engineer?": ("hr", 0.97),
    "How long is the return window?": ("policy", 0.88),
    "hello": ("direct", 0.95),
    "weather in Bend?": ("out_of_scope", 0.9),
    "something vague": ("hr", 0.31),
    "anything in our docs": ("knowledge", 0.8),
    "contracts question": ("legal", 0.9),
    "people question": ("people", 0.9),
})
ROUTING = RoutingSettings(router="intents", min_confidence=0.5, routes=ROUTES)


def _decide(ws, question, user=None, routing=ROUTING):
    return decide(ROUTER, question, routing=routing, principal=ws.principal(user), store=ws.store)


def test_domain_routes_search_their_collections(kb_ws) -> None:
    d = _decide(kb_ws, "How do I set up the VPN?", "bob")
    assert d == Route("it", "knowledge", 0.91, ("it",),
                              "routed to it (0.91): searching it")
    # a mapped route searches every listed collection
    d = _decide(kb_ws, "How long is the return window?")
    assert (d.label, d.collections) == ("policy", ("policies", "shipping"))
    assert d.to_dict() == {"label": "policy", "kind": "knowledge", "confidence": 0.88,
                           "collections": ["policies", "shipping"],
                           "reason": "routed to policy (0.88): searching policies, shipping"}


def test_direct_out_of_scope_and_knowledge_kinds(kb_ws) -> None:
    d = _decide(kb_ws, "hello")
    assert (d.label, d.kind, d.collections) == ("direct", "direct", None)
    d = _decide(kb_ws, "weather in Bend?")
    assert (d.label, d.kind, d.collections) == ("out_of_scope", "out_of_scope", None)
    d = _decide(kb_ws, "anything in our docs")
    assert (d.label, d.kind, d.collections, d.reason) == ("knowledge", "knowledge", None, EVERYTHING)


def test_low_confidence_falls_back_to_every_readable_collection(kb_ws) -> None:
    d = _decide(kb_ws, "something vague", "ana")
    assert d == Route("knowledge", "knowledge", 0.31, None,
                              "low confidence (0.31 < 0.50): searching every collection you may read")
    # the threshold is the setting's: at 0.3 the same answer routes
    d = _decide(kb_ws, "something vague", "ana", RoutingSettings(min_confidence=0.3))
    assert (d.label, d.collections) == ("hr", ("hr",))


def test_a_route_the_principal_cannot_read_is_never_revealed(kb_ws) -> None:
    q = "What is the salary band for an L3 engineer?"
    assert _decide(kb_ws, q, "ana").collections == ("hr",)  # member of hr
    assert _decide(kb_ws, q, "root").collections == ("hr",)  # admin
    plain = _decide(kb_ws, "anything in our docs")
    for user in (None, "bob"):
        d = _decide(kb_ws, q, user)
        # exactly what a plain "knowledge" decision says, apart from the confidence
        assert (d.label, d.kind, d.collections, d.reason) == \
            (plain.label, plain.kind, plain.collections, plain.reason)
        assert "hr" not in json.dumps(d.to_dict())
        assert "salary" not in d.reason


def test_a_route_keeps_only_the_collections_the_principal_can_read(kb_ws) -> None:
    routing = RoutingSettings(routes={**ROUTES, "people": ["hr", "policies"]})
    assert _decide(kb_ws, "people question", "ana", routing).collections == ("hr", "policies")
    d = _decide(kb_ws, "people question", "bob", routing)
    assert (d.label, d.collections) == ("people", ("policies",))
    assert "hr" not in d.reason


def test_unknown_collection_falls_back_like_a_restricted_one_and_is_logged(kb_ws, caplog) -> None:
    with caplog.at_level(logging.WARNING, logger="ragtune.route.policy"):
        d = _decide(kb_ws, "contracts question", "root")
    assert (d.label, d.collections, d.reason) == ("knowledge", None, EVERYTHING)
    assert "route 'legal' maps to collections with no documents: legal" in caplog.text


def test_check_routes_names_unknown_collections_and_stray_entries(kb_ws) -> None:
    router = FixedRouter({"a": ("it", 1.0), "b": ("hr", 1.0), "c": ("policy", 1.0),
                          "d": ("legal", 1.0), "e": ("direct", 1.0), "f": ("knowledge", 1.0)})
    routing = RoutingSettings(routes={"policy": ["policies", "shiping"], "direct": ["it"],
                                      "finance": ["expenses"]})
    problems = check_routes(router, routing, kb_ws.store)
    assert problems == [
        ("route 'legal' has no routing.routes entry, so it searches collection 'legal', which "
         "has no documents (collections: hr, it, policies, shipping)"),
        ("routing.routes.policy names collection 'shiping', which has no documents "
         "(collections: hr, it, policies, shipping)"),
        "routing.routes.direct: 'direct' is a built-in kind, not a domain route; remove the entry",
        ("routing.routes.finance: the router has no label 'finance' (labels: direct, hr, it, "
         "knowledge, legal, policy)"),
    ]
    with pytest.raises(ConfigError, match=r"^ragtune.toml: route 'legal' has no routing"):
        require_valid_routes(router, routing, kb_ws.store)
    ok = FixedRouter({"a": ("it", 1.0), "b": ("hr", 1.0), "c": ("policy", 1.0)})
    assert check_routes(ok, RoutingSettings(routes=ROUTES), kb_ws.store) == []
    require_valid_routes(ok, RoutingSettings(routes=ROUTES), kb_ws.store)


def test_load_router_missing_or_badly_named(kb_ws) -> None:
    with pytest.raises(NotFound) as e:
        load_router(kb_ws.root, "intents")
    assert "no router 'intents'" in str(e.value) and "(routers: none)" in str(e.value)
    assert "ragtune route train FILE --name intents" in str(e.value)
    with pytest.raises(InputError, match="router names use only"):
        load_router(kb_ws.root, "../etc")


def test_principal_objects_work_directly(kb_ws) -> None:
    # decide takes any Principal, not only the workspace's users
    d = decide(ROUTER, "What is the salary band for an L3 engineer?", routing=ROUTING,
               principal=Principal("eve", frozenset({"hr"})), store=kb_ws.store)
    assert d.collections == ("hr",)
