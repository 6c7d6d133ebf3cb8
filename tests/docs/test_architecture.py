"""docs/architecture.md says honestly which packages exist, and the licence is there."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

_ROOT = Path(__file__).resolve().parents[2]
_PACKAGES = _ROOT / "src" / "heatgrid"
_ROW = re.compile(r"^\| `heatgrid\.(\w+)` \| (.*?) \|", re.MULTILINE)


def _rows() -> dict[str, str]:
    text = (_ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    return dict(_ROW.findall(text))


def _built(package: str) -> bool:
    """A package is built when it has a module besides its ``__init__``."""
    return any(path.name != "__init__.py" for path in (_PACKAGES / package).glob("*.py"))


def test_the_table_lists_every_package() -> None:
    packages = {path.name for path in _PACKAGES.iterdir() if (path / "__init__.py").is_file()}
    assert set(_rows()) == packages


@pytest.mark.parametrize("package", sorted(_rows()))
def test_a_package_is_marked_not_yet_exactly_when_it_is_empty(package: str) -> None:
    marked = _rows()[package].startswith("**not yet**")
    assert marked == (not _built(package)), (package, _rows()[package])


def test_the_licence_file_matches_pyproject() -> None:
    project = tomllib.loads((_ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert project["license"] == "MIT"
    text = (_ROOT / "LICENSE").read_text(encoding="utf-8")
    assert text.startswith("MIT License\n")
    assert "Copyright (c) 2026 heatgrid developers" in text
    assert 'THE SOFTWARE IS PROVIDED "AS IS"' in text
