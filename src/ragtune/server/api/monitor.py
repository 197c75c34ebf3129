"""Monitoring for operators: ``/metrics`` in the Prometheus text format and the
``ragtune monitor`` report (JSON, or the self-contained HTML the Monitor page shows).

Admins only: the figures cover every user's answers. Prometheus sends the admin key as a
bearer token (``authorization: {credentials: <key>}`` in its scrape config).
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from ragtune.server.auth import Admin
from ragtune.server.schemas import error_responses

router = APIRouter(tags=["monitor"])


@router.get("/metrics", response_class=Response,
            responses={200: {"content": {"text/plain": {}}}, **error_responses(401, 403)})
def metrics(request: Request, who: Admin) -> Response:
    """Answers by mode and outcome, latency histograms per mode and stage, checked sentences
    and citations, questions waiting for the model, documents and chunks in the store, and
    the last hour's refusal and groundedness rates."""
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    body = generate_latest(request.app.state.ragtune.metrics.registry)
    return Response(body, media_type=CONTENT_TYPE_LATEST)


def _report(request: Request, who: Admin, since: str | None) -> dict[str, Any]:
    from ragtune.monitor.health import monitor_report
    from ragtune.monitor.records import window_bounds

    ws = request.app.state.ragtune.ws
    start, end = window_bounds(since, None, ws.settings.monitor.period)
    report, _, _ = monitor_report(ws, since=start, until=end, principal=who.principal)
    return report


@router.get("/api/monitor", response_model=dict[str, Any],
            responses=error_responses(400, 401, 403))
async def monitor_json(request: Request, who: Admin, since: str | None = None) -> dict[str, Any]:
    """The ``ragtune monitor --json`` report over ``since`` (``7d``, ``12h`` or an ISO date;
    default ``monitor.period``): freshness, quality with changes, gaps, drift, alerts."""
    return await asyncio.to_thread(_report, request, who, since)


# response_class=Response (no media type of its own): the errors stay documented as JSON
@router.get("/api/monitor/html", response_class=Response,
            responses={200: {"content": {"text/html": {}}}, **error_responses(400, 401, 403)})
async def monitor_html(request: Request, who: Admin, since: str | None = None) -> HTMLResponse:
    """The same report as a self-contained page (what ``ragtune monitor --html`` writes)."""
    from ragtune.monitor.report import render_html

    report = await asyncio.to_thread(_report, request, who, since)
    return HTMLResponse(render_html(report))
