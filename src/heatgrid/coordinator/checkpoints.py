"""Checkpoint blobs, kept through fsspec: a local directory by default, S3 and others as options.

An upload is received in two steps, so that no database transaction waits on the network or
the disk: :meth:`CheckpointStore.stage` streams the body to a staging name under
``.staging/`` and flushes it to disk (no transaction open); then a short transaction moves the
staged blob to its key (:meth:`CheckpointStore.place`, a rename) and records the row. The
blob is in place before its row is committed, so a row always has its blob; a crash in
between leaves at most an orphan blob that nothing refers to. A failed or aborted upload
leaves nothing: the staged file is removed (:meth:`CheckpointStore.discard`).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
import uuid
from collections.abc import AsyncIterable, Iterator
from dataclasses import dataclass
from typing import IO

import anyio.to_thread
import fsspec
from fsspec.core import url_to_fs

from heatgrid.coordinator.errors import CoordinatorError
from heatgrid.core.errors import InputError

__all__ = ["CheckpointStore", "StagedBlob", "StorageUnavailableError"]

_STAGING = ".staging"
_WRITE_BYTES = 1 << 20  # chunks are gathered to this size before a write (one thread hop)


class StorageUnavailableError(CoordinatorError):
    """The checkpoint store could not take a blob (disk full, store unreachable): retry later."""

    status_code = 503


@dataclass(frozen=True)
class StagedBlob:
    """A received blob, flushed to disk under a staging name, not yet under its key.

    Attributes
    ----------
    path : str
        Where it is staged, in the store's filesystem.
    size_bytes : int
        Its length [bytes].
    sha256 : str
        Its SHA-256, hex.
    """

    path: str
    size_bytes: int
    sha256: str


def _fsync_directory(directory: str) -> None:
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)  # a rename or a new name survives a power cut
    finally:
        os.close(descriptor)


def _remove(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def _durable_local_write(path: str, partial: str, data: bytes) -> None:
    """Write ``data`` to ``partial``, flush it to disk, and rename it to ``path`` durably."""
    directory = os.path.dirname(path)
    os.makedirs(directory, exist_ok=True)
    try:
        with open(partial, "wb") as blob:
            blob.write(data)
            blob.flush()
            os.fsync(blob.fileno())
        os.replace(partial, path)
    except BaseException:
        _remove(partial)
        raise
    _fsync_directory(directory)


def _flush_to_disk(blob: IO[bytes]) -> None:
    blob.flush()
    os.fsync(blob.fileno())


async def _receive(chunks: AsyncIterable[bytes], blob: IO[bytes]) -> tuple[int, str]:
    """Write the chunks to ``blob`` and flush it to disk; return (size [bytes], SHA-256)."""
    digest = hashlib.sha256()
    size_bytes = 0
    pending: list[bytes] = []
    pending_bytes = 0
    async for chunk in chunks:
        if not chunk:
            continue
        digest.update(chunk)
        size_bytes += len(chunk)
        pending.append(chunk)
        pending_bytes += len(chunk)
        if pending_bytes >= _WRITE_BYTES:
            await anyio.to_thread.run_sync(blob.write, b"".join(pending))
            pending, pending_bytes = [], 0
    if pending:
        await anyio.to_thread.run_sync(blob.write, b"".join(pending))
    await anyio.to_thread.run_sync(_flush_to_disk, blob)
    return size_bytes, digest.hexdigest()


class CheckpointStore:
    """Blobs under one fsspec URL (``/var/lib/heatgrid/checkpoints``, ``s3://bucket/prefix``).

    Parameters
    ----------
    url : str
        Root of the store; a local directory is created when the first blob is stored.
    """

    def __init__(self, url: str) -> None:
        try:
            filesystem, root = url_to_fs(url)
        except (ImportError, ValueError) as error:
            raise InputError(f"checkpoint URL {url!r} cannot be used: {error}") from None
        self.url = url
        self._fs: fsspec.AbstractFileSystem = filesystem
        self._root = root.rstrip("/")
        protocols = (
            (self._fs.protocol,) if isinstance(self._fs.protocol, str) else self._fs.protocol
        )
        self._local = "file" in protocols

    @staticmethod
    def key(task_id: str, seq: int) -> str:
        """Return the key of checkpoint ``seq`` of ``task_id``."""
        return f"{task_id}/{seq:08d}.ckpt"

    def _path(self, key: str) -> str:
        return f"{self._root}/{key}"

    def put(self, key: str, data: bytes) -> None:
        """Store ``data`` under ``key``: written to a temporary name, then moved into place."""
        path = self._path(key)
        partial = f"{path}.partial"
        if self._local:
            _durable_local_write(path, partial, data)
            return
        self._fs.pipe_file(partial, data)
        self._fs.mv(partial, path)

    async def stage(self, chunks: AsyncIterable[bytes]) -> StagedBlob:
        """Receive a blob from ``chunks`` into a staging name, flushed to disk.

        Nothing is left behind when receiving fails or is cancelled (the client went away,
        the body passed its size limit, the disk is full): the partial file is removed and
        the error raised again (:class:`StorageUnavailableError` for the store's own).
        """
        name = f"{uuid.uuid4().hex}.partial"
        if self._local:
            staging = f"{self._root}/{_STAGING}"
            path = f"{staging}/{name}"
            try:
                await anyio.to_thread.run_sync(lambda: os.makedirs(staging, exist_ok=True))
                with open(path, "wb") as blob:
                    size_bytes, sha256 = await _receive(chunks, blob)
            except BaseException as error:
                await anyio.to_thread.run_sync(_remove, path)
                if isinstance(error, OSError):
                    raise StorageUnavailableError(
                        f"checkpoint: the store cannot take the blob now ({error.strerror}); "
                        "try again later"
                    ) from error
                raise
            return StagedBlob(path=path, size_bytes=size_bytes, sha256=sha256)
        path = self._path(f"{_STAGING}/{name}")
        with tempfile.NamedTemporaryFile(suffix=".partial") as local:
            size_bytes, sha256 = await _receive(chunks, local)
            try:
                await anyio.to_thread.run_sync(self._fs.put_file, local.name, path)
            except BaseException:
                await anyio.to_thread.run_sync(self.discard, StagedBlob(path, 0, ""))
                raise
        return StagedBlob(path=path, size_bytes=size_bytes, sha256=sha256)

    def place(self, staged: StagedBlob, key: str) -> None:
        """Move a staged blob to ``key`` (a rename: quick, inside the recording transaction)."""
        path = self._path(key)
        if not self._local:
            self._fs.mv(staged.path, path)
            return
        directory = os.path.dirname(path)
        os.makedirs(directory, exist_ok=True)
        os.replace(staged.path, path)
        _fsync_directory(directory)

    def discard(self, staged: StagedBlob) -> None:
        """Remove a staged blob that was not placed (or was placed already: then nothing)."""
        if self._local:
            _remove(staged.path)
            return
        with contextlib.suppress(FileNotFoundError):
            self._fs.rm_file(staged.path)

    def get(self, key: str) -> bytes:
        """Return the blob stored under ``key``."""
        data: bytes = self._fs.cat_file(self._path(key))
        return data

    def iter_blob(self, key: str, chunk_bytes: int = _WRITE_BYTES) -> Iterator[bytes]:
        """Yield the blob stored under ``key`` in chunks of ``chunk_bytes`` [bytes] at most."""
        with self._fs.open(self._path(key), "rb") as blob:
            while chunk := blob.read(chunk_bytes):
                yield chunk
