"""Packing a job into a content-addressed artifact and unpacking it after checks."""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
from pathlib import Path

import pytest

from heatgrid.core.errors import InputError
from heatgrid.jobs.artifact import ArtifactError, artifact_path, pack_job, unpack_artifact


def _write_job(job_dir: Path, order: list[str]) -> None:
    files = {
        "job.py": "def main(ctx):\n    return {'ok': True}\n",
        "lib/model.py": "SIZE = 3\n",
        "lib/__init__.py": "",
        "job.toml": 'entry_point = "job:main"\n[inputs]\ntable = "../table.csv"\n',
    }
    for name in order:
        path = job_dir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(files[name])
    (job_dir / "__pycache__").mkdir(exist_ok=True)
    (job_dir / "__pycache__" / "job.cpython-311.pyc").write_bytes(os.urandom(64))
    (job_dir.parent / "table.csv").write_text("a,b\n1,2\n")


def test_same_content_gives_the_same_hash_whatever_the_order_and_times(tmp_path) -> None:
    first, second = tmp_path / "a" / "job", tmp_path / "b" / "job"
    _write_job(first, ["job.py", "lib/model.py", "lib/__init__.py", "job.toml"])
    _write_job(second, ["job.toml", "lib/__init__.py", "lib/model.py", "job.py"])
    for path in second.rglob("*"):
        os.utime(path, (1_000_000, 1_000_000))
    ref_a = pack_job(first, tmp_path / "store")
    ref_b = pack_job(second, tmp_path / "store")
    assert ref_a == ref_b
    assert artifact_path(tmp_path / "store", ref_a.sha256).stat().st_size == ref_a.size_bytes
    (second / "lib" / "model.py").write_text("SIZE = 4\n")
    assert pack_job(second, tmp_path / "store").sha256 != ref_a.sha256


def test_unpack_gives_back_code_and_inputs(tmp_path) -> None:
    job = tmp_path / "src" / "job"
    _write_job(job, ["job.py", "lib/model.py", "lib/__init__.py", "job.toml"])
    ref = pack_job(job, tmp_path / "store", inputs={"extra": tmp_path / "src" / "table.csv"})
    dest = tmp_path / "out"
    unpack_artifact(artifact_path(tmp_path / "store", ref.sha256), ref.sha256, dest)
    names = sorted(path.relative_to(dest).as_posix() for path in dest.rglob("*") if path.is_file())
    assert names == [
        "code/job.py",
        "code/job.toml",
        "code/lib/__init__.py",
        "code/lib/model.py",
        "inputs/extra",
        "inputs/table",
    ]
    assert (dest / "inputs" / "table").read_text() == "a,b\n1,2\n"


def test_a_tampered_artifact_is_refused(tmp_path) -> None:
    job = tmp_path / "src" / "job"
    _write_job(job, ["job.py", "lib/model.py", "lib/__init__.py", "job.toml"])
    ref = pack_job(job, tmp_path / "store")
    path = artifact_path(tmp_path / "store", ref.sha256)
    blob = bytearray(path.read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    path.write_bytes(bytes(blob))
    with pytest.raises(ArtifactError, match=r"SHA-256 mismatch .* tampered"):
        unpack_artifact(path, ref.sha256, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_a_too_large_artifact_is_refused(tmp_path) -> None:
    job = tmp_path / "job"
    job.mkdir()
    (job / "job.py").write_text("def main(ctx):\n    pass\n")
    (job / "weights.bin").write_bytes(os.urandom(200_000))
    with pytest.raises(ArtifactError, match=r"over its limit of 0\.1 MiB"):
        pack_job(job, tmp_path / "store", max_bytes=100_000)
    assert list((tmp_path / "store").iterdir()) == []
    ref = pack_job(job, tmp_path / "store")
    with pytest.raises(ArtifactError, match="over the limit of 100000"):
        unpack_artifact(
            artifact_path(tmp_path / "store", ref.sha256),
            ref.sha256,
            tmp_path / "o",
            max_bytes=100_000,
        )


def _hostile_archive(tmp_path: Path, name: str, kind: bytes = tarfile.REGTYPE) -> tuple[Path, str]:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        info = tarfile.TarInfo(name)
        info.type = kind
        data = b"pwned\n"
        if kind == tarfile.SYMTYPE:
            info.linkname = "/root"
            archive.addfile(info)
        else:
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    blob = buffer.getvalue()
    path = tmp_path / "hostile.tar.gz"
    path.write_bytes(blob)
    return path, hashlib.sha256(blob).hexdigest()


@pytest.mark.parametrize(
    ("name", "kind", "message"),
    [
        ("code/../../escaped", tarfile.REGTYPE, "leaves its directory"),
        ("/tmp/escaped", tarfile.REGTYPE, "leaves its directory"),
        ("elsewhere/x", tarfile.REGTYPE, "outside code/ and inputs/"),
        ("code/link", tarfile.SYMTYPE, "not a regular file"),
    ],
)
def test_paths_that_leave_the_job_are_refused(tmp_path, name, kind, message) -> None:
    path, sha256 = _hostile_archive(tmp_path, name, kind)
    dest = tmp_path / "deep" / "out"
    with pytest.raises(ArtifactError, match=message):
        unpack_artifact(path, sha256, dest)
    assert not (tmp_path / "escaped").exists()
    assert not (tmp_path / "deep" / "escaped").exists()
    assert not list(dest.rglob("*"))


def test_a_symlink_in_the_job_is_refused(tmp_path) -> None:
    job = tmp_path / "job"
    job.mkdir()
    (job / "job.py").write_text("def main(ctx):\n    pass\n")
    (job / "token").symlink_to("/root/.config")
    with pytest.raises(InputError, match="symbolic link"):
        pack_job(job, tmp_path / "store")


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ("entry_point = 'job'", "entry_point"),
        ("colour = 'red'", "colour: Extra inputs are not permitted"),
        ("[resources]\nmemory_mb = 'lots'", "resources.memory_mb"),
        ("entry_point = [", "not valid TOML"),
        ("entry_point = 'train:main'", "no train.py"),
    ],
)
def test_a_bad_manifest_is_named(tmp_path, toml, message) -> None:
    job = tmp_path / "job"
    job.mkdir()
    (job / "job.py").write_text("def main(ctx):\n    pass\n")
    (job / "job.toml").write_text(toml)
    with pytest.raises(InputError, match=message):
        pack_job(job, tmp_path / "store")
