"""Pack a job into a content-addressed artifact, and unpack one after checking it.

An artifact is a gzip-compressed tar archive of the job directory (under ``code/``) and its
input files (under ``inputs/NAME``). Packing is deterministic: entries sorted by name, every
time stamp, owner and permission normalised, so the same content gives the same bytes and the
same SHA-256 whatever the files' modification times or the order the file system lists them in.
Unpacking checks the size and the hash first, then every entry: only regular files, and only
relative paths under ``code/`` or ``inputs/`` (no ``..``, no links, no devices).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import tarfile
from collections.abc import Collection, Iterator, Mapping
from pathlib import Path, PurePosixPath
from typing import BinaryIO, Final

from heatgrid.core.errors import InputError
from heatgrid.jobs.manifest import load_manifest
from heatgrid.protocol.jobs import MAX_ARTIFACT_BYTES, ArtifactRef, is_input_url

__all__ = [
    "DEFAULT_MAX_ARTIFACT_BYTES",
    "ArtifactError",
    "artifact_path",
    "file_sha256",
    "pack_job",
    "unpack_artifact",
]

DEFAULT_MAX_ARTIFACT_BYTES: Final = 256 * 1024 * 1024
"""Default largest artifact [bytes] (256 MiB): code and inputs, compressed."""

_SKIPPED_NAMES = frozenset({"__pycache__", ".git", ".heatgrid", ".venv", ".DS_Store", "outputs"})
_SKIPPED_SUFFIXES = (".pyc", ".pyo")
_MAX_ENTRIES = 100_000
_CHUNK_BYTES = 1 << 20
_UNPACK_RATIO = 20  # an artifact may unpack to at most 20 times its limit (a gzip bomb stops)


class ArtifactError(InputError):
    """An artifact that is too large, corrupt, tampered with, or holds a path it may not."""


def artifact_path(store_dir: Path, sha256: str) -> Path:
    """Return where the artifact with this hash lives in a content-addressed store."""
    return store_dir / f"{sha256}.tar.gz"


def file_sha256(path: Path) -> str:
    """Return the SHA-256 of a file's bytes, hex."""
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def _job_files(job_dir: Path) -> Iterator[tuple[str, Path]]:
    """Yield (archive name, path) of each file of the job directory, sorted by name."""
    found: list[tuple[str, Path]] = []
    for root, dirs, files in os.walk(job_dir):
        dirs[:] = sorted(name for name in dirs if name not in _SKIPPED_NAMES)
        for name in files:
            path = Path(root) / name
            if name in _SKIPPED_NAMES or name.endswith(_SKIPPED_SUFFIXES):
                continue
            relative = path.relative_to(job_dir).as_posix()
            if path.is_symlink():
                raise InputError(
                    f"{path} is a symbolic link; a job holds regular files only (copy the file)"
                )
            found.append((f"code/{relative}", path))
        for name in dirs:
            if (Path(root) / name).is_symlink():
                raise InputError(f"{Path(root) / name} is a symbolic link to a directory")
    yield from sorted(found)


def _entries(
    job_dir: Path, inputs: Mapping[str, Path], unpacked: Collection[str] = ()
) -> list[tuple[str, Path]]:
    manifest = load_manifest(job_dir)
    named = {
        name: (job_dir / path)
        for name, path in manifest.inputs.items()
        if not is_input_url(path) and name not in unpacked  # URLs are read where they are
    }
    named.update(inputs)
    entries = list(_job_files(job_dir))
    for name, path in sorted(named.items()):
        if not path.is_file():
            raise InputError(f"input {name!r}: {path} is not a file")
        entries.append((f"inputs/{name}", path))
    return entries


def _tar_info(name: str, path: Path) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    stat = path.stat()
    info.size = stat.st_size
    info.mode = 0o755 if stat.st_mode & 0o100 else 0o644
    info.mtime = 0
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


class _HashingWriter(io.RawIOBase):
    """A write-only file that hashes and counts what goes through it into another file."""

    def __init__(self, target: BinaryIO, max_bytes: int) -> None:
        self._target = target
        self._max_bytes = max_bytes
        self.digest = hashlib.sha256()
        self.size_bytes = 0

    def writable(self) -> bool:
        return True

    def write(self, data: bytes) -> int:  # type: ignore[override]
        self.size_bytes += len(data)
        if self.size_bytes > self._max_bytes:
            raise ArtifactError(
                f"the artifact is over its limit of {self._max_bytes / 2**20:.1f} MiB "
                "(compressed code and inputs); leave large data out of the job directory"
            )
        self.digest.update(data)
        self._target.write(data)
        return len(data)


