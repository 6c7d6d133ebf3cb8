"""job.toml's requirements: parsed when the job is read, checked before a task runs."""

from __future__ import annotations

from importlib import metadata
from pathlib import Path

import pytest

from heatgrid.core.errors import InputError
from heatgrid.jobs.manifest import load_manifest
from heatgrid.jobs.requirements import (
    RequirementsNotMetError,
    check_requirements,
    parse_requirements,
)

NUMPY = metadata.version("numpy")
MISSING = "heatgrid-test-no-such-package"


@pytest.mark.parametrize(
    "lines",
    [
        [],
        ["numpy"],
        ["numpy>=1.0", "pydantic>=2"],
        [f"numpy=={NUMPY}"],
        ["NumPy"],  # names are compared normalised
        [f"{MISSING}; python_version < '3'"],  # not for this Python: not needed
        ["numpy[dev]>=1"],  # extras: the distribution itself is what is checked
    ],
)
def test_requirements_this_python_meets_pass(lines: list[str]) -> None:
    check_requirements(lines)


def test_each_unmet_requirement_is_named_with_what_is_installed() -> None:
    with pytest.raises(RequirementsNotMetError) as error:
        check_requirements(["numpy<1", "pydantic>=2", MISSING])
    message = str(error.value)
    assert message.startswith("the Python that runs tasks here lacks what job.toml requires: ")
    assert f"numpy<1 (numpy {NUMPY} is installed)" in message
    assert f"{MISSING} (not installed)" in message
    assert "pydantic" not in message
    assert "heatgrid installs no packages" in message
    assert isinstance(error.value, InputError)  # the agent fails the task, run-local exits 2


@pytest.mark.parametrize("line", ["torch==", "numpy>=>1", "two words", ""])
def test_a_string_that_is_not_a_pip_requirement_is_refused(line: str) -> None:
    with pytest.raises(InputError, match=f"requirements: {line!r} is not a pip requirement"):
        parse_requirements(["numpy", line])


def test_reading_a_job_refuses_a_bad_requirement_naming_the_file(tmp_path: Path) -> None:
    (tmp_path / "job.py").write_text("def main(ctx):\n    return {}\n")
    (tmp_path / "job.toml").write_text('requirements = ["numpy", "torch=="]\n')
    with pytest.raises(InputError, match=r"job\.toml: requirements: 'torch==' is not a pip"):
        load_manifest(tmp_path)
    (tmp_path / "job.toml").write_text(f'requirements = ["numpy", "{MISSING}"]\n')
    assert load_manifest(tmp_path).requirements == ["numpy", MISSING]  # read, not yet checked
