"""Every route but the documented public ones needs a bearer token of the right kind."""

from __future__ import annotations

import re

import pytest

from heatgrid.coordinator.api.health import PUBLIC_PATHS

pytestmark = pytest.mark.usefixtures("backend")

_METHODS = ("get", "post", "put", "patch", "delete")


def _operations(coordinator) -> list[tuple[str, str]]:
    paths = coordinator.app.openapi()["paths"]
    return [
        (method.upper(), re.sub(r"\{[^}]+\}", "0123456789abcdef", path))
        for path, item in paths.items()
        for method in _METHODS
        if method in item and path not in PUBLIC_PATHS
    ]


def test_every_non_public_route_needs_credentials(coordinator) -> None:
    operations = _operations(coordinator)
    assert len(operations) >= 7
    owner = coordinator.owner_key()
    _, device_token = coordinator.enroll(coordinator.enrollment_code(owner))
    for method, path in operations:
        for headers in (
            {},
            {"Authorization": "Basic dXNlcjpwYXNz"},
            {"Authorization": "Bearer "},
            coordinator.auth("hgk_0123456789abcdef_not-the-secret"),
            coordinator.auth("not-a-token"),
        ):
            answer = coordinator.client.request(method, path, headers=headers, json={})
            assert answer.status_code == 401, (method, path, headers, answer.text)
            assert answer.headers["www-authenticate"] == "Bearer"
            assert "Authorization" in answer.json()["detail"]
        # a device token opens nothing but its own device's routes, and the download of an
        # artifact of a task it holds (none here: not found)
        answer = coordinator.client.request(
            method, path, headers=coordinator.auth(device_token), json={}
        )
        if method == "GET" and path.startswith("/v1/artifacts/"):
            assert answer.status_code in (404, 422), (method, path, answer.text)
            continue
        assert answer.status_code in (401, 403), (method, path, answer.text)


def test_public_routes_answer_without_credentials(coordinator) -> None:
    assert coordinator.client.get("/healthz").json() == {"status": "ok"}
    ready = coordinator.client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["status"] == "ready"
    assert coordinator.client.get("/metrics").status_code == 200
    enroll = coordinator.client.post("/v1/devices/enroll", json={})
    assert enroll.status_code == 422  # public, so validation speaks first


def test_scopes_limit_what_a_key_does(coordinator) -> None:
    narrow = coordinator.client.post(
        "/v1/admin/keys",
        json={"name": "dashboard", "role": "owner", "scopes": ["devices:read"]},
        headers=coordinator.auth(coordinator.operator_key),
    )
    assert narrow.status_code == 201
    key = narrow.json()["api_key"]
    assert coordinator.client.get("/v1/devices", headers=coordinator.auth(key)).status_code == 200
    denied = coordinator.client.post(
        "/v1/admin/enrollment-codes", json={}, headers=coordinator.auth(key)
    )
    assert denied.status_code == 403
    assert "enrollment:create" in denied.json()["detail"]

    too_wide = coordinator.client.post(
        "/v1/admin/keys",
        json={"name": "submitter", "role": "submitter", "scopes": ["keys:admin"]},
        headers=coordinator.auth(coordinator.operator_key),
    )
    assert too_wide.status_code == 422
    assert too_wide.json()["detail"].startswith("scopes:")

    wrong_role = coordinator.client.post(
        "/v1/admin/keys",
        json={"name": "dashboard", "role": "operator"},
        headers=coordinator.auth(coordinator.operator_key),
    )
    assert wrong_role.status_code == 409
    assert wrong_role.json()["detail"].startswith("name:")
