"""The real ``heatgrid serve`` process, over real HTTP on a loopback port, with SQLite."""

from __future__ import annotations

import json
import time

import httpx
import pytest

from heatgrid.cli.main import main
from heatgrid.coordinator.db import head_revision

from .serve_process import ServeProcess


def _cli_json(capsys, *args: str) -> dict:
    assert main(list(args)) == 0
    return json.loads(capsys.readouterr().out)


@pytest.mark.slow
def test_serve_enrolls_and_takes_heartbeats_over_http(tmp_path, capsys) -> None:
    url = f"sqlite:///{tmp_path / 'coordinator.sqlite3'}"
    assert main(["db", "upgrade", "--database-url", url]) == 0
    assert f"-> {head_revision()}" in capsys.readouterr().out
    owner = _cli_json(
        capsys, "admin", "create-key", "--role", "owner", "--name", "alice", "--json",
        "--database-url", url,
    )  # fmt: skip
    code = _cli_json(
        capsys, "admin", "enroll-code", "--owner", "alice", "--json", "--database-url", url
    )
    log_path = tmp_path / "serve.log"
    server = ServeProcess(url, log_path, ("--heartbeat-interval-s", "30"))
    server.start()
    try:
        server.wait_ready()
        with httpx.Client(base_url=server.url, timeout=30.0) as client:
            assert client.get("/readyz").json()["status"] == "ready"
            enrolled = client.post(
                "/v1/devices/enroll",
                json={
                    "enrollment_code": code["enrollment_code"],
                    "device_name": "study",
                    "device_kind": "gpu",
                    "hardware": {"max_power_w": 450.0, "vram_gb": 24.0},
                    "has_room": True,
                },
            )
            assert enrolled.status_code == 201, enrolled.text
            device_id = enrolled.json()["device_id"]
            assert enrolled.json()["heartbeat_interval_s"] == 30.0
            headers = {"Authorization": f"Bearer {enrolled.json()['device_token']}"}
            now_ts = time.time()
            heartbeat = {
                "sent_ts": now_ts,
                "telemetry": [{"sample_ts": now_ts, "power_w": 420.0, "workload": "task"}],
                "heat_window": [{"start_ts": now_ts, "duration_s": 900.0, "heat_power_w": 400.0}],
            }
            for stored in (1, 0):
                answer = client.post(
                    f"/v1/devices/{device_id}/heartbeat", json=heartbeat, headers=headers
                )
                assert answer.status_code == 200, answer.text
                assert answer.json()["stored_samples"] == stored
            shown = client.get(
                f"/v1/devices/{device_id}",
                headers={"Authorization": f"Bearer {owner['api_key']}"},
            )
            assert shown.json()["latest_sample"]["power_w"] == 420.0
            assert shown.json()["online"] is True
    finally:
        server.stop()
    records = [json.loads(line) for line in log_path.read_text().splitlines() if line.strip()]
    requests = [record for record in records if record.get("message") == "request"]
    assert {"route": "/v1/devices/{device_id}/heartbeat", "status": 200}.items() <= requests[
        -2
    ].items()
    assert not [record for record in records if record["level"] in ("error", "critical")]
