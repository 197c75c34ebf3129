"""Identity: API keys (hashes only, 401/403), anonymous mode, single sign-on (OIDC ID
tokens signed with a local key; a trusted proxy's header), and permissions that change
without a restart: grant a group, ask, revoke it, ask again."""

from __future__ import annotations

import json
import os
import stat
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from openai import OpenAI

from ragtune.server.keys import KeyStore
from tests.server.conftest import SALARY_Q, edit_access, serving

ADMIN_ONLY = [("POST", "/api/documents/sync", {"path": "/tmp"}), ("GET", "/api/audit", None),
              ("GET", "/api/keys", None), ("POST", "/api/keys", {"user": "x"}),
              ("DELETE", "/api/keys/abc", None), ("GET", "/api/reports", None),
              ("DELETE", "/api/documents/doc_x", None)]


def test_no_wrong_expired_or_revoked_key_is_401_alike(served) -> None:
    keys = KeyStore(served.ws.root / "keys.json")
    _, expired = keys.create("ana", expires_s=1)
    revoked_rec, revoked = keys.create("ana")
    keys.revoke(revoked_rec.id)
    time.sleep(1.1)
    wrong = served.tokens["ana"][:-3] + "xyz"
    bodies = []
    for token in (None, wrong, expired, revoked, "rtk_bogus", "not-a-key"):
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        r = httpx.post(served.url + "/api/search", json={"query": "vpn"}, headers=headers)
        assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
        bodies.append(r.json()["error"]["message"])
    assert bodies[0].startswith("sign in")
    assert len(set(bodies[1:])) == 1  # never says which: wrong, expired and revoked alike
    r = httpx.get(served.url + "/api/me", headers={"Authorization": "Basic YTpi"})
    assert r.status_code == 401


def test_admin_only_operations_are_403_for_users(served) -> None:
    with served.client("ana") as ana, served.client("root") as root:
        for method, path, body in ADMIN_ONLY:
            r = ana.request(method, path, json=body)
            assert r.status_code == 403, (method, path, r.text)
            assert "admin" in r.json()["error"]["message"]
        r = ana.post("/api/documents", files={"files": ("a.md", b"# A\\n\\nhello")})
        assert r.status_code == 403
        assert root.get("/api/keys").status_code == 200
        assert root.get("/api/audit").status_code == 200


def test_keys_are_stored_only_as_hashes(served) -> None:
    raw = (served.ws.root / "keys.json").read_text()
    assert all(token not in raw and token.split("_", 2)[2] not in raw
               for token in served.tokens.values())
    assert stat.S_IMODE(os.stat(served.ws.root / "keys.json").st_mode) == 0o600
    with served.client("root") as root:
        listed = root.get("/api/keys").json()
        assert {k["user"] for k in listed} == {"root", "ana", "bob"}
        assert all("hash" not in k and "token" not in k for k in listed)
        made = root.post("/api/keys", json={"user": "dave", "expires": "12h"}).json()
        assert made["token"].startswith("rtk_") and made["expires"] - made["created"] == 43200
        r = httpx.get(served.url + "/api/me", headers={"Authorization": f"Bearer {made['token']}"})
        assert r.json()["user"] == "dave"
        assert root.delete(f"/api/keys/{made['id']}").json()["active"] is False
        r = httpx.get(served.url + "/api/me", headers={"Authorization": f"Bearer {made['token']}"})
        assert r.status_code == 401


def _ask_everywhere(served, user: str) -> dict[str, str]:
    """What ``user`` gets about salaries from every read path, as text."""
    ai = OpenAI(base_url=served.url + "/v1", api_key=served.tokens[user], max_retries=0)
    reply = ai.chat.completions.create(model="ragtune-rag",
                                       messages=[{"role": "user", "content": SALARY_Q}])
    chunks = list(ai.chat.completions.create(model="ragtune-rag", stream=True,
                                             messages=[{"role": "user", "content": SALARY_Q}]))
    with served.client(user) as http:
        search = http.post("/api/search", json={"query": SALARY_Q, "k": 10}).text
        ask = http.post("/api/ask", json={"question": SALARY_Q}).text
        docs = http.get("/api/documents").text
    return {"answer": reply.choices[0].message.content, "citations": json.dumps(reply.citations),
            "stream": json.dumps([c.model_dump() for c in chunks]), "search": search,
            "ask": ask, "documents": docs}


