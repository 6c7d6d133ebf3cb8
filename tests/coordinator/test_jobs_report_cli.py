"""``heatgrid jobs report``: a job's energy report over HTTP, as a table, JSON and a PNG."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from heatgrid.cli.main import main
from heatgrid.coordinator.accounts import create_api_key
from heatgrid.coordinator.db import make_engine, make_session_factory

from .test_jobs_cli import served

__all__ = ["served"]  # the fixture, shared with the other jobs CLI tests

_KWH = 3.6e6


def _owner_key(database_url: str) -> str:
    engine = make_engine(database_url)
    with make_session_factory(engine)() as session:
        key = create_api_key(
            session, name="alice", role="owner", scopes=None, now_ts=time.time()
        ).token
    engine.dispose()
    return key


def _heat_one_task(url: str, owner_key: str, job_energy_j: float) -> None:
    """Enroll a German heater, claim the task, report samples of a room wanting heat, finish."""
    with httpx.Client(base_url=url, timeout=30.0) as client:
        code = client.post(
            "/v1/admin/enrollment-codes",
            json={"ttl_s": 600.0},
            headers={"Authorization": f"Bearer {owner_key}"},
        ).json()["enrollment_code"]
        enrolled = client.post(
            "/v1/devices/enroll",
            json={
                "enrollment_code": code,
                "device_name": "study",
                "device_kind": "cpu",
                "hardware": {"max_power_w": 500.0},
                "has_room": True,
                "country_code": "DE",
            },
        ).json()
        device_id = enrolled["device_id"]
        auth = {"Authorization": f"Bearer {enrolled['device_token']}"}

        def beat(samples: list[dict[str, Any]]) -> None:
            now_ts = time.time()
            answer = client.post(
                f"/v1/devices/{device_id}/heartbeat",
                json={
                    "protocol_version": 1,
                    "sent_ts": now_ts,
                    "telemetry": samples,
                    "heat_window": [
                        {"start_ts": now_ts, "duration_s": 6 * 3600.0, "heat_power_w": 500.0}
                    ],
                },
                headers=auth,
            )
            assert answer.status_code == 200, answer.text

        beat([])
        [lease] = client.post(
            f"/v1/devices/{device_id}/claim", json={"slots": 1}, headers=auth
        ).json()["leases"]
        now_ts = time.time()
        beat(
            [
                {
                    "sample_ts": now_ts - 60.0 * (1 - i),
                    "room_temp_c": 20.0,
                    "setpoint_c": 21.0,
                    "power_w": 500.0,
                    "workload": "task",
                    "task_id": lease["task_id"],
                }
                for i in range(2)
            ]
        )
        done = client.post(
            f"/v1/devices/{device_id}/tasks/{lease['task_id']}/complete",
            json={"attempt": lease["attempt"], "energy_j": job_energy_j, "result": {"ok": 1}},
            headers=auth,
        )
        assert done.status_code == 200, done.text


def test_the_report_prints_its_figures_writes_json_and_a_plot(
    served: tuple[str, str, str],
    database_url: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    url, carol, dave = served
    spec = tmp_path / "job.json"
    job = {"name": "render", "device_kinds": ["cpu"], "tasks": [{"energy_j": 2 * _KWH}]}
    spec.write_text(json.dumps(job))
    common = ("--url", url, "--api-key", carol)
    assert main(["jobs", "submit", str(spec), *common, "--json"]) == 0
    job_id = json.loads(capsys.readouterr().out)["job_id"]
    _heat_one_task(url, _owner_key(database_url), 2 * _KWH)

    plot = tmp_path / "report.png"
    assert main(["jobs", "report", job_id, *common, "--plot", str(plot)]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "energy 2.000 kWh" in out
    assert "useful 2.000 kWh" in out
    assert "saved" in out
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    assert main(["jobs", "report", job_id, *common, "--json", "--alternative", "resistive"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["alternative"] == "resistive"
    assert report["useful_heat_j"] == pytest.approx(2 * _KWH)
    assert [device["country_code"] for device in report["devices"]] == ["DE"]

    assert main(["jobs", "report", job_id, "--url", url, "--api-key", dave]) == 2
    assert "404" in capsys.readouterr().err
    assert main(["jobs", "report", job_id, *common, "--plot", str(tmp_path / "r.jpg")]) == 2
    assert "--plot" in capsys.readouterr().err
    assert main(["jobs", "report", job_id, *common, "--pue", "0.5"]) == 2
    assert "--pue" in capsys.readouterr().err
