"""The bubblewrap command line that runs one task in its sandbox.

What the task sees:

* no network at all: a network namespace of its own with only a loopback that is down, so not
  even the host's loopback ports are reachable;
* the system read-only: ``/usr`` (and ``/bin``, ``/lib*``, ``/sbin`` where they are real
  directories), a minimal ``/etc`` (``passwd``, ``group``, ``ld.so.cache``), the Python
  installation and its environment, and heatgrid's own package; nothing else of the host
  (no home directories, no agent configuration or token);
* its job directory at ``/job``, writable, and a private ``/tmp`` (a tmpfs of bounded size);
* a clean environment (only the variables set here), a PID namespace and ``/proc`` of its own,
  its own hostname, user ``nobody`` (65534) with no capabilities, a new session (no terminal).

The launcher (``/bin/sh``, with an empty environment) first writes its PID into the task's
cgroup, then becomes bubblewrap, so that every process of the task is in the cgroup from its
first instruction.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import heatgrid

__all__ = [
    "SANDBOX_GID",
    "SANDBOX_JOB_ROOT",
    "SANDBOX_UID",
    "SandboxUnavailableError",
    "find_bwrap",
    "sandbox_command",
    "write_sandbox_etc",
]

SANDBOX_JOB_ROOT: Final = "/job"
"""Where the job directory appears inside the sandbox."""

SANDBOX_UID: Final = 65534
"""The task's user id inside the sandbox (``nobody``)."""

SANDBOX_GID: Final = 65534
"""The task's group id inside the sandbox (``nogroup``)."""

_PACKAGE_ROOT = "/opt/heatgrid"
_SYSTEM_DIRS = ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
_ETC_FILES = ("/etc/ld.so.cache", "/etc/ld.so.conf")
_JOIN_CGROUP = 'while [ "$1" != -- ]; do echo $$ > "$1" || exit 125; shift; done; shift; exec "$@"'
_PASSWD = (
    "root:x:0:0:root:/root:/usr/sbin/nologin\nnobody:x:65534:65534:nobody:/job:/usr/sbin/nologin\n"
)
_GROUP = "root:x:0:\nnogroup:x:65534:\n"


class SandboxUnavailableError(RuntimeError):
    """Bubblewrap is missing or cannot make a sandbox here; the message says what to install."""


def find_bwrap() -> str:
    """Return the path of ``bwrap``; else raise SandboxUnavailableError naming the package."""
    path = shutil.which("bwrap")
    if path is None:
        raise SandboxUnavailableError(
            "bubblewrap (bwrap) is not installed; install it (Debian and Ubuntu: apt-get "
            "install bubblewrap; Fedora: dnf install bubblewrap): tasks only run in its sandbox"
        )
    return path


@dataclass(frozen=True)
class _Python:
    executable: str
    prefixes: tuple[str, ...]


def _python() -> _Python:
    prefixes = {str(Path(sys.prefix).resolve()), str(Path(sys.base_prefix).resolve())}
    executable = str(Path(sys.executable).absolute())
    return _Python(
        executable,
        tuple(sorted(path for path in prefixes if not path.startswith("/usr/") and path != "/usr")),
    )


def write_sandbox_etc(etc_dir: Path) -> None:
    """Write the sandbox's ``/etc/passwd`` and ``/etc/group`` into ``etc_dir`` on the host."""
    etc_dir.mkdir(parents=True, exist_ok=True)
    (etc_dir / "passwd").write_text(_PASSWD)
    (etc_dir / "group").write_text(_GROUP)


def _system_binds() -> list[str]:
    args = ["--ro-bind", "/usr", "/usr"]
    for name in _SYSTEM_DIRS:
        path = Path(name)
        if path.is_symlink():
            args += ["--symlink", str(path.readlink()), name]
        elif path.is_dir():
            args += ["--ro-bind", name, name]
    for name in _ETC_FILES:
        if Path(name).exists():
            args += ["--ro-bind", name, name]
    return args


def _gpu_binds() -> list[str]:
    args: list[str] = []
    for device in sorted(Path("/dev").glob("nvidia*")):
        args += ["--dev-bind", str(device), str(device)]
    return args


def sandbox_command(
    *,
    bwrap: str,
    procs_files: Sequence[Path],
    job_dir: Path,
    etc_dir: Path,
    tmp_bytes: int,
    argv: Sequence[str],
    env: dict[str, str],
    info_fd: int | None = None,
    gpu: bool = False,
) -> list[str]:
    """Return the command that runs ``argv`` in the sandbox, inside the task's cgroup.

    File descriptors that the caller passes to the process (its pipes to the runner) stay
    open inside: bubblewrap keeps the descriptors it inherits.

    Parameters
    ----------
    bwrap : str
        Path of the ``bwrap`` program.
    procs_files : sequence of Path
        The task cgroup's ``cgroup.procs`` files (one per v1 hierarchy, one for v2).
    job_dir : Path
        The host directory that becomes the writable ``/job``.
    etc_dir : Path
        Host directory with the sandbox's ``passwd`` and ``group`` (see write_sandbox_etc).
    tmp_bytes : int
        Size of the private ``/tmp`` [bytes].
    argv : sequence of str
        The command to run inside, ``{python}`` replaced by the Python interpreter.
    env : dict
        The task's whole environment (``PATH``, ``HOME`` … are set here).
    info_fd : int, optional
        A descriptor bubblewrap writes ``{"child-pid": PID}`` to: the sandbox's init (host PID).
    gpu : bool
        Bind the NVIDIA device files, for a task given a GPU.
    """
    python = _python()
    package_dir = Path(heatgrid.__file__).resolve().parent
    args = [
        "/bin/sh", "-c", _JOIN_CGROUP, "heatgrid-join-cgroup",
        *[str(path) for path in procs_files], "--",
        bwrap,
        "--unshare-all", "--unshare-user", "--uid", str(SANDBOX_UID), "--gid", str(SANDBOX_GID),
        "--hostname", "sandbox", "--die-with-parent", "--new-session", "--cap-drop", "ALL",
        *_system_binds(),
        "--ro-bind", str(etc_dir / "passwd"), "/etc/passwd",
        "--ro-bind", str(etc_dir / "group"), "/etc/group",
    ]  # fmt: skip
    for prefix in python.prefixes:
        args += ["--ro-bind", prefix, prefix]
    args += [
        "--ro-bind", str(package_dir), f"{_PACKAGE_ROOT}/heatgrid",
        "--proc", "/proc", "--dev", "/dev",
        "--size", str(tmp_bytes), "--tmpfs", "/tmp",
        "--bind", str(job_dir), SANDBOX_JOB_ROOT,
    ]  # fmt: skip
    if gpu:
        args += _gpu_binds()
    if info_fd is not None:
        args += ["--info-fd", str(info_fd)]
    args += ["--remount-ro", "/", "--chdir", f"{SANDBOX_JOB_ROOT}/code", "--clearenv"]
    base_env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": SANDBOX_JOB_ROOT,
        "TMPDIR": "/tmp",
        "LANG": "C.UTF-8",
        "PYTHONPATH": _PACKAGE_ROOT,
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONUNBUFFERED": "1",
    }
    for name, value in (base_env | env).items():
        args += ["--setenv", name, value]
    args += ["--", *[python.executable if part == "{python}" else part for part in argv]]
    return args
