"""The monitor report: freshness, answer quality on live traffic, knowledge gaps, drift,
training-data health and the alerts they cross, for one window against the one before.

>>> from ragtune.workspace import Workspace                     # doctest: +SKIP
>>> report = monitor_report(Workspace.open(), since=time.time() - 7 * 86400)  # doctest: +SKIP
>>> report["quality"]["overall"]["refusal_rate"]["value"]       # doctest: +SKIP
0.12

Only live answers (origin ``ask``) count: evaluation runs are test traffic. A viewer who is
not an admin sees only the records of their own questions, the documents they may read and
the adapters they may use; ``principal=None`` (a caller that already checked, such as the
server's admin view) sees everything.
"""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from ragtune.answer.service import AnswerService
from ragtune.monitor.alerts import check_alerts
from ragtune.monitor.data_health import training_data_health
from ragtune.monitor.drift import drift_report
from ragtune.monitor.freshness import freshness_report
from ragtune.monitor.gaps import EmbedFn, GapCluster, find_gaps, gaps_section
from ragtune.monitor.quality import answer_quality
from ragtune.monitor.records import Records, Window, load_window
from ragtune.types import Principal

REPORT_VERSION = 1


def asked(records: Records) -> np.ndarray:
    """Which records are answers people asked for (not evaluation runs)."""
    return np.fromiter((o == "ask" for o in records.origins), dtype=bool, count=len(records))


def live(records: Records) -> Records:
    """The answers people asked for."""
    return records.select(asked(records))


def _embed(service: AnswerService) -> EmbedFn:
    return lambda texts: service.embedder.embed_documents(texts)


def window_records(service: AnswerService, window: Window,
                   principal: Principal | None) -> tuple[Records, Records, int]:
    """Live records of the window and of the one before, and the window's eval answers."""
    both = load_window(service.store, window.previous_since, window.until, principal)
    now, people = both.ts >= window.since, asked(both)
    return (both.select(now & people), both.select(~now & people),
            int((now & ~people).sum()))


def monitor_report(service: AnswerService, *, since: float, until: float | None = None,
                   principal: Principal | None = None, dataset: Path | None = None,
                   eval_dataset: Path | None = None, embed: EmbedFn | None = None,
                   with_gaps: bool = True) -> tuple[dict[str, Any], list[GapCluster], Records]:
    """The report (a JSON-ready dict), the gap clusters and the live records behind them.

    ``embed`` embeds questions recorded without a vector and the training data (default:
    the workspace's embedder, loaded only when needed).
    """
    settings = service.settings.monitor
    window = Window(since, time.time() if until is None else until)
    if window.until <= window.since:
        from ragtune.errors import InputError

        raise InputError("--since", "the window is empty: since must be before until")
    current, previous, eval_answers = window_records(service, window, principal)
    embed = embed or _embed(service)
    docs = service.store.list_documents(principal)
    all_docs = docs if principal is None else service.store.list_documents(None)
    collection_of = {d.source: d.collection for d in all_docs}
    alerts_cfg = settings.alerts
    report: dict[str, Any] = {
        "ragtune_monitor": REPORT_VERSION,
        "created_at": datetime.now().isoformat(timespec="seconds"),
        "workspace": str(service.root),
        "viewer": "operator" if principal is None else principal.user,
        "period": window.to_dict(),
        "traffic": {
            "answers": len(current), "previous_answers": len(previous),
            "eval_answers": eval_answers,
            "askers": len(set(current.principals)),
            "rated": int(current.rated.sum()),
            "without_question": sum(q is None for q in current.questions()),
        },
        "freshness": freshness_report(service.store, settings, service.registry.root, current,
                                      docs, now=window.until, principal=principal),
        "quality": answer_quality(current, previous, collection_of, alpha=settings.alpha,
                                  min_answers=settings.min_answers),
        "drift": drift_report(current, previous, alpha=settings.alpha,
                              floor=service.settings.retrieval.min_similarity,
                              route_change=alerts_cfg.get("route_share_change_max", 0.2),
                              min_answers=settings.min_answers),
        "data": None,
    }
    clusters: list[GapCluster] = []
    if with_gaps:
        clusters, counts = find_gaps(current, distance=settings.gap_distance, embed=embed)
        report["gaps"] = gaps_section(clusters, counts, current)
    if dataset is not None:
        report["data"] = training_data_health(dataset, embed, eval_path=eval_dataset)
    report["alerts"] = [a.to_dict() for a in check_alerts(report, alerts_cfg,
                                                          min_answers=settings.min_answers)]
    return report, clusters, current
