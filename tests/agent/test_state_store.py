"""The agent's local SQLite state file."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from heatgrid.agent.state_store import Identity, StateStore
from heatgrid.core.errors import InputError
from heatgrid.protocol.v1 import TelemetrySample

T0_TS = 1_767_225_600.0


def _sample(ts: float, power_w: float = 100.0) -> TelemetrySample:
    return TelemetrySample(sample_ts=ts, power_w=power_w, workload="boost", room_temp_c=20.0)


def test_file_is_private_and_identity_survives_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "agent.sqlite3"
    with StateStore(path) as store:
        assert store.identity is None
        store.save_identity(Identity(url="http://c", device_id="d1", device_token="secret-1"))
        assert store.file_mode == 0o600
    with StateStore(path) as store:
        assert store.identity == Identity(url="http://c", device_id="d1", device_token="secret-1")
        assert store.file_mode == 0o600


def test_values_keep_infinities(tmp_path: Path) -> None:
    with StateStore(tmp_path / "s.sqlite3") as store:
        store.put("x", {"since_ts": -math.inf, "n": 1})
        assert store.get("x") == {"since_ts": -math.inf, "n": 1}
        assert store.get("missing") is None


def test_telemetry_queue_in_order_once_per_timestamp(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite3"
    with StateStore(path) as store:
        for ts in (T0_TS + 120.0, T0_TS, T0_TS + 60.0):
            store.enqueue(_sample(ts))
        store.enqueue(_sample(T0_TS, power_w=5.0))  # replaces the first at T0
        assert store.pending_count() == 3
    with StateStore(path) as store:
        pending = store.pending(2)
        assert [s.sample_ts for s in pending] == [T0_TS, T0_TS + 60.0]
        assert pending[0].power_w == 5.0
        store.acknowledge(pending)
        assert [s.sample_ts for s in store.pending(10)] == [T0_TS + 120.0]


def test_a_foreign_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "not-a-db"
    path.write_bytes(b"this is not sqlite at all" * 100)
    with pytest.raises(InputError, match=r"state\.path"):
        StateStore(path)
