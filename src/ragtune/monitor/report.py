"""The monitor report as a self-contained HTML page and as short text lines.

>>> # Path("monitor.html").write_text(render_html(report))   # report from monitor_report
>>> summary_lines({"traffic": {"answers": 0}, "period": {"days": 7}, "alerts": []})[0]
'0 live answers in the last 7 days'

Like the bake-off report (:mod:`ragtune.evaluate.report`, whose plotting helpers it uses),
the page has inline CSS and inline SVG charts, no script, no CDN, no web font: it opens
from a file, offline. It shows, top to bottom, the alerts, freshness (documents, collections,
adapters), answer quality (overall with the change against the previous window and its
p-value; per day, per collection, per mode; latency per stage), the knowledge gaps, drift,
and the training-data health when a dataset was given.
"""

from __future__ import annotations

import html
from datetime import datetime
from pathlib import Path
from typing import Any

# The bake-off report's SVG plot frame, tick rounding, empty-chart box, palette and CSS.
from ragtune.evaluate.report import CSS, PALETTE, _empty_chart, _nice_ticks, _Plot

QUALITY_LINES = ("groundedness", "citation_support", "refusal_rate", "not_found_rate",
                 "unsupported_rate", "thumbs_down_rate")
EXTRA_CSS = """
.alerts{background:#fdecea;border:1px solid #e0a29b;padding:8px 14px;border-radius:6px}
.allclear{background:#eef6ee;border:1px solid #9c9;padding:8px 14px;border-radius:6px}
.gap{border:1px solid #ddd;border-radius:6px;padding:8px 12px;margin:8px 0}
.gap .headline{font-weight:600}.sig{font-weight:600}
"""


def _e(x: Any) -> str:
    return html.escape(str(x))


def pct(v: float | None) -> str:
    """A share as a percentage with one decimal; None is "n/a".

    >>> pct(0.1234), pct(None)
    ('12.3%', 'n/a')
    """
    return "n/a" if v is None else f"{v * 100:.1f}%"


def _change(entry: dict[str, Any], higher_is_better: bool) -> str:
    change = entry.get("change")
    if change is None:
        return "n/a"
    text = f"{change * 100:+.1f} pts"
    p = entry.get("p_value")
    if p is None:
        return f"{text} (too few answers to test)"
    worse = (change < 0) if higher_is_better else (change > 0)
    if entry.get("significant"):
        cls = "bad" if worse else "ok"
        return f'<span class="sig {cls}">{text} (p = {p:.3g}, significant)</span>'
    return f'{text} <span class="muted">(p = {p:.3g}, within noise)</span>'


def _date(ts: float | None) -> str:
    return "n/a" if ts is None else datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M")


# ----------------------------------------------------------------------------- charts

