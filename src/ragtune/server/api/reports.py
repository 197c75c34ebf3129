"""Bake-off and evaluation reports found in the workspace (``compare/``, ``eval/``).

Admins only: a report holds answers produced as whoever ran it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse

from ragtune.errors import NotFound
from ragtune.server.auth import Admin
from ragtune.server.schemas import ReportOut, error_responses

router = APIRouter(prefix="/api/reports", tags=["reports"])
FOLDERS = ("compare", "eval")


def find_reports(root: Path) -> dict[str, Path]:
    """Report name (its folder, relative to the workspace) -> folder, newest first."""
    found = [p.parent for folder in FOLDERS for p in (root / folder).rglob("report.json")]
    found.sort(key=lambda p: (p / "report.json").stat().st_mtime, reverse=True)
    return {p.relative_to(root).as_posix(): p for p in found}


def _read(folder: Path) -> dict[str, Any]:
    try:
        data = json.loads((folder / "report.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def report_out(name: str, folder: Path) -> ReportOut:
    data = _read(folder)
    systems = [str(s.get("name")) for s in data.get("systems") or [] if isinstance(s, dict)]
    rec = data.get("recommendation")
    headline = rec.get("headline") if isinstance(rec, dict) else None
    return ReportOut(name=name, created_at=(folder / "report.json").stat().st_mtime,
                     systems=systems, headline=headline if isinstance(headline, str) else None,
                     html=(folder / "report.html").is_file())


def _folder(request: Request, name: str) -> Path:
    reports = find_reports(request.app.state.ragtune.ws.root)
    if name not in reports:  # only names found by the scan: no path from the caller is opened
        raise NotFound(f"no report {name!r} (see GET /api/reports)")
    return reports[name]


@router.get("", response_model=list[ReportOut], responses=error_responses(401, 403))
def list_reports(request: Request, who: Admin) -> list[ReportOut]:
    """Reports in the workspace, newest first."""
    return [report_out(n, p) for n, p in find_reports(request.app.state.ragtune.ws.root).items()]


@router.get("/{name:path}/html", response_class=FileResponse,
            responses={200: {"content": {"text/html": {}}}, **error_responses(401, 403, 404)})
def report_html(name: str, request: Request, who: Admin) -> FileResponse:
    """The self-contained report.html."""
    folder = _folder(request, name)
    if not (folder / "report.html").is_file():
        raise NotFound(f"report {name!r} has no report.html")
    return FileResponse(folder / "report.html", media_type="text/html")


@router.get("/{name:path}", response_model=dict[str, Any], responses=error_responses(401, 403, 404))
def get_report(name: str, request: Request, who: Admin) -> dict[str, Any]:
    """The report's data (report.json)."""
    return _read(_folder(request, name))
