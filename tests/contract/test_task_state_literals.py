"""One home for the task states: no module but ``core/leasing.py`` spells one as a string.

An AST scan of ``src/heatgrid``: a string constant that is a :class:`TaskState` value and is
compared with, assigned to, filtered on or looked up by a *task's* state is an error. Job states
share some values ("completed", "cancelled"), so only expressions that name a task count: the
``state`` attribute of something called ``task``/``Task``/``*task*`` (or of ``self`` inside a
class whose name has ``Task`` in it), ``Task(state=...)`` and ``tasks_by_state``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import heatgrid
from heatgrid.core.leasing import TaskState

_SOURCE = Path(heatgrid.__file__).parent
_HOME = _SOURCE / "core" / "leasing.py"
_VALUES = frozenset(state.value for state in TaskState)


def _literals(node: ast.expr) -> list[str]:
    """Task state values spelled as constants in ``node`` (a constant or a tuple/list/set)."""
    if isinstance(node, ast.Constant):
        return [node.value] if node.value in _VALUES else []
    if isinstance(node, ast.Tuple | ast.List | ast.Set):
        return [value for element in node.elts for value in _literals(element)]
    return []


class _Scan(ast.NodeVisitor):
    """Collect ``line: code`` for every task state spelled as a string."""

    def __init__(self) -> None:
        self.classes: list[str] = []
        self.found: list[str] = []

    def _is_task(self, node: ast.expr) -> bool:
        if isinstance(node, ast.Name) and node.id == "self":
            return any("task" in name.lower() for name in self.classes[-1:])
        last = ast.unparse(node).rsplit(".", 1)[-1]
        return "task" in last.lower()

    def _is_task_state(self, node: ast.expr) -> bool:
        if isinstance(node, ast.Attribute) and node.attr == "state":
            return self._is_task(node.value)
        return "tasks_by_state" in ast.unparse(node)

    def _check(self, where: ast.AST, *nodes: ast.expr) -> None:
        for node in nodes:
            for value in _literals(node):
                self.found.append(f"{where.lineno}: {value!r} in {ast.unparse(where)[:80]}")

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        self.classes.append(node.name)
        self.generic_visit(node)
        self.classes.pop()

    def visit_Compare(self, node: ast.Compare) -> None:
        sides = [node.left, *node.comparators]
        if any(self._is_task_state(side) for side in sides):
            self._check(node, *sides)
        self.generic_visit(node)

    def visit_Assign(self, node: ast.Assign) -> None:
        if any(self._is_task_state(target) for target in node.targets):
            self._check(node, node.value)
        self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        if (
            isinstance(func, ast.Attribute)
            and func.attr in {"in_", "not_in", "get"}
            and self._is_task_state(func.value)
        ):
            self._check(node, *node.args)
        if isinstance(func, ast.Name) and func.id == "Task":
            self._check(node, *(kw.value for kw in node.keywords if kw.arg == "state"))
        self.generic_visit(node)


def _scan(text: str) -> list[str]:
    scan = _Scan()
    scan.visit(ast.parse(text))
    return scan.found


def test_no_task_state_is_spelled_as_a_string_outside_its_home() -> None:
    found = {
        str(path.relative_to(_SOURCE)): hits
        for path in sorted(_SOURCE.rglob("*.py"))
        if path != _HOME and (hits := _scan(path.read_text(encoding="utf-8")))
    }
    assert found == {}


def test_the_scan_sees_task_states_and_leaves_job_states_alone() -> None:
    spelled = """
task.state = "cancelled"
if task.state == "leased": pass
select(Task).where(Task.state.in_(("queued", "leased")))
Task(id=1, state="queued")
counts["tasks_by_state"].get("completed", 0)
class TaskView:
    def done(self): return self.state == "completed"
"""
    assert len(_scan(spelled)) == 7  # one per literal: the tuple holds two
    fine = """
job.state = "cancelled"
if job.state != "running": pass
job.state = "failed" if dead else "completed"
outcome.state in {"completed", "paused"}
task.state = TaskState.CANCELLED.value
class JobView:
    def done(self): return self.state == "completed"
"""
    assert _scan(fine) == []
