"""The space a task's job directory takes, kept up to date without walking it every time.

The runner checks the job directory's size four times a second. Walking every file each time
costs the runner's host side in proportion to the files the task has (a job that writes many
small outputs, a data set unpacked into scratch). :class:`DiskUsage` walks the directory once,
then keeps every entry's size from Linux's inotify events: a check reads the events that came
since the last one and looks again (``lstat``) only at the entries they name, so its cost
follows what the task changed, not what it has.

inotify does not see every way a file can grow: a write through a shared memory map raises no
event. A full walk therefore still runs now and then, as rarely as its own measured cost
allows (at most ``walk_budget`` of the runner's time, between ``min_walk_s`` and
``max_walk_s`` apart), and corrects the sizes. Where inotify is not usable (no watches left,
an event queue that overflowed, a directory renamed: paths no longer known), the next check
walks the whole directory and starts the watches afresh; without inotify at all, every check
walks, as before this module.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import stat
import struct
import time
from pathlib import Path
from typing import Final

__all__ = ["DiskUsage"]

_IN_MODIFY: Final = 0x2
_IN_ATTRIB: Final = 0x4
_IN_CLOSE_WRITE: Final = 0x8
_IN_MOVED_FROM: Final = 0x40
_IN_MOVED_TO: Final = 0x80
_IN_CREATE: Final = 0x100
_IN_DELETE: Final = 0x200
_IN_MOVE_SELF: Final = 0x800
_IN_Q_OVERFLOW: Final = 0x4000
_IN_IGNORED: Final = 0x8000
_IN_ONLYDIR: Final = 0x01000000
_IN_DONT_FOLLOW: Final = 0x02000000
_IN_ISDIR: Final = 0x40000000
_WATCH_MASK: Final = (
    _IN_MODIFY
    | _IN_ATTRIB
    | _IN_CLOSE_WRITE
    | _IN_MOVED_FROM
    | _IN_MOVED_TO
    | _IN_CREATE
    | _IN_DELETE
    | _IN_MOVE_SELF
    | _IN_ONLYDIR
    | _IN_DONT_FOLLOW
)
_EVENT = struct.Struct("iIII")
_READ_BYTES = 1 << 16
_MOST_BYTES = 1 << 20


class _Inotify:
    """An inotify instance (non-blocking, close-on-exec), through libc."""

    def __init__(self) -> None:
        self._libc = ctypes.CDLL(None, use_errno=True)
        fd = self._libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        if fd < 0:
            number = ctypes.get_errno()
            raise OSError(number, os.strerror(number))
        self.fd: int = fd

    def add_watch(self, path: Path) -> int:
        wd = self._libc.inotify_add_watch(self.fd, os.fsencode(path), _WATCH_MASK)
        if wd < 0:
            number = ctypes.get_errno()
            raise OSError(number, os.strerror(number), str(path))
        return int(wd)

    def read(self) -> bytes:
        """Return the events waiting, up to ``_MOST_BYTES`` (the rest wait for the next read).

        The bound keeps a task that changes files without end from holding the runner here:
        it is more than the kernel's queue holds by default (16,384 events).
        """
        chunks: list[bytes] = []
        size = 0
        while size < _MOST_BYTES:
            try:
                chunk = os.read(self.fd, _READ_BYTES)
            except BlockingIOError:
                break
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        return b"".join(chunks)

    def close(self) -> None:
        os.close(self.fd)


class DiskUsage:
    """The space the entries under ``root`` take on disk [bytes], following no link.

    Counts what a full walk counts: every entry's allocated blocks (``st_blocks * 512``),
    directories and links included; a file with two names counts twice.

    Parameters
    ----------
    root : Path
        The directory measured (the task's job directory on the host).
    now : float
        The current time [s] (``time.monotonic``), for the next full walk.
    walk_budget : float
        Share of the time a full walk may take, on average, by its own measured cost [1].
    min_walk_s, max_walk_s : float
        Least and most time between two full walks while inotify works [s].
    use_inotify : bool
        False: walk on every check (the fallback, for a test or a host without inotify).
    """

    def __init__(
        self,
        root: Path,
        *,
        now: float,
        walk_budget: float = 0.01,
        min_walk_s: float = 1.0,
        max_walk_s: float = 30.0,
        use_inotify: bool = True,
    ) -> None:
        self.root = root
        self.walk_budget = walk_budget
        self.min_walk_s = min_walk_s
        self.max_walk_s = max_walk_s
        self._use_inotify = use_inotify
        self._inotify: _Inotify | None = None
        self._sizes: dict[str, int] = {}
        self._total = 0
        self._dirs: dict[int, str] = {}
        self._next_walk = now
        self._stale = True
        self.walks = 0
        """Full walks made so far (the first included)."""

    @property
    def watching(self) -> bool:
        """True while inotify keeps the sizes (else every check walks)."""
        return self._inotify is not None

    def used_bytes(self, now: float) -> int:
        """Return the space the directory takes now [bytes]; walk it only when due."""
        if self._inotify is not None and not self._stale:
            self._apply(self._inotify.read())
        if self._inotify is None or self._stale or now >= self._next_walk:
            self._walk(now)
        return self._total

    def close(self) -> None:
        """Drop the watches."""
        if self._inotify is not None:
            self._inotify.close()
            self._inotify = None

    def _walk(self, now: float) -> None:
        """Measure every entry afresh (and watch every directory, where inotify works)."""
        started = time.monotonic()
        self.close()
        self._sizes, self._total, self._dirs, self._stale = {}, 0, {}, False
        if self._use_inotify:
            with contextlib.suppress(OSError):  # no instance left: walk on every check
                self._inotify = _Inotify()
        self._scan("")
        self.walks += 1
        cost_s = time.monotonic() - started
        pause_s = min(max(cost_s / self.walk_budget, self.min_walk_s), self.max_walk_s)
        self._next_walk = now + pause_s

    def _scan(self, relative: str) -> None:
        """Record the entries under ``relative`` (a directory), watching each directory first.

        A directory is watched before it is listed, so an entry made between the two is
        both listed and named by an event (looked at twice, counted once).
        """
        stack = [relative]
        while stack:
            directory = stack.pop()
            path = self.root / directory if directory else self.root
            if self._inotify is not None:
                try:
                    self._dirs[self._inotify.add_watch(path)] = directory
                except OSError as error:
                    if error.errno in {errno.ENOSPC, errno.ENOMEM}:  # no watches left
                        self.close()
                    elif error.errno not in {errno.ENOENT, errno.ENOTDIR}:
                        raise
            try:
                entries = list(os.scandir(path))
            except OSError:
                continue
            for entry in entries:
                name = f"{directory}/{entry.name}" if directory else entry.name
                with contextlib.suppress(OSError):
                    info = entry.stat(follow_symlinks=False)
                    self._set(name, info.st_blocks * 512)
                    if stat.S_ISDIR(info.st_mode):
                        stack.append(name)

    def _set(self, relative: str, size: int | None) -> None:
        old = self._sizes.pop(relative, 0) if size is None else self._sizes.get(relative, 0)
        if size is not None:
            self._sizes[relative] = size
        self._total += (size or 0) - old

    def _look(self, relative: str) -> None:
        """Measure one entry again (gone: forget it)."""
        try:
            info = os.lstat(self.root / relative)
        except OSError:
            self._set(relative, None)
            return
        self._set(relative, info.st_blocks * 512)

    def _apply(self, data: bytes) -> None:
        """Update the sizes from the events in ``data``."""
        changed: set[str] = set()
        offset = 0
        while offset < len(data):
            wd, mask, _, length = _EVENT.unpack_from(data, offset)
            offset += _EVENT.size
            name = data[offset : offset + length].rstrip(b"\0").decode(errors="surrogateescape")
            offset += length
            if mask & (_IN_Q_OVERFLOW | _IN_MOVE_SELF) or (
                mask & _IN_ISDIR and mask & _IN_MOVED_FROM
            ):
                self._stale = True  # events lost, or paths under a moved directory changed
                return
            directory = self._dirs.get(wd)
            if mask & _IN_IGNORED:
                self._dirs.pop(wd, None)
                continue
            if directory is None or not name:
                continue
            relative = f"{directory}/{name}" if directory else name
            if directory:
                changed.add(directory)  # its own size grows with its entries
            if mask & _IN_ISDIR and mask & (_IN_CREATE | _IN_MOVED_TO):
                self._look(relative)
                self._scan(relative)
            elif mask & _IN_ISDIR and mask & _IN_DELETE:
                self._set(relative, None)
            else:
                changed.add(relative)
        for relative in changed:
            self._look(relative)
