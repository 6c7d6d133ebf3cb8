"""The example jobs: listed, copied out to start from, and carried in the wheel."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from heatgrid.cli.main import main
from heatgrid.core.errors import InputError
from heatgrid.jobs.examples import copy_example, example_dir, example_names

_ROOT = Path(__file__).resolve().parents[2]


def test_the_clone_s_examples_are_listed() -> None:
    assert example_names() == ["digits", "sweep"]
    assert (example_dir("sweep") / "job.toml").is_file()


def test_an_example_is_copied_into_a_new_directory_and_never_over_one(tmp_path: Path) -> None:
    dest = copy_example("sweep", tmp_path / "mine")
    assert sorted(p.name for p in dest.iterdir()) == ["grid.json", "job.py", "job.toml"]
    assert (dest / "job.py").read_bytes() == (example_dir("sweep") / "job.py").read_bytes()
    with pytest.raises(InputError, match="already exists"):
        copy_example("digits", dest)
    assert not (dest / "job.py").read_text().count("torch")  # still the sweep: nothing overwritten


def test_the_command_lists_copies_and_names_an_unknown_example(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert main(["jobs", "example"]) == 0
    assert capsys.readouterr().out.split() == ["digits", "sweep"]
    monkeypatch.chdir(tmp_path)
    assert main(["jobs", "example", "digits"]) == 0
    assert (tmp_path / "digits" / "job.toml").is_file()
    assert main(["jobs", "example", "mnist"]) == 2
    err = capsys.readouterr().err
    assert "'mnist'" in err
    assert "digits, sweep" in err


_PRINT_SWEEP = "from heatgrid.jobs.examples import example_dir as d; print(d('sweep'))"


def test_the_wheel_carries_the_examples_where_an_installed_heatgrid_finds_them(
    tmp_path: Path,
) -> None:
    pytest.importorskip("hatchling")
    source = tmp_path / "src"
    shutil.copytree(
        _ROOT,
        source,
        ignore=shutil.ignore_patterns(".venv", ".git", "__pycache__", "*.egg-info", "bench"),
    )
    subprocess.run(
        [sys.executable, "-m", "hatchling", "build", "-t", "wheel", "-d", str(tmp_path / "dist")],
        cwd=source,
        check=True,
        capture_output=True,
    )
    (wheel,) = (tmp_path / "dist").glob("heatgrid-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        archive.extractall(tmp_path / "site")
    assert {"heatgrid/examples/sweep/job.toml", "heatgrid/examples/digits/job.py"} <= names
    found = subprocess.run(
        [sys.executable, "-c", _PRINT_SWEEP],
        cwd=tmp_path,
        env={"PYTHONPATH": str(tmp_path / "site")},
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    assert found == str(tmp_path / "site" / "heatgrid" / "examples" / "sweep")
