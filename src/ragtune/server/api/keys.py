"""API keys (admins): list, create, revoke. The CLI does the same ('ragtune keys')."""

from __future__ import annotations

from fastapi import APIRouter, Request

from ragtune.server.auth import Admin
from ragtune.server.keys import parse_duration
from ragtune.server.schemas import KeyCreate, KeyCreated, KeyOut, error_responses

router = APIRouter(prefix="/api/keys", tags=["keys"])


@router.get("", response_model=list[KeyOut], responses=error_responses(401, 403))
def list_keys(request: Request, who: Admin) -> list[KeyOut]:
    return [KeyOut(**k.public()) for k in request.app.state.ragtune.keys.list()]


@router.post("", response_model=KeyCreated, status_code=201,
             responses=error_responses(400, 401, 403, 422))
def create_key(body: KeyCreate, request: Request,
               who: Admin) -> KeyCreated:
    """A new key; its token is in this reply only."""
    record, token = request.app.state.ragtune.keys.create(
        body.user, admin=body.admin, expires_s=parse_duration(body.expires))
    return KeyCreated(**record.public(), token=token)


@router.delete("/{key_id}", response_model=KeyOut, responses=error_responses(401, 403, 404))
def revoke_key(key_id: str, request: Request, who: Admin) -> KeyOut:
    """Revoke a key: its next request is 401."""
    return KeyOut(**request.app.state.ragtune.keys.revoke(key_id).public())
