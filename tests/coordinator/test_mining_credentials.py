"""Mining passwords: issued and rotated (CLI and API), only their hash stored, checked."""

from __future__ import annotations

import json
import time

import pytest
from sqlalchemy import select

from heatgrid.cli.main import main
from heatgrid.coordinator.db import make_engine, make_session_factory
from heatgrid.coordinator.db.models import MiningCredential
from heatgrid.coordinator.devices import revoke_device
from heatgrid.coordinator.mining_credentials import check_credentials, device_of_user

from .conftest import Coordinator


def _check(database_url: str, user: str, password: str) -> str | None:
    engine = make_engine(database_url)
    try:
        with make_session_factory(engine)() as session:
            return check_credentials(session, user, password)
    finally:
        engine.dispose()


def test_the_cli_issues_once_shows_no_password_again_and_rotates(
    coordinator: Coordinator, capsys: pytest.CaptureFixture[str]
) -> None:
    owner = coordinator.owner_key()
    device_id, _ = coordinator.enroll(coordinator.enrollment_code(owner))
    url = coordinator.database_url
    options = ["--database-url", url, "--pool-url", "stratum+tcp://pool.example:3333"]

    assert main(["mining", "credentials", device_id, "--json", *options]) == 0
    first = json.loads(capsys.readouterr().out)
    assert first["pool_url"] == "stratum+tcp://pool.example:3333"
    assert first["user"] == device_id
    password = first["password"]
    assert len(password) >= 32
    assert _check(url, device_id, password) == device_id
    assert _check(url, f"{device_id}.rig7", password) == device_id
    assert _check(url, device_id, password + "x") is None
    engine = make_engine(url)
    with make_session_factory(engine)() as session:  # only the hash is stored
        stored = session.scalars(select(MiningCredential.password_hash)).one()
    engine.dispose()
    assert password not in stored

    assert main(["mining", "credentials", device_id, "--json", *options]) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["password"] is None
    assert again["created_ts"] == first["created_ts"]

    assert main(["mining", "credentials", device_id, *options]) == 0
    assert "--rotate" in capsys.readouterr().out

    assert main(["mining", "credentials", device_id, "--rotate", "--json", *options]) == 0
    rotated = json.loads(capsys.readouterr().out)["password"]
    assert rotated != password
    assert _check(url, device_id, rotated) == device_id
    assert _check(url, device_id, password) is None  # the old one stopped working


def test_the_cli_refuses_an_unknown_device_with_status_2(
    coordinator: Coordinator, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["mining", "credentials", "nosuch", "--database-url", coordinator.database_url])
    assert code == 2
    assert "nosuch" in capsys.readouterr().err


def test_the_api_gives_credentials_to_the_device_and_its_owner_only(
    coordinator: Coordinator,
) -> None:
    owner = coordinator.owner_key("alice")
    stranger = coordinator.owner_key("mallory")
    device_id, token = coordinator.enroll(coordinator.enrollment_code(owner))
    other_id, other_token = coordinator.enroll(coordinator.enrollment_code(stranger), "other")
    path = f"/v1/devices/{device_id}/mining-credentials"
    client = coordinator.client

    shown = client.get(path, headers=coordinator.auth(owner))
    assert shown.status_code == 200, shown.text
    assert shown.json()["created_ts"] is None
    assert shown.json()["password"] is None

    by_agent = client.post(path, headers=coordinator.auth(token))
    assert by_agent.status_code == 201, by_agent.text
    body = by_agent.json()
    assert body["user"] == device_id
    assert _check(coordinator.database_url, device_id, body["password"]) == device_id

    by_owner = client.post(path, headers=coordinator.auth(owner))
    assert by_owner.status_code == 201
    assert _check(coordinator.database_url, device_id, body["password"]) is None
    assert _check(coordinator.database_url, device_id, by_owner.json()["password"]) == device_id
    shown = client.get(path, headers=coordinator.auth(token)).json()
    assert shown["created_ts"] == by_owner.json()["created_ts"]
    assert shown["password"] is None

    assert client.post(path, headers=coordinator.auth(stranger)).status_code == 404
    assert client.post(path, headers=coordinator.auth(other_token)).status_code == 403
    assert client.post(path).status_code == 401
    assert client.post(path, headers=coordinator.auth(coordinator.operator_key)).status_code == 201
    assert other_id != device_id


def test_a_revoked_device_cannot_mine(coordinator: Coordinator) -> None:
    owner = coordinator.owner_key()
    device_id, _ = coordinator.enroll(coordinator.enrollment_code(owner))
    path = f"/v1/devices/{device_id}/mining-credentials"
    password = coordinator.client.post(path, headers=coordinator.auth(owner)).json()["password"]
    engine = make_engine(coordinator.database_url)
    with make_session_factory(engine)() as session:
        revoke_device(session, device_id, None, now_ts=time.time())
    engine.dispose()
    assert _check(coordinator.database_url, device_id, password) is None
    answer = coordinator.client.post(path, headers=coordinator.auth(owner))
    assert answer.status_code == 409, answer.text


@pytest.mark.parametrize("user", ["", ".rig", "x" * 101, "dev\x00ice"])
def test_malformed_user_names_name_no_device(user: str) -> None:
    assert device_of_user(user) is None
