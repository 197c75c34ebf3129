"""The ``ragtune`` command line: the root Typer app, its command groups, and ``main``.

Every command is thin: parse, call the core (the Workspace), print. The command groups live
one per module in this package and are only assembled here. ``main`` is the one place core
errors are turned into output: a :class:`~ragtune.errors.RagtuneError` is one red line and
its exit code (2 for bad input), never a traceback.
"""

from __future__ import annotations

import sys

import typer

from ragtune.cli import access, documents, evaluate, finetune, query, raft, route, serve, store
from ragtune.cli.common import err
from ragtune.errors import RagtuneError

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
app.add_typer(store.store_app, name="store")
app.command("compare")(evaluate.compare_command)
app.command("advise")(evaluate.advise_command)
app.command("serve")(serve.serve)
app.add_typer(access.keys_app, name="keys")
app.command("audit")(access.audit)


def _quiet_libraries() -> None:
    """ragtune draws its own progress bars; the model libraries' weight-loading bars and
    deprecation warnings would only interleave with them."""
    import os
    import warnings

    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    warnings.filterwarnings("ignore", category=FutureWarning)


def main() -> None:
    _quiet_libraries()
    try:
        # Non-standalone mode returns the code of typer.Exit instead of raising it.
        rc = app(standalone_mode=False)
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
    except Exception as e:  # click usage errors carry their own formatting
        import click

        if isinstance(e, click.exceptions.ClickException):
            e.show()
            sys.exit(e.exit_code)
        raise
    sys.exit(rc if isinstance(rc, int) else 0)

