"""``ragtune keys`` (API keys for the server) and ``ragtune audit`` (who asked what).

Keys are stored only as hashes in the workspace (``auth.keys_file``); the token is printed
once, at creation. A running server sees new and revoked keys at the next request.
"""

from __future__ import annotations

import time
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from ragtune.cli.common import JsonOpt, WorkspaceOpt, console, open_workspace, print_json

keys_app = typer.Typer(no_args_is_help=True, help="API keys for 'ragtune serve'.")


def _key_store(workspace):
    from ragtune.server.keys import KeyStore

    ws = open_workspace(workspace)
    return ws, KeyStore(ws.root / ws.settings.auth.keys_file)


def _when(ts: float | None) -> str:
    return "never" if ts is None else time.strftime("%Y-%m-%d %H:%M", time.localtime(ts))


@keys_app.command("create")
def create(user: Annotated[str, typer.Argument(help="The user the key acts as (groups from \\[access.users]).")],
           admin: Annotated[bool, typer.Option("--admin", help="May manage documents, keys and read the audit log.")] = False,
           expires: Annotated[str, typer.Option(help="Lifetime: 90d, 12h, 2w... or never.")] = "90d",
           workspace: WorkspaceOpt = None, as_json: JsonOpt = False) -> None:
    """Create a key and print it (once: only its hash is kept)."""
    from ragtune.server.keys import parse_duration

    ws, keys = _key_store(workspace)
    record, token = keys.create(user, admin=admin, expires_s=parse_duration(expires))
    if as_json:
        print_json({**record.public(), "token": token})
        return
    groups = ws.settings.access.users.get(user)
    console.print(f"key {record.id} for [bold]{user}[/]{' (admin)' if admin else ''}, expires "
                  f"{_when(record.expires)}:\n\n  {token}\n\nSend it as 'Authorization: Bearer "
                  "<key>' or paste it into the web app's sign-in. It is not shown again.",
                  highlight=False)
    if groups is None and not admin and user not in ws.settings.access.admins:
        console.print(f"[yellow]note: {user} is in no group (\\[access.users] in ragtune.toml): "
                      "they read public documents only[/]", highlight=False)


@keys_app.command("list")
def list_keys(workspace: WorkspaceOpt = None, as_json: JsonOpt = False) -> None:
    """Every key: id, user, admin, created, expires, revoked (never the key itself)."""
    _, keys = _key_store(workspace)
    rows = [k.public() for k in keys.list()]
    if as_json:
        print_json(rows)
        return
    table = Table("id", "user", "admin", "created", "expires", "state")
    for k in rows:
        state = "active" if k["active"] else ("revoked" if k["revoked"] else "expired")
        table.add_row(k["id"], k["user"], "yes" if k["admin"] else "", _when(k["created"]),
                      _when(k["expires"]), state)
    console.print(table)


@keys_app.command("revoke")
def revoke(key: Annotated[str | None, typer.Argument(help="Key id (see 'ragtune keys list').")] = None,
           user: Annotated[str | None, typer.Option(help="Revoke every key of this user instead.")] = None,
           workspace: WorkspaceOpt = None) -> None:
    """Revoke a key (or all of a user's): the next request with it is refused."""
    _, keys = _key_store(workspace)
    if (key is None) == (user is None):
        raise typer.BadParameter("give a key id or --user USER")
    done = [keys.revoke(key)] if key else keys.revoke_user(user or "")
    for k in done:
        console.print(f"revoked {k.id} ({k.user})", highlight=False)


def audit(since: Annotated[str | None, typer.Option(help="Only entries newer than this: 7d, 12h... or an ISO date.")] = None,
          user: Annotated[str | None, typer.Option(help="Only questions asked as this user.")] = None,
          origin: Annotated[str | None, typer.Option(help="ask (people) or eval (evaluation runs).")] = None,
          limit: Annotated[int, typer.Option(help="Newest entries shown.")] = 50,
          workspace: WorkspaceOpt = None, as_json: JsonOpt = False) -> None:
    """The audit log: who asked what, as whom, what was cited, which model, how long."""
    from datetime import datetime

    from ragtune.answer.audit import audit_log
    from ragtune.errors import InputError
    from ragtune.server.keys import parse_duration

    ws = open_workspace(workspace)
    since_ts = None
    if since:
        try:
            since_ts = datetime.fromisoformat(since).timestamp()
        except ValueError:
            age = parse_duration(since)
            if age is None:
                raise InputError("--since", "must be a duration like 7d or an ISO date") from None
            since_ts = time.time() - age
    entries = audit_log(ws.store, since=since_ts, user=user, origin=origin, limit=limit)
    if as_json:
        print_json([e.to_dict() for e in entries])
        return
    table = Table("when", "user", "via", "mode", "question", "cited", "s", "tokens")
    for e in entries:
        mode = e.mode + (f":{e.adapter}" if e.adapter else "")
        cited = ", ".join(c.rsplit("/", 1)[-1] for c in e.cited) or ("refused" if e.refused else "")
        tokens = "/".join(str(e.tokens.get(k, "")) for k in ("prompt", "completion")) if e.tokens else ""
        who = e.user + (f" [{','.join(e.groups)}]" if e.groups else "")
        table.add_row(_when(e.ts), escape(who), escape(e.via), escape(mode),
                      escape(e.question[:60]), escape(cited),
                      f"{e.latency_s:.1f}" if e.latency_s is not None else "", tokens)
    console.print(table)
