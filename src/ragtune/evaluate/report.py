"""Reports of a bake-off: ``report.json`` (the data), ``report.md`` and ``report.html``.

>>> # paths = write_reports(data, Path("bakeoff"))   # data from compare.run_compare
>>> # paths["html"]                                   # bakeoff/report.html

The HTML page is self-contained: inline CSS and charts drawn here as inline SVG (no script,
no CDN, no web font), so it opens from a file, offline, in any browser. Charts:

- accuracy vs latency: token F1 against median latency, one point per system (named in a
  legend beside the plot, so no label can cover another);
- cost per 1,000 questions: one horizontal bar per system, its name on the left and its
  amount at the bar's end;
- monthly cost vs monthly query volume (log-log): one line per system (set-up amortised
  plus per-query cost times volume), the break-even points marked where a trained system's
  line crosses RAG's, or "no break-even" said in words;
- a per-question table with every system's answer, score and citations.

Tables have plain headers ("Correct citations", not "cit. prec.") explained in a legend, and
costs are given per 1,000 questions ("$0.062", not "$6.2e-05"). The page fits its window
without a horizontal scroll bar from 800 px up (tests/test_report_browser.py checks 1,280
and 800 px in Chromium, and that no two texts of a chart overlap).
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ragtune.evaluate.costs import format_usd, monthly_cost, volume_grid
from ragtune.evaluate.qa_metrics import DEFINITIONS, higher_is_better
from ragtune.jsonl import write_text_atomic

CHAR_PX = 7.4  # width of a character of the 12 px chart font, with room to spare
PALETTE = ("#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#b07aa1", "#edc948",
           "#9c755f")

# (key, plain header, kind) of the metrics shown in tables; kind picks the formatting.
# Headers say what is measured in words; LEGEND says how (the metric's definition).
COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("token_f1", "Answer F1 (0-100)", "points"), ("exact_match", "Exact match (0-100)", "points"),
    ("contains_answer", "Contains the answer", "pct"),
    ("embedding_similarity", "Meaning similarity (0-1)", "ratio"),
    ("judge_correct", "Judged correct", "pct"),
    ("recall@k", "Right document in the top {k}", "pct"),
    ("mrr@10", "Rank of right document (MRR@10)", "ratio"),
    ("ndcg@10", "Ranking quality (nDCG@10)", "ratio"),
    ("groundedness", "Grounded sentences", "pct"),
    ("citation_precision", "Correct citations", "pct"),
    ("citation_recall", "Cites the right source", "pct"),
    ("correct_refusal_rate", "Refuses unanswerable questions", "pct"),
    ("false_refusal_rate", "Refuses answerable questions", "pct"),
    ("unsupported_claims_rate", "Unsupported claims", "pct"),
    ("format_compliance", "Follows the format", "pct"),
    ("latency_p50_s", "Median time (s)", "sec"), ("latency_p95_s", "95% answered within (s)", "sec"),
    ("prompt_tokens_mean", "Prompt tokens (mean)", "int"),
    ("completion_tokens_mean", "Answer tokens (mean)", "int"),
    ("cost_per_query_usd", "Cost per 1,000 questions", "usd1k"),
)


LEGEND_EXTRA = {
    "latency_p50_s": "half of the answers took at most this long, from question to full answer.",
    "latency_p95_s": "95% of the answers took at most this long, from question to full answer.",
    "prompt_tokens_mean": "tokens the model read per question: instructions, the question and "
                          "the retrieved sources (what a hosted model charges for).",
    "completion_tokens_mean": "tokens the model wrote per answer.",
    "cost_per_query_usd": "what 1,000 answers cost at the mean cost of one: tokens x price for "
                          "hosted models, seconds x costs.compute_per_hour / 3600 for local ones.",
}


def legend_text(key: str) -> str:
    """What a column means and which way is better, from the metric's definition.

    >>> legend_text("unsupported_claims_rate").split(";")[0]
    'lower is better'
    """
    definition = LEGEND_EXTRA.get(key) or DEFINITIONS.get(key) or next(
        (v for k, v in DEFINITIONS.items() if key in k.split(" / ")), "")
    better = higher_is_better(key)
    way = "" if better is None else ("higher is better; " if better else "lower is better; ")
    return way + definition


def fmt(value: Any, kind: str) -> str:
    """Format a metric for a table; None is "n/a".

    >>> fmt(0.4567, "points"), fmt(0.4567, "pct"), fmt(None, "pct"), fmt(1.234, "sec")
    ('45.7', '46%', 'n/a', '1.23')
    >>> fmt(0.0021, "sec"), fmt(0.25, "sec"), fmt(6.2e-05, "usd1k")
    ('0.0021', '0.25', '$0.062')
    """
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if kind == "points":
        return f"{value * 100:.1f}"
    if kind == "pct":
        return f"{value:.0%}"
    if kind == "ratio":
        return f"{value:.3f}"
    if kind == "sec":
        return f"{value:.2f}" if value >= 0.995 else f"{value:.2g}"
    if kind == "int":
        return f"{value:.0f}"
    if kind == "usd":
        return format_usd(value)
    if kind == "usd1k":
        return format_usd(value * 1000)
    return str(value)


def _metric(system: dict[str, Any], key: str, k: int) -> Any:
    return system["metrics"].get(f"recall@{k}" if key == "recall@k" else key)


def write_reports(data: dict[str, Any], out_dir: Path) -> dict[str, Path]:
    """Write report.json, report.md and report.html into ``out_dir``; return their paths."""
    out_dir = Path(out_dir)
    paths = {"json": out_dir / "report.json", "md": out_dir / "report.md",
             "html": out_dir / "report.html"}
    write_text_atomic(paths["json"], json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")
    write_text_atomic(paths["md"], render_markdown(data))
    write_text_atomic(paths["html"], render_html(data))
    return paths


def load_report(path: Path) -> dict[str, Any]:
    """Read a report.json (for ``--baseline`` and ``advise --report``)."""
    from ragtune.errors import InputError

    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as e:
        raise InputError(str(path), f"cannot read the report: {e.strerror or e}") from None
    except json.JSONDecodeError as e:
        raise InputError(str(path), f"not valid JSON ({e.msg})", e.lineno) from None
    if not isinstance(data, dict) or "systems" not in data or "ragtune_report" not in data:
        raise InputError(str(path), "not a ragtune report.json (no 'ragtune_report'/'systems')")
    return data


# ----------------------------------------------------------------------------- markdown

def _columns(data: dict[str, Any]) -> list[tuple[str, str, str]]:
    """The columns with at least one value (format and judge only when measured)."""
    k = data.get("k", 5)
    cols = [(key, head.replace("{k}", str(k)), kind) for key, head, kind in COLUMNS]
    return [c for c in cols if any(_metric(s, c[0], k) is not None for s in data["systems"])]


def _metric_rows(data: dict[str, Any]) -> list[tuple[str, str, list[str]]]:
    """(key, header, one formatted value per system) for every metric with a value: the
    results table is one row per metric, so it stays narrow however many metrics there are."""
    k = data.get("k", 5)
    return [(key, head, [fmt(_metric(s, key, k), kind) for s in data["systems"]])
            for key, head, kind in _columns(data)]


def _md_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    def esc(x: str) -> str:
        return x.replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(esc(h) for h in header) + " |",
             "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(esc(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _setup_text(setup: dict[str, Any] | None) -> str:
    if not setup:
        return "n/a"
    parts = []
    for name in ("index", "training"):
        if name in setup:
            s = setup[name]
            parts.append(f"{name} {fmt(s['seconds'], 'sec')} s ({s['basis']})")
    usd = setup.get("usd")
    head = "none" if not parts else "; ".join(parts)
    return f"{head} → {format_usd(usd)}" if usd is not None and parts else head


def render_markdown(data: dict[str, Any]) -> str:
    """The report as Markdown (tables, recommendation, definitions, per-question results)."""
    ev, rec = data["eval"], data.get("recommendation")
    out = [f"# ragtune bake-off: {Path(ev['path']).name}", "",
           (f"{ev['questions']} questions ({ev['answerable']} answerable, {ev['unanswerable']} "
           f"unanswerable) from `{ev['path']}` (sha256 {ev['sha256'][:12]}), asked as "
           f"`{data['user']}` in workspace `{data['workspace']['root']}` "
           f"({data['workspace']['documents']} documents; embedding "
           f"{data['workspace']['embedding']}, generation {data['workspace']['generation']}). "
           f"{data['created_at']}."), ""]
    if rec:
        out += ["## Recommendation", "", f"**{rec['headline']}**", ""]
        out += [f"- {r}" for r in rec["reasons"]] + [""]
        if rec["caveats"]:
            out += ["Caveats:", ""] + [f"- {c}" for c in rec["caveats"]] + [""]
        out += ["<details><summary>Rules used</summary>", ""]
        out += [f"{r}  " for r in rec["rules"]] + ["", "</details>", ""]
    rows = _metric_rows(data)
    out += ["## Results", "",
            _md_table(["metric", *[s["name"] for s in data["systems"]]],
                      [[head, *values] for _, head, values in rows]), "",
            ("n/a: not applicable (a system that retrieves nothing has no context to be grounded "
             "in or to cite) or not measured. What each row measures:"), ""]
    out += [f"- **{head}**: {legend_text(key)}" for key, head, _ in rows] + [""]
    out += ["## Cost", "",
            _md_table(["system", "cost per 1,000 questions", "total for this run", "set-up"],
                      [[s["name"], fmt(s["metrics"].get("cost_per_query_usd"), "usd1k"),
                        fmt(s["metrics"].get("cost_total_usd"), "usd"), _setup_text(s.get("setup"))]
                       for s in data["systems"]]), "",
            f"Prices: local compute {format_usd(data['costs']['compute_per_hour'])} per hour"
            + (f"; hosted per million tokens: {data['costs']['hosted']}" if data["costs"]["hosted"]
               else "") + f". Set-up amortised over {data['costs']['amortise_months']:g} months.", ""]
    pairs = data["break_even"]["pairs"]
    if pairs:
        out += ["Break-even:", ""] + [f"- {p['text']}" for p in pairs] + [""]
    else:
        out += ["Break-even: no trained system was compared with RAG.", ""]
    if data.get("warnings"):
        out += ["## Warnings", ""] + [f"- {w}" for w in data["warnings"]] + [""]
    out += ["## Definitions", ""] + [f"- **{k_}**: {v}" for k_, v in data["definitions"].items()]
    out += ["", "## Per question", "",
            ("Token F1 per system (R = refused, ! = unsupported claim, c = cites a supported "
            "source). Full answers and citations: report.html and the answers-*.jsonl files."), ""]
    names = [s["name"] for s in data["systems"]]
    rows = []
    for q in data["questions"]:
        cells = []
        for n in names:
            a = q["systems"][n]
            mark = ("R" if a["refused"] else "") + ("!" if a["unsupported_claim"] else "") + \
                   ("c" if any(c["supported"] for c in a["citations"]) else "")
            cells.append(f"{fmt(a['token_f1'], 'points')} {mark}".strip())
        rows.append([q["id"], "yes" if q["answerable"] else "no", q["question"][:80], *cells])
    out += [_md_table(["id", "answerable", "question", *names], rows), ""]
    return "\n".join(out)


# ----------------------------------------------------------------------------- SVG charts

def _nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    """Round tick values covering [lo, hi].

    >>> _nice_ticks(0, 0.87)
    [0.0, 0.2, 0.4, 0.6000000000000001, 0.8, 1.0]
    """
    if hi <= lo:
        hi = lo + 1.0
    raw = (hi - lo) / n
    mag = 10 ** math.floor(math.log10(raw))
    step = next(s * mag for s in (1, 2, 2.5, 5, 10) if s * mag >= raw)
    start = math.floor(lo / step) * step
    ticks = []
    t = start
    while t <= hi + step * 0.999:
        ticks.append(t)
        t += step
    return ticks


class _Plot:
    """Maps data to pixels inside a framed plot area (linear or log10 axes)."""

    # Spots tried for a label, nearest first: right/left of the point, then further up/down.
    _OFFSETS = tuple((dx, dy) for dy in (-8, 16, -22, 30, -36, 44, -50, 58)
                     for dx in (10, -10))

    def __init__(self, width: int, height: int, x: tuple[float, float], y: tuple[float, float],
                 *, xlog: bool = False, ylog: bool = False, margin: tuple[int, int, int, int] = (20, 20, 50, 64)):
        self.w, self.h = width, height
        self.top, self.right, self.bottom, self.left = margin
        self.xlog, self.ylog = xlog, ylog
        self.x0, self.x1 = (math.log10(x[0]), math.log10(x[1])) if xlog else x
        self.y0, self.y1 = (math.log10(y[0]), math.log10(y[1])) if ylog else y
        self.parts: list[str] = []
        self._labels: list[tuple[float, float, float, float]] = []

    def label(self, x: float, y: float, text: str) -> bool:
        """Text beside point (x, y) px, at the first spot inside the plot area that overlaps
        no earlier label; when there is none the label is left out (False) rather than drawn
        over another (the mark's tooltip and the text under the chart still say it)."""
        width, height = CHAR_PX * len(text), 13.0
        inside = (self.left, self.top, self.w - self.right, self.h - self.bottom)
        candidates = []
        for dx, dy in self._OFFSETS:
            left = x + dx if dx > 0 else x + dx - width
            candidates.append(((left, y + dy - height + 3, left + width, y + dy + 3), dy))
        for box, dy in candidates:
            fits = (box[0] >= inside[0] and box[2] <= inside[2] and box[1] >= inside[1]
                    and box[3] <= inside[3])
            if fits and not any(box[0] < b[2] and b[0] < box[2] and box[1] < b[3]
                                and b[1] < box[3] for b in self._labels):
                self._labels.append(box)
                self.parts.append(f'<text x="{box[0]:.1f}" y="{y + dy:.1f}" class="label">'
                                  f'{html.escape(text)}</text>')
                return True
        return False

    def px(self, x: float) -> float:
        v = math.log10(x) if self.xlog else x
        return self.left + (v - self.x0) / ((self.x1 - self.x0) or 1) * (self.w - self.left - self.right)

    def py(self, y: float) -> float:
        v = math.log10(y) if self.ylog else y
        return self.h - self.bottom - (v - self.y0) / ((self.y1 - self.y0) or 1) * (
            self.h - self.top - self.bottom)

    def axes(self, xticks: Sequence[float], yticks: Sequence[float], xlabel: str, ylabel: str,
             xfmt: Callable[[float], str], yfmt: Callable[[float], str]) -> None:
        x_a, x_b = self.left, self.w - self.right
        y_a, y_b = self.top, self.h - self.bottom
        p = self.parts
        p.append(f'<rect class="frame" x="{x_a}" y="{y_a}" width="{x_b - x_a}" '
                 f'height="{y_b - y_a}" fill="none" stroke="#999"/>')
        for t in xticks:
            x = self.px(t)
            p.append(f'<line x1="{x:.1f}" y1="{y_a}" x2="{x:.1f}" y2="{y_b}" stroke="#eee"/>')
            p.append(f'<text x="{x:.1f}" y="{y_b + 19}" text-anchor="middle" class="tick">'
                     f'{html.escape(xfmt(t))}</text>')
        for t in yticks:
            y = self.py(t)
            p.append(f'<line x1="{x_a}" y1="{y:.1f}" x2="{x_b}" y2="{y:.1f}" stroke="#eee"/>')
            p.append(f'<text x="{x_a - 9}" y="{y + 4:.1f}" text-anchor="end" class="tick">'
                     f'{html.escape(yfmt(t))}</text>')
        p.append(f'<text x="{(x_a + x_b) / 2:.1f}" y="{self.h - 8}" text-anchor="middle" '
                 f'class="axis">{html.escape(xlabel)}</text>')
        p.append(f'<text transform="translate(14 {(y_a + y_b) / 2:.1f}) rotate(-90)" '
                 f'text-anchor="middle" class="axis">{html.escape(ylabel)}</text>')

    def svg(self, chart_id: str, title: str) -> str:
        body = "\n".join(self.parts)
        return (f'<svg id="{chart_id}" class="chart" role="img" aria-label="{html.escape(title)}" '
                f'xmlns="http://www.w3.org/2000/svg" width="{self.w}" height="{self.h}" '
                f'viewBox="0 0 {self.w} {self.h}"><title>{html.escape(title)}</title>\n{body}\n</svg>')


def _empty_chart(chart_id: str, title: str, message: str, width: int = 560, height: int = 120) -> str:
    return (f'<svg id="{chart_id}" class="chart" role="img" xmlns="http://www.w3.org/2000/svg" '
            f'width="{width}" height="{height}" viewBox="0 0 {width} {height}"><title>'
            f'{html.escape(title)}</title><rect x="1" y="1" width="{width - 2}" height="{height - 2}" '
            f'fill="#fafafa" stroke="#ccc"/><text x="{width / 2}" y="{height / 2}" '
            f'text-anchor="middle" class="axis">{html.escape(message)}</text></svg>')


def _colors(data: dict[str, Any]) -> dict[str, str]:
    return {s["name"]: PALETTE[i % len(PALETTE)] for i, s in enumerate(data["systems"])}


def _text_px(text: str) -> float:
    return CHAR_PX * len(text)


def _legend(plot: _Plot, entries: Sequence[tuple[str, str, str]], *, shape: str = "line") -> None:
    """Colour keys with text to the right of the plot area, one line each: (colour, text,
    tooltip). Nothing is drawn inside the plot, so nothing can cover a mark or a label."""
    for i, (color, text, tip) in enumerate(entries):
        lx = plot.w - plot.right + 12
        ly = plot.top + 14 + 20 * i
        if shape == "dot":
            plot.parts.append(f'<circle cx="{lx + 7}" cy="{ly - 4}" r="6" fill="{color}"/>')
        else:
            plot.parts.append(f'<line x1="{lx}" y1="{ly - 4}" x2="{lx + 18}" y2="{ly - 4}" '
                              f'stroke="{color}" stroke-width="3"/>')
        plot.parts.append(f'<text x="{lx + 24}" y="{ly}" class="label legend">{html.escape(text)}'
                          f'<title>{html.escape(tip)}</title></text>')


def chart_accuracy_latency(data: dict[str, Any]) -> str:
    """Scatter: token F1 (y) against median latency (x), one point per system, named in a
    legend beside the plot (points of similar systems often sit on top of each other)."""
    pts = [(s["name"], s["metrics"].get("latency_p50_s"), s["metrics"].get("token_f1"))
           for s in data["systems"]]
    pts = [(n, x, y) for n, x, y in pts if x is not None and y is not None]
    title = "Accuracy vs latency"
    if not pts:
        return _empty_chart("chart-accuracy-latency", title, "no answer metrics to plot")
    colors = _colors(data)
    entries = [(colors[n], f"{n}: F1 {y * 100:.1f}, {fmt(x, 'sec')} s", n) for n, x, y in pts]
    legend = 36 + max(_text_px(t) for _, t, _ in entries)
    xmax = max(x for _, x, _ in pts) * 1.15 or 1.0
    xt = _nice_ticks(0, xmax)
    yt = _nice_ticks(0, max(100.0, max(y * 100 for *_, y in pts)))
    yt = [t for t in yt if t <= 100] or [0, 100]
    plot = _Plot(round(380 + legend), 320, (0, xt[-1]), (0, 100), margin=(20, round(legend), 50, 64))
    plot.axes(xt, yt, "median time per answer (s)", "answer F1 (0-100)",
              lambda v: f"{v:g}", lambda v: f"{v:g}")
    for name, x, y in pts:
        cx, cy = plot.px(x), plot.py(y * 100)
        plot.parts.append(f'<circle class="mark" cx="{cx:.1f}" cy="{cy:.1f}" r="7" '
                          f'fill="{colors[name]}" fill-opacity="0.85"><title>{html.escape(name)}: '
                          f'F1 {y * 100:.1f}, {x:.2f} s</title></circle>')
    _legend(plot, entries, shape="dot")
    return plot.svg("chart-accuracy-latency", title)


def chart_cost(data: dict[str, Any]) -> str:
    """Horizontal bars: the cost of 1,000 questions for each system; the system's name on
    the left of its bar and the amount at its end (bars are one line apart: no overlap)."""
    vals = [(s["name"], s["metrics"].get("cost_per_query_usd")) for s in data["systems"]]
    vals = [(n, v * 1000) for n, v in vals if v is not None]
    title = "Cost per 1,000 questions"
    if not vals:
        return _empty_chart("chart-cost", title, "no cost measured")
    colors = _colors(data)
    top = max(v for _, v in vals) or 1e-9
    xt = _nice_ticks(0, top * 1.05)
    names = 16 + max(_text_px(n) for n, _ in vals)
    amounts = 16 + max(_text_px(format_usd(v)) for _, v in vals)
    row = 30
    height = 20 + row * len(vals) + 50
    plot = _Plot(round(names + 300 + amounts), height, (0, xt[-1]), (0, len(vals)),
                 margin=(20, round(amounts), 50, round(names)))
    # ticks at both ends only: amounts like $0.00042 are too wide for five of them
    plot.axes([xt[0], xt[-1]], [], "USD per 1,000 questions", "",
              lambda v: format_usd(v), str)
    for i, (name, v) in enumerate(vals):
        y0, y1 = plot.py(len(vals) - i - 0.2), plot.py(len(vals) - i - 0.8)
        x0, x1 = plot.px(0), plot.px(v)
        w = max(x1 - x0, 1.0)  # a zero-cost bar still shows a hairline
        mid = (y0 + y1) / 2 + 4
        plot.parts.append(f'<rect class="mark" x="{x0:.1f}" y="{y0:.1f}" width="{w:.1f}" '
                          f'height="{y1 - y0:.1f}" fill="{colors[name]}"><title>'
                          f'{html.escape(name)}: {format_usd(v)} per 1,000 questions</title></rect>')
        plot.parts.append(f'<text x="{x0 - 8:.1f}" y="{mid:.1f}" text-anchor="end" '
                          f'class="label">{html.escape(name)}</text>')
        plot.parts.append(f'<text x="{x0 + w + 6:.1f}" y="{mid:.1f}" class="label">'
                          f'{html.escape(format_usd(v))}</text>')
    return plot.svg("chart-cost", title)


def _volume(v: float) -> str:
    """A query volume for an axis tick.

    >>> _volume(1000), _volume(1e7), _volume(2.5e9)
    ('1,000', '10M', '2.5B')
    """
    if v >= 1e9:
        return f"{v / 1e9:g}B"
    if v >= 1e7:
        return f"{v / 1e6:g}M"
    return f"{v:,.0f}"


def chart_break_even(data: dict[str, Any]) -> str:
    """Log-log lines: monthly cost against monthly queries, break-even points marked."""
    be = data["break_even"]
    systems = {n: s for n, s in be["systems"].items() if s["per_query_usd"] is not None}
    title = "Monthly cost vs monthly query volume"
    if not systems:
        return _empty_chart("chart-break-even", title, "no cost measured")
    months = be["amortise_months"]
    grid = volume_grid(be["max_volume"])
    curves = {n: [(v, monthly_cost(s["setup_usd"] or 0.0, s["per_query_usd"], v, months))
                  for v in grid] for n, s in systems.items()}
    positive = [c for pts in curves.values() for _, c in pts if c > 0]
    floor = min(positive) if positive else 1e-6
    ymin = 10 ** math.floor(math.log10(floor))
    ymax = 10 ** math.ceil(math.log10(max(positive) if positive else 1.0))
    if ymax <= ymin:
        ymax = ymin * 10
    legend = round(40 + _text_px(max(systems, key=len)))
    ye = range(int(math.log10(ymin)), int(math.log10(ymax)) + 1)
    step = max(1, math.ceil(len(ye) / 7))
    yt = [10.0 ** e for e in ye][::step]
    left = round(36 + max(_text_px(format_usd(v)) for v in yt) * 0.95)  # ticks are 11 px
    plot = _Plot(430 + left + legend, 360, (grid[0], grid[-1]), (ymin, ymax), xlog=True,
                 ylog=True, margin=(20, legend, 50, left))
    xt = [10.0 ** e for e in range(int(math.log10(grid[0])), int(math.log10(grid[-1])) + 1)]
    xt = xt[::max(1, math.ceil(len(xt) * 75 / (plot.w - plot.left - plot.right)))]  # 75 px apart
    plot.axes(xt, yt, "queries per month (log)", "USD per month (log)",
              _volume, format_usd)
    colors = _colors(data)
    for name, pts in curves.items():
        d = " ".join(f"{plot.px(v):.1f},{plot.py(max(c, ymin)):.1f}" for v, c in pts)
        plot.parts.append(f'<polyline class="mark line" points="{d}" fill="none" '
                          f'stroke="{colors.get(name, PALETTE[0])}" stroke-width="2.5">'
                          f'<title>{html.escape(name)}</title></polyline>')
    _legend(plot, [(colors.get(n, PALETTE[0]), n, n) for n in curves])
    for p in be["pairs"]:
        v = p["volume"]
        if not v or v < grid[0] or v > grid[-1]:
            continue
        s = systems[p["system"]]
        c = monthly_cost(s["setup_usd"] or 0.0, s["per_query_usd"], v, months)
        cx, cy = plot.px(v), plot.py(max(c, ymin))
        plot.parts.append(f'<circle class="mark break-even" cx="{cx:.1f}" cy="{cy:.1f}" r="6" '
                          f'fill="none" stroke="#000" stroke-width="2"><title>'
                          f'{html.escape(p["text"])}</title></circle>')
        plot.label(cx, cy, f"break-even {v:,.0f}/month")
    return plot.svg("chart-break-even", title)


# ----------------------------------------------------------------------------- HTML

CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:24px auto;
max-width:1200px;padding:0 16px;color:#222}
h1{font-size:22px}h2{font-size:18px;margin-top:28px;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:8px 0;font-size:13px;max-width:100%}
th,td{border:1px solid #ddd;padding:4px 6px;vertical-align:top;text-align:left;
overflow-wrap:anywhere}
th{background:#f4f4f4}td.num{text-align:right;font-variant-numeric:tabular-nums}
table.fixed{table-layout:fixed;width:100%}
.rec{background:#eef6ee;border:1px solid #9c9;padding:10px 14px;border-radius:6px}
.rec .headline{font-size:16px;font-weight:600}
.warn{background:#fff6e5;border:1px solid #e8c680;padding:8px 14px;border-radius:6px}
.charts{display:flex;flex-wrap:wrap;gap:18px}
.chart{background:#fff;border:1px solid #ddd;border-radius:4px;max-width:100%;height:auto}
.tick{font-size:11px;fill:#555}.axis{font-size:12px;fill:#333}.label{font-size:12px;fill:#222}
.ok{color:#2a7a2a}.bad{color:#b22}.muted{color:#777}
dl.legend{display:grid;grid-template-columns:minmax(10em,max-content) 1fr;gap:2px 12px;
font-size:13px}dl.legend dt{font-weight:600}dl.legend dd{margin:0}
details summary{cursor:pointer}
"""


def _e(x: Any) -> str:
    return html.escape(str(x))


def _answer_cell(a: dict[str, Any]) -> str:
    if a.get("error"):
        return f'<span class="bad">error: {_e(a["error"])}</span>'
    flags = []
    if a["refused"]:
        flags.append('<span class="muted">refused</span>')
    if a["unsupported_claim"]:
        flags.append('<span class="bad">unsupported claim</span>')
    f1 = "" if a["token_f1"] is None else f'F1 {a["token_f1"] * 100:.0f}'
    cites = "".join(
        f'<li class="{"ok" if c["supported"] else "bad"}">[{c["n"]}] '
        f'{"✓" if c["supported"] else "✗"} {_e(Path(c["document"]).name)} — {_e(c["section"])}'
        f'<br><span class="muted">“{_e(c["quote"][:160])}”</span></li>' for c in a["citations"])
    return (f'<div>{_e(a["answer"])}</div><div>{f1} {" ".join(flags)}</div>'
            + (f"<ul>{cites}</ul>" if cites else ""))


def render_html(data: dict[str, Any]) -> str:
    """The self-contained HTML report (see module doc)."""
    ev, rec = data["eval"], data.get("recommendation")
    parts = [(f'<!doctype html><html lang="en"><head><meta charset="utf-8">'
             f'<meta name="viewport" content="width=device-width,initial-scale=1">'
             f'<title>ragtune bake-off — {_e(Path(ev["path"]).name)}</title>'
             f'<style>{CSS}</style></head><body>'),
             f'<h1>ragtune bake-off: {_e(Path(ev["path"]).name)}</h1>',
             (f'<p>{ev["questions"]} questions ({ev["answerable"]} answerable, '
             f'{ev["unanswerable"]} unanswerable), asked as <code>{_e(data["user"])}</code>; '
             f'{data["workspace"]["documents"]} documents; embedding '
             f'<code>{_e(data["workspace"]["embedding"])}</code>, generation '
             f'<code>{_e(data["workspace"]["generation"])}</code>; {_e(data["created_at"])}.</p>')]
    if rec:
        parts.append(f'<section class="rec" id="recommendation"><div class="headline">'
                     f'{_e(rec["headline"])}</div><ul>'
                     + "".join(f"<li>{_e(r)}</li>" for r in rec["reasons"]) + "</ul>"
                     + ('<p><b>Caveats</b></p><ul>' + "".join(f"<li>{_e(c)}</li>" for c in rec["caveats"])
                        + "</ul>" if rec["caveats"] else "")
                     + '<details><summary>Rules used</summary><ol>'
                     + "".join(f"<li>{_e(r.split('. ', 1)[-1])}</li>" for r in rec["rules"])
                     + "</ol></details></section>")
    rows = _metric_rows(data)
    names = [s["name"] for s in data["systems"]]
    parts.append('<h2>Results</h2><table id="metrics"><tr><th>measure</th>'
                 + "".join(f"<th>{_e(n)}</th>" for n in names) + "</tr>")
    for key, head, values in rows:
        parts.append(f'<tr><th scope="row" title="{_e(legend_text(key))}">{_e(head)}</th>'
                     + "".join(f'<td class="num">{_e(v)}</td>' for v in values) + "</tr>")
    parts.append('</table><p class="muted">n/a: not applicable (no retrieval: nothing to be '
                 'grounded in or cite) or not measured. What each row measures:</p>'
                 '<dl class="legend" id="legend">'
                 + "".join(f"<dt>{_e(head)}</dt><dd>{_e(legend_text(key))}</dd>"
                           for key, head, _ in rows) + "</dl>")
    parts.append('<h2>Charts</h2><div class="charts">' + chart_accuracy_latency(data)
                 + chart_cost(data) + chart_break_even(data) + "</div>")
    pairs = data["break_even"]["pairs"]
    parts.append("<p>" + ("<br>".join(_e(p["text"]) for p in pairs) if pairs else
                          "Break-even: no trained system was compared with RAG.")
                 + f' <span class="muted">(set-up amortised over '
                   f'{data["costs"]["amortise_months"]:g} months; local compute '
                   f'{_e(format_usd(data["costs"]["compute_per_hour"]))}/hour)</span></p>')
    parts.append("<h2>Set-up</h2><table><tr><th>system</th><th>set-up</th><th>cost per 1,000 "
                 "questions</th><th>this run</th></tr>" + "".join(
                     f"<tr><td>{_e(s['name'])}</td><td>{_e(_setup_text(s.get('setup')))}</td>"
                     f"<td class=\"num\">{_e(fmt(s['metrics'].get('cost_per_query_usd'), 'usd1k'))}</td>"
                     f"<td class=\"num\">{_e(fmt(s['metrics'].get('cost_total_usd'), 'usd'))}</td></tr>"
                     for s in data["systems"]) + "</table>")
    if data.get("warnings"):
        parts.append('<h2>Warnings</h2><div class="warn"><ul>'
                     + "".join(f"<li>{_e(w)}</li>" for w in data["warnings"]) + "</ul></div>")
    share = 100 / (len(names) + 1.6)  # the question column is 1.6 answer columns wide
    parts.append('<h2>Per question</h2><table id="questions" class="fixed"><colgroup>'
                 '<col style="width:4.5em">' + f'<col style="width:{1.6 * share:.1f}%">'
                 + f'<col style="width:{share:.1f}%">' * len(names) + '</colgroup><tr><th>id</th>'
                 '<th>question</th>'
                 + "".join(f"<th>{_e(n)}</th>" for n in names) + "</tr>")
    for q in data["questions"]:
        gold = ", ".join(Path(s).name for s in q["gold_sources"]) or "none (unanswerable)"
        refs = " | ".join(q["references"])
        parts.append(f'<tr><td>{_e(q["id"])}</td><td>{_e(q["question"])}<br><span class="muted">'
                     f'reference: {_e(refs)}<br>source: {_e(gold)}</span></td>'
                     + "".join(f"<td>{_answer_cell(q['systems'][n])}</td>" for n in names) + "</tr>")
    parts.append("</table><h2>Definitions</h2><dl>" + "".join(
        f"<dt><b>{_e(k_)}</b></dt><dd>{_e(v)}</dd>" for k_, v in data["definitions"].items())
        + "</dl></body></html>\n")
    return "\n".join(parts)
