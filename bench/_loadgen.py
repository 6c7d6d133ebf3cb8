"""Load generator: one process driving many keep-alive connections in a closed loop.

``bench_coordinator.py`` starts several of these side by side, as
``python bench/_loadgen.py PLAN.json RESULT.json``. Each connection is one simulated client
that sends its next request as soon as the last one was answered, cycling over its own devices
(no two connections share a device). Modes:

* ``heartbeat``: ``POST /v1/devices/{id}/heartbeat`` with one telemetry sample and a two-hour
  heat window, as an agent sends each minute.
* ``claim``: ``POST /v1/devices/{id}/claim`` for ``slots`` tasks, then their results: with one
  slot ``POST /v1/devices/{id}/tasks/{task}/complete``, with more one
  ``POST /v1/devices/{id}/completions`` for all; one operation is a task claimed and completed.
* ``echo``: the heartbeat's exact bytes and headers to the baseline's ``POST /echo``.

All processes start their warm-up at the plan's ``start_ts`` (wall clock, shared by the
processes) and count only operations that finish inside the measured window after it.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from _http import Connection, HttpError

__all__ = ["MODES", "Plan", "Tally", "run_plan"]

MODES = ("echo", "heartbeat", "claim")
"""What a load generator can drive."""

_ERROR_EXAMPLES = 5


@dataclass(frozen=True)
class Plan:
    """What one load generator process does.

    Attributes
    ----------
    mode : str
        One of :data:`MODES`.
    host, port : str, int
        The server.
    connections : int
        Connections (concurrent simulated clients) of this process.
    devices : list of [device_id, token]
        The devices this process drives, spread over its connections.
    start_ts : float
        When the warm-up starts [POSIX s].
    warmup_s, duration_s : float
        Warm-up (not counted) and measured window after it [s].
    slots : int
        Tasks per claim (``claim`` mode).
    """

    mode: str
    host: str
    port: int
    connections: int
    devices: list[tuple[str, str]]
    start_ts: float
    warmup_s: float
    duration_s: float
    slots: int = 1


@dataclass
class Tally:
    """What one process measured inside the window (latencies in seconds).

    ``requests`` counts every request answered, warm-up included (statements per request).
    """

    ops: int = 0
    requests: int = 0
    latencies_s: list[float] = field(default_factory=list)
    claim_latencies_s: list[float] = field(default_factory=list)
    complete_latencies_s: list[float] = field(default_factory=list)
    empty_claims: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    error_examples: list[str] = field(default_factory=list)

    def error(self, kind: str, example: str) -> None:
        """Count an error of ``kind`` and keep the first few examples."""
        self.errors[kind] = self.errors.get(kind, 0) + 1
        if len(self.error_examples) < _ERROR_EXAMPLES:
            self.error_examples.append(example[:500])


def heartbeat_body(now_ts: float) -> bytes:
    """Return a heartbeat of a GPU heater at ``now_ts`` [POSIX s]: one sample, 2-hour window."""
    return json.dumps(
        {
            "protocol_version": 1,
            "sent_ts": now_ts,
            "telemetry": [
                {
                    "sample_ts": now_ts,
                    "room_temp_c": 20.5,
                    "setpoint_c": 21.0,
                    "power_w": 1150.0,
                    "device_temp_c": 65.0,
                    "workload": "task",
                }
            ],
            "heat_window": [
                {"start_ts": now_ts, "duration_s": 3600.0, "heat_power_w": 1200.0},
                {"start_ts": now_ts + 3600.0, "duration_s": 3600.0, "heat_power_w": 800.0},
            ],
        }
    ).encode()


async def _checked(
    connection: Connection, path: str, body: bytes, token: str, tally: Tally
) -> bytes | None:
    """POST and return the answer body when it is 200; else count the error, return None.

    Errors are counted in the warm-up too: any error is worth reporting.
    """
    try:
        status, answer = await connection.post(path, body, token)
    except HttpError as error:
        tally.error("connection", str(error))
        return None
    tally.requests += 1
    if status != 200:
        tally.error(f"status {status}", f"{path}: {answer.decode(errors='replace')}")
        return None
    return answer


def _completion(lease: dict[str, Any]) -> dict[str, Any]:
    return {
        "protocol_version": 1,
        "attempt": lease["attempt"],
        "energy_j": lease["energy_j"],
        "result": {"task_id": lease["task_id"], "ok": True},
    }


async def _claim_complete(  # noqa: PLR0917 - one private caller
    connection: Connection,
    device_id: str,
    token: str,
    tally: Tally,
    window: tuple[float, float],
    slots: int,
) -> None:
    base = f"/v1/devices/{device_id}"
    started_s = time.perf_counter()
    claim = json.dumps({"protocol_version": 1, "slots": slots}).encode()
    answer = await _checked(connection, f"{base}/claim", claim, token, tally)
    claimed_s = time.perf_counter()
    if answer is None:
        return
    leases = json.loads(answer)["leases"]
    in_window = window[0] <= time.time() <= window[1]
    if not leases:
        tally.empty_claims += int(in_window)
        return
    if slots == 1:
        [lease] = leases
        path = f"{base}/tasks/{lease['task_id']}/complete"
        body = json.dumps(_completion(lease)).encode()
    else:
        path = f"{base}/completions"
        items = [{"task_id": lease["task_id"], **_completion(lease)} for lease in leases]
        for item in items:
            del item["protocol_version"]
        body = json.dumps({"protocol_version": 1, "completions": items}).encode()
    done = await _checked(connection, path, body, token, tally)
    if done is None:
        return
    if slots > 1:
        refused = [o for o in json.loads(done)["outcomes"] if o["status_code"] != 200]
        for outcome in refused:
            tally.error(f"completion {outcome['status_code']}", str(outcome["detail"]))
        if refused:
            return
    ended_s = time.perf_counter()
    if window[0] <= time.time() <= window[1]:
        tally.ops += len(leases)
        tally.latencies_s.append(ended_s - started_s)
        tally.claim_latencies_s.append(claimed_s - started_s)
        tally.complete_latencies_s.append(ended_s - claimed_s)


async def _client(
    plan: Plan, devices: list[tuple[str, str]], tally: Tally, window: tuple[float, float]
) -> None:
    connection = Connection(plan.host, plan.port)
    index = 0
    try:
        while time.time() < window[1]:
            device_id, token = devices[index % len(devices)]
            index += 1
            if plan.mode == "claim":
                await _claim_complete(connection, device_id, token, tally, window, plan.slots)
                continue
            path = "/echo" if plan.mode == "echo" else f"/v1/devices/{device_id}/heartbeat"
            body = heartbeat_body(time.time())
            started_s = time.perf_counter()
            answer = await _checked(connection, path, body, token, tally)
            ended_s = time.perf_counter()
            if answer is not None and window[0] <= time.time() <= window[1]:
                tally.ops += 1
                tally.latencies_s.append(ended_s - started_s)
    finally:
        await connection.close()


async def run_plan(plan: Plan) -> Tally:
    """Run ``plan`` and return what was measured inside its window."""
    if plan.mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, got {plan.mode!r}")
    if len(plan.devices) < plan.connections:
        raise ValueError(
            f"{len(plan.devices)} devices cannot be spread over {plan.connections} connections"
        )
    window = (plan.start_ts + plan.warmup_s, plan.start_ts + plan.warmup_s + plan.duration_s)
    await asyncio.sleep(max(0.0, plan.start_ts - time.time()))
    tally = Tally()
    await asyncio.gather(
        *(
            _client(plan, plan.devices[index :: plan.connections], tally, window)
            for index in range(plan.connections)
        )
    )
    return tally


def _load_plan(path: Path) -> Plan:
    raw: dict[str, Any] = json.loads(path.read_text())
    raw["devices"] = [(str(device), str(token)) for device, token in raw["devices"]]
    return Plan(**raw)


def main() -> None:
    """Run the plan in ``argv[1]`` and write the tally as JSON to ``argv[2]``."""
    if len(sys.argv) != 3:
        sys.exit("usage: python bench/_loadgen.py PLAN.json RESULT.json")
    try:
        tally = asyncio.run(run_plan(_load_plan(Path(sys.argv[1]))))
    except KeyboardInterrupt:  # Ctrl-C reaches the whole process group; the parent reports
        sys.exit(130)
    Path(sys.argv[2]).write_text(json.dumps(tally.__dict__))


if __name__ == "__main__":
    main()
