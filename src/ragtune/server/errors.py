"""The server's one error mapping: every error is JSON with a message, never a traceback.

``{"error": {"message": ..., "type": ...}}`` — the shape OpenAI clients read. A
:class:`~ragtune.errors.RagtuneError` answers with its ``http_status`` (Busy adds
Retry-After, Unauthorized adds WWW-Authenticate); a malformed body is 422 naming each bad
field; anything unexpected is a 500 whose details stay in the server log.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from ragtune.errors import Busy, RagtuneError, Unauthorized

log = logging.getLogger("ragtune.server")


_HTTP_TYPES = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}


def _type(exc: BaseException) -> str:
    """``NotFound`` -> ``not_found``."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", type(exc).__name__).lower()


def error_response(status: int, message: str, kind: str, headers: dict[str, str] | None = None,
                   **extra: Any) -> JSONResponse:
    body: dict[str, Any] = {"message": message, "type": kind}
    body.update({k: v for k, v in extra.items() if v is not None})
    return JSONResponse({"error": body}, status_code=status, headers=headers)


def _field(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc]
    return ".".join(parts[1:] if parts and parts[0] in {"body", "query", "path"} and len(parts) > 1
                    else parts)


def install(app: FastAPI) -> None:
    """Register the handlers on ``app``."""

    @app.exception_handler(RagtuneError)
    async def ragtune_error(request: Request, exc: RagtuneError) -> JSONResponse:
        headers = {}
        if isinstance(exc, Busy):
            headers["Retry-After"] = str(exc.retry_after)
        if isinstance(exc, Unauthorized):
            headers["WWW-Authenticate"] = "Bearer"
        extra = getattr(exc, "extra", {}) or {}
        return error_response(exc.http_status, str(exc), _type(exc), headers, **extra)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        fields = [{"field": _field(tuple(e.get("loc", ()))), "message": str(e.get("msg", ""))}
                  for e in exc.errors()]
        summary = "; ".join(f"{f['field']}: {f['message']}" for f in fields[:5])
        return error_response(422, f"malformed request: {summary}", "invalid_request",
                              fields=fields)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        message = exc.detail if isinstance(exc.detail, str) else "request failed"
        if message == "There was an error parsing the body":  # FastAPI's words for it
            message = "the request body cannot be read: send UTF-8 JSON (or a multipart form)"
        return error_response(exc.status_code, message,
                              _HTTP_TYPES.get(exc.status_code, "http_error"),
                              dict(exc.headers) if exc.headers else None)



class CatchAll:
    """Anything unexpected: logged with its traceback, answered with a 500 JSON message.

    A pure ASGI middleware rather than an ``Exception`` handler: Starlette re-raises after
    such a handler, and the server then drops the client's keep-alive connection. When a
    streamed reply has already started, the stream just ends (its error event is sent by
    the stream itself).
    """

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracked(message: dict[str, Any]) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracked)
        except Exception:
            log.exception("unexpected error on %s %s", scope.get("method"), scope.get("path"))
            if started:
                return
            response = error_response(500, "internal error; the details are in the server "
                                           "log", "internal_error")
            await response(scope, receive, send)
