"""``heatgrid demo`` end to end: a live fleet that heats, mines through the coordinator's Stratum
proxy, runs the example job on CPU heaters, shows on the dashboard, and leaves no process
behind, whether it ends by itself or by Ctrl-C.

The demo runs as a user runs it (``python -m heatgrid.cli.main demo``), with its real mosquitto,
coordinator, Stratum proxy and agents, and the job's tasks in the bubblewrap sandbox. While it
runs, Debian's Chromium (through Playwright) logs in to the dashboard with the key the demo
printed, finds every heater in the fleet table, every miner heater on the mining page, and the
job completed on its page.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from heatgrid.cli._demo_processes import mosquitto_binary

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("sandbox_ready")]

_CHROMIUM = Path(os.environ.get("HEATGRID_CHROMIUM", "/usr/bin/chromium"))
_DOCS_IMAGES = Path(__file__).resolve().parents[2] / "docs" / "images"
_HOMES = 2
_WAIT_S = 240.0  # bounds for a stuck demo, not measurements
_DASHBOARD = r"Dashboard: (http://127\.0\.0\.1:\d+)\s+log in with the operator key (\S+)"


def _require_mosquitto() -> None:
    if mosquitto_binary() is None:
        if os.environ.get("HEATGRID_REQUIRE_SERVICES") == "1":
            pytest.fail("mosquitto is required here (HEATGRID_REQUIRE_SERVICES=1)")
        pytest.skip("mosquitto is not installed (apt-get install mosquitto)")


def _demo_dirs() -> set[Path]:
    return set(Path(tempfile.gettempdir()).glob("heatgrid-demo-*"))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _children_of(pid: int) -> set[int]:
    """PIDs whose parent is ``pid`` (Linux /proc)."""
    found = set()
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            text = status.read_text()
        except OSError:
            continue
        match = re.search(r"^PPid:\s+(\d+)$", text, re.MULTILINE)
        if match and int(match.group(1)) == pid:
            found.add(int(status.parent.name))
    return found


class _Demo:
    """A running ``heatgrid demo --json``: its stderr read line by line as it comes."""

    def __init__(self, *args: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "heatgrid.cli.main", "demo", "--json", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: list[str] = []
        self._seen = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            with self._seen:
                self.lines.append(line)
                self._seen.notify_all()
        with self._seen:
            self._seen.notify_all()

    def wait_for(self, pattern: str) -> re.Match[str]:
        """Wait for a line of stderr matching ``pattern``."""
        regex = re.compile(pattern)
        with self._seen:
            while True:
                for line in self.lines:
                    if match := regex.search(line):
                        return match
                if not self._reader.is_alive():
                    raise AssertionError("".join(self.lines))
                if not self._seen.wait(_WAIT_S):
                    raise AssertionError(f"no {pattern!r} within {_WAIT_S} s: {self.lines}")

    def __enter__(self) -> _Demo:
        return self

    def __exit__(self, *exc: object) -> None:
        """Stop a demo the test left running (a failed assertion): Ctrl-C, then SIGKILL."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=_WAIT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._reader.join(timeout=_WAIT_S)
        for stream in (self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()

    def finish(self) -> tuple[int, dict[str, Any]]:
        """Wait for the end; return its exit status and its JSON summary."""
        # stdout is read here and stderr only by the reader thread: communicate() would read
        # (and close) stderr too, under the thread's feet
        assert self.process.stdout is not None
        out = self.process.stdout.read()  # to its end: the demo ends by itself
        self.process.wait(timeout=_WAIT_S)
        self._reader.join(timeout=_WAIT_S)
        assert out.strip(), "".join(self.lines)
        return self.process.returncode, json.loads(out)


def _shot(page: Any, path: Path) -> None:
    page.screenshot(path=str(path), full_page=True)
    if os.environ.get("HEATGRID_UPDATE_SCREENSHOTS") == "1":
        _DOCS_IMAGES.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, _DOCS_IMAGES / path.name)


def _populated(rows: str) -> bool:
    """Whether every heater in the fleet table is online with a room temperature."""
    return not any(word in rows for word in ("no data", "offline", "– / –"))


def _until_shown(page: Any, ready: Any) -> None:
    """Reload ``page`` until ``ready()`` (the page is not live), within the test's bound."""
    deadline = time.monotonic() + _WAIT_S
    while not ready():
        assert time.monotonic() < deadline, page.inner_text("main")
        time.sleep(2.0)
        page.reload()


def _fleet_in_browser(url: str, key: str, names: list[str], shot: Path) -> str:
    """Log in; return the fleet, mining and job pages' text once every heater and the job show."""
    from playwright.sync_api import sync_playwright  # noqa: PLC0415

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(_CHROMIUM), args=["--headless", "--no-sandbox", "--disable-gpu"]
        )
        try:
            page = browser.new_context(base_url=url).new_page()
            page.set_default_timeout(_WAIT_S * 1000)
            page.goto("/login")
            page.fill("#api_key", key)
            page.click("button[type=submit]")
            page.wait_for_selector("header nav")
            for name in names:
                page.get_by_text(name).first.wait_for()
            # The rows fill in as the agents' heartbeats and telemetry arrive.
            deadline = time.monotonic() + _WAIT_S
            while not _populated(page.locator("#fleet-rows").inner_text()):
                assert time.monotonic() < deadline, page.inner_text("main")
                time.sleep(2.0)
                page.reload()
            _shot(page, shot / "demo-fleet.png")
            text: str = page.inner_text("main")
            page.goto("/mining")
            _until_shown(
                page,
                lambda: (
                    page.locator("#proxy-owners").count()
                    and all(
                        page.get_by_role("link", name=name, exact=True).count() for name in names
                    )
                ),
            )
            _shot(page, shot / "demo-mining.png")
            text += page.inner_text("main")
            page.goto("/jobs")
            page.get_by_role("link", name="examples/sweep").click()
            _until_shown(page, lambda: "completed" in page.inner_text("main"))
            _shot(page, shot / "demo-job.png")
            text += page.inner_text("main")
        finally:
            browser.close()
    return text


