"""The fleet read model against the per-device reads it replaces, side by side on one database.

A SQLite database is seeded with ``--devices`` heaters of one owner, each with a day of
telemetry (one sample every 5 minutes) and a two-segment heat window. Then, alternately:

* ``views.fleet_view``: one page of the fleet in three SQL statements;
* the baseline: what the API and CLI do today for the same numbers, ``devices.list_devices``
  and, per device, ``devices.latest_sample`` and ``devices.heat_window`` (1 + 2N statements).

Both are timed (best of several runs) and their SQL statements counted, each in a new
transaction (on SQLite that adds its ``BEGIN IMMEDIATE``).

Usage: ``python bench/bench_views.py --out PATH [--devices N]``.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import event, insert
from sqlalchemy.orm import Session

from heatgrid.coordinator import devices, views
from heatgrid.coordinator.accounts import create_api_key
from heatgrid.coordinator.auth import authenticate_account
from heatgrid.coordinator.db import make_engine, make_session_factory, upgrade
from heatgrid.coordinator.db.models import Device, HeatWindowSegmentRow, TelemetrySampleRow

NOW_TS = 1_767_225_600.0
_SAMPLES = 288
_STEP_S = 300.0


def _seed(session: Session, owner_id: int, count: int) -> None:
    session.execute(
        insert(Device),
        [
            {
                "id": f"{index:016x}",
                "owner_id": owner_id,
                "name": f"heater {index:05d}",
                "kind": "asic",
                "hardware": {"max_power_w": 1400.0},
                "has_room": True,
                "energy_price_eur_per_kwh": None,
                "token_hash": "0" * 64,
                "enrolled_ts": NOW_TS - 86_400.0,
                "last_seen_ts": NOW_TS,
                "revoked_ts": None,
            }
            for index in range(count)
        ],
    )
    for index in range(count):
        device_id = f"{index:016x}"
        session.execute(
            insert(TelemetrySampleRow),
            [
                {
                    "device_id": device_id,
                    "sample_ts": NOW_TS - _STEP_S * step,
                    "received_ts": NOW_TS,
                    "room_temp_c": 20.0 + (step % 10) / 10,
                    "setpoint_c": 21.0,
                    "power_w": 1000.0 + step,
                    "device_temp_c": 60.0,
                    "workload": "mining",
                    "hashrate_ths": 13.0,
                    "task_id": None,
                }
                for step in range(_SAMPLES)
            ],
        )
        session.execute(
            insert(HeatWindowSegmentRow),
            [
                {
                    "device_id": device_id,
                    "start_ts": NOW_TS + 3600.0 * segment,
                    "duration_s": 3600.0,
                    "heat_power_w": 900.0,
                    "received_ts": NOW_TS,
                }
                for segment in range(2)
            ],
        )
    session.commit()


def _best_s(run: Callable[[], object], repeats: int = 5) -> float:
    best_s = float("inf")
    for _ in range(repeats):
        started_s = time.perf_counter()
        run()
        best_s = min(best_s, time.perf_counter() - started_s)
    return best_s


def main() -> None:
    """Run the benchmark and write its JSON."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--devices", type=int, default=500)
    args = parser.parse_args()
    if not args.devices > 0:
        parser.error("--devices must be positive")
    with tempfile.TemporaryDirectory() as directory:
        engine = make_engine(f"sqlite:///{directory}/bench.sqlite3")
        upgrade(engine)
        statements: list[str] = []
        event.listen(engine, "before_cursor_execute", lambda *call: statements.append(str(call[2])))
        with make_session_factory(engine)() as session:
            issued = create_api_key(session, name="owner", role="owner", scopes=None, now_ts=NOW_TS)
            actor = authenticate_account(session, issued.token)
            _seed(session, actor.account_id, args.devices)

            def read_model() -> int:
                page = views.fleet_view(
                    session, actor, now_ts=NOW_TS, online_window_s=180.0, limit=args.devices
                )
                return len(page.devices)

            def per_device() -> int:
                shown = 0
                for device in devices.list_devices(session, actor):
                    devices.latest_sample(session, device.id)
                    devices.heat_window(session, device.id)
                    shown += 1
                return shown

            counts = {}
            for name, run in (("read_model", read_model), ("per_device", per_device)):
                session.commit()
                session.expunge_all()
                before = len(statements)
                assert run() == args.devices
                counts[name] = len(statements) - before
            read_model_s = _best_s(read_model)
            per_device_s = _best_s(per_device)
        engine.dispose()
    result = {
        "benchmark": "views",
        "what": "one page of the fleet (latest sample, plan, health of every heater)",
        "devices": args.devices,
        "samples_per_device": _SAMPLES,
        "read_model_s": read_model_s,
        "read_model_statements": counts["read_model"],
        "per_device_s": per_device_s,
        "per_device_statements": counts["per_device"],
        "baseline": "per_device_s (list_devices + latest_sample + heat_window per device)",
        "ratio_vs_baseline": per_device_s / read_model_s,
        "machine": {"python": platform.python_version(), "processor": platform.machine()},
    }
    text = json.dumps(result, indent=2)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
