"""Help shows units in brackets as written: ``[s]`` or ``[kWh]`` is text, not Rich markup."""

from __future__ import annotations

import re
from typing import Any

import pytest

from heatgrid.cli.main import COMMANDS, load_command, main

_BRACKETED = re.compile(r"\\?\[([^\[\]\\]+)\]")


def _paths(command: Any, path: tuple[str, ...]) -> list[tuple[tuple[str, ...], Any]]:
    found = [(path, command)]
    for name, sub_command in getattr(command, "commands", {}).items():
        found += _paths(sub_command, (*path, name))
    return found


def _units(command: Any) -> set[str]:
    helps = [getattr(parameter, "help", None) or "" for parameter in command.params]
    return {f"[{unit}]" for text in helps for unit in _BRACKETED.findall(text)}


_ALL = [found for name in COMMANDS for found in _paths(load_command(name), (name,))]
_WITH_UNITS = [(path, sorted(_units(command))) for path, command in _ALL if _units(command)]


def test_units_in_brackets_are_found_in_the_option_help() -> None:
    serve = dict(_WITH_UNITS)[("serve",)]
    assert {"[s]", "[EUR/kWh]", "[1/s]"} <= set(serve)


@pytest.mark.parametrize(("path", "units"), _WITH_UNITS, ids=str)
def test_help_shows_every_unit_in_brackets(
    path: tuple[str, ...],
    units: list[str],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("COLUMNS", "2000")  # one line per option: nothing is wrapped
    assert main([*path, "--help"]) == 0
    shown = capsys.readouterr().out
    missing = [unit for unit in units if unit not in shown]
    assert missing == []


def test_serve_help_says_the_body_timeout_is_in_seconds(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "2000")
    assert main(["serve", "--help"]) == 0
    assert "else 408 [s]." in capsys.readouterr().out