def _sweep_hits(seed: int, samples: int, chunk: int = 200_000) -> int:
    """The example sweep's ``hits``, computed here without the sandbox or a checkpoint."""
    generator = np.random.Generator(np.random.PCG64(seed))
    hits = 0
    for start in range(0, samples, chunk):
        points = generator.random((min(chunk, samples - start), 2))
        hits += int(np.count_nonzero((points**2).sum(axis=1) <= 1.0))
    return hits


def test_the_demo_heats_mines_through_the_proxy_runs_the_job_and_leaves_nothing(
    tmp_path: Path,
) -> None:
    _require_mosquitto()
    before = _demo_dirs()
    with _Demo("--duration", "90", "--homes", str(_HOMES), "--speed", "120") as demo:
        dashboard = demo.wait_for(_DASHBOARD)
        demo.wait_for("Fleet running")
        children = _children_of(demo.process.pid)
        page_text = None
        if _CHROMIUM.exists():
            page_text = _fleet_in_browser(
                dashboard.group(1),
                dashboard.group(2),
                ["Berlin flat", "Stockholm passive house"],
                tmp_path,
            )
        status, summary = demo.finish()

    assert status == 0, "".join(demo.lines)
    assert summary["acceptance"] == {
        "job_completed": True,
        "job_verified": True,
        "shares_accepted_and_credited": True,
        "homes_comfortable": True,
        "dashboard_answered": True,
        "no_process_left": True,
    }, summary
    if page_text is not None:
        assert "Berlin flat CPU heater" in page_text
        assert "Stockholm passive house CPU heater" in page_text
        assert "Heaters that mined in the last 24 hours" in page_text
        assert "Shares through the coordinator's Stratum proxy" in page_text
        assert "examples/sweep" in page_text
    assert len(summary["homes"]) == _HOMES
    for home in summary["homes"]:
        assert home["energy_kwh"] > 0.0
        assert home["cpu_heater_energy_kwh"] > 0.0, home  # the CPU heater heats the room too
        assert home["comfort_share"] == 1.0, home
        assert abs(home["room_temp_c"] - home["setpoint_c"]) <= 1.0, home
        assert home["shares_accepted"] > 0, home  # by the test pool, through the proxy
    assert summary["heat_delivered_kwh"] == pytest.approx(summary["energy_kwh"])
    assert summary["shares_rejected"] == 0
    # The proxy recorded and credited each owner's shares; the API says so per owner.
    credited = {o["owner_name"]: o["accepted_shares"] for o in summary["mining_owners"]}
    assert set(credited) == {"alice", "bob"}
    assert all(shares > 0 for shares in credited.values()), credited
    kinds = sorted((h["kind"], h["owner"]) for h in summary["heaters"])
    assert kinds == [("cpu", "alice"), ("cpu", "bob"), ("miners", "alice"), ("miners", "bob")]
    assert summary["devices_enrolled"] == summary["devices_online"] == 4
    # The example job ran in the CPU heaters' sandboxes, each task's result exactly the sweep's.
    (job,) = summary["jobs"]
    assert job["name"] == "examples/sweep"
    assert job["state"] == "completed"
    grid = json.loads((Path(__file__).parents[2] / "examples/sweep/grid.json").read_text())
    assert job["task_count"] == len(grid["seed"]) * len(grid["samples"])
    results = [task["result"] for task in summary["tasks"]]
    assert len(results) == job["task_count"]
    for result in results:
        assert result["hits"] == _sweep_hits(result["seed"], result["samples"]), result
    # The job's settled energy is the CPU heaters' task heat, counted on the emulated clock the
    # rooms run on (their meters also count the agents' idle draw): not 1/speed of it (1/60 on
    # the demo's clock). The share is CPU time over wall time, which a loaded host squeezes, so
    # the floor sits at 0.05, three times the 1/60 this guards against (0.2 failed once on the
    # loaded two-core machine).
    job_kwh = job["energy_j"] / 3.6e6
    assert 0.05 * summary["cpu_heater_energy_kwh"] < job_kwh <= summary["cpu_heater_energy_kwh"]
    assert summary["dashboard_status"] in {200, 303}
    assert summary["emulated_hours"] > 1.0
    assert summary["leftover_pids"] == []
    names = sorted(p["name"] for p in summary["processes"])
    assert names == [
        "agent 1", "agent 2", "agent 3", "agent 4", "coordinator", "mosquitto", "stratum proxy",
    ]  # fmt: skip
    pids = {p["pid"] for p in summary["processes"]}
    assert pids <= children
    assert not any(_alive(pid) for pid in children)
    assert _demo_dirs() == before


def test_ctrl_c_stops_every_process_the_demo_started() -> None:
    _require_mosquitto()
    before = _demo_dirs()
    with _Demo("--duration", "600", "--homes", "1") as demo:
        demo.wait_for("Fleet running")
        children = _children_of(demo.process.pid)
        assert len(children) >= 5  # mosquitto, the coordinator, the proxy, the home's 2 agents
        demo.process.send_signal(signal.SIGINT)
        status, summary = demo.finish()

    assert status == 130, "".join(demo.lines)
    assert summary["interrupted"] is True
    assert summary["leftover_pids"] == []
    assert {p["pid"] for p in summary["processes"]} == children
    assert not any(_alive(pid) for pid in children)
    assert _demo_dirs() == before
