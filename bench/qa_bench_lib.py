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

        def progress(done: int, total: int, what: str, _name: str = name, _t: float = t) -> None:
            if what:
                print(f"  {_name} {done}/{total} {what} ({time.perf_counter() - _t:.0f} s)", flush=True)

        run = ev.run(spec, out=out_dir / f"answers-{tag}-{spec.name.replace(':', '_')}.jsonl",
                     progress=progress)
        out[name] = run.records
    return out


def recorded(out_dir: Path, tag: str, systems: list[str]) -> dict[str, list[dict[str, Any]]]:
    """The records answered so far (``--partial``: summarise a run that is still going)."""
    out = {}
    for name in systems:
        path = out_dir / f"answers-{tag}-{SystemSpec.parse(name).name.replace(':', '_')}.jsonl"
        lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
        recs = [json.loads(x) for x in lines if x.strip()]
        out[name] = [r for r in recs if not r.get("error")]
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


def regate(ws: Workspace, evalset_path: Path, records: list[dict[str, Any]], *,
           threshold: float, unsupported: str, fallback: str, source_tokens: int,
           max_tokens: int) -> list[dict[str, Any]]:
    """Re-decide what each recorded reply would show under other gate settings, and score it
    again: no model runs (the raw reply is in the record, the sources come back from the
    store and the same budget). Records without a reply (base system) are kept as they are."""
    from ragtune.answer.claims import ClaimGate
    from ragtune.answer.pipeline import within_budget
    from ragtune.generate.citations import check_answer
    from ragtune.types import Answer, Hit, Trace

    evalset = load_evalset(evalset_path)
    by_id = {q.id: q for q in evalset.questions}
    ev = QAEvaluator(ws, evalset, embedding_similarity=False)
    principal = ws.principal(None)
    out = []
    for rec in records:
        if not rec.get("reply") or not rec.get("retrieved"):
            out.append(rec)
            continue
        q = by_id[rec["id"]]
        stored = ws.store.get_chunks([h["chunk_id"] for h in rec["retrieved"]], principal)
        hits = within_budget([Hit(s.chunk, 1.0, s.document, s.title) for s in stored],
                             source_tokens, q.question)
        gate = ClaimGate(q.question, hits, threshold=threshold, unsupported=unsupported,
                         fallback=fallback)
        gate.feed(rec["reply"])
        shown = gate.finish(truncated=rec.get("tokens", {}).get("completion", 0) >= max_tokens)
        citations, sentences = ([], []) if shown.refused else check_answer(
            shown.text, hits, threshold=threshold)
        trace = Trace(question=q.question, principal=principal.user, mode=rec["mode"],
                      model=rec.get("model") or "", retrieved=[h.to_dict() for h in hits],
                      timings=dict(rec["timings"]), tokens=dict(rec["tokens"]),
                      notes=shown.notes, reply=rec["reply"], removed=shown.removed)
        answer = Answer(shown.text, citations, shown.refused, trace, sentences)
        new = ev.score(q, answer, SystemSpec.parse(rec["system"]))
        removed = f"{len(shown.removed)} sentence(s) no source supports were not shown"
        new["notes"] = list(shown.notes) + [removed] * bool(shown.removed)
        out.append(new)
    return out


def regated(ws: Workspace, evalset_path: Path, runs: dict[str, list[dict[str, Any]]],
            spec: str) -> dict[str, list[dict[str, Any]]]:
    """Every run of ``runs`` re-checked under the gate settings ``spec``
    (``THRESHOLD,remove|flag,quote|refuse``, the benches' ``--regate``), see :func:`regate`."""
    threshold, unsupported, fallback = spec.split(",")
    g = ws.settings.generation
    return {f"{name} (regated {spec})": regate(
        ws, evalset_path, recs, threshold=float(threshold), unsupported=unsupported,
        fallback=fallback, source_tokens=g.source_tokens, max_tokens=g.max_tokens)
        for name, recs in runs.items()}
