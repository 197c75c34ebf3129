"""The ``ragtune`` command line (one Typer app per command group; see :mod:`ragtune.cli.app`).

>>> from ragtune.cli import app
>>> sorted(c.name for c in app.registered_groups)[:3]
['adapters', 'data', 'eval']
"""

from ragtune.cli.app import app, main

__all__ = ["app", "main"]