def pack_job(
    job_dir: Path,
    store_dir: Path,
    *,
    inputs: Mapping[str, Path] | None = None,
    max_bytes: int = DEFAULT_MAX_ARTIFACT_BYTES,
    unpacked: Collection[str] = (),
) -> ArtifactRef:
    """Pack a job directory and its inputs into ``store_dir``, named by the content's SHA-256.

    Parameters
    ----------
    job_dir : Path
        The job: ``job.py`` (or the module ``job.toml`` names), its other files and folders.
        ``__pycache__``, ``.git``, ``.venv``, ``outputs`` and ``*.pyc`` are left out.
    store_dir : Path
        Where the artifact is written, as ``SHA256.tar.gz``.
    inputs : mapping of str to Path, optional
        Input files by name, in addition to (and overriding) ``[inputs]`` of ``job.toml``.
    max_bytes : int
        Largest artifact allowed [bytes].
    unpacked : collection of str
        Names of ``[inputs]`` of ``job.toml`` not to pack (given as URLs instead). Inputs
        whose value in ``job.toml`` is a URL (``s3://…``) are never packed.

    Returns
    -------
    ArtifactRef
        The artifact's hash and size.

    Raises
    ------
    InputError
        A bad job directory or input; :class:`ArtifactError` when the artifact is too large.
    """
    max_bytes = min(max_bytes, MAX_ARTIFACT_BYTES)
    entries = _entries(job_dir, inputs or {}, unpacked)
    store_dir.mkdir(parents=True, exist_ok=True)
    partial = store_dir / f".partial-{os.getpid()}-{id(entries)}"
    try:
        with partial.open("wb") as target:
            writer = _HashingWriter(target, max_bytes)
            with (
                gzip.GzipFile(
                    filename="", mode="wb", compresslevel=6, fileobj=writer, mtime=0
                ) as zipped,
                tarfile.open(fileobj=zipped, mode="w", format=tarfile.PAX_FORMAT) as archive,
            ):
                for name, path in entries:
                    with path.open("rb") as file:
                        archive.addfile(_tar_info(name, path), file)
        sha256 = writer.digest.hexdigest()
        partial.replace(artifact_path(store_dir, sha256))
    finally:
        partial.unlink(missing_ok=True)
    return ArtifactRef(sha256=sha256, size_bytes=writer.size_bytes)


def _check_name(name: str) -> PurePosixPath:
    path = PurePosixPath(name)
    if (
        name.startswith("/")
        or "\\" in name
        or "\x00" in name
        or any(part in {"", ".", ".."} for part in name.split("/"))
    ):
        raise ArtifactError(f"the artifact holds the path {name!r}, which leaves its directory")
    if path.parts[0] not in {"code", "inputs"} or len(path.parts) < 2:
        raise ArtifactError(f"the artifact holds {name!r}, outside code/ and inputs/")
    return path


def unpack_artifact(
    archive_path: Path,
    expected_sha256: str,
    dest_dir: Path,
    *,
    max_bytes: int = DEFAULT_MAX_ARTIFACT_BYTES,
) -> None:
    """Check an artifact against its hash and size, then unpack it into ``dest_dir``.

    Raises
    ------
    ArtifactError
        The artifact is larger than ``max_bytes``, its SHA-256 is not ``expected_sha256``
        (corrupt or tampered with), it is not a tar.gz archive, or it holds an absolute path, a
        ``..``, a link, a device, or more than ``max_bytes`` times 20 when unpacked.
    """
    size_bytes = archive_path.stat().st_size
    if size_bytes > max_bytes:
        raise ArtifactError(
            f"artifact {archive_path.name}: {size_bytes} bytes, over the limit of {max_bytes}"
        )
    actual = file_sha256(archive_path)
    if actual != expected_sha256:
        raise ArtifactError(
            f"artifact {archive_path.name}: SHA-256 mismatch (expected {expected_sha256}, "
            f"got {actual}): it is corrupt or was tampered with; refusing to run it"
        )
    budget = max_bytes * _UNPACK_RATIO
    dest_dir.mkdir(parents=True, exist_ok=True)
    try:
        with tarfile.open(archive_path, mode="r:gz") as archive:
            for count, member in enumerate(archive):
                if count >= _MAX_ENTRIES:
                    raise ArtifactError(f"the artifact holds more than {_MAX_ENTRIES} entries")
                path = _check_name(member.name)
                if not member.isreg():
                    raise ArtifactError(
                        f"the artifact's entry {member.name!r} is not a regular file"
                    )
                budget -= member.size
                if budget < 0:
                    raise ArtifactError(
                        f"the artifact unpacks to more than {max_bytes * _UNPACK_RATIO} bytes"
                    )
                _extract(archive, member, dest_dir / path)
    except (tarfile.TarError, EOFError, gzip.BadGzipFile, OSError) as error:
        if isinstance(error, FileExistsError):
            raise ArtifactError(f"the artifact holds {error.filename} twice") from None
        raise ArtifactError(f"artifact {archive_path.name} is not a valid job: {error}") from None


def _extract(archive: tarfile.TarFile, member: tarfile.TarInfo, target: Path) -> None:
    source = archive.extractfile(member)
    if source is None:  # pragma: no cover (a regular file always has content)
        raise ArtifactError(f"cannot read {member.name!r} in the artifact")
    target.parent.mkdir(parents=True, exist_ok=True)
    with target.open("xb") as file:
        while chunk := source.read(_CHUNK_BYTES):
            file.write(chunk)
    target.chmod(0o755 if member.mode & 0o100 else 0o644)
