"""``heatgrid jobs submit DIR``: pack, upload once by content, and queue the tasks of a sweep,
against a real coordinator on a loopback port (SQLite and PostgreSQL).

A second submission of the same directory uploads nothing: the coordinator's own request
metrics count one ``PUT /v1/artifacts/{sha256}``, and the stored blob is the same file.
"""

from __future__ import annotations

import json
import os
import tarfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import fsspec
import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from heatgrid.cli.main import main
from heatgrid.coordinator.accounts import create_api_key
from heatgrid.coordinator.app import create_app
from heatgrid.coordinator.db import make_engine, make_session_factory
from heatgrid.coordinator.settings import Settings
from heatgrid.jobs.params import load_grid

from .serve_process import free_port

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
_ROUTE = "/v1/artifacts/{sha256}"


@dataclass
class Served:
    """A coordinator on a loopback port, its app, its blob store and a submitter's key."""

    url: str
    app: FastAPI
    blobs: Path
    key: str

    def puts(self) -> float:
        """``PUT /v1/artifacts/…`` requests the coordinator answered, whatever the status."""
        registry = self.app.state.metrics.registry
        return sum(
            registry.get_sample_value(
                "heatgrid_http_request_duration_s_count",
                {"method": "PUT", "route": _ROUTE, "status": status},
            )
            or 0.0
            for status in ("200", "201", "413", "422")
        )


@pytest.fixture
def served(database_url: str, tmp_path: Path) -> Iterator[Served]:
    engine = make_engine(database_url)
    with make_session_factory(engine)() as session:
        key = create_api_key(
            session, name="carol", role="submitter", scopes=None, now_ts=time.time()
        ).token
    engine.dispose()
    blobs = tmp_path / "blobs"
    app = create_app(Settings(database_url=database_url, checkpoint_url=str(blobs)))
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30.0
    while not server.started:
        assert thread.is_alive()
        assert time.monotonic() < deadline
        time.sleep(0.05)
    try:
        yield Served(f"http://127.0.0.1:{port}", app, blobs, key)
    finally:
        server.should_exit = True
        thread.join(timeout=30.0)
        app.state.engine.dispose()


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    status = main(list(args))
    captured = capsys.readouterr()
    return status, captured.out, " ".join(captured.err.split())


def _artifact_blobs(served: Served) -> list[Path]:
    return sorted(path for path in (served.blobs / "artifacts").rglob("*") if path.is_file())


@pytest.mark.usefixtures("backend")
def test_a_sweep_directory_is_uploaded_once_and_its_tasks_carry_the_grid(
    served: Served, capsys: pytest.CaptureFixture[str]
) -> None:
    common = ("--url", served.url, "--api-key", served.key)
    grid_file = EXAMPLES / "sweep" / "grid.json"
    args = ("jobs", "submit", str(EXAMPLES / "sweep"), "--param-grid", str(grid_file), *common)
    status, out, err = _run(capsys, *args, "--json")
    assert status == 0, err
    first = json.loads(out)
    assert first["artifact_uploaded"] is True
    assert first["task_count"] == 8
    assert served.puts() == 1
    [blob] = _artifact_blobs(served)
    stored = blob.stat()

    status, out, err = _run(capsys, *args)
    assert status == 0, err
    assert "already on the coordinator, not uploaded again" in out
    assert served.puts() == 1  # the second submission sent no PUT
    [same] = _artifact_blobs(served)
    assert (same.stat().st_ino, same.stat().st_mtime_ns) == (stored.st_ino, stored.st_mtime_ns)

    status, out, err = _run(capsys, "jobs", "show", first["job_id"], *common, "--json")
    assert status == 0, err
    job = json.loads(out)
    assert job["artifact_sha256"] == blob.name.removesuffix(".tar.gz")
    assert job["device_kinds"] == ["gpu", "cpu"]  # job.toml asks no GPU memory
    detail = httpx.get(
        f"{served.url}/v1/jobs/{first['job_id']}/tasks",
        headers={"Authorization": f"Bearer {served.key}"},
    ).json()
    assert [task["task_index"] for task in detail["items"]] == list(range(8))
    # task_input is each task's parameters: the grid's points, in order
    with make_session_factory(served.app.state.engine)() as session:
        from heatgrid.coordinator.db.models import Task  # noqa: PLC0415

        inputs = [
            task.task_input
            for task in session.query(Task)
            .filter(Task.job_id == first["job_id"])
            .order_by(Task.task_index)
        ]
    assert inputs == load_grid(grid_file)


TRAIN_URL = "https://example.org/train.csv#sha256=" + "ab" * 32
WEIGHTS_URL = "https://example.org/w.pt#sha256=" + "cd" * 32


