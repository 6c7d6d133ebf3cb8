"""The example jobs that come with heatgrid: where they are, and copying one out to start from.

A clone has them in ``examples/`` beside ``src/``; an installed wheel carries the same
directories as ``heatgrid/examples`` (see ``pyproject.toml``). Each example is a job directory:
a ``job.toml`` and the files it names.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from heatgrid.core.errors import InputError

__all__ = ["copy_example", "example_dir", "example_names"]

_PACKAGE_ROOT = Path(__file__).resolve().parents[1]


def _roots() -> tuple[Path, ...]:
    """Where example jobs may be: the wheel's ``heatgrid/examples``, then a clone's ``examples``."""
    return (_PACKAGE_ROOT / "examples", _PACKAGE_ROOT.parents[1] / "examples")


def _examples_root() -> Path | None:
    """Return the first place that holds at least one example job, if any."""
    for root in _roots():
        if root.is_dir() and any((entry / "job.toml").is_file() for entry in root.iterdir()):
            return root
    return None


def example_names() -> list[str]:
    """Return the names of the example jobs present, sorted (empty when none is installed)."""
    root = _examples_root()
    if root is None:
        return []
    return sorted(entry.name for entry in root.iterdir() if (entry / "job.toml").is_file())


def example_dir(name: str) -> Path:
    """Return the directory of the example job ``name``.

    Raises
    ------
    InputError
        When no example of that name is installed; the message lists the ones that are.
    """
    names = example_names()
    if name not in names:
        known = ", ".join(names) if names else "none are installed"
        raise InputError(f"no example job named {name!r} (examples: {known})")
    root = _examples_root()
    assert root is not None  # example_names found one
    return root / name


def copy_example(name: str, dest: Path) -> Path:
    """Copy the example job ``name`` into a new directory ``dest`` and return ``dest``.

    Raises
    ------
    InputError
        When the example does not exist, or ``dest`` already exists (nothing is overwritten).
    """
    source = example_dir(name)
    if dest.exists():
        raise InputError(f"{str(dest)!r} already exists; name a new directory to copy into")
    shutil.copytree(source, dest, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return dest
