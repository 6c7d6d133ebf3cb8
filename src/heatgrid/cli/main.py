"""The ``heatgrid`` command: one Typer app, one sub-command module per command group.

Bad input of any kind ends with a one-line message on stderr and exit status 2, never a traceback.

A command's module is imported only when that command runs or shows its own help
(:class:`_LazyGroup`): ``heatgrid --help`` lists the commands from :data:`COMMANDS` and imports
none of them, so a slow import in one command (numpy, SQLAlchemy, numba kernels) never slows
down another.
"""

from __future__ import annotations

import importlib
import sys
from difflib import get_close_matches
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape
from typer.core import TyperCommand, TyperGroup

from heatgrid import __version__
from heatgrid.core.errors import InputError

__all__ = ["COMMANDS", "app", "load_command", "main"]

COMMANDS: dict[str, str] = {
    "economics": "Estimate a year of heating a home with a compute heater: heat, money and CO2.",
    "demo": "Run a live fleet of homes heated by miners and CPU heaters, then summarize "
    "(no setup).",
    "serve": "Run the coordinator; it refuses a database whose schema is not this heatgrid's.",
    "simulate": "Simulate a fleet of compute-heated homes and compare scheduling policies.",
    "db": "Create and migrate the coordinator database.",
    "admin": "API keys and enrollment codes (reads the database).",
    "devices": "Enrolled heaters (reads the database).",
    "mining": "Mining through the coordinator's Stratum proxy (reads the database).",
    "jobs": "Jobs on a coordinator (over its HTTP API).",
    "emulate": "Emulated hardware on loopback, driven over the real protocols.",
    "stratum": "Run the coordinator's Stratum v1 proxy between miners and a pool.",
    "agent": "Run a heater's agent (heatgrid agent --config agent.toml), enroll it, or leave.",
}
"""Every command, in the order of ``heatgrid --help``, with the one line that lists it there.

The module ``heatgrid.cli.NAME`` defines command NAME through its ``register(app)``; a test
checks that each line here is the command's own help.
"""


def load_command(name: str) -> Any:
    """Import ``heatgrid.cli.NAME`` and return its command (a click command, as typer builds it).

    Parameters
    ----------
    name : str
        A key of :data:`COMMANDS`.
    """
    module = importlib.import_module(f"heatgrid.cli.{name}")
    holder = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
    holder.callback()(_no_op)  # a callback keeps `holder` a group, even with one command
    module.register(holder)
    group = typer.main.get_group(holder)
    return _literal_help(group.commands[name])


def _literal_help(command: Any) -> Any:
    """Escape Rich markup in the help of ``command``, its options and its sub-commands.

    Typer renders help as Rich markup, where a unit in brackets is a tag: ``[s]`` (strike),
    ``[kWh]`` and any lower-case word vanish. Help text here is plain text with units in
    brackets, so it is shown as written. Each command is escaped once.
    """
    if getattr(command, "_heatgrid_literal_help", False):
        return command
    command._heatgrid_literal_help = True
    for attribute in ("help", "short_help", "epilog"):
        text = getattr(command, attribute, None)
        if text:
            setattr(command, attribute, escape(text))
    for parameter in command.params:
        text = getattr(parameter, "help", None)
        if text:
            parameter.help = escape(text)
    if not isinstance(command, _LazyGroup):  # the root's commands are escaped as they load
        for sub_command in getattr(command, "commands", {}).values():
            _literal_help(sub_command)
    return command


def _no_op() -> None:
    """Stand-in callback of the group that :func:`load_command` builds."""


class _LazyGroup(TyperGroup):
    """The root group: imports a command's module the first time the command is needed."""

    _listing = False

    def list_commands(self, ctx: Any) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        if cmd_name not in COMMANDS:
            return None
        if self._listing and cmd_name not in self.commands:
            # Listing the commands in the root's help: a line of text, no import.
            return _literal_help(TyperCommand(cmd_name, help=COMMANDS[cmd_name]))
        if cmd_name not in self.commands:
            self.commands[cmd_name] = load_command(cmd_name)
        return self.commands[cmd_name]

    def format_help(self, ctx: Any, formatter: Any) -> None:
        _literal_help(self)  # the root's own options; its commands are escaped as they load
        self._listing = True
        try:
            super().format_help(ctx, formatter)
        finally:
            self._listing = False

    def resolve_command(self, ctx: Any, args: list[str]) -> Any:
        name = args[0] if args else ""
        if name and name not in COMMANDS and not name.startswith("-"):
            matches = get_close_matches(name, list(COMMANDS))
            hint = (
                f" Did you mean {', '.join(repr(match) for match in matches)}?" if matches else ""
            )
            ctx.fail(f"No such command {name!r}.{hint}")
        return super().resolve_command(ctx, args)


app = typer.Typer(
    name="heatgrid",
    cls=_LazyGroup,
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


def main(argv: list[str] | None = None) -> int:
    """Run the CLI and return its exit status; bad input gives status 2 and a clear message."""
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
    except Exception as error:
        reason = _database_failure(error)
        if reason is None:
            raise
        Console(stderr=True).print(f"[bold red]error:[/] {escape(reason)}", highlight=False)
        return 1
    return exit_code if isinstance(exit_code, int) else 0


def _database_failure(error: Exception) -> str | None:
    """Say why the database failed a command (unreachable, refused), or None for other errors.

    Every command that opens the coordinator's database (``serve``, ``stratum``, the admin
    commands) ends here when it cannot reach it, with the driver's own words and no traceback.
    """
    # only a command that opened a database has loaded SQLAlchemy; --help must not import it
    exc = sys.modules.get("sqlalchemy.exc")
    if exc is None or not isinstance(error, exc.OperationalError):
        return None
    said = " ".join(line.strip() for line in str(error.orig).splitlines() if line.strip())
    return f"the database failed: {said}"


if __name__ == "__main__":
    sys.exit(main())
