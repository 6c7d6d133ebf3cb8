"""Drifted copies of a shared rule: what a contract test gives one side to see it fail."""

from __future__ import annotations

import types
from typing import Any

__all__ = ["drifted"]


def drifted(module: types.ModuleType, **changes: Any) -> types.SimpleNamespace:
    """Return ``module``'s names with ``changes`` applied: one side's drifted copy of its rules.

    Patched over the module where one side imported it (``monkeypatch.setattr(side, "leasing",
    drifted(leasing, rule=...))``), only that side runs the changed rule.
    """
    rules = types.SimpleNamespace(**{name: getattr(module, name) for name in dir(module)})
    for name, value in changes.items():
        if not hasattr(module, name):
            raise AttributeError(f"{module.__name__} has no {name} to change")
        setattr(rules, name, value)
    return rules
