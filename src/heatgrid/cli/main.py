"""The ``heatgrid`` command: one Typer app, one sub-command module per command group.

Bad input of any kind ends with a one-line message on stderr and exit status 2, never a traceback.
"""

from __future__ import annotations

import sys

import typer
from rich.console import Console
from rich.markup import escape

from heatgrid import __version__
from heatgrid.core.errors import InputError

__all__ = ["app", "main"]

app = typer.Typer(
    name="heatgrid",
    help="Heat homes with compute: economics, simulation, the agent and the coordinator.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

_EXIT_BAD_INPUT = 2


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"heatgrid {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False,
        "--version",
        help="Print the version and exit.",
        callback=_version_callback,
        is_eager=True,
    ),
) -> None:
    """Heat homes with compute."""


def _register_commands() -> None:
    # Imported here so that `heatgrid --help` stays fast and each group stays in its own module.
    from heatgrid.cli import (  # noqa: PLC0415
        admin,
        agent,
        db,
        demo,
        devices,
        economics,
        emulate,
        jobs,
        serve,
        simulate,
    )

    for group in (economics, demo, serve, db, admin, devices, jobs, emulate, agent, simulate):
        group.register(app)


def main(argv: list[str] | None = None) -> int:
    """Run the CLI and return its exit status; bad input gives status 2 and a clear message."""
    _register_commands()
    try:
        # Without standalone mode click returns a command's typer.Exit code instead of raising.
        exit_code = app(args=argv, standalone_mode=False)
    except InputError as error:
        Console(stderr=True).print(f"[bold red]error:[/] {escape(str(error))}", highlight=False)
        return _EXIT_BAD_INPUT
    except typer.Exit as done:
        return int(done.exit_code)
    except typer.Abort:
        Console(stderr=True).print("aborted")
        return 1
    except typer.TyperException as error:
        # Usage errors (a bad option value, an unknown option) from typer's own click:
        # show click's one-line message and return its exit status (2 for usage errors).
        error.show()  # type: ignore[attr-defined]
        return int(getattr(error, "exit_code", _EXIT_BAD_INPUT))
    return exit_code if isinstance(exit_code, int) else 0


if __name__ == "__main__":
    sys.exit(main())
