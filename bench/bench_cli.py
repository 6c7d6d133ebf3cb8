"""Start-up time of the ``heatgrid`` command: three ``--help`` calls and ``serve`` to a 200.

Each measurement runs a fresh Python process the way a user's shell does
(``python -m heatgrid.cli.main ...``), ``--repeats`` times, and keeps the median wall time.
The baseline is ``python -c pass`` in the same run, measured the same way, so the ratios say
how much heatgrid adds to a bare interpreter on this machine. The CPU time (user + system) of
each ``--help`` is reported too: on a shared, loaded machine it varies much less than the wall
time.

``serve`` is timed from the process start to the first 200 from ``/healthz``, on a SQLite
database migrated beforehand (``heatgrid db upgrade``), on a free loopback port.
Usage: ``python bench/bench_cli.py --out PATH [--repeats N]``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from _postgres import free_port

_HELP_COMMANDS = {
    "heatgrid --help": ["--help"],
    "heatgrid admin --help": ["admin", "--help"],
    "heatgrid economics --help": ["economics", "--help"],
}
_GOAL_HELP_S = 0.3
_GOAL_SERVE_S = 2.0
_SERVE_TIMEOUT_S = 60.0
_HEATGRID = [sys.executable, "-m", "heatgrid.cli.main"]


def _times_s(command: list[str]) -> tuple[float, float]:
    """Run ``command``; return its wall time and its CPU time (user + system) [s]."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall_s = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall_s, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def _median_s(command: list[str], repeats: int) -> tuple[float, float]:
    """Median wall and CPU time of ``command`` over ``repeats`` runs after a warm-up [s]."""
    _times_s(command)  # warm the file cache and the bytecode
    runs = [_times_s(command) for _ in range(repeats)]
    return statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs)


def _healthz_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1.0) as answer:
            return bool(answer.status == 200)
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return False


def _serve_once_s(database_url: str, log: Path) -> float:
    port = free_port()
    url = f"http://127.0.0.1:{port}/healthz"
    command = [*_HEATGRID, "serve", "--port", str(port), "--database-url", database_url]
    with log.open("ab") as out:
        start = time.perf_counter()
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
        try:
            while not _healthz_ok(url):
                if process.poll() is not None:
                    raise RuntimeError(f"heatgrid serve exited: {log.read_text()[-2000:]}")
                if time.perf_counter() - start > _SERVE_TIMEOUT_S:
                    raise RuntimeError(f"heatgrid serve not ready in {_SERVE_TIMEOUT_S:g} s")
                time.sleep(0.01)
            return time.perf_counter() - start
        finally:
            os.kill(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=30.0)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _serve_s(repeats: int) -> float:
    with tempfile.TemporaryDirectory(prefix="heatgrid-bench-cli-") as directory:
        database_url = f"sqlite:///{Path(directory) / 'coordinator.sqlite3'}"
        subprocess.run(
            [*_HEATGRID, "db", "upgrade", "--database-url", database_url],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        log = Path(directory) / "serve.log"
        _serve_once_s(database_url, log)  # warm, as for the --help calls
        return statistics.median(_serve_once_s(database_url, log) for _ in range(repeats))


def main() -> None:
    """Run the benchmark and write its JSON."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    baseline_s, baseline_cpu_s = _median_s([sys.executable, "-c", "pass"], args.repeats)
    commands: dict[str, dict[str, float | bool]] = {}
    for name, argv in _HELP_COMMANDS.items():
        wall_s, cpu_s = _median_s([*_HEATGRID, *argv], args.repeats)
        commands[name] = {
            "wall_s": wall_s,
            "ratio_vs_baseline": wall_s / baseline_s,
            "cpu_s": cpu_s,
            "cpu_ratio_vs_baseline": cpu_s / baseline_cpu_s,
            "goal_s": _GOAL_HELP_S,
            "meets_goal": wall_s < _GOAL_HELP_S,
        }
    serve_s = _serve_s(args.repeats)
    commands["heatgrid serve to 200 on /healthz"] = {
        "wall_s": serve_s,
        "ratio_vs_baseline": serve_s / baseline_s,
        "goal_s": _GOAL_SERVE_S,
        "meets_goal": serve_s < _GOAL_SERVE_S,
    }
    result = {
        "benchmark": "cli",
        "what": "median wall time from process start: --help output, or serve's first 200",
        "repeats": args.repeats,
        "baseline": "python -c pass (same run)",
        "baseline_s": baseline_s,
        "baseline_cpu_s": baseline_cpu_s,
        "commands": commands,
        "machine": {
            "python": platform.python_version(),
            "processor": platform.machine(),
            "cpus": os.cpu_count(),
            "load_average_1min": os.getloadavg()[0],
        },
    }
    text = json.dumps(result, indent=2)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
