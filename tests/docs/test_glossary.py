"""docs/glossary.md lists every unit-carrying name used across modules (DESIGN.md: names and units).

The names are collected with ``ast`` from function parameters, dataclass and pydantic fields and
module constants in ``src/heatgrid``; a name counts when it ends in one of the unit suffixes.
Run ``python tests/docs/test_glossary.py`` to print the names the glossary lacks.
"""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src" / "heatgrid"
GLOSSARY = ROOT / "docs" / "glossary.md"

_SUFFIXES = (
    "_w",
    "_kw",
    "_wh",
    "_kwh",
    "_j",
    "_c",
    "_k",
    "_w_per_k",
    "_j_per_k",
    "_s",
    "_h",
    "_ths",
    "_j_per_th",
    "_eur",
    "_usd",
    "_btc",
    "_sat",
    "_per_kwh",
    "_ts",
    "_pct",
    "_m",
    "_deg",
    "_pa",
    "_gb",
    "_tflops",
    "_l",
    "_kg",
    "_g",
    "_rpm",
    "_db",
    "_k_h",
    "_per_m2",
    "_per_s",
    "_per_th_day",
    "_per_ph_day",
    "_per_block",
    "_per_hour",
)
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


def _is_unit_name(name: str) -> bool:
    return bool(_NAME.match(name)) and name.endswith(_SUFFIXES) and not name.startswith("_")


def _names_in(tree: ast.AST) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and not node.name.startswith(
            "_"
        ):
            args = node.args
            for arg in [*args.posonlyargs, *args.args, *args.kwonlyargs]:
                names.add(arg.arg)
        elif isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
            for item in node.body:
                if isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
                    names.add(item.target.id)
    return {name for name in names if _is_unit_name(name)}


def used_names() -> set[str]:
    """Return every public unit-suffixed name in ``src/heatgrid``."""
    names: set[str] = set()
    for path in SRC.rglob("*.py"):
        if "migrations" in path.parts:
            continue
        names |= _names_in(ast.parse(path.read_text(encoding="utf-8")))
    return names


def documented_names() -> set[str]:
    """Return the names written as code (in backticks) in the glossary."""
    return set(re.findall(r"`([a-z][a-z0-9_]*)`", GLOSSARY.read_text(encoding="utf-8")))


def test_every_unit_name_is_in_the_glossary() -> None:
    missing = sorted(used_names() - documented_names())
    assert not missing, f"docs/glossary.md lacks: {', '.join(missing)}"


def test_the_collector_finds_unit_names() -> None:
    tree = ast.parse("def f(power_w, name, _x_w):\n    pass\nclass A:\n    room_temp_c: float\n")
    assert _names_in(tree) == {"power_w", "room_temp_c"}


if __name__ == "__main__":
    sys.stdout.write("\n".join(sorted(used_names() - documented_names())) + "\n")
