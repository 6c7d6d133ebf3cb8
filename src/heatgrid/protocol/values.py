r"""Free JSON and free text on the wire, checked at the door for what they will later be used for.

Every value the coordinator stores is later read back, served to another party as JSON and,
on PostgreSQL, kept in ``text``/``json`` columns. A value that cannot make that trip must be
refused when it arrives (422 naming the field), never discovered when a claim or a read
fails. So free JSON (a task's input, a task's result) and free text (names, error messages):

* are UTF-8 encodable: no lone surrogates (``"\udc00"`` parses as JSON, but cannot be sent);
* hold no NUL character (PostgreSQL cannot store ``\u0000`` in text);
* hold only finite numbers (``NaN``/``Infinity`` are not JSON, and PostgreSQL refuses them);
* are nested at most :data:`MAX_JSON_DEPTH` levels (serializers and parsers recurse);
* take at most :data:`MAX_JSON_BYTES` as compact UTF-8 JSON.

The same checks run on SQLite and PostgreSQL, so both databases store exactly the same values.
"""

from __future__ import annotations

import json
import math
from typing import Annotated, Final

from pydantic import AfterValidator
from pydantic_core import PydanticCustomError

__all__ = [
    "MAX_JSON_BYTES",
    "MAX_JSON_DEPTH",
    "JsonObject",
    "Text",
    "check_json_object",
    "check_text",
    "text_problem",
]

MAX_JSON_DEPTH: Final = 64
"""Deepest nesting of objects and lists in one free JSON value (the value itself is level 1)."""

MAX_JSON_BYTES: Final = 256 * 1024
"""Largest free JSON value, as compact UTF-8 JSON [bytes]."""


def text_problem(text: str) -> str | None:
    """Return why ``text`` cannot be stored and served, or None when it can.

    Parameters
    ----------
    text : str
        Any string.

    Returns
    -------
    str or None
        What is wrong (a NUL character, a lone surrogate), or None.
    """
    if "\x00" in text:
        return "contains a NUL character (\\u0000), which cannot be stored"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as error:
        return f"is not valid Unicode (a lone surrogate at position {error.start})"
    return None


def check_text(text: str) -> str:
    """Return ``text`` when it can be stored and served; raise ValueError saying why not."""
    problem = text_problem(text)
    if problem is not None:
        raise ValueError(problem)
    return text


def _path(parts: tuple[str | int, ...]) -> str:
    path = ""
    for part in parts:
        path += f"[{part}]" if isinstance(part, int) else f".{part}" if path else str(part)
    return path or "the value"


def _scalar_problem(item: object, where: tuple[str | int, ...]) -> str | None:
    """Why a JSON leaf (not an object or list) cannot be stored and served, or None."""
    problem = None
    if isinstance(item, str):
        text = text_problem(item)
        problem = None if text is None else f"{_path(where)} {text}"
    elif isinstance(item, float) and not math.isfinite(item):
        problem = f"{_path(where)} is {item!r}; only finite numbers are JSON"
    elif not (item is None or isinstance(item, bool | int | float)):
        problem = f"{_path(where)} is a {type(item).__name__}, not a JSON value"
    return problem


def _json_problem(value: object) -> str | None:
    """Walk ``value`` without recursion; return the first problem found, or None."""
    stack: list[tuple[object, tuple[str | int, ...], int]] = [(value, (), 1)]
    while stack:
        item, where, depth = stack.pop()
        if not isinstance(item, dict | list):
            problem = _scalar_problem(item, where)
            if problem is not None:
                return problem
            continue
        if depth > MAX_JSON_DEPTH:
            return f"nested deeper than {MAX_JSON_DEPTH} levels at {_path(where)}"
        if isinstance(item, list):
            stack.extend((child, (*where, index), depth + 1) for index, child in enumerate(item))
            continue
        for key, child in item.items():
            key_problem = (
                f"is not a string ({key!r})" if not isinstance(key, str) else text_problem(key)
            )
            if key_problem is not None:
                return f"the key {key!r} in {_path(where)} {key_problem}"
            stack.append((child, (*where, key), depth + 1))
    return None


def _json_fine(value: object) -> bool:
    """Say quickly whether ``value`` is fine; :func:`_json_problem` walks again to say why not."""
    stack: list[tuple[object, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_JSON_DEPTH:
            return False
        children = item.values() if isinstance(item, dict) else item
        if isinstance(item, dict):
            for key in item:
                if not isinstance(key, str) or text_problem(key) is not None:
                    return False
        for child in children:  # type: ignore[attr-defined]
            kind = type(child)
            if kind is str:
                if text_problem(child) is not None:
                    return False
            elif kind is float:
                if not math.isfinite(child):
                    return False
            elif kind is dict or kind is list:
                stack.append((child, depth + 1))
            elif not (child is None or kind is bool or kind is int):
                return False
    return True


def check_json_object(value: dict[str, object]) -> dict[str, object]:
    """Return ``value`` when it can be stored and served as JSON; raise a validation error.

    Raises
    ------
    pydantic_core.PydanticCustomError
        (a ValueError for pydantic) naming the first fault: depth over
        :data:`MAX_JSON_DEPTH`, size over :data:`MAX_JSON_BYTES`, a non-finite number, a NUL
        character, a lone surrogate, or a value that is not JSON.
    """
    problem = None if _json_fine(value) else _json_problem(value)
    if problem is None:
        size_bytes = len(
            json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()
        )
        if size_bytes > MAX_JSON_BYTES:
            problem = f"takes {size_bytes} bytes as JSON, over the limit of {MAX_JSON_BYTES}"
    if problem is not None:
        raise PydanticCustomError("json_value", "{problem}", {"problem": problem})
    return value


def _checked_text(text: str) -> str:
    problem = text_problem(text)
    if problem is not None:
        raise PydanticCustomError("text_value", "{problem}", {"problem": problem})
    return text


JsonObject = Annotated[dict[str, object], AfterValidator(check_json_object)]
"""A JSON object that can be stored and served (see the module's rules)."""

Text = Annotated[str, AfterValidator(_checked_text)]
"""A string that can be stored and served: UTF-8 encodable, no NUL character."""
