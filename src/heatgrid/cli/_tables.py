"""Tables of the commands, whose ID columns always stay whole so that they can be copied.

An ID is what a user copies into the next command (``heatgrid devices show ID``), so it is
never cut short with an ellipsis: its column does not wrap and is as wide as its longest ID.
The other columns fold their text onto more lines. When even that cannot fit the terminal
(two 32-character IDs on 80 columns leave no room for the rest), each row is printed as
``header: value`` lines instead, one block per row.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence

from rich.console import Console
from rich.markup import escape
from rich.table import Table

__all__ = ["print_table"]

_MIN_OTHER_WIDTH = 8
"""Narrowest a non-ID column may get before the rows are printed as blocks instead [chars]."""
_EDGE_WIDTH = 3
"""Width that each column adds for padding and its border [chars]."""


def print_table(
    headers: Sequence[str],
    rows: Iterable[Sequence[str]],
    *,
    ids: Collection[str] = (),
    title: str | None = None,
    console: Console | None = None,
) -> None:
    """Print ``rows`` under ``headers``; the columns named in ``ids`` are never shortened.

    Parameters
    ----------
    headers : sequence of str
        Column headers.
    rows : iterable of sequence of str
        Cell texts, one sequence per row, in the order of ``headers``.
    ids : collection of str
        Headers of the columns that hold IDs.
    title : str, optional
        A title over the table.
    console : Console, optional
        Where to print (default: stdout).
    """
    out = console if console is not None else Console()
    lines = [list(row) for row in rows]
    widths = [
        max([len(header), *(len(line[i]) for line in lines)]) for i, header in enumerate(headers)
    ]
    needed = sum(
        width if header in ids else min(width, _MIN_OTHER_WIDTH)
        for header, width in zip(headers, widths, strict=True)
    )
    if needed + _EDGE_WIDTH * len(headers) + 1 > out.width:
        _print_blocks(out, headers, lines, title)
        return
    table = Table(title=title)
    for header, width in zip(headers, widths, strict=True):
        if header in ids:
            table.add_column(header, no_wrap=True, overflow="fold", min_width=width)
        else:
            table.add_column(header, overflow="fold")
    for line in lines:
        table.add_row(*line)
    out.print(table)


def _print_blocks(
    out: Console, headers: Sequence[str], lines: list[list[str]], title: str | None
) -> None:
    if title:
        out.print(escape(title), highlight=False)
    for index, line in enumerate(lines):
        if index or title:
            out.print()
        for header, value in zip(headers, line, strict=True):
            out.print(f"{escape(header)}: {escape(value)}", highlight=False, soft_wrap=True)
