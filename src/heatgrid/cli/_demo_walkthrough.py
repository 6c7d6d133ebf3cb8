"""``heatgrid demo --walkthrough``: the coordinator's enrollment flow, step by step.

It runs the real programs a user runs, in a temporary directory on loopback: migrates a SQLite
database, creates an owner's API key and a one-time enrollment code with ``heatgrid admin``,
starts ``heatgrid serve``, enrolls a heater over HTTP with the code, sends its first heartbeat,
and reads the fleet back through the API and ``/metrics``. Every process it starts is stopped
before it returns. The live fleet (``heatgrid demo`` without ``--walkthrough``) is in
:mod:`heatgrid.cli._demo_fleet`.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import typer
from rich.console import Console

from heatgrid.cli._tables import print_table

__all__ = ["walkthrough"]

_console = Console()
_STARTUP_TIMEOUT_S = 30.0


def _heatgrid(*args: str, env: dict[str, str]) -> str:
    command = [sys.executable, "-m", "heatgrid.cli.main", *args]
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"heatgrid {' '.join(args)} failed: {done.stderr.strip()}")
    return done.stdout


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def _serving(env: dict[str, str], log_path: Path) -> Iterator[str]:
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    import httpx  # noqa: PLC0415 - keeps `heatgrid --help` fast

    command = [sys.executable, "-m", "heatgrid.cli.main", "serve", "--port", str(port)]
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + _STARTUP_TIMEOUT_S
            while True:
                if process.poll() is not None:
                    raise RuntimeError(f"heatgrid serve exited: {log_path.read_text()[-2000:]}")
                try:
                    if httpx.get(f"{url}/readyz", timeout=1.0).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"heatgrid serve did not become ready at {url}")
                time.sleep(0.2)
            yield url
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _metric(text: str, name: str) -> float:
    from prometheus_client.parser import text_string_to_metric_families  # noqa: PLC0415

    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name:
                return float(sample.value)
    raise RuntimeError(f"/metrics has no {name}")


def _walkthrough(workdir: Path) -> dict[str, Any]:
    import httpx  # noqa: PLC0415 - keeps `heatgrid --help` fast

    from heatgrid.protocol.v1 import (  # noqa: PLC0415
        EnrollRequest,
        Hardware,
        Heartbeat,
        TelemetrySample,
    )

    env = {**os.environ, "HEATGRID_DATABASE_URL": f"sqlite:///{workdir / 'coordinator.sqlite3'}"}
    _console.print("[bold]1.[/] heatgrid db upgrade — migrate the embedded SQLite database")
    _heatgrid("db", "upgrade", env=env)
    _console.print("[bold]2.[/] heatgrid admin create-key / enroll-code — an owner and a code")
    key = json.loads(
        _heatgrid("admin", "create-key", "--role", "owner", "--name", "alice", "--json", env=env)
    )
    code = json.loads(_heatgrid("admin", "enroll-code", "--owner", "alice", "--json", env=env))
    _console.print("[bold]3.[/] heatgrid serve — the coordinator on a loopback port")
    with _serving(env, workdir / "serve.log") as url, httpx.Client(base_url=url) as http:
        now_ts = time.time()
        enroll = EnrollRequest(
            enrollment_code=code["enrollment_code"],
            device_name="living-room heater",
            device_kind="asic",
            has_room=True,
            hardware=Hardware(
                model="Antminer S9", max_power_w=1400.0, min_power_w=600.0, hashrate_ths=14.0
            ),
        )
        _console.print("[bold]4.[/] the heater enrolls with the one-time code")
        enrolled = http.post("/v1/devices/enroll", json=enroll.model_dump(mode="json"))
        if enrolled.status_code != 201:
            raise RuntimeError(f"enrollment refused: {enrolled.status_code} {enrolled.text}")
        device = enrolled.json()
        beat = Heartbeat(
            sent_ts=now_ts,
            telemetry=[TelemetrySample(sample_ts=now_ts, power_w=0.0, workload="idle")],
            heat_window=[],
        )
        _console.print("[bold]5.[/] its first heartbeat (idle: the room has not asked for heat)")
        answer = http.post(
            f"/v1/devices/{device['device_id']}/heartbeat",
            json=beat.model_dump(mode="json"),
            headers={"Authorization": f"Bearer {device['device_token']}"},
        )
        if answer.status_code != 200:
            raise RuntimeError(f"heartbeat refused: {answer.status_code} {answer.text}")
        reused = http.post("/v1/devices/enroll", json=enroll.model_dump(mode="json"))
        owner = {"Authorization": f"Bearer {key['api_key']}"}
        devices = http.get("/v1/devices", headers=owner).json()["items"]
        metrics = http.get("/metrics").text
    return {
        "device_id": device["device_id"],
        "code_reuse_status": reused.status_code,
        "devices": devices,
        "devices_online": _metric(metrics, "heatgrid_devices_online"),
    }


def walkthrough(*, keep: bool) -> None:
    """Walk through the coordinator's enrollment flow on embedded defaults (SQLite, loopback)."""
    import httpx  # noqa: PLC0415 - keeps `heatgrid --help` fast

    workdir = Path(tempfile.mkdtemp(prefix="heatgrid-demo-"))
    try:
        result = _walkthrough(workdir)
    except (RuntimeError, httpx.HTTPError) as error:
        Console(stderr=True).print(f"[bold red]demo failed:[/] {error}", highlight=False)
        raise typer.Exit(1) from error
    finally:
        if not keep:
            shutil.rmtree(workdir, ignore_errors=True)
    rows = [
        (
            item["device_id"],
            item["name"],
            item["kind"],
            f"{item['hardware']['max_power_w']:.0f}",
            "yes" if item["online"] else "no",
        )
        for item in result["devices"]
    ]
    print_table(
        ("device", "name", "kind", "max_power_w", "online"),
        rows,
        ids={"device"},
        title="Heaters on the coordinator, as their owner sees them",
        console=_console,
    )
    _console.print(
        f"Reusing the enrollment code was refused with HTTP {result['code_reuse_status']}; "
        f"devices online per /metrics: {result['devices_online']:.0f}."
        + (f" Files kept in {workdir}." if keep else "")
    )
