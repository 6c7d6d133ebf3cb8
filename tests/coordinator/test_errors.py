"""An unexpected exception is answered as JSON 500 and logged as one JSON record."""

from __future__ import annotations

import json
import logging

import anyio
import httpx
import pytest

from heatgrid.coordinator.logs import JsonFormatter

pytestmark = pytest.mark.usefixtures("backend")


def test_an_unexpected_exception_is_a_json_500_and_a_json_log(coordinator, caplog) -> None:
    def broken() -> None:
        raise RuntimeError("disk on fire")

    coordinator.app.add_api_route("/broken-on-purpose", broken)

    async def fetch() -> httpx.Response:
        transport = httpx.ASGITransport(app=coordinator.app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            return await client.get("/broken-on-purpose")

    with caplog.at_level(logging.ERROR, logger="heatgrid.coordinator"):
        answer = anyio.run(fetch)
    assert answer.status_code == 500
    assert answer.headers["content-type"] == "application/json"
    reference = answer.json()["detail"].rsplit(" ", 1)[-1]
    assert "disk on fire" not in answer.text
    [record] = [r for r in caplog.records if r.name == "heatgrid.coordinator"]
    logged = json.loads(JsonFormatter().format(record))
    assert logged["reference"] == reference
    assert logged["exc_type"] == "RuntimeError"
    assert logged["path"] == "/broken-on-purpose"
    assert "disk on fire" in logged["traceback"]
    metrics = coordinator.client.get("/metrics").text
    assert "heatgrid_http_unhandled_errors_total 1.0" in metrics
