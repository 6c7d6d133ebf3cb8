"""Schemathesis over the coordinator's own OpenAPI document: no 5xx, no answer off its schema.

Hypothesis generates requests for every operation (schemathesis's positive and negative modes:
valid and invalid bodies, odd path and query values) and sends them with an operator key and
with a device token; the device's own id is put in ``device_id`` path parameters so the device
routes are reached past authorization.
"""

from __future__ import annotations

import itertools
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
)

from .conftest import Coordinator

_CHECKS = [not_a_server_error, response_schema_conformance, content_type_conformance]


@pytest.fixture
def credentials(coordinator: Coordinator) -> dict[str, Any]:
    """An operator key, and an enrolled device's id and token."""
    owner = coordinator.owner_key("alice")
    device_id, device_token = coordinator.enroll(coordinator.enrollment_code(owner))
    return {"operator": coordinator.operator_key, "device_id": device_id, "device": device_token}


@pytest.mark.parametrize("who", ["operator", "device"])
def test_no_server_errors_and_answers_match_the_schema(
    coordinator: Coordinator, credentials: dict[str, Any], who: str
) -> None:
    schema = schemathesis.openapi.from_asgi("/openapi.json", coordinator.app)
    headers = {"Authorization": f"Bearer {credentials[who]}"}
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 15  # every route of the API is in the document

    for operation, mode in itertools.product(operations, GenerationMode):

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(
            max_examples=15,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def check(case: Any) -> None:
            if "device_id" in (case.path_parameters or {}):
                case.path_parameters["device_id"] = credentials["device_id"]
            case.call_and_validate(headers=headers, checks=_CHECKS)

        try:
            check()
        except Unsatisfiable:
            assert mode is GenerationMode.NEGATIVE  # nothing to make invalid (no parameters)
