"""The agent declares the features it understands in every heartbeat (issue 17).

A coordinator sends a meaning-changing field's value (a stepped hardware challenge) only to an
agent that declares its feature (:mod:`heatgrid.protocol.features`); this agent must declare
each one it implements, and the coordinator must store what it declared.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sqlite3
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import Request
from fastapi.exceptions import RequestValidationError
from pydantic import ConfigDict, ValidationError, create_model
from tests.agent.coordinator_app import ServedCoordinator, SimClock, migrated_database, running

from heatgrid.agent.challenge import FEATURES
from heatgrid.agent.client import CoordinatorClient, CoordinatorRefusedError
from heatgrid.agent.config import parse_config
from heatgrid.agent.daemon import AgentDaemon
from heatgrid.agent.enroll import enroll
from heatgrid.agent.state_store import StateStore
from heatgrid.coordinator.api import bodies
from heatgrid.coordinator.api import devices as devices_api
from heatgrid.core import fingerprint
from heatgrid.protocol import features, v1
from heatgrid.protocol.jobs import CheckpointMark, TensorFingerprintBody

T0_TS = 1_767_225_600.0  # 2026-01-01T00:00:00Z

_CONFIG = """
[heater]
name = "study"

[sensor]
topic = "home/study/temperature"

[[devices]]
type = "cpu"
idle_power_w = 20.0
max_power_w = 300.0
worker_count = 1
"""


class RecordingClient(CoordinatorClient):
    """The agent's client, keeping each heartbeat it sends."""

    sent: list[v1.Heartbeat]

    async def heartbeat(
        self, device_id: str, token: str, heartbeat: v1.Heartbeat
    ) -> v1.HeartbeatResponse:
        """Keep the heartbeat, then send it."""
        self.sent.append(heartbeat)
        return await super().heartbeat(device_id, token, heartbeat)


def test_this_agent_declares_every_meaning_changing_field_it_acts_on() -> None:
    """A meaning-changing field added to the protocol fails here until the agent declares it."""
    assert set(features.MEANING_CHANGING.values()) <= FEATURES


def _stored(database_url: str, device_id: str) -> tuple[object, list[str]]:
    path = database_url.removeprefix("sqlite:///")
    with contextlib.closing(sqlite3.connect(path)) as db:
        declared = db.execute(
            "SELECT agent_features FROM devices WHERE id = ?", (device_id,)
        ).fetchone()[0]
        states = [
            row[0]
            for row in db.execute(
                "SELECT state FROM device_challenges WHERE device_id = ?", (device_id,)
            )
        ]
    return json.loads(declared), states


async def _scenario(tmp_path: Path) -> None:
    clock = SimClock(T0_TS)
    database_url, code = migrated_database(tmp_path, clock)
    coordinator = ServedCoordinator(
        database_url,
        tmp_path / "checkpoints",
        clock,
        hardware_challenges=True,
        challenge_max_n=64,
        challenge_every_s=0.0,
    )
    config = parse_config(_CONFIG)
    async with running(coordinator):
        with StateStore(tmp_path / "agent.sqlite3") as store:
            async with RecordingClient(coordinator.url, timeout_s=5.0) as client:
                client.sent = []
                identity = await enroll(config, store, client, code)
                daemon = AgentDaemon(
                    config, devices=[], room=lambda: None, store=store, client=client, clock=clock
                )
                await daemon.sync()
    assert client.sent
    assert all(beat.features == sorted(FEATURES) for beat in client.sent)
    declared, states = _stored(database_url, identity.device_id)
    assert declared == sorted(FEATURES)
    assert states == ["passed"]  # the challenge its heartbeat brought was answered


def test_the_daemon_declares_its_features_and_the_coordinator_stores_them(
    tmp_path: Path,
) -> None:
    asyncio.run(_scenario(tmp_path))


def _last_seen_ts(database_url: str) -> float:
    path = database_url.removeprefix("sqlite:///")
    with contextlib.closing(sqlite3.connect(path)) as db:
        return float(db.execute("SELECT last_seen_ts FROM devices").fetchone()[0])


