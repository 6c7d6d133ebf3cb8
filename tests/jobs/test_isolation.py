"""Inside the sandbox a task cannot reach the network, the host's files, environment or
processes, cannot write outside its job directory, and cannot outlive its cgroup."""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from pathlib import Path

import pytest

PROBE = """
import json, os, socket

def _try(action):
    try:
        return "ok: " + str(action())
    except Exception as error:
        return f"{type(error).__name__}: {error}"

def _connect(port):
    with socket.create_connection(("127.0.0.1", port), timeout=2):
        return "connected"

def _write(path):
    with open(path, "w") as file:
        file.write("x")
    return path

def main(ctx):
    p = ctx.params
    status = open("/proc/self/status").read()
    return {
        "connect": _try(lambda: _connect(p["port"])),
        "connect_ipv6": _try(lambda: socket.create_connection(("::1", p["port"]), timeout=2)),
        "resolve": _try(lambda: socket.getaddrinfo("example.com", 443)),
        "read_secrets": [_try(lambda path=path: open(path).read()) for path in p["secrets"]],
        "environ": dict(os.environ),
        "init_environ": _try(lambda: open("/proc/1/environ", "rb").read().decode()),
        "writes": {path: _try(lambda path=path: _write(path)) for path in p["writes"]},
        "pids": sorted(int(name) for name in os.listdir("/proc") if name.isdigit()),
        "cmdlines": [
            _try(lambda name=name: open(f"/proc/{name}/cmdline", "rb").read().decode())
            for name in os.listdir("/proc") if name.isdigit()
        ],
        "uid": os.getuid(),
        "cap_eff": status.split("CapEff:")[1].split()[0],
        "cap_bnd": status.split("CapBnd:")[1].split()[0],
        "root_listing": sorted(os.listdir("/")),
    }
"""


@pytest.fixture
def listener() -> socket.socket:
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    server.setblocking(False)
    yield server
    server.close()


@pytest.fixture
def secrets(tmp_path: Path) -> list[Path]:
    """A fake agent token in the host's /tmp (tmp_path) and in the home directory."""
    in_tmp = tmp_path / "agent-token"
    in_tmp.write_text("SECRET-TOKEN-tmp")
    in_home = Path.home() / f".heatgrid-test-token-{os.getpid()}"
    in_home.write_text("SECRET-TOKEN-home")
    yield [in_tmp, in_home]
    in_home.unlink()


def test_a_task_is_cut_off_from_the_host(jobs, listener, secrets, monkeypatch) -> None:
    monkeypatch.setenv("HEATGRID_API_KEY", "SECRET-TOKEN-env")
    python_prefix = Path(os.__file__).parent
    writes = ["/usr/x", "/etc/x", "/x", "/opt/heatgrid/x", f"{python_prefix}/x"]
    writes += [str(secrets[0].parent / "new-file"), "/tmp/scratch", "/job/outputs/ok"]
    outcome = jobs.run(
        PROBE,
        params={
            "port": listener.getsockname()[1],
            "secrets": [str(path) for path in secrets],
            "writes": writes,
        },
    )
    assert outcome.state == "completed", outcome.message
    result = outcome.result
    assert result is not None
    # no network: not even the host's loopback port the test listens on, no name resolution
    assert result["connect"].startswith(("ConnectionRefusedError", "OSError")), result["connect"]
    assert not result["connect_ipv6"].startswith("ok"), result["connect_ipv6"]
    assert not result["resolve"].startswith("ok"), result["resolve"]
    with pytest.raises(BlockingIOError):
        listener.accept()
    # none of the host's files
    assert all(text.startswith("FileNotFoundError") for text in result["read_secrets"]), result
    # a clean environment, and its own /proc: /proc/1 is the sandbox's init, not the host's
    assert "HEATGRID_API_KEY" not in result["environ"]
    assert "SECRET" not in repr(result["environ"])
    assert set(result["environ"]) <= {
        "PATH", "HOME", "TMPDIR", "LANG", "PYTHONPATH", "PYTHONDONTWRITEBYTECODE",
        "PYTHONUNBUFFERED", "PWD",
    }  # fmt: skip
    assert "SECRET" not in result["init_environ"]
    assert os.environ["PATH"] not in result["init_environ"]
    # writes outside the job directory and /tmp fail; inside they work
    writes_result = result["writes"]
    for path in writes[:-2]:
        assert not writes_result[path].startswith("ok"), (path, writes_result[path])
    assert writes_result["/tmp/scratch"].startswith("ok")
    assert writes_result["/job/outputs/ok"].startswith("ok")
    assert not (secrets[0].parent / "new-file").exists()
    assert [file.path for file in outcome.outputs] == ["ok"]
    # no host processes: only the sandbox's init, the task, and its probes
    assert max(result["pids"]) < 10, result["pids"]
    for text in result["cmdlines"]:  # bubblewrap's init, and the task itself
        assert text.startswith("ok: bwrap") or "heatgrid.jobs._bootstrap" in text, text
    # an unprivileged user with no capabilities, though the runner may be root
    assert result["uid"] == 65534
    assert int(result["cap_eff"], 16) == 0
    assert int(result["cap_bnd"], 16) == 0
    assert {"usr", "etc", "job", "tmp", "proc", "dev", "opt"} <= set(result["root_listing"])
    assert "home" not in result["root_listing"]


