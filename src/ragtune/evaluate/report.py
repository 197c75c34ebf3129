"""Reports of a bake-off: ``report.json`` (the data), ``report.md`` and ``report.html``.

>>> # paths = write_reports(data, Path("bakeoff"))   # data from compare.run_compare
>>> # paths["html"]                                   # bakeoff/report.html

The HTML page is self-contained: inline CSS and charts drawn here as inline SVG (no script,
no CDN, no web font), so it opens from a file, offline, in any browser. Charts:

- accuracy vs latency: token F1 against median latency, one labelled point per system;
- cost per query: one bar per system;
- monthly cost vs monthly query volume (log-log): one line per system (set-up amortised
  plus per-query cost times volume), the break-even points marked where a trained system's
  line crosses RAG's, or "no break-even" said in words;
- a per-question table with every system's answer, score and citations.
"""

from __future__ import annotations

import html
import json
import math
import os
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ragtune.evaluate.costs import format_usd, monthly_cost, volume_grid

PALETTE = ("#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#b07aa1", "#edc948",
           "#9c755f")

# (key, header, kind) of the metrics shown in tables; kind picks the formatting.
COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("token_f1", "F1", "points"), ("exact_match", "EM", "points"),
    ("contains_answer", "contains", "pct"), ("embedding_similarity", "emb. sim.", "ratio"), ("judge_correct", "judge", "pct"),
    ("recall@k", "recall@k", "pct"), ("mrr@10", "MRR@10", "ratio"), ("ndcg@10", "nDCG@10", "ratio"),
    ("groundedness", "grounded", "pct"), ("citation_precision", "cit. prec.", "pct"),
    ("citation_recall", "cit. recall", "pct"), ("correct_refusal_rate", "refuses unansw.", "pct"),
    ("false_refusal_rate", "refuses answ.", "pct"),
    ("unsupported_claims_rate", "unsupported", "pct"), ("format_compliance", "format", "pct"),
    ("latency_p50_s", "p50 s", "sec"), ("latency_p95_s", "p95 s", "sec"),
    ("prompt_tokens_mean", "prompt tok", "int"), ("completion_tokens_mean", "compl. tok", "int"),
    ("cost_per_query_usd", "$/query", "usd"),
)


