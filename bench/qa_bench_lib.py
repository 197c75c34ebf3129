"""Shared by the answer benchmarks (qa_public.py, docs_qa.py): workspaces, runs, tables.

A benchmark ingests its corpus once into a workspace under the cache folder (outside the
repository), then answers its eval set with each system through ``QAEvaluator`` (resumable:
answers already in the per-system JSONL with the same settings are reused, so a re-run only
answers what changed). Settings variants are ``--set area.key=value`` overrides.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any

from ragtune.evaluate.evalset import load_evalset
from ragtune.evaluate.qa import QAEvaluator, SystemSpec
from ragtune.workspace import Workspace

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"


def cache_dir(name: str) -> Path:
    """``$RAGTUNE_BENCH_DATA/<name>`` or ``~/.cache/ragtune-bench/<name>`` (never the repo)."""
    base = os.environ.get("RAGTUNE_BENCH_DATA")
    root = Path(base).expanduser() if base else Path.home() / ".cache" / "ragtune-bench"
    path = root / name
    path.mkdir(parents=True, exist_ok=True)
    return path


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def verified(path: Path, expected: str, how: str) -> Path:
    """``path`` if it exists with the ``expected`` sha256, else SystemExit saying ``how``."""
    if not path.is_file():
        raise SystemExit(f"{path} is missing. {how}")
    actual = sha256(path)
    if actual != expected:
        raise SystemExit(f"{path}: sha256 {actual}, expected {expected}. {how}")
    return path


def parse_sets(items: list[str]) -> dict[str, dict[str, Any]]:
    """``["answer.unsupported=flag", "generation.source_tokens=600"]`` → overrides."""
    out: dict[str, dict[str, Any]] = {}
    for item in items:
        key, _, value = item.partition("=")
        area, _, name = key.partition(".")
        if not value or not name:
            raise SystemExit(f"--set expects AREA.KEY=VALUE, got {item!r}")
        out.setdefault(area, {})[name] = value
    return out


def workspace(folder: Path, corpus: Path, overrides: dict[str, dict[str, Any]]) -> Workspace:
    """The benchmark's workspace (created and ingested once), opened with ``overrides``."""
    ready = folder / ".ingested"
    if not ready.exists():
        ws = Workspace.init(folder)
        t = time.perf_counter()
        report = ws.ingest([corpus])
        print(f"ingested {len(report.added)} documents in {time.perf_counter() - t:.0f} s"
              + (f", {len(report.failed)} failed" if report.failed else ""))
        ready.write_text("ok\n")
    return Workspace.open(folder, overrides=overrides)


def run_systems(ws: Workspace, evalset_path: Path, systems: list[str], out_dir: Path,
                tag: str) -> dict[str, list[dict[str, Any]]]:
    """Answer the eval set with each system; records per system (resumable files)."""
    evalset = load_evalset(evalset_path)
    ev = QAEvaluator(ws, evalset, embedding_similarity=False)
    out: dict[str, list[dict[str, Any]]] = {}
    for name in systems:
        spec = SystemSpec.parse(name)
        t = time.perf_counter()

        def progress(done: int, total: int, what: str, _name: str = name) -> None:
            if what:
                print(f"  {_name} {done}/{total} {what} ({time.perf_counter() - t:.0f} s)", flush=True)

        run = ev.run(spec, out=out_dir / f"answers-{tag}-{spec.name.replace(':', '_')}.jsonl",
                     progress=progress)
        out[name] = run.records
    return out


def write_results(name: str, payload: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(payload, indent=2, default=str) + "\n")
    return path


def fmt(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    """A Markdown table of ``rows`` with ``columns``."""
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(fmt(r.get(c)) for c in columns) + " |" for r in rows]
    return "\n".join(lines)
