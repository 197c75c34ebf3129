"""The bake-off: every system on the same questions, set-up costs, and a recommendation.

>>> # result = run_compare(ws, load_evalset("kb_eval.jsonl"), parse_systems("base,rag,finetuned:a"),
>>> #                      out_dir=Path("bakeoff"))
>>> # result["recommendation"]["headline"]
>>> parse_systems("base, rag, finetuned:a, hybrid:a, raft:b")[-1].mode
'rag'

The result is a plain dict (what ``report.json`` holds; see :func:`build_report_data`).
The recommendation follows the explicit rules in :data:`RULES`, computed by
:func:`recommend` from the measurements alone, with each reason carrying its numbers.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ragtune.errors import InputError
from ragtune.evaluate import qa_metrics as m
from ragtune.evaluate.costs import break_even, compute_cost, format_usd, index_setup, training_setup
from ragtune.evaluate.evalset import EvalSet
from ragtune.evaluate.qa import QAEvaluator, QARun, SystemSpec
from ragtune.types import ProgressFn

if TYPE_CHECKING:
    from ragtune.answer.service import AnswerService

CATEGORY = {"base": "base model", "rag": "RAG", "finetuned": "fine-tuning", "hybrid": "hybrid",
            "raft": "hybrid"}
REPORT_VERSION = 1

# Thresholds of the rules; named so a report can print them and tests can reach them.
SAFETY_MARGIN_UNSUPPORTED = 0.10  # unsupported-claims rate this much above the safest candidate
SAFETY_MARGIN_REFUSAL = 0.25      # correct-refusal rate this much below the best candidate
MIN_UNANSWERABLE = 5              # fewer unanswerable questions: the refusal gate is not applied
COST_TIE = 0.10                   # per-query costs within 10% count as equal

RULES: tuple[str, ...] = (
    ("1. Accuracy: rank systems by mean token F1 on the answerable questions. A system is tied "
     "with the best when the 95% paired-bootstrap interval of their F1 difference includes 0."),
    ("2. Safety: drop from the tied set any system whose unsupported-claims rate is more than "
     f"{SAFETY_MARGIN_UNSUPPORTED:.0%} above the lowest in the set, or (with at least "
     f"{MIN_UNANSWERABLE} unanswerable questions) whose correct-refusal rate is more than "
     f"{SAFETY_MARGIN_REFUSAL:.0%} below the highest."),
    ("3. Cost: among what is left, recommend the cheapest per query; costs within "
     f"{COST_TIE:.0%} of each other count as equal and the higher F1 wins."),
    ("4. Reasons quote the F1 differences with their intervals, citation precision, refusals on "
     "unanswerable questions, unsupported claims, latency, cost and the break-even volume."),
)


def parse_systems(text: str | Sequence[str]) -> list[SystemSpec]:
    """``"base,rag,finetuned:A"`` → system specs; duplicates and empty lists are errors."""
    parts = text.split(",") if isinstance(text, str) else list(text)
    specs = [SystemSpec.parse(p) for p in parts if p.strip()]
    if not specs:
        raise InputError("--systems", "name at least one system, e.g. base,rag,finetuned:NAME")
    names = Counter(s.name for s in specs)
    dup = [n for n, c in names.items() if c > 1]
    if dup:
        raise InputError("--systems", f"{dup[0]!r} is listed twice")
    return specs


def answers_path(out_dir: Path, system: SystemSpec) -> Path:
    """Where a system's per-question JSONL goes: ``answers-<name>.jsonl`` (':' → '_')."""
    return Path(out_dir) / f"answers-{system.name.replace(':', '_')}.jsonl"


# ----------------------------------------------------------------------------- set-up costs

def setup_costs(ws: AnswerService, system: SystemSpec, index: dict[str, Any]) -> dict[str, Any]:
    """Seconds and USD spent before the first answer: index (systems that retrieve) plus
    adapter training (systems with an adapter)."""
    parts: dict[str, Any] = {}
    if system.retrieves:
        parts["index"] = index
    if system.adapter:
        path = ws.registry.get(system.adapter).path
        parts["training"] = training_setup(path).to_dict()
    known = [p["seconds"] for p in parts.values() if p["seconds"] is not None]
    seconds = sum(known) if known or not parts else None
    return {**parts, "seconds": seconds,
            "usd": compute_cost(seconds, ws.settings.costs) if seconds is not None else None,
            "complete": all(p["seconds"] is not None for p in parts.values())}


# ----------------------------------------------------------------------------- recommendation

def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.0%}"


