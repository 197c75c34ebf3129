"""What an answer costs, what setting a system up costs, and when fine-tuning pays off.

Prices come from ``[costs]`` in ragtune.toml (:class:`~ragtune.config.CostSettings`):

- a model listed in ``costs.hosted`` is priced per million tokens:
  ``prompt_tokens * prompt_price / 1e6 + completion_tokens * completion_price / 1e6``;
- any other model runs on your machine and is priced by time:
  ``seconds * costs.compute_per_hour / 3600``.

>>> from ragtune.config import CostSettings
>>> c = CostSettings(compute_per_hour=3.6, hosted={"gpt-x": [1.0, 2.0]})
>>> query_cost(model="qwen", seconds=2.0, prompt_tokens=500, completion_tokens=50, costs=c)
QueryCost(usd=0.002, basis='compute')
>>> query_cost(model="gpt-x", seconds=2.0, prompt_tokens=500_000, completion_tokens=0, costs=c).usd
0.5

Set-up cost is the compute time spent before the first question: building the index
(measured, or estimated from the store's ingest log) and training the adapter (its
``run.json`` ``duration_s``). The monthly cost of a system at ``V`` queries a month is
``setup / amortise_months + per_query * V``; :func:`break_even_volume` solves where two
systems' lines cross.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ragtune.config import CostSettings

BURST_GAP_S = 120.0  # ingest log entries further apart than this belong to separate runs


@dataclass(frozen=True)
class QueryCost:
    """The price of one answer and how it was priced (``hosted:<model>`` or ``compute``)."""

    usd: float
    basis: str


def compute_cost(seconds: float, costs: CostSettings) -> float:
    """USD for ``seconds`` of the local machine.

    >>> compute_cost(1800, CostSettings(compute_per_hour=0.5))
    0.25
    """
    return max(0.0, seconds) * costs.compute_per_hour / 3600.0


def query_cost(*, model: str, seconds: float, prompt_tokens: int | None,
               completion_tokens: int | None, costs: CostSettings) -> QueryCost:
    """Price one answer (see module doc). Unknown token counts price as 0 tokens."""
    prices = costs.hosted.get(model)
    if prices is not None:
        usd = ((prompt_tokens or 0) * prices[0] + (completion_tokens or 0) * prices[1]) / 1e6
        return QueryCost(usd, f"hosted:{model}")
    return QueryCost(compute_cost(seconds, costs), "compute")


# ----------------------------------------------------------------------------- set-up

@dataclass(frozen=True)
class SetupTime:
    """Seconds spent before answering, with how they were obtained (``basis``)."""

    seconds: float | None
    basis: str

    def to_dict(self) -> dict[str, Any]:
        return {"seconds": self.seconds, "basis": self.basis}


def index_seconds_from_log(timestamps: Sequence[float], gap_s: float = BURST_GAP_S) -> float:
    """Lower bound on index build time from the ingest log's per-document timestamps.

    Entries less than ``gap_s`` apart form one ingest run; each run lasted at least from its
    first to its last entry (the first document's own time is not in the log).

    >>> index_seconds_from_log([100.0, 101.5, 103.0, 900.0, 904.0])
    7.0
    """
    ts = sorted(timestamps)
    total, start = 0.0, None
    for prev, cur in zip([None, *ts], ts):
        if prev is None or cur - prev > gap_s:
            if prev is not None and start is not None:
                total += prev - start
            start = cur
    if ts and start is not None:
        total += ts[-1] - start
    return total


def index_setup(store: Any, measured_s: float | None = None, log_limit: int = 100_000) -> SetupTime:
    """Index build time: ``measured_s`` when given, else an estimate from the ingest log."""
    if measured_s is not None:
        return SetupTime(float(measured_s), "measured")
    entries = [e for e in store.ingest_log(log_limit) if e.status in {"added", "updated"}]
    if not entries:
        return SetupTime(None, "unknown (no ingest in the log; pass --index-seconds)")
    return SetupTime(index_seconds_from_log([e.ts for e in entries]),
                     "estimated from ingest-log timestamps, a lower bound")


def training_setup(adapter_dir: Path | None) -> SetupTime:
    """Training time of an adapter from its ``run.json`` (``duration_s``)."""
    if adapter_dir is None:
        return SetupTime(0.0, "no training")
    try:
        run = json.loads((Path(adapter_dir) / "run.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return SetupTime(None, f"unknown ({adapter_dir}/run.json unreadable)")
    seconds = run.get("duration_s")
    if not isinstance(seconds, int | float):
        return SetupTime(None, "unknown (run.json has no duration_s)")
    return SetupTime(float(seconds), "run.json duration_s")


# ----------------------------------------------------------------------------- break-even

def monthly_cost(setup_usd: float, per_query_usd: float, volume: float,
                 amortise_months: float) -> float:
    """Cost of a month at ``volume`` queries: amortised set-up plus per-query cost.

    >>> monthly_cost(120.0, 0.001, 10_000, amortise_months=12)
    20.0
    """
    return setup_usd / amortise_months + per_query_usd * volume


def break_even_volume(candidate: tuple[float, float], reference: tuple[float, float],
                      amortise_months: float) -> float | None:
    """Monthly query volume above which ``candidate`` (setup, per-query USD) costs less than
    ``reference``; 0.0 when it is never dearer; None when it never becomes cheaper.

    >>> break_even_volume((12.0, 0.001), (0.0, 0.002), amortise_months=12)  # 1 / 0.001
    1000.0
    >>> break_even_volume((12.0, 0.003), (0.0, 0.002), 12) is None
    True
    >>> break_even_volume((0.0, 0.001), (5.0, 0.002), 12)
    0.0
    """
    (s_c, p_c), (s_r, p_r) = candidate, reference
    fixed_gap = (s_c - s_r) / amortise_months
    if p_c >= p_r:
        return 0.0 if fixed_gap <= 0 and p_c == p_r else None
    volume = fixed_gap / (p_r - p_c)
    return max(0.0, volume)


def volume_grid(max_volume: float, points: int = 60) -> list[float]:
    """Log-spaced monthly volumes from 10 to ``max_volume`` (for the chart).

    >>> g = volume_grid(1e6, points=6); g[0], g[-1], len(g)
    (10.0, 1000000.0, 6)
    """
    hi = max(100.0, max_volume)
    lo_e, hi_e = 1.0, math.log10(hi)
    return [10 ** (lo_e + (hi_e - lo_e) * i / (points - 1)) for i in range(points)]


def break_even(systems: dict[str, dict[str, Any]], amortise_months: float = 12.0) -> dict[str, Any]:
    """Compare every trained system with every system that only retrieves.

    ``systems`` maps a name to ``{"kind", "setup_usd", "per_query_usd"}`` (kind: base, rag,
    finetuned, hybrid, raft). Returns the pairs with their break-even volume and a sentence
    that says "no break-even" when there is none, plus the volume range for a chart.
    """
    trained = [n for n, s in systems.items() if s["kind"] in {"finetuned", "hybrid", "raft"}]
    references = [n for n, s in systems.items() if s["kind"] == "rag"]
    pairs = []
    for t in trained:
        for r in references:
            a, b = systems[t], systems[r]
            if a["per_query_usd"] is None or b["per_query_usd"] is None:
                continue
            v = break_even_volume((a["setup_usd"] or 0.0, a["per_query_usd"]),
                                  (b["setup_usd"] or 0.0, b["per_query_usd"]), amortise_months)
            if v is None:
                text = (f"no break-even: {t} costs {format_usd(a['per_query_usd'] * 1000)} per "
                        f"1,000 questions, not less than {r}'s "
                        f"{format_usd(b['per_query_usd'] * 1000)}, so its training never pays back")
            elif v == 0.0:
                text = f"{t} costs no more than {r} at any volume"
            else:
                text = (f"{t} becomes cheaper than {r} above {v:,.0f} queries a month "
                        f"(training amortised over {amortise_months:g} months)")
            pairs.append({"system": t, "reference": r, "volume": v, "text": text})
    finite = [p["volume"] for p in pairs if p["volume"]]
    top = max([*finite, 1e5]) * 10
    return {"amortise_months": amortise_months, "pairs": pairs, "max_volume": top}


def format_usd(x: float) -> str:
    """Short USD amount: two significant digits below a dollar, never in exponent form.

    >>> format_usd(0.000423), format_usd(0.0136), format_usd(1.2), format_usd(0)
    ('$0.00042', '$0.014', '$1.20', '$0')
    >>> format_usd(6.2e-05), format_usd(0.5), format_usd(-0.03)
    ('$0.000062', '$0.50', '-$0.030')
    """
    if x == 0:
        return "$0"
    sign, x = ("-" if x < 0 else ""), abs(x)
    if x >= 1:
        return f"{sign}${x:,.2f}"
    digits = max(2, 1 - math.floor(math.log10(x)))
    return f"{sign}${x:.{digits}f}"


def format_per_1000(per_query_usd: float) -> str:
    """A cost per question as the cost of 1,000 questions (tiny amounts read better).

    >>> format_per_1000(6.2e-05)
    '$0.062 per 1,000 questions'
    """
    return f"{format_usd(per_query_usd * 1000)} per 1,000 questions"