def _older_coordinator(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """Make the served coordinator one from before ``Heartbeat.features``; return its log.

    Its heartbeat route refuses the field as any unknown one (the 422 pydantic gives for an
    extra input, through the app's own handler); each entry says whether a heartbeat came
    with the field.
    """
    seen: list[bool] = []
    older = create_model("Heartbeat", __config__=ConfigDict(extra="forbid"))

    async def json_body(request: Request, model: type[Any]) -> Any:
        if model is v1.Heartbeat:
            declared = "features" in json.loads(await request.body())
            seen.append(declared)
            if declared:
                try:
                    older.model_validate({"features": []})
                except ValidationError as error:
                    raise RequestValidationError(
                        [
                            {**found, "loc": ("body", *found["loc"])}
                            for found in error.errors(include_url=False, include_input=False)
                        ]
                    ) from None
        return await bodies.json_body(request, model)

    monkeypatch.setattr(devices_api, "json_body", json_body)
    return seen


def test_an_agent_sends_its_heartbeats_without_features_to_an_older_coordinator(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Agents may be updated before their coordinator: the heartbeat still goes through.

    The client's one mechanism for informational fields does it (``features`` is one,
    :mod:`heatgrid.protocol.informational`): the daemon always declares its features.
    """
    seen = _older_coordinator(monkeypatch)
    clock = SimClock(T0_TS)
    database_url, code = migrated_database(tmp_path, clock)
    coordinator = ServedCoordinator(database_url, tmp_path / "checkpoints", clock)

    async def scenario() -> AgentDaemon:
        async with running(coordinator):
            with StateStore(tmp_path / "agent.sqlite3") as store:
                async with CoordinatorClient(coordinator.url, timeout_s=5.0, clock=clock) as client:
                    await enroll(parse_config(_CONFIG), store, client, code)
                    daemon = AgentDaemon(
                        parse_config(_CONFIG),
                        devices=[],
                        room=lambda: None,
                        store=store,
                        client=client,
                        clock=clock,
                    )
                    for step_s in (0.0, 600.0, 3600.0):  # then within the hour, an hour on
                        clock.now_ts += step_s
                        await daemon.sync()
                        seen_ts.append(_last_seen_ts(database_url))
        return daemon

    seen_ts: list[float] = []
    with caplog.at_level(logging.WARNING, logger="heatgrid.agent"):
        asyncio.run(scenario())
    assert seen == [True, False, False, True, False]  # refused, sent plain; plain; asked again
    assert seen_ts == [T0_TS, T0_TS + 600.0, T0_TS + 4200.0]  # every sync's heartbeat stored
    assert sum("older than this agent" in record.message for record in caplog.records) == 2


def _mark() -> CheckpointMark:
    tensors = TensorFingerprintBody(
        values_sha256="0" * 64, count=1, norm=1.0, sketch=[0.0] * fingerprint.SKETCH_SIZE
    )
    return CheckpointMark(step=10, fingerprint=tensors)


def test_the_client_leaves_fields_at_their_default_out_of_its_requests() -> None:
    """A coordinator older than an optional field sees it only where the agent uses it.

    The completion below has no ``start_mark`` (newer than some coordinators): the body the
    client sends must not name it, while a completion that has one does.
    """
    bodies_sent: list[dict[str, Any]] = []

    def answer(request: httpx.Request) -> httpx.Response:
        bodies_sent.append(json.loads(request.content))
        status = v1.TaskStatus(
            task_id="t", attempt=1, state="completed", lease_expires_ts=None, stop=False
        )
        return httpx.Response(200, content=status.model_dump_json())

    mark = _mark()
    plain = v1.TaskCompletion(attempt=1, energy_j=5.0, result={"ok": True})

    async def scenario() -> None:
        transport = httpx.MockTransport(answer)
        async with CoordinatorClient("http://coordinator", transport=transport) as client:
            await client.complete("d", "token", "t", plain)
            await client.complete("d", "token", "t", plain.model_copy(update={"start_mark": mark}))

    asyncio.run(scenario())
    assert "start_mark" not in bodies_sent[0]
    assert bodies_sent[0]["result"] == {"ok": True}
    assert bodies_sent[1]["start_mark"]["step"] == 10
    assert v1.TaskCompletion.model_validate(bodies_sent[0]) == plain  # the same, read back


def _refusing(errors: list[dict[str, str]], sent: list[dict[str, Any]]) -> httpx.MockTransport:
    """A coordinator that answers every request 422 with ``errors`` (its handler's shape)."""

    def answer(request: httpx.Request) -> httpx.Response:
        sent.append(json.loads(request.content))
        detail = "; ".join(f"{error['field']}: {error['message']}" for error in errors)
        return httpx.Response(422, json={"detail": detail, "errors": errors})

    return httpx.MockTransport(answer)


_UNKNOWN = "Extra inputs are not permitted"


def _complete_refused(
    errors: list[dict[str, str]],
) -> tuple[CoordinatorRefusedError, list[dict[str, Any]]]:
    """Send a completion with both informational fields to a coordinator refusing ``errors``.

    Return the client's refusal and the bodies it sent.
    """
    sent: list[dict[str, Any]] = []
    report = v1.TaskCompletion(
        attempt=1, energy_j=5.0, result={"ok": True}, start_mark=_mark(), energy_method="rapl"
    )

    async def scenario() -> None:
        transport = _refusing(errors, sent)
        async with CoordinatorClient("http://coordinator", transport=transport) as client:
            await client.complete("d", "token", "t", report)

    with pytest.raises(CoordinatorRefusedError) as refused:
        asyncio.run(scenario())
    return refused.value, sent


@pytest.mark.parametrize(
    "errors",
    [
        # an informational field among other errors: the request is wrong anyway
        [
            {"field": "start_mark", "message": _UNKNOWN, "type": "extra_forbidden"},
            {"field": "energy_j", "message": "must be >= 0", "type": "greater_than_equal"},
        ],
        # an unknown field that is not informational: dropping it would change the request
        [{"field": "result", "message": _UNKNOWN, "type": "extra_forbidden"}],
        # an informational field refused for another reason than being unknown
        [{"field": "start_mark", "message": "a start mark needs both", "type": "value_error"}],
    ],
)
def test_only_a_refusal_of_unknown_informational_fields_is_retried_without_them(
    errors: list[dict[str, str]],
) -> None:
    refused, sent = _complete_refused(errors)
    assert refused.status_code == 422
    assert len(sent) == 1  # not sent again
    assert "start_mark" in sent[0]


def test_a_refusal_is_retried_once_and_the_second_answer_stands() -> None:
    """A coordinator that refuses the request without the fields too is not asked a third time."""
    errors = [
        {"field": "start_mark", "message": _UNKNOWN, "type": "extra_forbidden"},
        {"field": "energy_method", "message": _UNKNOWN, "type": "extra_forbidden"},
    ]
    _, sent = _complete_refused(errors)
    assert len(sent) == 2
    assert {"start_mark", "energy_method"} <= set(sent[0])
    assert not {"start_mark", "energy_method"} & set(sent[1])  # both left out, the rest kept
    assert sent[1]["result"] == {"ok": True}
