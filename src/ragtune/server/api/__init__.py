"""ragtune's own API under ``/api``: one router per concern, assembled in :data:`ROUTERS`."""

from __future__ import annotations

from ragtune.server.api import (
    adapters,
    audit,
    documents,
    feedback,
    keys,
    monitor,
    query,
    reports,
    system,
)

ROUTERS = (system.router, query.router, documents.router, adapters.router, reports.router,
           feedback.router, audit.router, keys.router, monitor.router)
