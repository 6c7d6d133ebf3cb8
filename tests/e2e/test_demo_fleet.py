"""``heatgrid demo`` end to end: a live fleet that heats, mines, shows on the dashboard, and
leaves no process behind, whether it ends by itself or by Ctrl-C.

The demo runs as a user runs it (``python -m heatgrid.cli.main demo``), with its real mosquitto,
coordinator and agents. While it runs, Debian's Chromium (through Playwright) logs in to the
dashboard with the key the demo printed and finds every home in the fleet table.
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

import pytest

from heatgrid.cli._demo_processes import mosquitto_binary

pytestmark = pytest.mark.slow

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
                self.process.communicate(timeout=_WAIT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.communicate()
        self._reader.join(timeout=_WAIT_S)

    def finish(self) -> tuple[int, dict[str, Any]]:
        """Wait for the end; return its exit status and its JSON summary."""
        out, _ = self.process.communicate(timeout=_WAIT_S)
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


def _fleet_in_browser(url: str, key: str, names: list[str], shot: Path) -> str:
    """Log in to the dashboard; return the fleet and mining pages' text once every home shows."""
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
            deadline = time.monotonic() + _WAIT_S
            while not all(page.get_by_role("link", name=name).count() for name in names):
                assert time.monotonic() < deadline, page.inner_text("main")
                time.sleep(2.0)  # the page is not live: read it again until every home mined
                page.reload()
            _shot(page, shot / "demo-mining.png")
            text += page.inner_text("main")
        finally:
            browser.close()
    return text


def test_the_demo_heats_every_home_mines_and_leaves_nothing_behind(tmp_path: Path) -> None:
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
    if page_text is not None:
        assert "Berlin flat" in page_text
        assert "Stockholm passive house" in page_text
        assert "Heaters that mined in the last 24 hours" in page_text
    assert len(summary["homes"]) == _HOMES
    for home in summary["homes"]:
        assert home["energy_kwh"] > 0.0
        assert home["comfort_share"] is not None
        assert home["comfort_share"] >= 0.9, home
        assert abs(home["room_temp_c"] - home["setpoint_c"]) <= 1.0, home
        assert home["shares_accepted"] > 0, home
    assert summary["heat_delivered_kwh"] == pytest.approx(summary["energy_kwh"])
    assert summary["shares_rejected"] == 0
    assert summary["devices_enrolled"] == _HOMES
    assert summary["devices_online"] == _HOMES
    assert summary["tasks_by_state"] == {"queued": _HOMES}
    assert summary["dashboard_status"] in {200, 303}
    assert summary["emulated_hours"] > 1.0
    assert summary["leftover_pids"] == []
    names = sorted(p["name"] for p in summary["processes"])
    assert names == ["agent 1", "agent 2", "coordinator", "mosquitto"]
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
        assert len(children) >= 3  # mosquitto, the coordinator, the agent
        demo.process.send_signal(signal.SIGINT)
        status, summary = demo.finish()

    assert status == 130, "".join(demo.lines)
    assert summary["interrupted"] is True
    assert summary["leftover_pids"] == []
    assert {p["pid"] for p in summary["processes"]} == children
    assert not any(_alive(pid) for pid in children)
    assert _demo_dirs() == before