SETSID = """
import os, time

def main(ctx):
    if os.fork() == 0:
        os.setsid()
        if os.fork() == 0:
            count = 0
            while True:
                count += 1
                with open("/job/counter.tmp", "w") as file:
                    file.write(str(count))
                os.replace("/job/counter.tmp", "/job/counter")
                time.sleep(0.005)
        os._exit(0)
    while not os.path.exists("/job/counter"):
        time.sleep(0.01)
    ctx.progress(0.5, {"ready": 1})
    while True:
        time.sleep(1)   # never pauses: it is terminated, then killed
"""


def _alive(pid: int) -> bool:
    """Return True if the process runs (a zombie waiting for its reaper does not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def _counter(job_dir: Path) -> int:
    return int((job_dir / "counter").read_text())


def _grows(job_dir: Path) -> bool:
    first = _counter(job_dir)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if _counter(job_dir) > first:
            return True
        time.sleep(0.01)
    return False


def test_a_setsid_child_is_frozen_and_killed_with_its_cgroup(jobs) -> None:
    seen: dict[str, object] = {}
    runner = jobs.runner(jobs.write(SETSID), pause_grace_s=0.2, term_grace_s=0.2)

    def on_progress(_progress: object) -> None:
        cgroup, job_dir = runner.cgroup, runner.job_dir
        assert cgroup is not None
        assert job_dir is not None
        seen["pids"] = cgroup.pids()
        cgroup.freeze()
        frozen_count = _counter(job_dir)
        time.sleep(0.3)
        seen["frozen_still"] = _counter(job_dir) == frozen_count
        cgroup.thaw()
        seen["runs_after_thaw"] = _grows(job_dir)
        runner.request_pause()

    runner.on_progress = on_progress
    outcome = runner.run()
    assert seen["frozen_still"] is True
    assert seen["runs_after_thaw"] is True
    pids = seen["pids"]
    assert isinstance(pids, list)
    assert len(pids) >= 4  # bwrap, its init in the sandbox, the task, the setsid grandchild
    assert outcome.state == "paused"
    assert "did not stop within its grace time" in outcome.message
    assert "saved no checkpoint, so it will start over" in outcome.message
    assert [pid for pid in pids if _alive(pid)] == []


def test_a_throttled_task_is_frozen_part_of_the_time(jobs) -> None:
    job = jobs.write(
        """
        import time

        def main(ctx):
            for step in range(20):
                ctx.progress(step / 20)
                time.sleep(0.05)
            return {"steps": 20}
        """
    )
    runner = jobs.runner(job)
    samples: list[bool] = []
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            cgroup = runner.cgroup
            if cgroup is not None:
                with contextlib.suppress(OSError):
                    samples.append(cgroup.frozen())
            time.sleep(0.02)

    runner.set_duty(0.3)
    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        outcome = runner.run()
    finally:
        done.set()
        sampler.join()
    assert outcome.state == "completed", outcome.message
    assert outcome.result == {"steps": 20}
    assert any(samples)
    assert not all(samples)
