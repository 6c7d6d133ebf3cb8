"""A populated coordinator for the dashboard's tests: owners, heaters, a day of telemetry, a job.

Everything goes through the public HTTP API, with any client that has ``post`` and ``put``
(the in-process test client or an ``httpx.Client`` to a real ``heatgrid serve``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx

__all__ = ["Fleet", "HttpClient", "heartbeat", "populate"]

TASK_ENERGY_J = 720_000.0  # 0.2 kWh


class HttpClient(Protocol):
    """What the helper needs of a client."""

    def post(self, url: str, **kwargs: Any) -> httpx.Response: ...

    def put(self, url: str, **kwargs: Any) -> httpx.Response: ...


@dataclass
class Fleet:
    """The keys, heaters and job that :func:`populate` made."""

    keys: dict[str, str] = field(default_factory=dict)
    heaters: dict[str, tuple[str, str]] = field(default_factory=dict)  # name -> (id, token)
    job_id: str = ""

    def device_headers(self, name: str) -> dict[str, str]:
        """The Authorization header of heater ``name``."""
        return {"Authorization": f"Bearer {self.heaters[name][1]}"}


def _ok(answer: httpx.Response, status: int = 200) -> dict[str, Any]:
    assert answer.status_code == status, answer.text
    return dict(answer.json())


def heartbeat(
    now_ts: float,
    *,
    samples: int,
    step_s: float = 300.0,
    setpoint_c: float = 21.0,
    base_temp_c: float = 20.6,
    max_power_w: float = 1200.0,
    workload: str = "mining",
    phase: float = 0.0,
) -> dict[str, Any]:
    """A heartbeat with ``samples`` samples every ``step_s`` ending at ``now_ts``: a room that
    swings around its setpoint while the heater cycles, and a two-hour heat window."""
    telemetry = []
    for index in range(samples):
        angle = 2 * math.pi * index / 48 + phase
        power_w = max_power_w * (0.55 + 0.45 * math.sin(angle))
        telemetry.append(
            {
                "sample_ts": now_ts - step_s * (samples - 1 - index),
                "room_temp_c": round(base_temp_c + 0.6 * math.sin(angle - 0.8), 2),
                "setpoint_c": setpoint_c,
                "power_w": round(power_w, 1),
                "device_temp_c": 55.0 + 0.02 * power_w,
                "workload": workload,
                "hashrate_ths": 13.5 * power_w / 1400.0 if workload == "mining" else None,
            }
        )
    return {
        "protocol_version": 1,
        "sent_ts": now_ts,
        "telemetry": telemetry,
        "heat_window": [
            {"start_ts": now_ts, "duration_s": 3600.0, "heat_power_w": 0.8 * max_power_w},
            {"start_ts": now_ts + 3600.0, "duration_s": 3600.0, "heat_power_w": 0.5 * max_power_w},
        ],
    }


_HEATERS = (
    # name, owner, kind, hardware, setpoint, base temperature, workload
    ("living room", "alice", "asic",
     {"model": "Antminer S9", "max_power_w": 1400.0, "min_power_w": 400.0, "hashrate_ths": 14.0},
     21.0, 20.8, "mining"),
    ("study", "alice", "gpu", {"model": "RTX 4090", "max_power_w": 450.0, "vram_gb": 24.0},
     20.0, 19.9, "task"),
    ("attic office", "bob", "gpu", {"model": "RTX 3090", "max_power_w": 350.0, "vram_gb": 24.0},
     19.5, 17.9, "task"),
    ("kitchen", "bob", "asic",
     {"model": "Antminer S19", "max_power_w": 3250.0, "min_power_w": 900.0, "hashrate_ths": 95.0},
     21.5, 21.4, "mining"),
)  # fmt: skip


def populate(client: HttpClient, operator_key: str, now_ts: float) -> Fleet:
    """Make owners alice and bob with two heaters each (a day of telemetry every 5 minutes),
    submitter carol with a three-task job: one task done on "study" with a checkpoint, one
    running on "attic office", one queued."""
    fleet = Fleet()
    operator = {"Authorization": f"Bearer {operator_key}"}
    fleet.keys["operator"] = operator_key
    for name, role in (("alice", "owner"), ("bob", "owner"), ("carol", "submitter")):
        answer = client.post("/v1/admin/keys", json={"name": name, "role": role}, headers=operator)
        fleet.keys[name] = str(_ok(answer, 201)["api_key"])
    for index, (name, owner, kind, hardware, setpoint_c, base_c, workload) in enumerate(_HEATERS):
        owner_headers = {"Authorization": f"Bearer {fleet.keys[owner]}"}
        code = _ok(
            client.post("/v1/admin/enrollment-codes", json={"ttl_s": 600}, headers=owner_headers),
            201,
        )["enrollment_code"]
        enrolled = _ok(
            client.post(
                "/v1/devices/enroll",
                json={
                    "enrollment_code": code,
                    "device_name": name,
                    "device_kind": kind,
                    "hardware": hardware,
                    "has_room": True,
                },
            ),
            201,
        )
        fleet.heaters[name] = (str(enrolled["device_id"]), str(enrolled["device_token"]))
        body = heartbeat(
            now_ts,
            samples=288,
            setpoint_c=setpoint_c,
            base_temp_c=base_c,
            max_power_w=float(hardware["max_power_w"]),
            workload=workload,
            phase=index,
        )
        _ok(
            client.post(
                f"/v1/devices/{enrolled['device_id']}/heartbeat",
                json=body,
                headers=fleet.device_headers(name),
            )
        )
    carol = {"Authorization": f"Bearer {fleet.keys['carol']}"}
    job = {
        "name": "digits-cnn",
        "device_kinds": ["gpu"],
        "tasks": [{"task_input": {"shard": n}, "energy_j": TASK_ENERGY_J} for n in range(3)],
    }
    fleet.job_id = str(_ok(client.post("/v1/jobs", json=job, headers=carol), 201)["job_id"])
    for name, finish in (("study", True), ("attic office", False)):
        device_id = fleet.heaters[name][0]
        headers = fleet.device_headers(name)
        lease = _ok(
            client.post(f"/v1/devices/{device_id}/claim", json={"slots": 1}, headers=headers)
        )["leases"][0]
        task_path = f"/v1/devices/{device_id}/tasks/{lease['task_id']}"
        saved_j = TASK_ENERGY_J / 2 if finish else TASK_ENERGY_J / 4
        _ok(
            client.put(
                f"{task_path}/checkpoint",
                params={"attempt": lease["attempt"], "energy_j": saved_j},
                content=b"model weights " * 300,
                headers={**headers, "Content-Type": "application/octet-stream"},
            )
        )
        if finish:
            _ok(
                client.post(
                    f"{task_path}/complete",
                    json={
                        "attempt": lease["attempt"],
                        "energy_j": TASK_ENERGY_J,
                        "result": {"accuracy": 0.97},
                    },
                    headers=headers,
                )
            )
    return fleet
