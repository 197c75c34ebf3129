"""Who is calling: every request runs as one principal, established here and nowhere else.

In order:

1. ``Authorization: Bearer rtk_...``: an API key (:mod:`ragtune.server.keys`). The user's
   groups and admin flag are read from ``[access]`` in ``ragtune.toml`` at each request
   (the file is re-read when it changes), so granting or revoking a group takes effect at
   once, without a restart. A key created with ``--admin`` is an admin.
2. ``Authorization: Bearer <JWT>``: an OpenID Connect ID token (:mod:`ragtune.server.oidc`),
   when ``auth.oidc_issuer`` is set; groups come from the token.
3. A trusted reverse proxy's header (``auth.proxy_user_header``, with the groups in
   ``auth.proxy_groups_header``), believed only from ``auth.trusted_proxies``.
4. No credentials: the anonymous reader of public documents when ``auth.anonymous`` is on.

Anything else is 401 (the message never says whether a key was wrong, expired or
revoked); an authenticated caller without the right is 403 (:func:`require_admin`).
Routers added by other packages take the same two dependencies:

>>> # from ragtune.server.auth import Admin, Caller
>>> # @router.get("/metrics")
>>> # def metrics(who: Admin): ...
"""

from __future__ import annotations

import asyncio
import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from ragtune.config import AccessSettings, AuthSettings, Settings
from ragtune.errors import AccessDenied, ConfigError, Unauthorized
from ragtune.server.keys import PREFIX, KeyStore
from ragtune.server.oidc import OIDCVerifier, claims_identity, map_groups
from ragtune.types import Principal

log = logging.getLogger("ragtune.server")
INVALID = "invalid or expired credentials"


@dataclass(frozen=True)
class Identity:
    """The principal a request runs as, and how it was established."""

    principal: Principal
    auth: str  # key | oidc | proxy | anonymous
    subject: str = ""  # key id, token subject, proxy user

    @property
    def user(self) -> str:
        return self.principal.user

    def caller(self) -> dict[str, Any]:
        """What the trace records as "as whom" (the audit log reads it)."""
        return {"auth": self.auth, "subject": self.subject,
                "groups": sorted(self.principal.groups), "admin": self.principal.admin}


class AccessDirectory:
    """``[access]`` of the workspace's ``ragtune.toml``, re-read when the file changes."""

    def __init__(self, config: Path, initial: AccessSettings) -> None:
        self.config = config
        self._access = initial
        self._stamp = self._stat()
        self._lock = threading.Lock()

    def _stat(self) -> tuple[int, int] | None:
        try:
            st = self.config.stat()
        except FileNotFoundError:
            return None
        return (st.st_mtime_ns, st.st_size)

    @property
    def access(self) -> AccessSettings:
        stamp = self._stat()
        if stamp != self._stamp:
            with self._lock:
                if stamp != self._stamp:
                    try:
                        self._access = Settings.load(self.config).access
                    except ConfigError as e:  # a half-saved edit: keep the last good one
                        log.error("keeping the previous [access]: %s", e)
                    self._stamp = stamp
        return self._access

    def principal(self, user: str, *, admin: bool = False) -> Principal:
        access = self.access
        return Principal(user, frozenset(access.users.get(user, ())),
                         admin=admin or user in access.admins)


class Authenticator:
    """Turns a request's credentials into an :class:`Identity` (or raises 401)."""

    def __init__(self, settings: AuthSettings, keys: KeyStore, directory: AccessDirectory,
                 workspace: Path) -> None:
        self.settings = settings
        self.keys = keys
        self.directory = directory
        self.oidc = OIDCVerifier(settings, workspace) if settings.oidc_issuer else None

    def authenticate(self, token: str | None, headers: Any, client: str | None) -> Identity:
        if token:
            if token.startswith(PREFIX + "_"):
                key = self.keys.verify(token)
                if key is None:
                    raise Unauthorized(INVALID)
                return Identity(self.directory.principal(key.user, admin=key.admin), "key",
                                key.id)
            if self.oidc is not None and token.count(".") == 2:
                claims = self.oidc.verify(token)
                user, groups, admin = claims_identity(claims, self.settings)
                return Identity(Principal(user, groups, admin=admin), "oidc",
                                str(claims.get("sub", user)))
            raise Unauthorized(INVALID)
        header = self.settings.proxy_user_header
        if header and headers.get(header):
            if client not in self.settings.trusted_proxies:
                log.warning("ignored %s from untrusted client %s", header, client)
                raise Unauthorized(INVALID)
            user = headers.get(header).strip()
            raw = [g.strip() for g in (headers.get(self.settings.proxy_groups_header) or "")
                   .split(",") if g.strip()]
            groups, admin = map_groups(raw, self.settings)
            return Identity(Principal(user, groups, admin=admin), "proxy", user)
        if self.settings.anonymous:
            return Identity(Principal.anonymous(), "anonymous")
        raise Unauthorized("sign in: send an API key as 'Authorization: Bearer <key>' "
                           "(ragtune keys create USER)")


_bearer = HTTPBearer(auto_error=False, description="an API key (rtk_...) or an OpenID "
                                                   "Connect ID token")


async def current_identity(request: Request, credentials: Annotated[
        HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> Identity:
    """FastAPI dependency: the caller's identity (401 without valid credentials).

    Run on the event loop: a key check is a stat and a hash (microseconds), and a hop to
    the thread pool per request cost milliseconds on a busy 2-core machine. An ID token
    is checked on a thread (its signing keys may have to be fetched).
    """
    if credentials is None and request.headers.get("authorization"):
        raise Unauthorized(INVALID)  # not a Bearer credential
    authenticator: Authenticator = request.app.state.ragtune.auth
    client = request.client.host if request.client else None
    token = credentials.credentials if credentials else None
    if token and not token.startswith(PREFIX + "_"):
        identity = await asyncio.to_thread(authenticator.authenticate, token, request.headers,
                                           client)
    else:
        identity = authenticator.authenticate(token, request.headers, client)
    request.state.identity = identity
    return identity


async def require_admin(identity: Annotated[Identity, Depends(current_identity)]) -> Identity:
    """FastAPI dependency: the caller, who must be an admin (403 otherwise)."""
    if not identity.principal.admin:
        raise AccessDenied("this needs an admin (an API key made with 'ragtune keys create "
                           "USER --admin', or a user in access.admins)")
    return identity


Caller = Annotated[Identity, Depends(current_identity)]
"""A route parameter typed ``Caller`` receives the authenticated caller (401 otherwise)."""

Admin = Annotated[Identity, Depends(require_admin)]
"""A route parameter typed ``Admin`` receives the caller, who must be an admin (403)."""
