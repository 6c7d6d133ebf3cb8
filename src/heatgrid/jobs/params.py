"""Parameter grids: the parameters of each task of a sweep, from one JSON file."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

from heatgrid.core.errors import InputError

__all__ = ["expand_grid", "load_grid"]


def expand_grid(grid: object, source: str = "the grid") -> list[dict[str, object]]:
    """Return the tasks' parameters: a list of objects as is, or the product of an object of lists.

    ``{"lr": [0.1, 0.01], "seed": [0, 1]}`` gives four tasks, ``lr`` varying slowest (the keys'
    order); ``[{"lr": 0.1}, {"lr": 0.01}]`` gives two.

    Raises
    ------
    InputError
        Neither a non-empty list of objects nor an object whose values are non-empty lists.
    """
    if isinstance(grid, list):
        if not grid or not all(isinstance(item, dict) for item in grid):
            raise InputError(f"{source}: a list grid must hold one JSON object per task")
        return [dict(item) for item in grid]
    if isinstance(grid, dict) and grid:
        for name, values in grid.items():
            if not isinstance(values, list) or not values:
                raise InputError(f"{source}: {name!r} must be a non-empty list of values")
        names = list(grid)
        return [dict(zip(names, point, strict=True)) for point in itertools.product(*grid.values())]
    raise InputError(
        f"{source}: a grid is a JSON list of objects (one per task) or an object of lists"
    )


def load_grid(path: Path) -> list[dict[str, object]]:
    """Read a JSON grid file and expand it (see :func:`expand_grid`)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise InputError(f"--param-grid: cannot read {path}: {error.strerror}") from None
    try:
        grid = json.loads(text)
    except json.JSONDecodeError as error:
        raise InputError(f"--param-grid: {path} is not JSON: {error}") from None
    return expand_grid(grid, str(path))
