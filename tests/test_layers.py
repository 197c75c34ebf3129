"""Dependencies point inward: no module imports from a layer above its own, and the
packages form no import cycle (docs/architecture.md draws the layers)."""

from __future__ import annotations

import ast
from pathlib import Path

import ragtune

ROOT = Path(ragtune.__file__).parent

# Lowest first. A module may import its own layer's packages and any layer below.
LAYERS: list[set[str]] = [
    {"types", "errors", "config", "config_file", "config_docs", "jsonl", "registry", "textmatch",
     "__init__"},
    {"ingest", "embed", "store"},
    {"retrieve", "generate", "finetune"},
    {"answer", "route", "evaluate", "monitor", "tune"},
    {"workspace"},
    {"cli", "server"},
]
LAYER_OF = {name: i for i, names in enumerate(LAYERS) for name in names}


def unit(module: str) -> str:
    """The package (or top-level module) a dotted ragtune module belongs to."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def imports() -> list[tuple[str, str]]:
    """(importing module, imported ragtune module) for every import, lazy ones included."""
    out = []
    for path in ROOT.rglob("*.py"):
        rel = path.relative_to(ROOT.parent).with_suffix("")
        module = ".".join(rel.parts).removesuffix(".__init__")
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                continue
            out.extend((module, n) for n in names if n == "ragtune" or n.startswith("ragtune."))
    return out


def test_every_package_has_a_layer() -> None:
    units = {unit(m) for m, _ in imports()}
    assert units <= set(LAYER_OF), units - set(LAYER_OF)


def test_no_import_runs_up_a_layer() -> None:
    upward = [(m, n) for m, n in imports()
              if LAYER_OF[unit(n)] > LAYER_OF[unit(m)]]
    assert upward == []


def test_packages_form_no_cycle() -> None:
    edges: dict[str, set[str]] = {}
    for m, n in imports():
        if unit(m) != unit(n):
            edges.setdefault(unit(m), set()).add(unit(n))

    def reaches(start: str, goal: str, seen: set[str]) -> bool:
        for nxt in edges.get(start, ()):
            if nxt == goal or (nxt not in seen and reaches(nxt, goal, seen | {nxt})):
                return True
        return False

    cycles = sorted(u for u in edges if reaches(u, u, {u}))
    assert cycles == []
