"""Single sign-on: OpenID Connect ID tokens sent as ``Authorization: Bearer <token>``.

The token's signature is checked against the identity provider's published keys (a JWKS
URL, the ``jwks_uri`` of its discovery document, or a local JWKS/PEM file), and its
issuer, audience and expiry against ``[auth]``. The user comes from ``user_claim``
(then ``email``, then ``sub``); the groups from ``groups_claim``, each mapped through
``group_map`` (unmapped groups keep their name: Open WebUI's convention), at every
request, so a group removed at the identity provider is gone with the user's next token.
Needs PyJWT with cryptography (``pip install 'ragtune[server]'``).

>>> from ragtune.config import AuthSettings
>>> user, groups, admin = claims_identity({"preferred_username": "ana", "groups": ["HR-Staff", "all"]},
...                                       AuthSettings(group_map={"HR-Staff": "hr"}, admin_groups=["ops"]))
>>> user, sorted(groups), admin
('ana', ['all', 'hr'], False)
"""

from __future__ import annotations

import json
import logging
import threading
from pathlib import Path
from typing import Any

from ragtune.config import AuthSettings
from ragtune.errors import ConfigError, MissingDependency, Unauthorized

log = logging.getLogger("ragtune.server")
ALGORITHMS = ["RS256", "RS384", "RS512", "ES256", "ES384", "PS256"]


def claim_groups(value: Any) -> list[str]:
    """A groups claim as a list: a JSON list, or one comma-separated string.

    >>> claim_groups(["a", "b"]), claim_groups("a, b"), claim_groups(None)
    (['a', 'b'], ['a', 'b'], [])
    """
    if isinstance(value, str):
        return [g.strip() for g in value.split(",") if g.strip()]
    if isinstance(value, list | tuple):
        return [str(g) for g in value if str(g).strip()]
    return []


def map_groups(raw: list[str], auth: AuthSettings) -> tuple[frozenset[str], bool]:
    """ragtune groups for identity-provider groups ``raw``, and whether they make an admin."""
    groups = frozenset(auth.group_map.get(g, g) for g in raw)
    admin = bool(set(auth.admin_groups) & (set(raw) | groups))
    return groups, admin


def claims_identity(claims: dict[str, Any], auth: AuthSettings) -> tuple[str, frozenset[str], bool]:
    """(user, ragtune groups, admin) from verified ID token claims."""
    user = claims.get(auth.user_claim) or claims.get("email") or claims.get("sub")
    if not isinstance(user, str) or not user:
        raise Unauthorized("the ID token names no user")
    groups, admin = map_groups(claim_groups(claims.get(auth.groups_claim)), auth)
    return user, groups, admin


class OIDCVerifier:
    """Verifies ID tokens of one issuer."""

    def __init__(self, auth: AuthSettings, workspace: Path) -> None:
        try:
            import jwt  # noqa: F401
        except ImportError:
            raise MissingDependency("PyJWT[crypto]", "server") from None
        self.auth = auth
        self.workspace = workspace
        self._client: Any = None
        self._file_keys: dict[str | None, Any] | None = None
        self._lock = threading.Lock()

    def _jwks_source(self) -> str:
        if self.auth.oidc_jwks:
            return self.auth.oidc_jwks
        import httpx

        url = self.auth.oidc_issuer.rstrip("/") + "/.well-known/openid-configuration"
        try:
            doc = httpx.get(url, timeout=10).raise_for_status().json()
            return str(doc["jwks_uri"])
        except (httpx.HTTPError, ValueError, KeyError) as e:
            raise ConfigError(f"cannot read the OpenID discovery document {url} ({e}); set "
                              "auth.oidc_jwks to the identity provider's JWKS URL") from None

    def _key(self, token: str) -> Any:
        import jwt

        with self._lock:
            if self._client is None and self._file_keys is None:
                source = self._jwks_source()
                if source.startswith(("http://", "https://")):
                    self._client = jwt.PyJWKClient(source, cache_keys=True, lifespan=600)
                else:
                    self._file_keys = self._read_keys(Path(self.workspace, source))
        if self._client is not None:
            try:
                return self._client.get_signing_key_from_jwt(token).key
            except jwt.PyJWKClientError as e:
                log.info("ID token refused: signing key: %s", e)
                raise Unauthorized("invalid or expired credentials") from None
        assert self._file_keys is not None
        kid = jwt.get_unverified_header(token).get("kid")
        key = self._file_keys.get(kid) or (self._file_keys.get(None)
                                           if len(self._file_keys) == 1 else None)
        if key is None:
            log.info("ID token refused: no key with kid %r", kid)
            raise Unauthorized("invalid or expired credentials")
        return key

    @staticmethod
    def _read_keys(path: Path) -> dict[str | None, Any]:
        import jwt
        from cryptography.hazmat.primitives.serialization import load_pem_public_key

        try:
            text = path.read_text(encoding="utf-8")
        except OSError as e:
            raise ConfigError(f"auth.oidc_jwks: cannot read {path}: {e}") from None
        if text.lstrip().startswith("-----BEGIN"):
            return {None: load_pem_public_key(text.encode())}
        try:
            keys = jwt.PyJWKSet.from_dict(json.loads(text)).keys
        except (ValueError, jwt.PyJWTError) as e:
            raise ConfigError(f"auth.oidc_jwks: {path} is not a JWKS or PEM key: {e}") from None
        out: dict[str | None, Any] = {k.key_id: k.key for k in keys}
        if len(keys) == 1:
            out[None] = keys[0].key
        return out

    def verify(self, token: str) -> dict[str, Any]:
        """The token's claims if it is valid for this issuer and audience, else Unauthorized."""
        import jwt

        try:
            key = self._key(token)
            return jwt.decode(token, key, algorithms=ALGORITHMS, audience=self.auth.oidc_audience,
                              issuer=self.auth.oidc_issuer, leeway=30,
                              options={"require": ["exp", "iss", "aud"]})
        except jwt.PyJWTError as e:
            # The reason stays in the server log: a caller learns only that it failed.
            log.info("ID token refused: %s: %s", type(e).__name__, e)
            raise Unauthorized("invalid or expired credentials") from None
