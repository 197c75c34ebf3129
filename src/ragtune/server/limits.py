"""Request limits: a body over ``server.max_upload_mb`` is refused with 413; an unknown
or repeated query parameter with 422.

The body is checked twice: the declared Content-Length before anything is read, and the
bytes as they arrive (a chunked upload declares no length).
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import Request
from fastapi.dependencies.models import Dependant
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException

Scope = dict[str, Any]


class BodyLimit:
    """Pure ASGI middleware (it must see the body stream itself)."""

    def __init__(self, app: Any, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    def _message(self) -> str:
        return (f"request body larger than {self.max_bytes / 1024 / 1024:g} MB "
                "(server.max_upload_mb)")

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_bytes:
            await self._refuse(send)
            return
        seen = 0

        async def counted() -> Any:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    # An HTTPException: FastAPI turns anything else raised while it reads
                    # the body into a 400.
                    raise HTTPException(413, self._message())
            return message

        await self.app(scope, counted, send)

    async def _refuse(self, send: Any) -> None:
        body = json.dumps({"error": {"message": self._message(),
                                     "type": "payload_too_large"}}).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(body)).encode()),
                                (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})



def _query_names(dependant: Dependant) -> set[str]:
    # a few fields per route: walked per request (routes are not hashable, so no cache)
    return {f.alias for f in dependant.query_params}.union(
        *(_query_names(d) for d in dependant.dependencies))


def strict_query(request: Request) -> None:
    """Refuse (422) a query parameter the route does not take, or one given more than once
    (``?user=a&user=b``: no ragtune route takes a list in the query). Silently ignoring
    either would hide the caller's mistake, as an unknown body field would (bodies are
    strict too: :mod:`ragtune.server.schemas`)."""
    route = request.scope.get("route")
    known = _query_names(route.dependant) if isinstance(route, APIRoute) else None
    seen: set[str] = set()
    for key, _ in request.query_params.multi_items():
        if known is not None and key not in known:
            expected = ", ".join(sorted(known)) or "none"
            raise RequestValidationError([{"loc": ("query", key), "type": "value_error",
                                           "msg": f"unknown query parameter (this route "
                                                  f"takes: {expected})"}])
        if key in seen:
            raise RequestValidationError([{"loc": ("query", key), "type": "value_error",
                                           "msg": "given more than once; give it once"}])
        seen.add(key)
