"""``heatgrid mining``: mining credentials, accounting and payouts (reads the database).

The credentials command is defined in :mod:`heatgrid.cli._mining_credentials`, the accounting
and payout commands in :mod:`heatgrid.cli._mining_payouts`.
"""

from __future__ import annotations

import typer

from heatgrid.cli._mining_credentials import add_credentials_commands
from heatgrid.cli._mining_payouts import add_payout_commands

__all__ = ["register"]

_mining = typer.Typer(
    help="Mining through the coordinator's Stratum proxy (reads the database).",
    no_args_is_help=True,
)

add_credentials_commands(_mining)
add_payout_commands(_mining)


def register(app: typer.Typer) -> None:
    """Add the ``mining`` command group to the ``heatgrid`` app."""
    app.add_typer(_mining, name="mining")
