"""The heartbeat's route handler does what the route's signature declares, in FastAPI's order.

The handler (``api.devices._HeartbeatRoute``) skips FastAPI's dependency solving; the
signature still documents the route. These tests keep the two in step, and check that
authentication still comes before the body is read.
"""

from __future__ import annotations

import json

import pytest
from fastapi.routing import APIRoute

from heatgrid.coordinator.api import devices
from heatgrid.coordinator.api.deps import require_device_identity
from heatgrid.protocol import v1

_JSON = {"content-type": "application/json"}


def _heartbeat_route() -> APIRoute:
    found = [
        route
        for route in devices.router.routes
        if isinstance(route, APIRoute) and route.path.endswith("/{device_id}/heartbeat")
    ]
    assert len(found) == 1
    return found[0]


def test_heartbeat_route_handler_does_what_its_signature_declares() -> None:
    dependant = _heartbeat_route().dependant
    # exactly what the handler does: require_device_identity, then a Heartbeat body
    assert [sub.call for sub in dependant.dependencies] == [require_device_identity]
    assert [param.field_info.annotation for param in dependant.body_params] == [v1.Heartbeat]
    assert not dependant.query_params
    assert not dependant.header_params
    assert not dependant.cookie_params


@pytest.mark.usefixtures("backend")
def test_a_heartbeat_is_authenticated_before_its_body_is_read(coordinator) -> None:
    owner = coordinator.owner_key()
    device_id, token = coordinator.enroll(coordinator.enrollment_code(owner))
    other_id, _ = coordinator.enroll(coordinator.enrollment_code(owner))
    url = f"/v1/devices/{device_id}/heartbeat"
    broken = b'{"sent_ts": '
    anonymous = coordinator.client.post(url, content=broken, headers=_JSON)
    assert anonymous.status_code == 401, anonymous.text
    forged = coordinator.client.post(
        url, content=broken, headers={**_JSON, **coordinator.auth(f"hgd_{device_id}_forged")}
    )
    assert forged.status_code == 401, forged.text
    elsewhere = coordinator.client.post(
        f"/v1/devices/{other_id}/heartbeat",
        content=broken,
        headers={**_JSON, **coordinator.auth(token)},
    )
    assert elsewhere.status_code == 403, elsewhere.text
    mine = coordinator.client.post(
        url, content=broken, headers={**_JSON, **coordinator.auth(token)}
    )
    assert mine.status_code == 422, mine.text
    assert mine.json()["errors"][0]["field"] == "body"


@pytest.mark.usefixtures("backend")
def test_a_heartbeat_not_sent_as_json_is_refused_naming_the_body(coordinator) -> None:
    device_id, token = coordinator.enroll(coordinator.enrollment_code(coordinator.owner_key()))
    body = coordinator.heartbeat_body(coordinator.clock(), [1000.0])

    answer = coordinator.client.post(
        f"/v1/devices/{device_id}/heartbeat",
        content=json.dumps(body).encode(),
        headers={"content-type": "text/plain", **coordinator.auth(token)},
    )
    assert answer.status_code == 422, answer.text
    assert answer.json()["detail"].startswith("body: must be JSON")
