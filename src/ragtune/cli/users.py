"""``ragtune users``: who may read what, without editing TOML by hand.

Users and their groups live in the workspace's ``ragtune.toml``::

    [access]
    admins = ["root"]

    [access.users]
    ana = ["hr"]

``ragtune users add ana --group hr`` writes exactly that (the file is edited in place with
tomlkit, so comments and the order of everything else are kept); ``ragtune users list``
and ``ragtune users remove ana`` read and undo it. Mounted by :mod:`ragtune.cli.app`.
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape

from ragtune.cli.common import JsonOpt, WorkspaceOpt, console, open_workspace, print_json
from ragtune.cli.tables import fit_table

users_app = typer.Typer(no_args_is_help=True,
                        help="Manage users, their groups and the admins (in ragtune.toml).")


@users_app.command("add")
def users_add(name: Annotated[str, typer.Argument(help="User name (what --as takes).")],
              group: Annotated[list[str] | None, typer.Option("--group", "-g", help="A group the user belongs to (repeatable); added to any the user has.")] = None,
              admin: Annotated[bool, typer.Option("--admin", help="Also make the user an admin (reads every document).")] = False,
              workspace: WorkspaceOpt = None) -> None:
    """Add a user, or add groups to one (ragtune.toml is edited in place)."""
    from ragtune.config_file import add_user

    ws = open_workspace(workspace)
    groups, is_admin = add_user(ws.root / "ragtune.toml", name, group or (), admin=admin)
    console.print(f"{escape(name)}: groups {escape(', '.join(groups)) or '(none: public documents only)'}"
                  + ("; admin" if is_admin else ""), highlight=False)


@users_app.command("remove")
def users_remove(name: Annotated[str, typer.Argument(help="User name.")],
                 group: Annotated[list[str] | None, typer.Option("--group", "-g", help="Remove only this group from the user (repeatable).")] = None,
                 workspace: WorkspaceOpt = None) -> None:
    """Remove a user (from the users and the admins), or only some of their groups."""
    from ragtune.config_file import remove_user

    ws = open_workspace(workspace)
    left = remove_user(ws.root / "ragtune.toml", name, group or ())
    if left is None:
        console.print(f"removed user {escape(name)}", highlight=False)
    else:
        console.print(f"{escape(name)}: groups {escape(', '.join(left)) or '(none)'}",
                      highlight=False)


@users_app.command("list")
def users_list(workspace: WorkspaceOpt = None, as_json: JsonOpt = False) -> None:
    """Users with their groups, and the admins."""
    ws = open_workspace(workspace)
    access = ws.settings.access
    names = sorted({*access.users, *access.admins})
    rows = [{"user": n, "groups": list(access.users.get(n, [])), "admin": n in access.admins}
            for n in names]
    if as_json:
        print_json(rows)
        return
    if not rows:
        console.print("no users yet: everyone reads only public documents. Add one with "
                      "'ragtune users add NAME --group GROUP'.", highlight=False)
        return
    console.print(fit_table(console, ["user", "groups", "admin"],
                            [[r["user"], ", ".join(r["groups"]) or "-", "yes" if r["admin"] else ""]
                             for r in rows]))
