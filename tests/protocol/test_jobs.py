"""The jobs wire models refuse what a heater must not accept."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from heatgrid.protocol.jobs import (
    ArtifactRef,
    JobManifest,
    TaskRun,
    TaskRunOutcome,
    TaskRunProgress,
)

SHA = "ab" * 32


def test_a_task_run_names_its_artifact_by_hash() -> None:
    run = TaskRun(artifact=ArtifactRef(sha256=SHA, size_bytes=10), task_index=2, params={"a": 1})
    assert TaskRun.model_validate_json(run.model_dump_json()) == run


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"sha256": "AB" * 32, "size_bytes": 1}, "sha256"),
        ({"sha256": SHA[:-1], "size_bytes": 1}, "sha256"),
        ({"sha256": SHA, "size_bytes": 0}, "size_bytes"),
        ({"sha256": SHA, "size_bytes": 2**31}, "size_bytes"),
    ],
)
def test_bad_artifact_references_are_refused(body, field) -> None:
    with pytest.raises(ValidationError, match=field):
        ArtifactRef.model_validate(body)


def test_params_must_be_small_json() -> None:
    artifact = ArtifactRef(sha256=SHA, size_bytes=10)
    with pytest.raises(ValidationError, match="params take more than"):
        TaskRun(artifact=artifact, params={"blob": "x" * 70_000})
    with pytest.raises(ValidationError, match="params must be JSON"):
        TaskRun(artifact=artifact, params={"x": float("nan")})


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"entry_point": "job"}, "entry_point"),
        ({"entry_point": "../job:main"}, "entry_point"),
        ({"inputs": {"../escape": "x"}}, "inputs"),
        ({"resources": {"memory_mb": 1}}, "memory_mb"),
        ({"resources": {"gpus": 2}}, "gpus"),
        ({"verify_rel_l2": 0.5}, "verify_rel_l2"),
        ({"verify_rel_l2": -1e-9}, "verify_rel_l2"),
        ({"verify_rel_l2": float("inf")}, "verify_rel_l2"),
        ({"verify_rel_l2": float("nan")}, "verify_rel_l2"),
    ],
)
def test_bad_manifests_are_refused(body, message) -> None:
    with pytest.raises(ValidationError, match=message):
        JobManifest.model_validate(body)


def test_progress_and_outcome_stay_in_range() -> None:
    with pytest.raises(ValidationError):
        TaskRunProgress(fraction=1.5)
    with pytest.raises(ValidationError):
        TaskRunProgress(fraction=0.5, metrics={"loss": float("inf")})
    with pytest.raises(ValidationError):
        TaskRunOutcome(state="exploded", message="?")  # type: ignore[arg-type]