def _seconds(x: float) -> str:
    return f"{x:.2f}" if x >= 0.995 else f"{x:.2g}"


def _f1_points(runs: dict[str, QARun], name: str) -> list[float]:
    return [r["scores"].get("token_f1") or 0.0 for r in runs[name].records
            if r["answerable"] and "token_f1" in r["scores"]]


def recommend(runs: Sequence[QARun], break_even_info: dict[str, Any] | None = None,
              evalset: EvalSet | None = None) -> dict[str, Any]:
    """Pick a system by :data:`RULES` and explain it with the measured numbers."""
    by_name = {r.system.name: r for r in runs}
    scored = [r for r in runs if r.metrics.get("token_f1") is not None]
    n = len(runs[0].records) if runs else 0
    n_ans = runs[0].metrics["answerable"] if runs else 0
    n_un = runs[0].metrics["unanswerable"] if runs else 0
    caveats = [(f"Sample: {n} questions ({n_ans} answerable, {n_un} unanswerable), one run each "
               "with greedy decoding. Differences whose interval includes 0 are not evidence "
               "of a difference.")]
    if not scored:
        return {"system": None, "category": None, "headline": "No answer metrics: the eval set "
                "has no reference answers (retrieval-only); see the retrieval metrics.",
                "reasons": [], "caveats": caveats, "comparisons": [], "rules": list(RULES)}
    best = max(scored, key=lambda r: (r.metrics["token_f1"], -(r.metrics["cost_per_query_usd"] or 0)))
    comparisons = []
    tied = [best]
    for r in scored:
        if r is best:
            continue
        d, lo, hi = m.paired_bootstrap(_f1_points(by_name, best.system.name),
                                       _f1_points(by_name, r.system.name))
        comparisons.append({"system": best.system.name, "vs": r.system.name, "f1_delta": d,
                            "ci_low": lo, "ci_high": hi, "significant": lo > 0})
        if lo <= 0:
            tied.append(r)
    # Rule 2: safety gates inside the tied set.
    low_unsup = min(r.metrics["unsupported_claims_rate"] or 0.0 for r in tied)
    gated = [r for r in tied
             if (r.metrics["unsupported_claims_rate"] or 0.0) <= low_unsup + SAFETY_MARGIN_UNSUPPORTED]
    if n_un >= MIN_UNANSWERABLE:
        top_ref = max(r.metrics["correct_refusal_rate"] or 0.0 for r in gated)
        gated = [r for r in gated
                 if (r.metrics["correct_refusal_rate"] or 0.0) >= top_ref - SAFETY_MARGIN_REFUSAL]
    dropped = [r.system.name for r in tied if r not in gated]
    # Rule 3: cheapest of the rest; near-equal costs go to the higher F1.

    def cost(r: QARun) -> float:
        return r.metrics["cost_per_query_usd"] or 0.0

    cheapest = min(cost(r) for r in gated)
    near = [r for r in gated if cost(r) <= cheapest * (1 + COST_TIE) + 1e-12]
    winner = max(near, key=lambda r: r.metrics["token_f1"])
    reasons = _reasons(winner, best, scored, comparisons, tied, dropped, break_even_info)
    caveats += _caveats(runs, comparisons, n_un)
    return {"system": winner.system.name, "category": CATEGORY[winner.system.kind],
            "headline": _headline(winner, scored, comparisons),
            "reasons": reasons, "caveats": caveats, "comparisons": comparisons,
            "tied_with_best": [r.system.name for r in tied], "dropped_for_safety": dropped,
            "rules": list(RULES)}


def _delta(comparisons: list[dict[str, Any]], a: str, b: str) -> tuple[float, float, float] | None:
    for c in comparisons:
        if c["system"] == a and c["vs"] == b:
            return c["f1_delta"], c["ci_low"], c["ci_high"]
        if c["system"] == b and c["vs"] == a:
            return -c["f1_delta"], -c["ci_high"], -c["ci_low"]
    return None