def chart_quality_days(report: dict[str, Any]) -> str:
    """Lines: each quality rate per UTC day of the window (points marked)."""
    days = report["quality"]["by_day"]
    title = "Answer quality per day"
    if not days:
        return _empty_chart("chart-quality-days", title, "no live answers in this window")
    legend = 150
    plot = _Plot(560 + legend, 320, (-0.5, len(days) - 0.5), (0, 1),
                 margin=(20, legend, 56, 56))
    step = max(1, len(days) // 7)
    plot.axes([], _nice_ticks(0, 1), "", "share", str, lambda v: f"{v:.0%}")
    for i, d in enumerate(days):
        if i % step == 0:
            plot.parts.append(f'<text x="{plot.px(i):.1f}" y="{plot.h - plot.bottom + 16}" '
                              f'text-anchor="middle" class="tick">{_e(d["day"][5:])}</text>')
    for n, name in enumerate(QUALITY_LINES):
        color = PALETTE[n % len(PALETTE)]
        pts = [(i, d[name]) for i, d in enumerate(days) if d.get(name) is not None]
        if len(pts) > 1:
            coords = " ".join(f"{plot.px(i):.1f},{plot.py(v):.1f}" for i, v in pts)
            plot.parts.append(f'<polyline class="line" points="{coords}" fill="none" '
                              f'stroke="{color}" stroke-width="2"/>')
        for i, v in pts:
            plot.parts.append(f'<circle class="mark" cx="{plot.px(i):.1f}" cy="{plot.py(v):.1f}" '
                              f'r="3.5" fill="{color}"><title>{_e(name)} {_e(days[i]["day"])}: '
                              f'{pct(v)}</title></circle>')
        ly = plot.top + 14 + 18 * n
        lx = plot.w - plot.right + 10
        plot.parts.append(f'<line x1="{lx}" y1="{ly - 4}" x2="{lx + 18}" y2="{ly - 4}" '
                          f'stroke="{color}" stroke-width="3"/><text x="{lx + 24}" y="{ly}" '
                          f'class="label">{_e(name.replace("_", " "))}</text>')
    return plot.svg("chart-quality-days", title)


def _bars(chart_id: str, title: str, rows: list[tuple[str, list[float]]], series: list[str],
          ylabel: str, yfmt: Any = lambda v: f"{v:.0%}", ymax: float | None = None) -> str:
    """Grouped vertical bars: one group per row, one bar per series."""
    if not rows:
        return _empty_chart(chart_id, title, "nothing to show in this window")
    top = ymax or max((v for _, vals in rows for v in vals), default=1.0) or 1.0
    yt = _nice_ticks(0, top)
    width = max(380, 70 * len(rows) * len(series) // 2 + 140)
    plot = _Plot(width, 300, (0, len(rows)), (0, yt[-1]), margin=(20, 20, 70, 64))
    plot.axes([], yt, "", ylabel, str, yfmt)
    slot = 0.8 / len(series)
    for g, (label, vals) in enumerate(rows):
        for s, v in enumerate(vals):
            x0, x1 = plot.px(g + 0.1 + s * slot), plot.px(g + 0.1 + (s + 1) * slot) - 2
            base = plot.py(0)
            h = max(base - plot.py(v), 1.0)
            plot.parts.append(f'<rect class="mark" x="{x0:.1f}" y="{base - h:.1f}" '
                              f'width="{max(x1 - x0, 1):.1f}" height="{h:.1f}" '
                              f'fill="{PALETTE[s % len(PALETTE)]}"><title>{_e(label)} '
                              f'({_e(series[s])}): {_e(yfmt(v))}</title></rect>')
        plot.parts.append(f'<text x="{plot.px(g + 0.5):.1f}" y="{plot.py(0) + 16:.1f}" '
                          f'text-anchor="middle" class="tick">{_e(label[:22])}</text>')
    for s, name in enumerate(series):
        plot.parts.append(f'<rect x="{plot.left + 110 * s}" y="{plot.h - 26}" width="12" '
                          f'height="12" fill="{PALETTE[s % len(PALETTE)]}"/><text '
                          f'x="{plot.left + 110 * s + 16}" y="{plot.h - 16}" class="label">'
                          f'{_e(name)}</text>')
    return plot.svg(chart_id, title)


def chart_gaps(report: dict[str, Any]) -> str:
    clusters = (report.get("gaps") or {}).get("clusters") or []
    rows = [(f"#{c['rank']}", [float(c["size"])]) for c in clusters[:8]]  # named below
    return _bars("chart-gaps", "Largest knowledge gaps (questions)", rows, ["questions"],
                 "questions", yfmt=lambda v: f"{v:g}")


def chart_similarity(report: dict[str, Any]) -> str:
    hist = report["drift"]["corpus"].get("histogram")
    if not hist:
        return _empty_chart("chart-similarity", "Best similarity to the corpus",
                            "too few retrieving answers to compare")
    edges = hist["edges"]
    rows = [(f"{edges[i]:.2f}", [hist["current"][i], hist["previous"][i]])
            for i in range(len(edges) - 1)]
    return _bars("chart-similarity", "Best similarity to the corpus (share of questions)", rows,
                 ["this window", "previous window"], "share of questions")


def chart_routes(report: dict[str, Any]) -> str:
    rows = [(r["route"], [r["share"][0] or 0.0, r["share"][1] or 0.0])
            for r in report["drift"]["routes"]]
    return _bars("chart-routes", "Traffic share per route", rows,
                 ["this window", "previous window"], "share of routed answers", ymax=1.0)


# ----------------------------------------------------------------------------- sections

def _table(table_id: str, header: list[str], rows: list[list[str]]) -> str:
    """An HTML table; cells are already escaped HTML."""
    return (f'<div class="scroll"><table id="{table_id}"><tr>'
            + "".join(f"<th>{_e(h)}</th>" for h in header) + "</tr>"
            + "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows)
            + "</table></div>")


def _alerts(report: dict[str, Any]) -> str:
    alerts = report.get("alerts") or []
    if not alerts:
        return '<div class="allclear" id="alerts">No alert threshold crossed.</div>'
    return ('<div class="alerts" id="alerts"><b>Alerts</b><ul>'
            + "".join(f"<li>{_e(a['message'])}</li>" for a in alerts) + "</ul></div>")


def _freshness(report: dict[str, Any]) -> str:
    f = report["freshness"]
    docs = [[_e(d["source"]), _e(d["collection"]), _e(", ".join(p.replace("_", " ")
                                                                for p in d["problems"])),
             f'{d["age_days"]:g} d' + (f' (max {d["max_age_days"]:g} d)' if d["max_age_days"]
                                        else "")]
            for d in f["documents"]]
    out = [(f'<p>{f["checked_documents"]} documents checked: {f["changed"]} changed on disk, '
            f'{f["vanished"]} vanished, {f["too_old"]} past their maximum age.</p>')]
    if docs:
        out.append(_table("freshness-documents", ["document", "collection", "problem", "age"], docs))
    out.append(_table("freshness-collections", ["collection", "documents", "last update", "idle"],
                      [[_e(c["collection"]), str(c["documents"]), _e(_date(c["last_update"])),
                        '<span class="bad">idle</span>' if c["idle"] else "no"]
                       for c in f["collections"]]))
    if f["adapters"]:
        out.append(_table("freshness-adapters",
                          ["adapter", "lineage", "live answers", "answered while stale"],
                          [[_e(a["adapter"]), (f'<span class="bad">{_e(a["summary"])}</span>'
                                               if a["stale"] else _e(a["summary"])),
                            str(a["live_answers"]), str(a["live_answers_while_stale"])]
                           for a in f["adapters"]]))
    return "".join(out)


def _quality_rows(groups: dict[str, dict[str, Any]], better: dict[str, bool]) -> list[list[str]]:
    """One row per metric of one group: value, answers, previous value, tested change."""
    rows = []
    for group, metrics in groups.items():
        for name, e in metrics.items():
            if e["n"] or e["previous_n"]:
                rows.append([_e(group), _e(name.replace("_", " ")), pct(e["value"]), str(e["n"]),
                             pct(e["previous"]), _change(e, better[name])])
    return rows


def _pivot(groups: dict[str, dict[str, Any]], better: dict[str, bool]) -> list[list[str]]:
    """One row per group, one cell per metric: the value and, when tested, the change."""
    rows = []
    for group, metrics in groups.items():
        answers = max(e["n"] for e in metrics.values())
        cells = []
        for name in QUALITY_LINES:
            e = metrics.get(name) or {}
            cell = pct(e.get("value"))
            if e.get("change") is not None and e.get("p_value") is not None:
                worse = (e["change"] < 0) if better[name] else (e["change"] > 0)
                cls = ("bad sig" if worse else "ok sig") if e["significant"] else "muted"
                cell += f'<br><span class="{cls}">{e["change"] * 100:+.1f} pts</span>'
            cells.append(cell)
        rows.append([_e(group), str(answers), *cells])
    return rows


def _quality(report: dict[str, Any]) -> str:
    q = report["quality"]
    better = q["higher_is_better"]
    header = ["group", "metric", "this window", "answers", "previous", "change"]
    pivot = ["", "answers", *[n.replace("_", " ") for n in QUALITY_LINES]]
    out = [_table("quality-overall", header, _quality_rows({"all": q["overall"]}, better)),
           (f'<p class="muted">Changes are tested with a z-test (delta-method variance, the '
            f'answer as unit) at α = {q["alpha"]}; a test needs {q["min_answers"]}+ answers in '
            'both windows. Below, a change is shown when it was tested, in bold when '
            'significant.</p>'),
           '<div class="charts">' + chart_quality_days(report) + "</div>",
           "<h3>Per collection (of the best retrieved document)</h3>",
           _table("quality-collections", ["collection", *pivot[1:]],
                  _pivot(q["by_collection"], better)),
           "<h3>Per mode and adapter</h3>",
           _table("quality-modes", ["mode", *pivot[1:]], _pivot(q["by_mode"], better)),
           "<h3>Latency per stage (seconds)</h3>",
           _table("latency", ["stage", "p50", "p95"],
                  [[_e(s), f'{v["p50"]:.3g}' if v["p50"] is not None else "n/a",
                    f'{v["p95"]:.3g}' if v["p95"] is not None else "n/a"]
                   for s, v in q["latency"]["stages"].items()])]
    return "".join(out)


def _gaps(report: dict[str, Any]) -> str:
    g = report.get("gaps")
    if g is None:
        return "<p>Not computed.</p>"
    out = [f'<p>{g["questions"]} gap questions ({_e(g["definition"])}); {g["clustered"]} '
           f'clustered into {g["cluster_count"]} topics'
           + (f', {g["without_vector"]} without an embedding or text' if g["without_vector"]
              else "") + ".</p>", '<div class="charts">' + chart_gaps(report) + "</div>"]
    for c in g["clusters"]:
        docs = ", ".join(f'{Path(d["source"]).name} ({d["answers"]})' for d in c["documents"])
        out.append(f'<div class="gap" id="gap-{c["rank"]}"><div class="headline">#{c["rank"]} '
                   f'{_e(c["headline"])}</div><ul>'
                   + "".join(f"<li>{_e(q)}</li>" for q in c["questions"]) + "</ul>"
                   f'<div class="muted">why: {_e(", ".join(f"{k} {v}" for k, v in c["reasons"].items()))}'
                   f'; nearest documents: {_e(docs or "none")}; {c["askers"]} asker(s); '
                   f'{_e(_date(c["first_seen"]))} to {_e(_date(c["last_seen"]))}</div>'
                   + "".join(f'<div>feedback: “{_e(m)}”</div>' for m in c["comments"])
                   + "</div>")
    return "".join(out)


def _drift(report: dict[str, Any]) -> str:
    d = report["drift"]
    q, c = d["questions"], d["corpus"]
    if q["mmd"] is None:
        qline = f'Questions: {_e(q.get("note", "not tested"))}.'
    else:
        verdict = ('<span class="bad sig">shifted</span>' if q["drifted"]
                   else '<span class="ok">no significant shift</span>')
        qline = (f'Questions vs the previous window: MMD² {q["mmd"]:.4f}, p = {q["p_value"]:.3g} '
                 f'({q["samples"][0]} vs {q["samples"][1]} questions) — {verdict}.')
    if c["ks"] is None:
        cline = "Distance to the corpus: too few retrieving answers to compare."
    else:
        med = c["median_distance"]
        cline = (f'Distance to the corpus (1 − best similarity): median {med[0]:.3f} now vs '
                 f'{med[1]:.3f} before; beyond the relevance floor {pct(c["beyond_floor"][0])} '
                 f'vs {pct(c["beyond_floor"][1])}; KS {c["ks"]:.3f}, p = {c["p_value"]:.3g}'
                 + (' — <span class="bad sig">shifted</span>.' if c["drifted"] else "."))
    routes = [[_e(r["route"]), f'{r["answers"][0]} / {r["answers"][1]}', pct(r["share"][0]),
               pct(r["share"][1]),
               ("n/a" if r["change"] is None else f'{r["change"] * 100:+.1f} pts')
               + (' <span class="bad sig">sharp change</span>' if r["flagged"] else "")]
              for r in d["routes"]]
    return (f"<p>{qline}</p><p>{cline}</p>"
            + '<div class="charts">' + chart_similarity(report) + chart_routes(report) + "</div>"
            + (_table("drift-routes", ["route", "answers now / before", "share now",
                                       "share before", "change"], routes) if routes
               else "<p>No routed answers (hybrid mode with a router) in either window.</p>"))


def _data(report: dict[str, Any]) -> str:
    d = report.get("data")
    if not d:
        return ""
    b = d["balance"]
    rows = [[f'{p["lines"][0]} / {p["lines"][1]}', f'{p["similarity"]:.3f}', _e(p["prompt"])]
            for p in d["near_duplicate_pairs"]]
    conflicts = [[f'{p["lines"][0]} / {p["lines"][1]}', _e(p["prompt"]),
                  _e(" ≠ ".join(p["answers"]))] for p in d["label_conflict_pairs"]]
    out = [f'<h2>Training data: {_e(Path(d["path"]).name)}</h2>'
           f'<p>{d["examples"]} examples; {d["near_duplicates"]} near-duplicate pairs (cosine ≥ '
           f'{d["near"]}); {d["label_conflicts"]} label conflicts; {b["sources"]} sources, the '
           f'largest ({_e(b["largest"])}) with {pct(b["largest_share"])} of the examples'
           + (' — <span class="bad">unbalanced</span>' if b["flagged"] else "") + ".</p>"]
    if rows:
        out.append(_table("data-duplicates", ["lines", "similarity", "prompt"], rows))
    if conflicts:
        out.append(_table("data-conflicts", ["lines", "prompt", "answers"], conflicts))
    ev = d.get("eval")
    if ev:
        out.append(f'<p>Eval file {_e(Path(ev["path"]).name)}: {ev["overlapping"]} of '
                   f'{ev["examples"]} prompts ({pct(ev["overlap_share"])}) near-duplicate a '
                   "training prompt.</p>")
    return "".join(out)


def render_html(report: dict[str, Any]) -> str:
    """The self-contained HTML page of a monitor report."""
    t, p = report["traffic"], report["period"]
    q = report["quality"]
    return "\n".join([
        ('<!doctype html><html lang="en"><head><meta charset="utf-8">'
         '<meta name="viewport" content="width=device-width,initial-scale=1">'
         f'<title>ragtune monitor — {_e(p["since"])} to {_e(p["until"])}</title>'
         f"<style>{CSS}{EXTRA_CSS}</style></head><body>"),
        f'<h1>ragtune monitor: {_e(p["since"][:16])} to {_e(p["until"][:16])}</h1>',
        (f'<p>{t["answers"]} live answers ({t["previous_answers"]} in the {p["days"]:g} days '
         f'before; {t["eval_answers"]} evaluation answers not counted), {t["askers"]} '
         f'asker(s), {t["rated"]} rated. Workspace <code>{_e(report["workspace"])}</code>, '
         f'seen by <code>{_e(report["viewer"])}</code>; made {_e(report["created_at"])}.</p>'),
        _alerts(report),
        "<h2>Freshness</h2>", _freshness(report),
        "<h2>Answer quality on live traffic</h2>", _quality(report),
        "<h2>Knowledge gaps</h2>", _gaps(report),
        "<h2>Retrieval drift</h2>", _drift(report),
        _data(report),
        "<h2>Definitions</h2><dl>" + "".join(f"<dt><b>{_e(k)}</b></dt><dd>{_e(v)}</dd>"
                                              for k, v in q["definitions"].items()) + "</dl>",
        "</body></html>\n"])


def summary_lines(report: dict[str, Any]) -> list[str]:
    """A few plain lines: traffic, the headline rates, stale things, the top gaps, alerts."""
    t, p = report["traffic"], report["period"]
    lines = [f'{t["answers"]} live answers in the last {p["days"]:g} days']
    if "quality" in report:
        o = report["quality"]["overall"]
        rates = [f'{name.replace("_", " ")} {pct(o[name]["value"])}'
                 + (" (significant change)" if o[name]["significant"] else "")
                 for name in QUALITY_LINES if name in o and o[name]["value"] is not None]
        if rates:
            lines.append("; ".join(rates))
    f = report.get("freshness")
    if f:
        lines.append(f'freshness: {f["changed"]} changed, {f["vanished"]} vanished, '
                     f'{f["too_old"]} too old; ' + (", ".join(
                         f'adapter {a["adapter"]} stale ({a["live_answers_while_stale"]} live '
                         "answers since)" for a in f["adapters"] if a["stale"]) or "no stale adapter"))
    for c in ((report.get("gaps") or {}).get("clusters") or [])[:3]:
        lines.append(f'gap #{c["rank"]}: {c["headline"]}')
    d = report.get("drift")
    if d and d["questions"]["mmd"] is not None:
        lines.append(f'question drift: MMD² {d["questions"]["mmd"]:.4f}, p = '
                     f'{d["questions"]["p_value"]:.3g}'
                     + (" (shifted)" if d["questions"]["drifted"] else ""))
    for a in report.get("alerts") or []:
        lines.append(f'ALERT: {a["message"]}')
    return lines
