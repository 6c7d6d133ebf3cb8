"""Checkpoint blobs, kept through fsspec: a local directory by default, S3 and others as options.

The blob is written before its metadata row is committed, so a row always has its blob; a crash
in between leaves at most an orphan blob that nothing refers to.
"""

from __future__ import annotations

import os

import fsspec
from fsspec.core import url_to_fs

from heatgrid.core.errors import InputError

__all__ = ["CheckpointStore"]


def _durable_local_write(path: str, partial: str, data: bytes) -> None:
    """Write ``data`` to ``partial``, flush it to disk, and rename it to ``path`` durably."""
    directory = os.path.dirname(path)
    os.makedirs(directory, exist_ok=True)
    with open(partial, "wb") as blob:
        blob.write(data)
        blob.flush()
        os.fsync(blob.fileno())
    os.replace(partial, path)
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)  # the rename itself survives a power cut
    finally:
        os.close(descriptor)


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

    def get(self, key: str) -> bytes:
        """Return the blob stored under ``key``."""
        data: bytes = self._fs.cat_file(self._path(key))
        return data
