"""Enrollment with one-time codes, and who sees which devices."""

from __future__ import annotations

import pytest
from sqlalchemy import select, text

from heatgrid.coordinator.db import make_engine, make_session_factory
from heatgrid.coordinator.db.models import ApiKey, Device, EnrollmentCode

pytestmark = pytest.mark.usefixtures("backend")


def test_a_code_enrolls_one_device_and_cannot_be_reused(coordinator) -> None:
    owner_key = coordinator.owner_key("alice")
    code = coordinator.enrollment_code(owner_key)
    device_id, device_token = coordinator.enroll(code)
    assert device_token.startswith(f"hgd_{device_id}_")

    again = coordinator.client.post("/v1/devices/enroll", json=coordinator.enroll_body(code))
    assert again.status_code == 409
    assert "enrollment_code" in again.json()["detail"]

    listed = coordinator.client.get("/v1/devices", headers=coordinator.auth(owner_key))
    assert listed.status_code == 200
    [device] = listed.json()["items"]
    assert device["device_id"] == device_id
    assert device["owner_name"] == "alice"
    assert device["hardware"]["max_power_w"] == 1400.0
    assert device["online"] is False  # no heartbeat yet


def test_an_expired_or_unknown_code_is_refused(coordinator) -> None:
    owner_key = coordinator.owner_key()
    code = coordinator.enrollment_code(owner_key, ttl_s=600.0)
    coordinator.clock.advance(601.0)
    expired = coordinator.client.post("/v1/devices/enroll", json=coordinator.enroll_body(code))
    assert expired.status_code == 410
    assert "enrollment_code" in expired.json()["detail"]

    code_id = code.split("_")[1]
    forged = coordinator.client.post(
        "/v1/devices/enroll", json=coordinator.enroll_body(f"hge_{code_id}_{'x' * 43}")
    )
    assert forged.status_code == 403
    unknown = coordinator.client.post(
        "/v1/devices/enroll", json=coordinator.enroll_body("hge_0000_" + "y" * 43)
    )
    assert unknown.status_code == 403
    assert "enrollment_code" in unknown.json()["detail"]


def test_owners_see_their_own_devices_and_the_operator_sees_all(coordinator) -> None:
    alice, bob = coordinator.owner_key("alice"), coordinator.owner_key("bob")
    alice_device, _ = coordinator.enroll(coordinator.enrollment_code(alice), "attic")
    bob_device, _ = coordinator.enroll(coordinator.enrollment_code(bob), "cellar")

    def listed(key: str) -> set[str]:
        answer = coordinator.client.get("/v1/devices", headers=coordinator.auth(key))
        assert answer.status_code == 200
        return {device["device_id"] for device in answer.json()["items"]}

    assert listed(alice) == {alice_device}
    assert listed(bob) == {bob_device}
    assert listed(coordinator.operator_key) == {alice_device, bob_device}
    hidden = coordinator.client.get(f"/v1/devices/{bob_device}", headers=coordinator.auth(alice))
    assert hidden.status_code == 404
    shown = coordinator.client.get(
        f"/v1/devices/{bob_device}", headers=coordinator.auth(coordinator.operator_key)
    )
    assert shown.status_code == 200
    assert shown.json()["name"] == "cellar"


def test_an_owner_creates_codes_only_for_themselves(coordinator) -> None:
    alice = coordinator.owner_key("alice")
    coordinator.owner_key("bob")
    for_bob = coordinator.client.post(
        "/v1/admin/enrollment-codes",
        json={"owner_name": "bob"},
        headers=coordinator.auth(alice),
    )
    assert for_bob.status_code == 403
    by_operator = coordinator.client.post(
        "/v1/admin/enrollment-codes",
        json={"owner_name": "bob", "ttl_s": 60.0},
        headers=coordinator.auth(coordinator.operator_key),
    )
    assert by_operator.status_code == 201
    assert by_operator.json()["owner_name"] == "bob"
    assert by_operator.json()["expires_ts"] == coordinator.clock() + 60.0
    no_key_for_owner = coordinator.client.post(
        "/v1/admin/keys", json={"name": "carol", "role": "owner"}, headers=coordinator.auth(alice)
    )
    assert no_key_for_owner.status_code == 403


def test_revoked_keys_and_devices_are_refused(coordinator) -> None:
    alice = coordinator.owner_key("alice")
    device_id, device_token = coordinator.enroll(coordinator.enrollment_code(alice))

    revoked = coordinator.client.delete(f"/v1/devices/{device_id}", headers=coordinator.auth(alice))
    assert revoked.status_code == 200
    assert revoked.json()["revoked_ts"] == coordinator.clock()
    heartbeat = coordinator.client.post(
        f"/v1/devices/{device_id}/heartbeat",
        json=coordinator.heartbeat_body(coordinator.clock(), [1000.0]),
        headers=coordinator.auth(device_token),
    )
    assert heartbeat.status_code == 401

    key_id = alice.split("_")[1]
    gone = coordinator.client.delete(f"/v1/admin/keys/{key_id}", headers=coordinator.auth(alice))
    assert gone.status_code == 200
    after = coordinator.client.get("/v1/devices", headers=coordinator.auth(alice))
    assert after.status_code == 401
    assert "revoked" in after.json()["detail"]


def test_only_hashes_of_secrets_are_stored(coordinator) -> None:
    alice = coordinator.owner_key("alice")
    code = coordinator.enrollment_code(alice)
    _, device_token = coordinator.enroll(code)
    secrets = [token.split("_", 2)[2] for token in (alice, code, device_token)]
    engine = make_engine(coordinator.database_url)
    try:
        with make_session_factory(engine)() as session:
            stored = [
                *session.scalars(select(ApiKey.secret_hash)),
                *session.scalars(select(EnrollmentCode.code_hash)),
                *session.scalars(select(Device.token_hash)),
            ]
            dump = " ".join(
                str(row)
                for table in ("api_keys", "enrollment_codes", "devices")
                for row in session.execute(text(f"SELECT * FROM {table}"))
            )
    finally:
        engine.dispose()
    assert all(len(value) == 64 for value in stored)
    for secret in secrets:
        assert secret not in dump
