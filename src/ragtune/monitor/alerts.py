"""Alerts: the ``[monitor.alerts]`` thresholds checked against a monitor report, and the
JSON alert ``ragtune monitor check`` POSTs to a webhook.

A threshold named ``*_min`` fires when the figure is below it, ``*_max`` when above. Rate
thresholds need ``[monitor] min_answers`` answers behind the rate, so three unlucky answers
on a quiet night do not page anyone.

>>> report = {"quality": {"overall": {"refusal_rate": {"value": 0.6, "n": 40}}}}
>>> [a.message for a in check_alerts(report, {"refusal_rate_max": 0.5}, min_answers=20)]
['refusal rate 0.6 is above 0.5 (40 answers)']
>>> check_alerts(report, {"refusal_rate_max": 0.5}, min_answers=50)
[]
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from ragtune.errors import RagtuneError

# thresholds on these figures need [monitor] min_answers answers behind them
RATES = ("groundedness", "citation_support", "refusal_rate", "not_found_rate",
         "unsupported_rate", "thumbs_down_rate")


@dataclass(frozen=True)
class Alert:
    """One crossed threshold."""

    name: str
    value: float
    threshold: float
    message: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _figure(report: dict[str, Any], name: str) -> tuple[float | None, int | None]:
    """The report's figure for alert ``name`` and, for rates, the answers behind it."""
    metric = name.rsplit("_", 1)[0]
    if metric in RATES:
        entry = report.get("quality", {}).get("overall", {}).get(metric) or {}
        return entry.get("value"), entry.get("n", 0)
    if metric == "latency_p95_s":
        stage = report.get("quality", {}).get("latency", {}).get("stages", {}).get("total_s")
        return (stage or {}).get("p95"), None
    if metric in {"stale_documents", "stale_adapter_answers"}:
        return report.get("freshness", {}).get(metric), None
    if metric == "gap_questions":
        clusters = report.get("gaps", {}).get("clusters") or []
        return (clusters[0]["size"] if clusters else 0), None
    if metric == "question_drift":
        q = report.get("drift", {}).get("questions") or {}
        # only a shift the test can tell from noise counts
        return (q.get("mmd") if q.get("drifted") else None), None
    if metric == "route_share_change":
        moved = [abs(r["change"]) for r in report.get("drift", {}).get("routes") or []
                 if r.get("flagged")]
        return (max(moved) if moved else None), None
    return None, None


_WORDS = {"gap_questions": "largest knowledge gap (questions)",
          "question_drift": "question drift (MMD²)",
          "route_share_change": "largest route share change",
          "latency_p95_s": "p95 answer latency (s)"}


def check_alerts(report: dict[str, Any], thresholds: dict[str, float], *,
                 min_answers: int) -> list[Alert]:
    """The thresholds ``report`` crosses, in the order given."""
    alerts = []
    for name, threshold in thresholds.items():
        value, answers = _figure(report, name)
        if value is None or (answers is not None and answers < min_answers):
            continue
        below = name.endswith("_min")
        if (value < threshold) if below else (value > threshold):
            metric = name.rsplit("_", 1)[0]
            label = _WORDS.get(metric, metric.replace("_", " "))
            shown = f"{value:.3g}" if isinstance(value, float) else str(value)
            extra = f" ({answers} answers)" if answers is not None else ""
            alerts.append(Alert(name, float(value), float(threshold),
                                f"{label} {shown} is {'below' if below else 'above'} "
                                f"{threshold:g}{extra}"))
    return alerts


def alert_payload(report: dict[str, Any], alerts: list[Alert]) -> dict[str, Any]:
    """The JSON body POSTed to the webhook: what fired, and the window it fired on."""
    return {"source": "ragtune monitor", "workspace": report.get("workspace"),
            "period": report.get("period"), "answers": report.get("traffic", {}).get("answers"),
            "alerts": [a.to_dict() for a in alerts],
            "text": "ragtune monitor: " + "; ".join(a.message for a in alerts)}


def post_webhook(url: str, payload: dict[str, Any], *, timeout: float = 10.0) -> int:
    """POST ``payload`` as JSON to ``url``; the HTTP status (an error unless 2xx)."""
    import httpx

    try:
        response = httpx.post(url, json=payload, timeout=timeout)
    except httpx.HTTPError as e:
        raise RagtuneError(f"webhook {url}: could not deliver the alert ({e})") from None
    if not response.is_success:
        raise RagtuneError(f"webhook {url}: answered HTTP {response.status_code}")
    return response.status_code
