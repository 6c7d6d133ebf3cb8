"""Tables keep IDs whole at any width: a user copies them into the next command."""

from __future__ import annotations

import io

import pytest
from hypothesis import given
from hypothesis import strategies as st
from rich.console import Console

from heatgrid.cli._tables import print_table

_HEADERS = ("#", "task_id", "state", "attempt", "progress (kWh)", "device", "last error")
_ID = st.text(alphabet="0123456789abcdef", min_size=8, max_size=40)
_WORDS = st.text(alphabet="abcdefghij -", min_size=0, max_size=60)


def _printed(width: int, rows: list[tuple[str, ...]]) -> str:
    out = io.StringIO()
    console = Console(file=out, width=width, force_terminal=False, color_system=None)
    print_table(_HEADERS, rows, ids={"task_id", "device"}, console=console)
    return out.getvalue()


@given(
    width=st.integers(min_value=40, max_value=200),
    rows=st.lists(st.tuples(_ID, _ID, _WORDS), min_size=1, max_size=4),
)
def test_every_id_is_printed_whole_on_one_line(width: int, rows: list[tuple[str, ...]]) -> None:
    cells = [
        ("3", task, "running", "1", "0.100/0.500", device, error) for task, device, error in rows
    ]
    printed = _printed(width, cells)
    lines = printed.splitlines()
    for task, device, _ in rows:
        assert any(task in line for line in lines)
        assert any(device in line for line in lines)
    assert "…" not in printed


def test_a_wide_terminal_gets_a_table_a_narrow_one_gets_blocks() -> None:
    task, device = "0123456789abcdef0123456789abcdef", "fedcba9876543210fedcba9876543210"
    row = ("0", task, "running", "1", "0.100/0.500", device, "lease lost")
    wide = _printed(160, [row])
    assert "┃ task_id" in wide
    narrow = _printed(80, [row])
    assert f"task_id: {task}" in narrow
    assert f"device: {device}" in narrow
    assert max(len(line) for line in narrow.splitlines()) <= 80


@pytest.mark.parametrize("width", [80, 100])
def test_other_columns_fold_instead_of_being_cut(width: int) -> None:
    row = ("0", "0123456789abcdef", "running", "1", "0.100/0.500", "fedcba98", "a b " * 30)
    printed = _printed(width, [row])
    assert "…" not in printed
    assert max(len(line) for line in printed.splitlines()) <= width
