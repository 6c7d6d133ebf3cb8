"""The job directory's size kept from inotify events, against a full walk of it."""

from __future__ import annotations

import mmap
import os
from pathlib import Path

import pytest

from heatgrid.jobs.disk import DiskUsage

_BLOCK = b"x" * 65536


def _walked(root: Path) -> int:
    """What a full walk measures (the fallback walks on every check)."""
    walk = DiskUsage(root, now=0.0, use_inotify=False)
    return walk.used_bytes(0.0)


@pytest.fixture
def usage(tmp_path: Path):
    (tmp_path / "code").mkdir()
    (tmp_path / "code" / "job.py").write_text("def main(ctx):\n    pass\n")
    usage = DiskUsage(tmp_path, now=0.0, min_walk_s=1e9, max_walk_s=1e9)
    yield usage
    usage.close()


def test_changes_are_followed_without_walking_again(usage, tmp_path) -> None:
    assert usage.used_bytes(0.0) == _walked(tmp_path)
    assert usage.watching
    grown = tmp_path / "grown.bin"
    grown.write_bytes(_BLOCK)
    assert usage.used_bytes(1.0) == _walked(tmp_path)
    with grown.open("ab") as file:  # an existing file grows: no new name anywhere
        for _ in range(16):
            file.write(_BLOCK)
    nested = tmp_path / "outputs" / "a" / "b"
    nested.mkdir(parents=True)  # new directories, filled before the check sees them
    for number in range(50):
        (nested / f"part-{number}").write_bytes(_BLOCK)
    assert usage.used_bytes(2.0) == _walked(tmp_path) > 50 * len(_BLOCK)
    (nested / "part-0").rename(tmp_path / "outputs" / "moved")  # a file moved: one name less
    (nested / "part-1").unlink()
    os.truncate(grown, 0)
    os.link(nested / "part-2", tmp_path / "linked")  # a second name counts twice, as walked
    assert usage.used_bytes(3.0) == _walked(tmp_path)
    for number in range(2, 50):
        (nested / f"part-{number}").unlink()
    nested.rmdir()
    assert usage.used_bytes(4.0) == _walked(tmp_path)
    assert usage.walks == 1  # every check since the first followed the events


def test_a_moved_directory_or_lost_events_walk_again(usage, tmp_path) -> None:
    usage.used_bytes(0.0)
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "f").write_bytes(_BLOCK)
    usage.used_bytes(1.0)
    (tmp_path / "a").rename(tmp_path / "b")  # every path under it changed
    (tmp_path / "b" / "g").write_bytes(_BLOCK * 4)
    assert usage.used_bytes(2.0) == _walked(tmp_path)
    assert usage.walks == 2


def test_a_write_through_a_memory_map_is_seen_by_the_next_walk(tmp_path) -> None:
    usage = DiskUsage(tmp_path, now=0.0, min_walk_s=10.0, max_walk_s=10.0)
    try:
        usage.used_bytes(0.0)
        path = tmp_path / "mapped"
        size = 64 * len(_BLOCK)
        with path.open("wb") as file:
            file.truncate(size)  # sparse: no blocks yet
        assert usage.used_bytes(1.0) < size
        with path.open("r+b") as file, mmap.mmap(file.fileno(), size) as mapped:
            mapped[:] = b"y" * size  # no inotify event for these writes (the file stays open)
            mapped.flush()
            assert usage.walks == 1
            assert usage.used_bytes(10.0) >= size  # the backstop walk, once due
            assert usage.walks == 2
    finally:
        usage.close()


def test_without_inotify_every_check_walks(tmp_path) -> None:
    usage = DiskUsage(tmp_path, now=0.0, use_inotify=False)
    usage.used_bytes(0.0)
    (tmp_path / "f").write_bytes(_BLOCK)
    assert usage.used_bytes(0.1) == _walked(tmp_path) > 0
    assert not usage.watching
    assert usage.walks == 2