@pytest.mark.usefixtures("backend")
def test_inputs_are_packed_or_recorded_as_urls_and_requirements_reach_the_job(
    served: Served, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    job_dir = tmp_path / "job"
    job_dir.mkdir()
    (job_dir / "job.py").write_text("def main(ctx):\n    return {'n': len(ctx.inputs)}\n")
    (job_dir / "data.csv").write_text("1,2\n")
    (job_dir / "job.toml").write_text(f'[inputs]\nlocal = "data.csv"\ntrain = "{TRAIN_URL}"\n')
    extra = tmp_path / "extra.bin"
    extra.write_bytes(b"\x00\x01")
    common = ("--url", served.url, "--api-key", served.key)
    status, out, err = _run(
        capsys,
        "jobs",
        "submit",
        str(job_dir),
        "--tasks",
        "3",
        "--requires",
        "gpu_memory_gb=24",
        "--input",
        f"extra={extra}",
        "--input",
        f"weights={WEIGHTS_URL}",
        "--name",
        "with inputs",
        *common,
        "--json",
    )
    assert status == 0, err
    job = json.loads(out)
    assert job["task_count"] == 3
    assert job["device_kinds"] == ["gpu"]
    assert job["min_vram_gb"] == 24.0
    assert job["input_urls"] == {"train": TRAIN_URL, "weights": WEIGHTS_URL}
    [blob] = _artifact_blobs(served)
    with tarfile.open(blob) as archive:
        names = set(archive.getnames())
    assert {"inputs/local", "inputs/extra", "code/job.py"} <= names
    assert not any(name.startswith(("inputs/train", "inputs/weights")) for name in names)


def test_inputs_in_other_stores_are_read_here_and_packed_once(
    served: Served, s3_env: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An s3:// input (moto's server) and a file:// one are read by the submitter and packed.

    Heaters never see the store or its credentials: the job names no URL, the artifact holds
    the bytes, and the same bytes submitted again upload nothing.
    """
    bucket = s3_env
    train = os.urandom(50_000)
    with fsspec.open(f"s3://{bucket}/data/train.bin", "wb") as file:
        file.write(train)
    local = tmp_path / "labels.csv"
    local.write_text("0,1\n")
    job_dir = tmp_path / "job"
    job_dir.mkdir()
    (job_dir / "job.py").write_text("def main(ctx):\n    return {'n': len(ctx.inputs)}\n")
    (job_dir / "job.toml").write_text(f'[inputs]\ntrain = "s3://{bucket}/data/train.bin"\n')
    common = ("--url", served.url, "--api-key", served.key, "--json")
    submit = ("jobs", "submit", str(job_dir), "--input", f"labels={local.as_uri()}", *common)
    status, out, err = _run(capsys, *submit)
    assert status == 0, err
    assert json.loads(out)["input_urls"] == {}
    [blob] = _artifact_blobs(served)
    with tarfile.open(blob) as archive:
        packed = archive.extractfile("inputs/train")
        labels = archive.extractfile("inputs/labels")
        assert packed is not None
        assert labels is not None
        assert packed.read() == train
        assert labels.read() == b"0,1\n"
    status, out, err = _run(capsys, *submit)
    assert status == 0, err
    assert served.puts() == 1
    status, _, err = _run(
        capsys, "jobs", "submit", str(job_dir), "--input", f"train=s3://{bucket}/gone", *common
    )
    assert status == 2
    assert f"input 'train': cannot read s3://{bucket}/gone: FileNotFoundError" in err
    assert served.puts() == 1


@pytest.mark.usefixtures("backend")
@pytest.mark.parametrize(
    ("options", "message"),
    [
        (("--requires", "colour=blue"), "unknown key 'colour'"),
        (("--requires", "gpu_memory_gb=lots"), "gpu_memory_gb='lots' is not a number"),
        (("--requires", "gpu_memory_gb"), "is not KEY=VALUE"),
        (("--requires", "device=cpu", "--requires", "gpu_memory_gb=8"), "asks a GPU"),
        (("--tasks", "3", "--param-grid", str(EXAMPLES / "sweep" / "grid.json")), "8 points"),
        (("--input", "train"), "is not NAME=PATH or NAME=URL"),
        (("--input", "train=/nonexistent/file.csv"), "is not a file"),
        (("--input", "bad name=s3://b/k"), "the name 'bad name' may hold only"),
        (("--input", "../up=s3://b/k"), "the name '../up' may hold only"),
        (("--input", "w=ftp//host"), "input 'w': ftp/host is not a file"),
        (("--input", "w=nosuch://b/k"), "input 'w': cannot read nosuch://b/k: ValueError"),
        (("--input", "w=memory://absent/k"), "cannot read memory://absent/k: FileNotFoundError"),
        (("--input", "w=https://h/k"), "input 'w': https://h/k names no content hash"),
    ],
)
def test_a_bad_directory_submission_exits_2_naming_the_option(
    served: Served,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    options: tuple[str, ...],
    message: str,
) -> None:
    common = ("--url", served.url, "--api-key", served.key)
    status, _, err = _run(capsys, "jobs", "submit", str(EXAMPLES / "sweep"), *options, *common)
    assert status == 2, err
    assert message in err
    assert served.puts() == 0


@pytest.mark.usefixtures("backend")
def test_directory_options_with_a_json_spec_are_refused(
    served: Served, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = tmp_path / "job.json"
    spec.write_text(json.dumps({"name": "x", "tasks": [{"energy_j": 1.0}]}))
    common = ("--url", served.url, "--api-key", served.key)
    status, _, err = _run(capsys, "jobs", "submit", str(spec), "--tasks", "2", *common)
    assert status == 2
    assert "--tasks: only with a job directory" in err
    status, out, err = _run(capsys, "jobs", "submit", str(spec), *common)
    assert status == 0, err
    assert "1 tasks" in out


def test_the_tolerance_in_job_toml_reaches_the_job(
    served: Served, capsys: pytest.CaptureFixture[str]
) -> None:
    common = ("--url", served.url, "--api-key", served.key)
    status, out, err = _run(capsys, "jobs", "submit", str(EXAMPLES / "digits"), *common, "--json")
    assert status == 0, err
    job_id = json.loads(out)["job_id"]
    status, out, err = _run(capsys, "jobs", "show", job_id, *common, "--json")
    assert status == 0, err
    assert json.loads(out)["verify_rel_l2"] == 1e-5  # examples/digits/job.toml declares it
