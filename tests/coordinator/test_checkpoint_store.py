"""Checkpoint blobs through fsspec: a local directory, and any other filesystem by URL."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from heatgrid.coordinator.checkpoints import CheckpointStore
from heatgrid.core.errors import InputError


def test_a_local_store_writes_whole_blobs_and_reads_them_back(tmp_path: Path) -> None:
    store = CheckpointStore(str(tmp_path / "blobs"))
    key = CheckpointStore.key("task1", 3)
    assert key == "task1/00000003.ckpt"
    store.put(key, b"\x00weights\xff" * 1000)
    assert store.get(key) == b"\x00weights\xff" * 1000
    assert sorted(p.name for p in (tmp_path / "blobs" / "task1").iterdir()) == ["00000003.ckpt"]
    store.put(key, b"again")  # a re-upload replaces the blob whole
    assert store.get(key) == b"again"


def test_a_store_on_another_filesystem_by_url() -> None:
    # fsspec's in-memory filesystem stands where S3 would: the store only speaks fsspec.
    store = CheckpointStore(f"memory://heatgrid-test-{uuid.uuid4().hex}/checkpoints")
    key = CheckpointStore.key("task2", 1)
    store.put(key, b"state")
    assert store.get(key) == b"state"


def test_an_unusable_url_is_refused_naming_it() -> None:
    with pytest.raises(InputError, match="nosuchproto://x"):
        CheckpointStore("nosuchproto://x")
