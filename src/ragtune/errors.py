"""Errors raised by the ragtune core. The CLI and the server map them once, at their edge.

Every message is one line a user can act on: it names the file, line, key or document and
says what is wrong. Each class carries the exit code the CLI uses and the HTTP status the
server answers with, so both edges map an error the same way.

>>> str(InputError("notes.pdf", "the PDF is encrypted"))
'notes.pdf: the PDF is encrypted'
>>> NotFound("no adapter").exit_code, NotFound("no adapter").http_status
(2, 404)
"""

from __future__ import annotations


class RagtuneError(Exception):
    """Root of every error ragtune raises on purpose."""

    exit_code = 1
    http_status = 500


class InputError(RagtuneError):
    """Bad user input: a file, a data line, a question. Names where and what."""

    exit_code = 2
    http_status = 400

    def __init__(self, where: str, problem: str, line: int | None = None) -> None:
        self.where = where
        self.problem = problem
        self.line = line
        loc = f"{where}:{line}" if line is not None else where
        super().__init__(f"{loc}: {problem}")


class ConfigError(RagtuneError):
    """A wrong configuration key or value; the message names the key."""

    exit_code = 2
    http_status = 400


class StoreError(RagtuneError):
    """The store cannot do what was asked (locked, corrupt, schema too new...)."""

    http_status = 503


class NotFound(RagtuneError):
    """A named thing (document, adapter, collection) does not exist."""

    exit_code = 2
    http_status = 404


class ModelError(RagtuneError):
    """A model cannot be loaded or did not answer."""

    http_status = 502


class Unauthorized(RagtuneError):
    """No credentials, or credentials that are wrong, expired or revoked (never says which)."""

    exit_code = 2
    http_status = 401


class AccessDenied(RagtuneError):
    """The principal may not do this. Never says what the hidden thing contains."""

    exit_code = 2
    http_status = 403


class Cancelled(RagtuneError):
    """The caller went away (a client disconnected); the work was stopped, nothing recorded."""

    exit_code = 130
    http_status = 499  # nginx's "client closed request": nobody reads the body


class Busy(RagtuneError):
    """Too much work is waiting; try again after ``retry_after`` seconds.

    ``http_status`` is 429 when this caller has too much queued, 503 when everyone has.
    """

    def __init__(self, message: str, retry_after: int, http_status: int = 503) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.http_status = http_status


class MissingDependency(RagtuneError):
    """An optional package is needed; says which pip command installs it."""

    http_status = 501

    def __init__(self, package: str, extra: str) -> None:
        super().__init__(
            f"this needs the '{package}' package: try pip install 'ragtune[{extra}]'"
        )