def fmt(value: Any, kind: str) -> str:
    """Format a metric for a table; None is "n/a".

    >>> fmt(0.4567, "points"), fmt(0.4567, "pct"), fmt(None, "pct"), fmt(1.234, "sec")
    ('45.7', '46%', 'n/a', '1.23')
    >>> fmt(0.0021, "sec"), fmt(0.25, "sec")
    ('0.0021', '0.25')
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
    return str(value)


def _metric(system: dict[str, Any], key: str, k: int) -> Any:
    return system["metrics"].get(f"recall@{k}" if key == "recall@k" else key)


def _atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


def write_reports(data: dict[str, Any], out_dir: Path) -> dict[str, Path]:
    """Write report.json, report.md and report.html into ``out_dir``; return their paths."""
    out_dir = Path(out_dir)
    paths = {"json": out_dir / "report.json", "md": out_dir / "report.md",
             "html": out_dir / "report.html"}
    _atomic_write(paths["json"], json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")
    _atomic_write(paths["md"], render_markdown(data))
    _atomic_write(paths["html"], render_html(data))
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
    cols = [(key, head.replace("@k", f"@{k}"), kind) for key, head, kind in COLUMNS]
    return [c for c in cols if any(_metric(s, c[0], k) is not None for s in data["systems"])]


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
    ev, rec, k = data["eval"], data.get("recommendation"), data.get("k", 5)
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
    cols = _columns(data)
    out += ["## Results", "",
            _md_table(["system", *[c[1] for c in cols]],
                      [[s["name"], *[fmt(_metric(s, c[0], k), c[2]) for c in cols]]
                       for s in data["systems"]]), "",
            ("F1 and EM in points (0-100) on answerable questions. n/a: not applicable (a system "
            "that retrieves nothing has no context to be grounded in or to cite) or not measured."),
            ""]
    out += ["## Cost", "",
            _md_table(["system", "cost / query", "total for this run", "set-up"],
                      [[s["name"], fmt(s["metrics"].get("cost_per_query_usd"), "usd"),
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

    _OFFSETS = ((10, -8), (10, 16), (-10, -8), (-10, 16), (10, -22), (10, 30))

    def __init__(self, width: int, height: int, x: tuple[float, float], y: tuple[float, float],
                 *, xlog: bool = False, ylog: bool = False, margin: tuple[int, int, int, int] = (20, 20, 50, 64)):
        self.w, self.h = width, height
        self.top, self.right, self.bottom, self.left = margin
        self.xlog, self.ylog = xlog, ylog
        self.x0, self.x1 = (math.log10(x[0]), math.log10(x[1])) if xlog else x
        self.y0, self.y1 = (math.log10(y[0]), math.log10(y[1])) if ylog else y
        self.parts: list[str] = []
        self._labels: list[tuple[float, float, float, float]] = []

    def label(self, x: float, y: float, text: str) -> None:
        """Text beside point (x, y) px, moved to the first spot inside the plot area that
        overlaps no earlier label (points of similar systems often sit on top of each other)."""
        width, height = 7.0 * len(text), 13.0
        inside = (self.left, self.top, self.w - self.right, self.h - self.bottom)
        candidates = []
        for dx, dy in self._OFFSETS:
            left = x + dx if dx > 0 else x + dx - width
            candidates.append(((left, y + dy - height + 3, left + width, y + dy + 3), dy))
        box, dy = candidates[0]
        for cand, cdy in candidates:
            fits = (cand[0] >= inside[0] and cand[2] <= inside[2] and cand[1] >= inside[1]
                    and cand[3] <= inside[3])
            if fits and not any(cand[0] < b[2] and b[0] < cand[2] and cand[1] < b[3]
                                and b[1] < cand[3] for b in self._labels):
                box, dy = cand, cdy
                break
        self._labels.append(box)
        self.parts.append(f'<text x="{box[0]:.1f}" y="{y + dy:.1f}" class="label">'
                          f'{html.escape(text)}</text>')

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
            p.append(f'<text x="{x:.1f}" y="{y_b + 16}" text-anchor="middle" class="tick">'
                     f'{html.escape(xfmt(t))}</text>')
        for t in yticks:
            y = self.py(t)
            p.append(f'<line x1="{x_a}" y1="{y:.1f}" x2="{x_b}" y2="{y:.1f}" stroke="#eee"/>')
            p.append(f'<text x="{x_a - 6}" y="{y + 4:.1f}" text-anchor="end" class="tick">'
                     f'{html.escape(yfmt(t))}</text>')
        p.append(f'<text x="{(x_a + x_b) / 2:.1f}" y="{self.h - 12}" text-anchor="middle" '
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


def chart_accuracy_latency(data: dict[str, Any]) -> str:
    """Scatter: token F1 (y) against median latency (x), one labelled point per system."""
    pts = [(s["name"], s["metrics"].get("latency_p50_s"), s["metrics"].get("token_f1"))
           for s in data["systems"]]
    pts = [(n, x, y) for n, x, y in pts if x is not None and y is not None]
    title = "Accuracy vs latency"
    if not pts:
        return _empty_chart("chart-accuracy-latency", title, "no answer metrics to plot")
    colors = _colors(data)
    xmax = max(x for _, x, _ in pts) * 1.15 or 1.0
    xt = _nice_ticks(0, xmax)
    yt = _nice_ticks(0, max(100.0, max(y * 100 for *_, y in pts)))
    yt = [t for t in yt if t <= 100] or [0, 100]
    plot = _Plot(560, 340, (0, xt[-1]), (0, 100))
    plot.axes(xt, yt, "median latency per answer (s)", "token F1 (0-100)",
              lambda v: f"{v:g}", lambda v: f"{v:g}")
    for name, x, y in pts:
        cx, cy = plot.px(x), plot.py(y * 100)
        plot.parts.append(f'<circle class="mark" cx="{cx:.1f}" cy="{cy:.1f}" r="7" '
                          f'fill="{colors[name]}"><title>{html.escape(name)}: F1 {y * 100:.1f}, '
                          f'{x:.2f} s</title></circle>')
        plot.label(cx, cy, name)
    return plot.svg("chart-accuracy-latency", title)


def chart_cost(data: dict[str, Any]) -> str:
    """Bars: mean cost per query (USD) of each system."""
    vals = [(s["name"], s["metrics"].get("cost_per_query_usd")) for s in data["systems"]]
    vals = [(n, v) for n, v in vals if v is not None]
    title = "Cost per query"
    if not vals:
        return _empty_chart("chart-cost", title, "no cost measured")
    colors = _colors(data)
    top = max(v for _, v in vals) or 1e-9
    yt = _nice_ticks(0, top * 1.1)
    width = max(360, 110 * len(vals) + 100)
    plot = _Plot(width, 300, (0, len(vals)), (0, yt[-1]), margin=(20, 20, 56, 84))
    plot.axes([], yt, "", "USD per query", str, lambda v: format_usd(v) if v else "0")
    for i, (name, v) in enumerate(vals):
        x0, x1 = plot.px(i + 0.2), plot.px(i + 0.8)
        y = plot.py(v)
        base = plot.py(0)
        h = max(base - y, 1.0)  # a zero-cost bar still shows a hairline
        plot.parts.append(f'<rect class="mark" x="{x0:.1f}" y="{base - h:.1f}" width="{x1 - x0:.1f}" '
                          f'height="{h:.1f}" fill="{colors[name]}"><title>{html.escape(name)}: '
                          f'{format_usd(v)}</title></rect>')
        plot.parts.append(f'<text x="{(x0 + x1) / 2:.1f}" y="{base + 16:.1f}" text-anchor="middle" '
                          f'class="tick">{html.escape(name)}</text>')
        plot.parts.append(f'<text x="{(x0 + x1) / 2:.1f}" y="{base - h - 5:.1f}" '
                          f'text-anchor="middle" class="label">{html.escape(format_usd(v))}</text>')
    return plot.svg("chart-cost", title)


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
    legend = 40 + 7 * max(len(n) for n in systems)
    plot = _Plot(520 + legend, 360, (grid[0], grid[-1]), (ymin, ymax), xlog=True, ylog=True,
                 margin=(20, legend, 50, 72))
    xt = [10.0 ** e for e in range(int(math.log10(grid[0])), int(math.log10(grid[-1])) + 1)]
    ye = range(int(math.log10(ymin)), int(math.log10(ymax)) + 1)
    step = max(1, math.ceil(len(ye) / 7))
    yt = [10.0 ** e for e in ye][::step]
    plot.axes(xt, yt, "queries per month (log)", "USD per month (log)",
              lambda v: f"{v:,.0f}" if v < 1e7 else f"{v:.0e}", lambda v: f"${v:g}")
    colors = _colors(data)
    for i, (name, pts) in enumerate(curves.items()):
        d = " ".join(f"{plot.px(v):.1f},{plot.py(max(c, ymin)):.1f}" for v, c in pts)
        plot.parts.append(f'<polyline class="mark line" points="{d}" fill="none" '
                          f'stroke="{colors.get(name, PALETTE[0])}" stroke-width="2.5">'
                          f'<title>{html.escape(name)}</title></polyline>')
        lx = plot.w - plot.right + 8
        ly = plot.top + 14 + 18 * i
        plot.parts.append(f'<line x1="{lx}" y1="{ly - 4}" x2="{lx + 18}" y2="{ly - 4}" '
                          f'stroke="{colors.get(name, PALETTE[0])}" stroke-width="3"/>')
        plot.parts.append(f'<text x="{lx + 24}" y="{ly}" class="label">{html.escape(name)}</text>')
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
table{border-collapse:collapse;margin:8px 0;font-size:13px}
th,td{border:1px solid #ddd;padding:4px 6px;vertical-align:top;text-align:left}
th{background:#f4f4f4}td.num{text-align:right;font-variant-numeric:tabular-nums}
.rec{background:#eef6ee;border:1px solid #9c9;padding:10px 14px;border-radius:6px}
.rec .headline{font-size:16px;font-weight:600}
.warn{background:#fff6e5;border:1px solid #e8c680;padding:8px 14px;border-radius:6px}
.charts{display:flex;flex-wrap:wrap;gap:18px}
.chart{background:#fff;border:1px solid #ddd;border-radius:4px}
.tick{font-size:11px;fill:#555}.axis{font-size:12px;fill:#333}.label{font-size:12px;fill:#222}
.scroll{overflow-x:auto;max-width:100%}
.ok{color:#2a7a2a}.bad{color:#b22}.muted{color:#777}.ans{max-width:330px}
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
    return (f'<div class="ans">{_e(a["answer"])}</div><div>{f1} {" ".join(flags)}</div>'
            + (f"<ul>{cites}</ul>" if cites else ""))


def render_html(data: dict[str, Any]) -> str:
    """The self-contained HTML report (see module doc)."""
    ev, rec, k = data["eval"], data.get("recommendation"), data.get("k", 5)
    cols = _columns(data)
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
    parts.append("<h2>Results</h2><div class=\"scroll\"><table id=\"metrics\"><tr><th>system</th>"
                 + "".join(f"<th>{_e(c[1])}</th>" for c in cols) + "</tr>")
    for s in data["systems"]:
        parts.append(f"<tr><td>{_e(s['name'])}</td>" + "".join(
            f'<td class="num">{_e(fmt(_metric(s, c[0], k), c[2]))}</td>' for c in cols) + "</tr>")
    parts.append("</table></div><p class=\"muted\">F1 and EM in points on answerable questions. n/a: "
                 "not applicable (no retrieval: nothing to be grounded in or cite) or not "
                 "measured.</p>")
    parts.append('<h2>Charts</h2><div class="charts">' + chart_accuracy_latency(data)
                 + chart_cost(data) + chart_break_even(data) + "</div>")
    pairs = data["break_even"]["pairs"]
    parts.append("<p>" + ("<br>".join(_e(p["text"]) for p in pairs) if pairs else
                          "Break-even: no trained system was compared with RAG.")
                 + f' <span class="muted">(set-up amortised over '
                   f'{data["costs"]["amortise_months"]:g} months; local compute '
                   f'{_e(format_usd(data["costs"]["compute_per_hour"]))}/hour)</span></p>')
    parts.append("<h2>Set-up</h2><table><tr><th>system</th><th>set-up</th><th>cost / query</th>"
                 "<th>this run</th></tr>" + "".join(
                     f"<tr><td>{_e(s['name'])}</td><td>{_e(_setup_text(s.get('setup')))}</td>"
                     f"<td class=\"num\">{_e(fmt(s['metrics'].get('cost_per_query_usd'), 'usd'))}</td>"
                     f"<td class=\"num\">{_e(fmt(s['metrics'].get('cost_total_usd'), 'usd'))}</td></tr>"
                     for s in data["systems"]) + "</table>")
    if data.get("warnings"):
        parts.append('<h2>Warnings</h2><div class="warn"><ul>'
                     + "".join(f"<li>{_e(w)}</li>" for w in data["warnings"]) + "</ul></div>")
    names = [s["name"] for s in data["systems"]]
    parts.append('<h2>Per question</h2><div class="scroll"><table id="questions"><tr><th>id</th>'
                 '<th>question</th>'
                 + "".join(f"<th>{_e(n)}</th>" for n in names) + "</tr>")
    for q in data["questions"]:
        gold = ", ".join(Path(s).name for s in q["gold_sources"]) or "none (unanswerable)"
        refs = " | ".join(q["references"])
        parts.append(f'<tr><td>{_e(q["id"])}</td><td>{_e(q["question"])}<br><span class="muted">'
                     f'reference: {_e(refs)}<br>source: {_e(gold)}</span></td>'
                     + "".join(f"<td>{_answer_cell(q['systems'][n])}</td>" for n in names) + "</tr>")
    parts.append("</table></div><h2>Definitions</h2><dl>" + "".join(
        f"<dt><b>{_e(k_)}</b></dt><dd>{_e(v)}</dd>" for k_, v in data["definitions"].items())
        + "</dl></body></html>\n")
    return "\n".join(parts)
