"""``heatgrid devices list``: an online column, and IDs that stay whole on 80 columns."""

from __future__ import annotations

import json
import time

import pytest
from sqlalchemy.orm import Session

from heatgrid.cli.main import main
from heatgrid.coordinator import accounts, devices
from heatgrid.coordinator.auth import DeviceIdentity
from heatgrid.coordinator.db import make_engine, make_session_factory
from heatgrid.protocol import v1

pytestmark = pytest.mark.usefixtures("backend")


def _enroll(session: Session, name: str, now_ts: float) -> str:
    code = accounts.create_enrollment_code(
        session, owner_name="alice", ttl_s=600.0, actor=None, now_ts=now_ts
    )
    request = v1.EnrollRequest(
        enrollment_code=code.token,
        device_name=name,
        device_kind="asic",
        has_room=True,
        hardware=v1.Hardware(model="Antminer S9", max_power_w=1400.0, min_power_w=600.0),
    )
    device, _ = devices.enroll_device(session, request, now_ts=now_ts)
    return device.id


def _fleet(database_url: str) -> tuple[str, str]:
    """Enroll two heaters of alice: one heard from a minute ago, one never heard from."""
    now_ts = time.time()
    engine = make_engine(database_url)
    try:
        with make_session_factory(engine)() as session:
            accounts.create_api_key(session, name="alice", role="owner", scopes=None, now_ts=now_ts)
            online = _enroll(session, "living room heater in the house by the lake", now_ts)
            silent = _enroll(session, "garage", now_ts)
            device = devices.get_device(session, online, None)
            beat = v1.Heartbeat(sent_ts=now_ts - 60.0, telemetry=[], heat_window=[])
            devices.record_heartbeat(
                session,
                DeviceIdentity.of(device),
                beat,
                now_ts=now_ts - 60.0,
                max_clock_skew_s=60.0,
            )
            session.commit()
    finally:
        engine.dispose()
    return online, silent


def test_devices_list_says_which_are_online_and_keeps_ids_whole_on_80_columns(
    database_url: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    online, silent = _fleet(database_url)
    monkeypatch.setenv("COLUMNS", "80")
    assert main(["devices", "list", "--database-url", database_url]) == 0
    out = capsys.readouterr().out
    assert max(len(line) for line in out.splitlines()) <= 80
    assert online in out
    assert silent in out
    assert "online" in out

    assert main(["devices", "list", "--json", "--database-url", database_url]) == 0
    records = {record["device_id"]: record for record in json.loads(capsys.readouterr().out)}
    assert records[online]["online"] is True
    assert records[silent]["online"] is False

    narrow = ["devices", "list", "--online-window-s", "30", "--json"]
    assert main([*narrow, "--database-url", database_url]) == 0
    records = {record["device_id"]: record for record in json.loads(capsys.readouterr().out)}
    assert records[online]["online"] is False  # heard from 60 s ago: outside a 30 s window