def _headline(w: QARun, scored: list[QARun], comparisons: list[dict[str, Any]]) -> str:
    parts = []
    others = [r for r in scored if r is not w]
    if others:
        worst = min(others, key=lambda r: r.metrics["token_f1"])
        d = _delta(comparisons, w.system.name, worst.system.name)
        if d is None:  # winner is not the F1 leader: compare with the leader instead
            d = (w.metrics["token_f1"] - worst.metrics["token_f1"], float("nan"), float("nan"))
        parts.append(f"{d[0] * 100:+.0f} F1 over {worst.system.name}")
    if w.metrics.get("citation_precision") is not None:
        parts.append(f"citations {_pct(w.metrics['citation_precision'])} correct")
    lead = f"{w.system.name} ({CATEGORY[w.system.kind]})"
    text = f"{lead}: " + ", ".join(parts) if parts else lead
    inventive = [r for r in scored if r is not w and (r.metrics["unsupported_claims_rate"] or 0)
                 >= (w.metrics["unsupported_claims_rate"] or 0) + 0.1]
    if inventive:
        r = max(inventive, key=lambda r: r.metrics["unsupported_claims_rate"])
        text += (f"; {r.system.name} makes unsupported claims in "
                 f"{_pct(r.metrics['unsupported_claims_rate'])} of answers")
    return text


def _reasons(w: QARun, best: QARun, scored: list[QARun], comparisons: list[dict[str, Any]],
             tied: list[QARun], dropped: list[str], be: dict[str, Any] | None) -> list[str]:
    mw = w.metrics
    out = [(f"{w.system.name} has token F1 {mw['token_f1'] * 100:.1f} and exact match "
            f"{mw['exact_match'] * 100:.1f} on {mw['answerable']} answerable questions; "
            f"{_pct(mw.get('contains_answer'))} of its answers contain a reference answer.")]
    for r in scored:
        if r is w:
            continue
        d = _delta(comparisons, w.system.name, r.system.name)
        if d is None:
            continue
        verdict = ("a real difference" if d[1] > 0 or d[2] < 0
                   else "not distinguishable at this sample size")
        out.append(f"vs {r.system.name}: {d[0] * 100:+.1f} F1 (95% CI {d[1] * 100:+.1f} to "
                   f"{d[2] * 100:+.1f}; {verdict}).")
    if w is not best:
        out.append(f"{best.system.name} has the highest F1 ({best.metrics['token_f1'] * 100:.1f}) "
                   f"but {w.system.name} is statistically tied with it and is preferred by the "
                   "safety and cost rules.")
    if dropped:
        out.append(f"Dropped for safety although tied on F1: {', '.join(dropped)} (rule 2).")
    if mw.get("citation_precision") is not None:
        out.append(f"Citations: {_pct(mw['citation_precision'])} of {mw['citations']} citations "
                   f"are supported by the cited chunk; the gold document is cited in "
                   f"{_pct(mw['citation_recall'])} of answerable questions; "
                   f"{_pct(mw['groundedness'])} of answer sentences are grounded.")
    else:
        out.append(f"{w.system.name} retrieves nothing, so its answers cannot cite sources.")
    if mw["unanswerable"]:
        parts = [f"{r.system.name} {_pct(r.metrics['correct_refusal_rate'])}" for r in scored]
        out.append(f"Refusals on the {mw['unanswerable']} unanswerable questions: "
                   + ", ".join(parts) + f"; wrong refusals on answerable ones: "
                   f"{w.system.name} {_pct(mw['false_refusal_rate'])}.")
    unsup = [f"{r.system.name} {_pct(r.metrics['unsupported_claims_rate'])} "
             f"({r.metrics['unsupported_claims']}/{r.metrics['questions']})" for r in scored]
    out.append("Unsupported claims (answers neither correct nor backed by a supported citation): "
               + ", ".join(unsup) + ".")
    lat = [f"{r.system.name} {_seconds(r.metrics['latency_p50_s'])} s" for r in scored
           if r.metrics.get("latency_p50_s") is not None]
    if lat:
        out.append("Median latency: " + ", ".join(lat) + ".")
    costs = [f"{r.system.name} {format_usd(r.metrics['cost_per_query_usd'] * 1000)}"
             for r in scored if r.metrics.get("cost_per_query_usd") is not None]
    if costs:
        out.append("Cost per 1,000 questions: " + ", ".join(costs) + ".")
    if mw.get("format_compliance") is not None:
        out.append(f"Format compliance: {_pct(mw['format_compliance'])}.")
    for p in (be or {}).get("pairs", []):
        out.append(f"Break-even: {p['text']}.")
    return out


def _caveats(runs: Sequence[QARun], comparisons: list[dict[str, Any]], n_un: int) -> list[str]:
    out = []
    widths = [(c["ci_high"] - c["ci_low"]) / 2 for c in comparisons]
    if widths:
        out.append(f"At this sample size an F1 difference needs to exceed about "
                   f"±{max(widths) * 100:.0f} points to be distinguishable.")
    if 0 < n_un < 20:
        out.append(f"Refusal rates rest on only {n_un} unanswerable questions.")
    for r in runs:
        out += r.warnings
    return list(dict.fromkeys(out))


