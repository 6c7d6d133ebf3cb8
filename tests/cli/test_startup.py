"""The ``heatgrid`` command starts fast: help imports no heavy library it does not need.

Speed itself is measured in ``bench/bench_cli.py``; these tests check its cause, the imports,
in a fresh interpreter each (a test process has imported everything already).
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from heatgrid.cli.main import COMMANDS, load_command, main

_HEAVY = (
    "numba",
    "fastapi",
    "starlette",
    "uvicorn",
    "sqlalchemy",
    "alembic",
    "pyasic",
    "matplotlib",
    "torch",
    "httpx",
    "aiomqtt",
)
"""Imported by no ``--help``: each takes a large share of a second to import."""

_PROBE = """
import json, sys
from heatgrid.cli.main import main
status = main(sys.argv[1:])
print(json.dumps({"status": status, "modules": sorted(sys.modules)}))
"""


def _help_imports(*argv: str) -> set[str]:
    """Run ``heatgrid ARGV`` in a fresh interpreter; return the top-level packages it imported."""
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, *argv], capture_output=True, text=True, check=True
    )
    last = json.loads(done.stdout.strip().splitlines()[-1])
    assert last["status"] == 0, done.stderr
    return {name.split(".")[0] for name in last["modules"]}


@pytest.mark.parametrize(
    ("argv", "also_absent"),
    [
        (["--help"], ("numpy", "pydantic")),
        (["admin", "--help"], ("numpy",)),
        (["economics", "--help"], ("numpy",)),
    ],
)
def test_help_of_the_first_commands_imports_no_heavy_library(
    argv: list[str], also_absent: tuple[str, ...]
) -> None:
    imported = _help_imports(*argv)
    assert imported.isdisjoint(_HEAVY + also_absent), sorted(imported & {*_HEAVY, *also_absent})


@pytest.mark.parametrize("name", sorted(set(COMMANDS) - {"admin", "economics"}))
def test_help_of_every_command_imports_no_heavy_library(name: str) -> None:
    imported = _help_imports(name, "--help")
    assert imported.isdisjoint(_HEAVY), sorted(imported & set(_HEAVY))


@pytest.mark.parametrize("name", list(COMMANDS))
def test_the_root_help_line_is_the_commands_own_help(name: str) -> None:
    """The root lists commands without importing them; its lines must not drift from theirs."""
    command = load_command(name)
    own = " ".join((command.help or "").split("\n\n")[0].split())
    assert own == COMMANDS[name]


def test_root_help_lists_every_command_and_a_typo_gets_a_suggestion(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["--help"]) == 0
    listed = capsys.readouterr().out
    for name in COMMANDS:
        assert name in listed
    assert main(["simulat"]) == 2
    assert "Did you mean 'simulate'" in capsys.readouterr().err
