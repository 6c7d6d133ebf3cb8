"""Verified credentials are cached for a short time, and revocation still takes effect.

Two apps on one database stand for two coordinator processes: what one process revokes,
the other must stop honouring (devices at once, API keys within the cache's time).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import event

from heatgrid.coordinator.app import create_app
from heatgrid.coordinator.credentials import CredentialCache
from heatgrid.coordinator.settings import Settings

from .conftest import Client, Clock, Coordinator

_TTL_S = 30.0


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {
        "rate_limit_per_s": 1e9,
        "rate_limit_burst": 1_000_000,
        "anonymous_rate_limit_per_s": 1e9,
        "anonymous_rate_limit_burst": 1_000_000,
        "credential_cache_s": _TTL_S,
        "device_credential_cache_s": _TTL_S,
    }


@pytest.fixture
def other_process(coordinator: Coordinator, tmp_path: Path) -> Iterator[Client]:
    """A second coordinator app on the same database and clock, as another process would be."""
    settings = Settings(
        database_url=coordinator.database_url,
        checkpoint_url=str(tmp_path / "checkpoints"),
        rate_limit_per_s=1e9,
        rate_limit_burst=1_000_000,
        credential_cache_s=_TTL_S,
        device_credential_cache_s=_TTL_S,
    )
    app = create_app(settings, clock=coordinator.clock)
    client = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://coordinator-2.test"
    )
    try:
        yield Client(coordinator.client.portal, client)
    finally:
        coordinator.client.portal.call(client.aclose)
        app.state.engine.dispose()


def _statements(coordinator: Coordinator) -> list[str]:
    seen: list[str] = []

    def record(*args: Any) -> None:
        seen.append(str(args[2]))

    event.listen(coordinator.app.state.engine, "before_cursor_execute", record)
    return seen


def _heartbeat(coordinator: Coordinator, client: Client, device: tuple[str, str]) -> int:
    answer = client.post(
        f"/v1/devices/{device[0]}/heartbeat",
        json=coordinator.heartbeat_body(coordinator.clock(), [1000.0]),
        headers=coordinator.auth(device[1]),
    )
    return answer.status_code


def _device(coordinator: Coordinator) -> tuple[str, str, str]:
    owner = coordinator.owner_key()
    device_id, token = coordinator.enroll(coordinator.enrollment_code(owner))
    return device_id, token, owner


def test_a_verified_key_is_not_read_again_within_the_cache_time(
    coordinator: Coordinator,
) -> None:
    key = coordinator.submitter_key()
    assert coordinator.client.get("/v1/jobs", headers=coordinator.auth(key)).status_code == 200
    seen = _statements(coordinator)
    assert coordinator.client.get("/v1/jobs", headers=coordinator.auth(key)).status_code == 200
    assert seen, "the listing itself reads the database"
    assert not [text for text in seen if "api_keys" in text]

    coordinator.clock.advance(_TTL_S)
    assert coordinator.client.get("/v1/jobs", headers=coordinator.auth(key)).status_code == 200
    assert [text for text in seen if "api_keys" in text], "checked again after the cache time"


def test_a_heartbeat_of_a_cached_token_does_not_read_the_device(coordinator: Coordinator) -> None:
    device_id, token, _ = _device(coordinator)
    assert _heartbeat(coordinator, coordinator.client, (device_id, token)) == 200
    seen = _statements(coordinator)
    assert _heartbeat(coordinator, coordinator.client, (device_id, token)) == 200
    assert not [text for text in seen if text.lstrip().upper().startswith("SELECT")], seen


def test_a_wrong_secret_is_refused_even_when_the_device_is_cached(
    coordinator: Coordinator,
) -> None:
    device_id, token, _ = _device(coordinator)
    assert _heartbeat(coordinator, coordinator.client, (device_id, token)) == 200
    forged = f"hgd_{device_id}_{'A' * 43}"
    assert _heartbeat(coordinator, coordinator.client, (device_id, forged)) == 401


def test_revoking_a_device_refuses_its_cached_token_at_once_in_every_process(
    coordinator: Coordinator, other_process: Client
) -> None:
    device_id, token, owner = _device(coordinator)
    for client in (coordinator.client, other_process):  # both processes cache the token
        assert _heartbeat(coordinator, client, (device_id, token)) == 200
    answer = coordinator.client.delete(f"/v1/devices/{device_id}", headers=coordinator.auth(owner))
    assert answer.status_code == 200, answer.text
    for client in (coordinator.client, other_process):
        assert _heartbeat(coordinator, client, (device_id, token)) == 401
        claim = client.post(
            f"/v1/devices/{device_id}/claim",
            json={"protocol_version": 1, "slots": 1},
            headers=coordinator.auth(token),
        )
        assert claim.status_code == 401, claim.text


def test_revoking_a_key_refuses_it_at_once_in_the_revoking_process(
    coordinator: Coordinator, other_process: Client
) -> None:
    key = coordinator.submitter_key()
    for client in (coordinator.client, other_process):
        assert client.get("/v1/jobs", headers=coordinator.auth(key)).status_code == 200
    key_id = key.split("_", 2)[1]
    answer = other_process.delete(f"/v1/admin/keys/{key_id}", headers=coordinator.auth(key))
    assert answer.status_code == 200, answer.text
    assert other_process.get("/v1/jobs", headers=coordinator.auth(key)).status_code == 401
    # The other process trusts its verification for at most the cache time.
    coordinator.clock.advance(_TTL_S)
    assert coordinator.client.get("/v1/jobs", headers=coordinator.auth(key)).status_code == 401


def test_the_cache_keeps_digests_not_tokens_and_forgets_by_row() -> None:
    clock = Clock(now_ts=0.0)
    cache = CredentialCache[str](10.0, clock, max_entries=2)
    cache.put("hgk_a_secret1", "a", "principal a")
    cache.put("hgk_a_secret2", "a", "principal a")
    assert cache.get("hgk_a_secret1") == "principal a"
    assert "hgk_a_secret1" not in repr(vars(cache))
    cache.forget("a")
    assert cache.get("hgk_a_secret1") is None
    assert cache.get("hgk_a_secret2") is None
    assert len(cache) == 0

    for n in range(3):
        cache.put(f"hgk_{n}_s", str(n), str(n))
    assert len(cache) == 2
    assert cache.get("hgk_0_s") is None  # the oldest went first
    clock.advance(10.0)
    assert cache.get("hgk_2_s") is None  # expired


def test_a_cache_time_of_zero_checks_every_request() -> None:
    cache = CredentialCache[str](0.0, Clock())
    cache.put("hgk_a_s", "a", "principal")
    assert cache.get("hgk_a_s") is None
    with pytest.raises(ValueError, match="ttl_s"):
        CredentialCache[str](float("nan"), Clock())


def _artifact(client: Client, coordinator: Coordinator, token: str) -> int:
    answer = client.get(f"/v1/artifacts/{'ab' * 32}", headers=coordinator.auth(token))
    return answer.status_code


def test_a_device_token_on_the_artifact_routes_goes_through_the_cache(
    coordinator: Coordinator, other_process: Client
) -> None:
    device_id, token, owner = _device(coordinator)
    assert _artifact(coordinator.client, coordinator, token) == 404  # admitted; no such artifact
    seen = _statements(coordinator)
    assert _heartbeat(coordinator, coordinator.client, (device_id, token)) == 200
    assert not [text for text in seen if text.lstrip().upper().startswith("SELECT")], seen

    forged = f"hgd_{device_id}_{'A' * 43}"
    assert _artifact(coordinator.client, coordinator, forged) == 401

    assert _artifact(other_process, coordinator, token) == 404  # cached in the other process too
    answer = coordinator.client.delete(f"/v1/devices/{device_id}", headers=coordinator.auth(owner))
    assert answer.status_code == 200, answer.text
    for client in (coordinator.client, other_process):
        assert _artifact(client, coordinator, token) == 401