def test_grant_ask_revoke_ask_again_without_restart(tmp_path) -> None:
    with serving(tmp_path) as served:
        keys = KeyStore(served.ws.root / "keys.json")
        _, carol = keys.create("carol")
        served.tokens["carol"] = carol
        seen = _ask_everywhere(served, "carol")
        assert not any("zorblax" in v or "salaries.md" in v for v in seen.values()), seen
        edit_access(served.ws, {"ana": ["hr"], "bob": ["it"], "carol": ["hr"]})  # grant
        seen = _ask_everywhere(served, "carol")
        assert all("zorblax" in seen[k] for k in ("answer", "stream", "search", "ask"))
        assert "salaries.md" in seen["citations"] and "salaries.md" in seen["documents"]
        edit_access(served.ws, {"ana": ["hr"], "bob": ["it"], "carol": []})  # revoke the group
        seen = _ask_everywhere(served, "carol")
        assert not any("zorblax" in v or "salaries.md" in v for v in seen.values()), seen
        edit_access(served.ws, {"ana": ["hr"], "bob": ["it"], "carol": ["hr"]})
        assert "zorblax" in _ask_everywhere(served, "carol")["answer"]
        keys.revoke_user("carol")  # revoke the key: the next request is refused
        r = httpx.post(served.url + "/api/search", json={"query": SALARY_Q},
                       headers={"Authorization": f"Bearer {carol}"})
        assert r.status_code == 401


def test_anonymous_mode_is_off_by_default_and_public_only_when_on(tmp_path) -> None:
    with serving(tmp_path / "a") as served:
        assert httpx.post(served.url + "/api/search", json={"query": "vpn"}).status_code == 401
    with serving(tmp_path / "b", auth={"anonymous": True}) as served:
        r = httpx.post(served.url + "/api/search", json={"query": SALARY_Q, "k": 10})
        assert r.status_code == 200 and "zorblax" not in r.text
        assert httpx.get(served.url + "/api/me").json()["user"] == "anonymous"
        assert httpx.get(served.url + "/api/audit").status_code == 403


# ------------------------------------------------------------------ single sign-on

@pytest.fixture(scope="module")
def signing_keys():
    from cryptography.hazmat.primitives.asymmetric import rsa

    return (rsa.generate_private_key(public_exponent=65537, key_size=2048),
            rsa.generate_private_key(public_exponent=65537, key_size=2048))


def jwks(private, kid: str = "k1") -> dict:
    import jwt

    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(private.public_key()))
    return {"keys": [{**jwk, "kid": kid, "use": "sig", "alg": "RS256"}]}


def id_token(private, *, kid: str = "k1", aud: str = "ragtune", iss: str = "https://idp.test",
             exp: float | None = None, **claims) -> str:
    import jwt

    now = time.time()
    payload = {"iss": iss, "aud": aud, "sub": "u-123", "iat": now,
               "exp": now + 300 if exp is None else exp, **claims}
    return jwt.encode(payload, private, algorithm="RS256", headers={"kid": kid})


@pytest.fixture
def jwks_url(signing_keys):
    """The identity provider's JWKS over HTTP, as a real one publishes it."""
    body = json.dumps(jwks(signing_keys[0])).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):  # quiet
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/jwks.json"
    server.shutdown()