# ----------------------------------------------------------------------------- the run

def _question_rows(evalset: EvalSet, runs: Sequence[QARun]) -> list[dict[str, Any]]:
    rows = []
    for i, q in enumerate(evalset.questions):
        per = {}
        for r in runs:
            rec = r.records[i]
            per[r.system.name] = {
                "answer": rec["answer"], "refused": rec["refused"],
                "token_f1": rec["scores"].get("token_f1"),
                "exact_match": rec["scores"].get("exact_match"),
                "unsupported_claim": rec["scores"].get("unsupported_claim"),
                "citations": [{k: c[k] for k in ("n", "document", "section", "supported", "quote")}
                              for c in rec["citations"]],
                "latency_s": rec["timings"].get("total_s"), "error": rec.get("error")}
        rows.append({"id": q.id, "question": q.question, "answerable": q.answerable,
                     "tags": list(q.tags), "references": list(q.answers),
                     "gold_sources": list(q.sources), "systems": per})
    return rows


def build_report_data(ws: AnswerService, evalset: EvalSet, runs: Sequence[QARun],
                      setups: dict[str, dict[str, Any]], *, amortise_months: float = 12.0,
                      user: str | None = None, k: int | None = None,
                      with_recommendation: bool = True) -> dict[str, Any]:
    """Everything a report shows, JSON-ready: this is ``report.json``."""
    be_input = {r.system.name: {"kind": r.system.kind,
                                "setup_usd": setups.get(r.system.name, {}).get("usd"),
                                "per_query_usd": r.metrics.get("cost_per_query_usd")}
                for r in runs}
    be = break_even(be_input, amortise_months)
    be["systems"] = be_input
    stats = ws.store.stats()
    return {
        "ragtune_report": REPORT_VERSION,
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "eval": {"path": evalset.path, "sha256": evalset.sha256, "questions": len(evalset),
                 "answerable": evalset.answerable, "unanswerable": evalset.unanswerable,
                 "tags": dict(Counter(t for q in evalset.questions for t in q.tags).most_common())},
        "workspace": {"root": str(ws.root), "documents": stats.get("documents"),
                      "chunks": stats.get("chunks"),
                      "embedding": f"{ws.settings.embedding.backend}:{ws.settings.embedding.model}",
                      "generation": f"{ws.settings.generation.backend}:{ws.settings.generation.model}"},
        "user": user or "anonymous", "k": k or ws.settings.retrieval.top_k,
        "costs": {"compute_per_hour": ws.settings.costs.compute_per_hour,
                  "hosted": ws.settings.costs.hosted, "amortise_months": amortise_months},
        "systems": [{**r.system.to_dict(), "metrics": r.metrics,
                     "setup": setups.get(r.system.name), "answers_file": str(r.out) if r.out else None,
                     "warnings": r.warnings} for r in runs],
        "break_even": be,
        "recommendation": recommend(runs, be, evalset) if with_recommendation else None,
        "definitions": dict(m.DEFINITIONS),
        "questions": _question_rows(evalset, runs),
        "warnings": list(dict.fromkeys(w for r in runs for w in r.warnings)),
    }


SystemProgress = Callable[[str, int, int, str], None]  # (system, done, total, question id)


def run_compare(ws: AnswerService, evalset: EvalSet, systems: Sequence[SystemSpec], out_dir: Path, *,
                user: str | None = None, k: int | None = None, index_seconds: float | None = None,
                amortise_months: float = 12.0, judge: Any = None, format_regex: str | None = None,
                format_schema: dict[str, Any] | None = None,
                progress: SystemProgress | None = None) -> dict[str, Any]:
    """Run every system (resuming any finished answers in ``out_dir``) and build the report
    data. Systems are checked (adapters exist) before the first question is asked."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    evaluator = QAEvaluator(ws, evalset, user=user, k=k, judge=judge, format_regex=format_regex,
                            format_schema=format_schema)
    for s in systems:
        evaluator.check_system(s)
    index = index_setup(ws.store, index_seconds).to_dict()
    runs: list[QARun] = []
    setups: dict[str, dict[str, Any]] = {}
    for s in systems:
        cb: ProgressFn | None = None
        if progress is not None:
            def cb(done: int, total: int, qid: str, _name: str = s.name) -> None:
                progress(_name, done, total, qid)
        runs.append(evaluator.run(s, answers_path(out_dir, s), progress=cb))
        setups[s.name] = setup_costs(ws, s, index)
    return build_report_data(ws, evalset, runs, setups, amortise_months=amortise_months,
                             user=user, k=evaluator.k)
