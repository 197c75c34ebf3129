"""Tables that fit the terminal: every command's tables are built here.

In a terminal a table must fit its width (80 columns is common): a table wider than that
is not squeezed until every cell reads ``sy…`` or ``$2…``. Instead:

- :func:`fit_table` drops the least important columns (named by the caller) until the rest
  fit, says which it hid, and folds long values (paths) onto several lines instead of
  cutting them;
- :func:`metrics_table` (one row per system, one column per metric) is turned on its side
  (one row per metric) when it is too wide.

Piped output has no width limit (:class:`ragtune.cli.common.CliConsole`), so every column
is always there and no line is wrapped.

>>> import io
>>> from rich.console import Console
>>> c = Console(width=40, file=io.StringIO())
>>> t = fit_table(c, ["name", "note", "path"], [["a", "x" * 20, "/a/very/long/path" * 3]],
...               optional=["note"], fold=["path"])
>>> [col.header for col in t.columns], t.caption
(['name', 'path'], 'hidden for width: note (--json or a wider terminal shows all)')
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Console
from rich.measure import Measurement
from rich.table import Table

__all__ = ["fit_table", "fits", "metrics_table"]


FOLDED_MIN = 24  # a folded column (a path) still reads well at this width


def fits(console: Console, table: Table) -> bool:
    """Whether ``table`` fits ``console`` with its folding columns at most ``FOLDED_MIN``
    wide (they wrap onto more lines; the others keep their natural width)."""
    capped = []
    for col in table.columns:
        if col.overflow == "fold" and col.max_width is None:
            col.max_width = FOLDED_MIN
            capped.append(col)
    try:
        unbounded = console.options.update(max_width=1_000_000)  # measure, do not clamp
        return Measurement.get(console, unbounded, table).maximum <= console.width
    finally:
        for col in capped:
            col.max_width = None


def _build(headers: Sequence[str], rows: Sequence[Sequence[str]], keep: Sequence[int],
           fold: Sequence[str], numeric: Sequence[str], title: str | None) -> Table:
    table = Table(title=title)
    for i in keep:
        h = headers[i]
        table.add_column(h, overflow="fold" if h in fold else "ellipsis",
                         justify="right" if h in numeric else "left")
    for row in rows:
        table.add_row(*(row[i] for i in keep))
    return table


def fit_table(console: Console, headers: Sequence[str], rows: Sequence[Sequence[str]], *,
              optional: Sequence[str] = (), fold: Sequence[str] = (),
              numeric: Sequence[str] = (), title: str | None = None) -> Table:
    """A table of ``rows`` that fits ``console``: ``optional`` columns (least important
    first) are hidden until it does; ``fold`` columns wrap long values instead of cutting
    them; ``numeric`` columns are right-aligned."""
    keep = list(range(len(headers)))
    table = _build(headers, rows, keep, fold, numeric, title)
    hidden: list[str] = []
    for name in optional:
        if fits(console, table) or name not in headers:
            continue
        keep.remove(headers.index(name))
        hidden.append(name)
        table = _build(headers, rows, keep, fold, numeric, title)
    if hidden:
        table.caption = (f"hidden for width: {', '.join(hidden)} (--json or a wider terminal "
                         "shows all)")
    return table


def metrics_table(console: Console, names: Sequence[str], columns: Sequence[str],
                  values: Sequence[Sequence[str]], *, first: str = "system",
                  tall_columns: Sequence[str] | None = None) -> Table:
    """One row per name and one column per metric when that fits, else one row per
    metric and one column per name (systems are fewer than metrics); the rows of that table
    may have longer, plainer names (``tall_columns``)."""
    wide = Table(first, *columns)
    for name, row in zip(names, values, strict=True):
        wide.add_row(name, *row)
    for col in wide.columns[1:]:
        col.justify = "right"
    if fits(console, wide):
        return wide
    tall = Table("metric", *names)
    for col in tall.columns:
        col.overflow = "fold"
    for j, metric in enumerate(tall_columns or columns):
        tall.add_row(metric, *(row[j] for row in values))
    for col in tall.columns[1:]:
        col.justify = "right"
    return tall