def test_oidc_id_tokens_map_groups_at_each_request(tmp_path, signing_keys, jwks_url) -> None:
    good, other = signing_keys
    auth = {"oidc_issuer": "https://idp.test", "oidc_audience": "ragtune", "oidc_jwks": jwks_url,
            "group_map": {"HR-Staff": "hr"}, "admin_groups": ["ragtune-admins"]}
    with serving(tmp_path, auth=auth) as served:
        def call(token: str, path: str = "/api/search", **kw):
            return httpx.request("POST" if path == "/api/search" else "GET", served.url + path,
                                 headers={"Authorization": f"Bearer {token}"}, **kw)

        hr = id_token(good, preferred_username="erin", groups=["HR-Staff", "staff"])
        me = call(hr, "/api/me").json()
        assert (me["user"], me["groups"], me["admin"], me["auth"]) == ("erin", ["hr", "staff"], False, "oidc")
        assert "zorblax" in call(hr, json={"query": SALARY_Q}).text
        # the IdP dropped the group: the next token no longer reads HR documents
        plain = id_token(good, preferred_username="erin", groups=["staff"])
        r = call(plain, json={"query": SALARY_Q, "k": 10})
        assert r.status_code == 200 and "zorblax" not in r.text
        admin = id_token(good, email="ops@example.com", groups="ragtune-admins")
        assert call(admin, "/api/me").json() == {**call(admin, "/api/me").json(), "admin": True,
                                                 "user": "ops@example.com"}
        ai = OpenAI(base_url=served.url + "/v1", api_key=hr, max_retries=0)
        assert "zorblax" in ai.chat.completions.create(
            model="ragtune-rag", messages=[{"role": "user", "content": SALARY_Q}]).choices[0].message.content
        refused = [id_token(good, exp=time.time() - 120, groups=["HR-Staff"]),
                   id_token(good, aud="someone-else"), id_token(good, iss="https://evil.test"),
                   id_token(other), id_token(other, kid="nope"), hr[:-4] + "AAAA"]
        messages = set()
        for token in refused:
            r = call(token, "/api/me")
            assert r.status_code == 401, token
            messages.add(r.json()["error"]["message"])
        assert messages == {"invalid or expired credentials"}
        # who asked, as whom: the audit log has the IdP subject and the mapped groups
        with served.client("root") as root:
            entry = root.get("/api/audit").json()[-1]
        assert (entry["user"], entry["via"], entry["groups"]) == ("erin", "oidc:u-123", ["hr", "staff"])


def test_oidc_keys_from_a_local_file(tmp_path, signing_keys) -> None:
    good, _ = signing_keys
    (tmp_path / "ws").mkdir(parents=True)
    (tmp_path / "ws" / "idp-keys.json").write_text(json.dumps(jwks(good)))
    auth = {"oidc_issuer": "https://idp.test", "oidc_audience": "ragtune",
            "oidc_jwks": "idp-keys.json"}
    with serving(tmp_path, auth=auth) as served:
        r = httpx.get(served.url + "/api/me", headers={
            "Authorization": f"Bearer {id_token(good, preferred_username='fay')}"})
        assert r.json()["user"] == "fay"


def test_trusted_proxy_header(tmp_path) -> None:
    auth = {"proxy_user_header": "X-Forwarded-User", "group_map": {"hr-team": "hr"}}
    with serving(tmp_path / "a", auth=auth) as served:
        r = httpx.post(served.url + "/api/search", json={"query": SALARY_Q},
                       headers={"X-Forwarded-User": "gil", "X-Forwarded-Groups": "hr-team, x"})
        assert r.status_code == 200 and "zorblax" in r.text
        me = httpx.get(served.url + "/api/me", headers={"X-Forwarded-User": "gil"}).json()
        assert (me["user"], me["groups"], me["auth"]) == ("gil", [], "proxy")
    # from an address that is not the proxy, the header is not believed
    with serving(tmp_path / "b", auth={**auth, "trusted_proxies": ["10.9.9.9"]}) as served:
        r = httpx.get(served.url + "/api/me", headers={"X-Forwarded-User": "gil"})
        assert r.status_code == 401
