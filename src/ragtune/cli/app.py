"""The ``ragtune`` command line: the root Typer app, its command groups, and ``main``.

Every command is thin: parse, call the core (the Workspace), print. The command groups live
one per module in this package and are only assembled here. ``main`` is the one place errors
are turned into output, never a traceback: a :class:`~ragtune.errors.RagtuneError` is one
red line and its exit code (2 for bad input); a usage error (unknown option or command,
missing argument, bad value) is one line naming it and the ``--help`` to read, exit 2.

Exit codes: 0 done; 1 a failure (files that failed to ingest, a failed regression gate, a
model error, nothing to answer from: the knowledge base is empty); 2 a usage, input or
configuration error; 130 interrupted.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

import typer
from rich.markup import escape

from ragtune.cli import (
    access,
    documents,
    evaluate,
    finetune,
    monitor,
    query,
    raft,
    route,
    serve,
    store,
    tune,
    users,
)
from ragtune.cli.common import err
from ragtune.errors import RagtuneError

try:  # typer >= 0.29 carries its own copy of click
    from typer._click.exceptions import ClickException, NoArgsIsHelpError, UsageError
except ImportError:  # pragma: no cover - older typer on the real click
    from click.exceptions import ClickException, NoArgsIsHelpError, UsageError  # type: ignore[no-redef]

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Ground a language model in your documents, fine-tune it, and measure "
                       "which serves you best.")

for command in (documents.init, documents.ingest, documents.rm, query.search, query.ask,
                documents.docs, documents.status):
    app.command()(command)
app.add_typer(evaluate.eval_app, name="eval")
app.add_typer(finetune.data_app, name="data")
app.add_typer(finetune.finetune_app, name="finetune")
app.add_typer(finetune.adapters_app, name="adapters")
app.add_typer(raft.raft_app, name="raft")
app.add_typer(route.route_app, name="route")
app.add_typer(users.users_app, name="users")
app.add_typer(store.store_app, name="store")
app.add_typer(monitor.monitor_app, name="monitor")
app.add_typer(tune.tune_app, name="tune")
app.command("compare")(evaluate.compare_command)
app.command("advise")(evaluate.advise_command)
app.command("serve")(serve.serve)
app.add_typer(access.keys_app, name="keys")
app.command("audit")(access.audit)

# How an option's value is shown in --help, by Python type (typer shows '<str>', '<bool>',
# '<list[Path]>'; a flag takes no value and shows none).
_METAVARS = {"str": "TEXT", "int": "INTEGER", "float": "NUMBER", "Path": "PATH", "bool": ""}


def _metavar(param: Any) -> str | None:
    if getattr(param, "is_flag", False) or getattr(param, "count", False):
        return ""
    try:
        shown = param.bare_type()
    except AttributeError:  # a parameter typer did not build (click's own help option)
        return None
    if shown.startswith("list[") and shown.endswith("]"):
        shown = shown[5:-1]
    return _METAVARS.get(shown, shown.upper())


def _tidy_help(command: Any) -> Any:
    """Plain metavars (TEXT, PATH...) for every option and argument, none for flags and
    ``--help``, in every command of the tree."""
    for param in getattr(command, "params", ()):
        if param.metavar is None and param.param_type_name == "option":
            shown = _metavar(param)
            if shown is not None:
                param.metavar = shown
        elif param.param_type_name == "argument" and param.metavar is None:
            shown = _metavar(param)
            if shown:
                param.metavar = (param.name or "").upper()
    make_help = command.get_help_option

    def get_help_option(ctx: Any) -> Any:
        option = make_help(ctx)
        if option is not None:
            option.metavar = ""
        return option

    command.get_help_option = get_help_option
    for sub in getattr(command, "commands", {}).values():
        _tidy_help(sub)
    return command


def build_command() -> Any:
    """The root command with its help tidied (what ``main`` runs; tests drive it too)."""
    return _tidy_help(typer.main.get_command(app))


def _quiet_libraries() -> None:
    """ragtune draws its own progress bars; the model libraries' weight-loading bars and
    deprecation warnings would only interleave with them."""
    import os
    import warnings

    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    warnings.filterwarnings("ignore", category=FutureWarning)


def _usage_error(e: UsageError) -> None:
    """One line: what is wrong and where to read the usage (no usage block, no panel)."""
    where = e.ctx.command_path if e.ctx is not None else "ragtune"
    message = escape(" ".join(e.format_message().split()))
    err.print(f"[red]usage error:[/] {message} (see '{escape(where)} --help')",
              highlight=False, soft_wrap=True, emoji=False)


def main(argv: Sequence[str] | None = None) -> None:
    """Run the command line on ``argv`` (default ``sys.argv[1:]``) and exit with its code."""
    _quiet_libraries()
    try:
        # Non-standalone mode returns the code of typer.Exit instead of raising it.
        rc = build_command().main(args=list(argv) if argv is not None else None,
                                  prog_name="ragtune", standalone_mode=False)
    except NoArgsIsHelpError as e:  # a group run without a command: its help
        e.show()
        sys.exit(e.exit_code)
    except UsageError as e:
        _usage_error(e)
        sys.exit(e.exit_code)
    except RagtuneError as e:
        err.print(f"[red]error:[/] {e}", highlight=False)
        sys.exit(e.exit_code)
    except typer.Exit as e:
        sys.exit(e.exit_code)
    except typer.Abort:
        err.print("aborted")
        sys.exit(130)
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)
    except ClickException as e:  # file errors and the like: their own one line
        err.print(f"[red]error:[/] {escape(' '.join(e.format_message().split()))}",
                  highlight=False, soft_wrap=True)
        sys.exit(e.exit_code)
    sys.exit(rc if isinstance(rc, int) else 0)

