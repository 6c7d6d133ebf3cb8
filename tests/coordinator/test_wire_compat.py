"""Forward compatibility of the wire: an agent accepts answers that carry fields it does not know;
the coordinator still refuses requests that carry fields it does not know.

The agent's own client talks to the real coordinator through an ASGI wrapper that plays a
newer coordinator: it adds an unknown field to every JSON object of every JSON answer, at every
depth (the answer, each lease, the challenge order, each place to show…). The agent enrolls,
heartbeats, answers its hardware challenge, claims, reports progress, uploads a checkpoint and
completes, all through those answers. The coordinator answers 422 naming an unknown field,
at the top of a request or nested in it.

Backward: an agent newer than its coordinator sends a completion that carries ``start_mark`` to
the real app whose complete route is the one from before that field (it refuses it as any
unknown field, through the app's own handler); the agent's client sends it again without the
field (an informational field, :mod:`heatgrid.protocol.informational`) and the result counts.
"""

from __future__ import annotations

import functools
import json
import logging
from typing import Any

import httpx
import pytest
from fastapi import Request, Response
from pydantic import ConfigDict, ValidationError, create_model
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from heatgrid.agent import challenge as agent_challenge
from heatgrid.agent.client import REFUSED_FIELD_RETRY_S, CoordinatorClient
from heatgrid.coordinator.api import tasks as tasks_api
from heatgrid.coordinator.api.deps import DeviceIdentityDep, NowTs, SettingsDep
from heatgrid.core import fingerprint
from heatgrid.protocol import v1
from heatgrid.protocol.jobs import CheckpointMark, TensorFingerprintBody
from heatgrid.protocol.wire import parse_response

from .conftest import Coordinator

pytestmark = pytest.mark.usefixtures("backend")

NEW_FIELD = "added_in_a_later_version"
WEEK_S = 7 * 86_400.0
_MAPS = frozenset({"task_input", "input_urls", "result"})
"""Keys whose values are maps of free keys (a submitter's JSON, input names), not messages."""


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    """Hardware challenges on (small ones), no wait for a better heater, no rate limit."""
    return {
        "rate_limit_per_s": 1e9,
        "rate_limit_burst": 10**6,
        "anonymous_rate_limit_per_s": 1e9,
        "anonymous_rate_limit_burst": 10**6,
        "hardware_challenges": True,
        "challenge_max_n": 128,
        "challenge_every_s": 0.0,
        "max_wait_s": 0.0,
    }


def _with_new_fields(value: Any) -> tuple[Any, int]:
    """Return ``value`` with :data:`NEW_FIELD` added to every message object in it, and how many.

    Maps of free keys (:data:`_MAPS`) are left as they are: a key there is data, not a field.
    """
    if isinstance(value, dict):
        added = 1
        out: dict[str, Any] = {NEW_FIELD: {"kind": "unknown", "levels": [1, 2.5, None]}}
        for key, item in value.items():
            if key in _MAPS:
                out[key] = item
                continue
            out[key], count = _with_new_fields(item)
            added += count
        return out, added
    if isinstance(value, list):
        items = [_with_new_fields(item) for item in value]
        return [item for item, _ in items], sum(count for _, count in items)
    return value, 0


class _NewerCoordinator:
    """ASGI wrapper: every JSON answer of ``app`` gets an unknown field in each of its objects.

    ``added`` counts the fields added, per route path, so the test sees that they were there.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.added: dict[str, int] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start: Message | None = None
        body = bytearray()

        async def rewrite(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                headers = dict(message.get("headers", []))
                if headers.get(b"content-type", b"").startswith(b"application/json"):
                    start = message  # held until the whole body is in
                    return
            elif start is not None and message["type"] == "http.response.body":
                body.extend(message.get("body", b""))
                if message.get("more_body", False):
                    return
                content, count = _with_new_fields(json.loads(body))
                encoded = json.dumps(content).encode()
                self.added[scope["path"]] = self.added.get(scope["path"], 0) + count
                headers = [
                    (name, value)
                    for name, value in start.get("headers", [])
                    if name != b"content-length"
                ]
                headers.append((b"content-length", str(len(encoded)).encode()))
                await send({**start, "headers": headers})
                await send({"type": "http.response.body", "body": encoded})
                return
            await send(message)

        await self.app(scope, receive, rewrite)


def _submit_job(coordinator: Coordinator) -> str:
    answer = coordinator.client.post(
        "/v1/jobs",
        json={"name": "train", "device_kinds": ["cpu"], "tasks": [{"energy_j": 3.6e6}]},
        headers=coordinator.auth(coordinator.submitter_key()),
    )
    assert answer.status_code == 201, answer.text
    return str(answer.json()["job_id"])


async def _enroll_wanting_heat(
    client: CoordinatorClient, code: str, now_ts: float
) -> tuple[str, str, v1.HeartbeatResponse]:
    """Enroll a one-core CPU heater and send its first heartbeat, a week of heat wanted.

    Return its device id, its token and the heartbeat's answer.
    """
    enrolled = await client.enroll(
        v1.EnrollRequest(
            enrollment_code=code,
            device_name="study",
            device_kind="cpu",
            hardware=v1.Hardware(max_power_w=300.0, cpu_cores=1),
            has_room=True,
        )
    )
    device_id, token = enrolled.device_id, enrolled.device_token
    window = [v1.HeatWindowSegment(start_ts=now_ts, duration_s=WEEK_S, heat_power_w=300.0)]
    beat = await client.heartbeat(
        device_id, token, v1.Heartbeat(sent_ts=now_ts, heat_window=window)
    )
    return device_id, token, beat


def test_the_agent_works_with_a_coordinator_that_added_fields_everywhere(
    coordinator: Coordinator,
) -> None:
    job_id = _submit_job(coordinator)
    code = coordinator.enrollment_code(coordinator.owner_key())
    newer = _NewerCoordinator(coordinator.app)
    now_ts = coordinator.clock()

    async def agent() -> dict[str, Any]:
        transport = httpx.ASGITransport(app=newer)
        async with CoordinatorClient("http://coordinator.test", transport=transport) as client:
            device_id, token, beat = await _enroll_wanting_heat(client, code, now_ts)
            assert beat.challenge is not None
            verdict = await agent_challenge.answer_challenge(
                client, device_id, token, beat.challenge, received_monotonic=float("inf")
            )
            claimed = await client.claim(device_id, token, v1.ClaimRequest(slots=1))
            [lease] = claimed.leases
            status = await client.progress(
                device_id, token, lease.task_id, v1.TaskProgress(attempt=1, energy_j=10.0)
            )
            receipt = await client.upload_checkpoint(
                lease.task_id,
                b"weights" * 100,
                attempt=lease.attempt,
                energy_j=20.0,
                device_id=device_id,
                token=token,
                chunk_bytes=256,
            )
            done = await client.complete(
                device_id,
                token,
                lease.task_id,
                v1.TaskCompletion(attempt=lease.attempt, energy_j=30.0, result={"loss": 0.25}),
            )
        return {
            "verdict": verdict.state,
            "job_id": lease.job_id,
            "progress_stop": status.stop,
            "receipt_seq": receipt.seq,
            "done": done.state,
        }

    outcome = coordinator.client.portal.call(functools.partial(agent))
    assert outcome == {
        "verdict": "passed",
        "job_id": job_id,
        "progress_stop": False,
        "receipt_seq": 1,
        "done": "completed",
    }
    # The unknown fields were there: in each answer, nested ones included.
    added = {path.rsplit("/", 1)[-1]: count for path, count in newer.added.items()}
    assert added["enroll"] == 1
    assert added["heartbeat"] >= 2  # the answer and its challenge order
    assert added["claim"] >= 2  # the answer and its lease
    assert {"commit", "reveal", "progress", "missing", "checkpoints", "complete"} <= set(added)


def test_parse_response_ignores_unknown_fields_that_the_models_refuse() -> None:
    lease = {
        "task_id": "t1",
        "job_id": "j1",
        "attempt": 1,
        "lease_expires_ts": 1_767_229_200.0,
        "task_input": {},
        "energy_j": 3.6e6,
        "checkpoint_every_j": 3.6e5,
        "progress_energy_j": 0.0,
        "checkpoint_seq": None,
        "artifact": {"sha256": "a" * 64, "size_bytes": 10},
    }
    answer = {"server_ts": 1_767_225_600.0, "leases": [lease]}
    content, count = _with_new_fields(answer)
    raw = json.dumps(content)
    assert count == 3  # the answer, the lease, its artifact
    parsed = parse_response(v1.ClaimResponse, raw)
    assert parsed.leases[0].artifact is not None
    assert parsed.leases[0].artifact.size_bytes == 10
    free = json.dumps({**answer, "leases": [{**lease, "task_input": {NEW_FIELD: 1}}]})
    # task_input is free JSON, the submitter's: kept as sent, whatever its keys
    assert parse_response(v1.ClaimResponse, free).leases[0].task_input == {NEW_FIELD: 1}
    with pytest.raises(ValidationError, match=NEW_FIELD):  # the coordinator's way: refused
        v1.ClaimResponse.model_validate_json(raw)
    lacking = {**answer, "leases": [{k: v for k, v in lease.items() if k != "energy_j"}]}
    with pytest.raises(ValidationError, match="energy_j"):  # the rest is checked as declared
        parse_response(v1.ClaimResponse, json.dumps(lacking))
    wrong = {**answer, "leases": [{**lease, "artifact": {"sha256": "a" * 64, "size_bytes": 0}}]}
    with pytest.raises(ValidationError, match="size_bytes"):
        parse_response(v1.ClaimResponse, json.dumps(wrong))


@pytest.mark.parametrize(
    ("path", "body", "named"),
    [
        ("claim", {"slots": 1, NEW_FIELD: 1}, NEW_FIELD),
        ("heartbeat", {"telemetry": [{NEW_FIELD: 1}]}, f"telemetry[0].{NEW_FIELD}"),
        ("progress", {"attempt": 1, "energy_j": 1.0, NEW_FIELD: "x"}, NEW_FIELD),
    ],
)
def test_the_coordinator_refuses_unknown_request_fields(
    coordinator: Coordinator, path: str, body: dict[str, Any], named: str
) -> None:
    code = coordinator.enrollment_code(coordinator.owner_key())
    device_id, token = coordinator.enroll(code)
    now_ts = coordinator.clock()
    if path == "heartbeat":
        sample = {**coordinator.heartbeat_body(now_ts, [800.0])["telemetry"][0]}
        body = {"sent_ts": now_ts, "telemetry": [{**sample, **body["telemetry"][0]}]}
    url = f"/v1/devices/{device_id}/{'tasks/t1/progress' if path == 'progress' else path}"
    answer = coordinator.client.post(url, json=body, headers=coordinator.auth(token))
    assert answer.status_code == 422, answer.text
    refused = [(error["field"], error["type"]) for error in answer.json()["errors"]]
    assert refused == [(named, "extra_forbidden")]


_CompletionBeforeStartMark = create_model(
    "TaskCompletion",
    __config__=ConfigDict(extra="forbid"),
    **{  # type: ignore[call-overload]
        name: (field.annotation, field)
        for name, field in v1.TaskCompletion.model_fields.items()
        if name != "start_mark"
    },
)
"""The completion of a coordinator from before ``start_mark``: the field is unknown to it."""


async def _complete_before_start_mark(
    *,
    task_id: str,
    body: _CompletionBeforeStartMark,  # type: ignore[valid-type]
    request: Request,
    identity: DeviceIdentityDep,
    now_ts: NowTs,
    settings: SettingsDep,
) -> Response:
    """The complete route of a coordinator older than ``start_mark`` (the rest is today's)."""
    completion = v1.TaskCompletion.model_validate(body.model_dump())  # type: ignore[attr-defined]
    return await tasks_api.complete(
        task_id=task_id,
        body=completion,
        request=request,
        identity=identity,
        now_ts=now_ts,
        settings=settings,
    )


class _Recording(httpx.AsyncBaseTransport):
    """Transport that keeps, for each request, its path, whether it named ``start_mark``, and
    the status of its answer."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.sent: list[tuple[str, bool, int]] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        named = b'"start_mark"' in request.content
        self.sent.append((request.url.path.rsplit("/", 1)[-1], named, response.status_code))
        return response


_MARK = CheckpointMark(
    step=30,
    fingerprint=TensorFingerprintBody(
        values_sha256="0" * 64, count=1, norm=1.0, sketch=[0.0] * fingerprint.SKETCH_SIZE
    ),
)


@pytest.mark.parametrize(
    "settings_overrides",
    [{"rate_limit_per_s": 1e9, "rate_limit_burst": 10**6, "max_wait_s": 0.0}],
)
def test_a_completion_with_a_start_mark_reaches_a_coordinator_older_than_it(
    coordinator: Coordinator, caplog: pytest.LogCaptureFixture
) -> None:
    """Agents are often updated before their coordinator: the result must not be lost."""
    path = "/v1/devices/{device_id}/tasks/{task_id}/complete"
    coordinator.app.router.add_api_route(path, _complete_before_start_mark, methods=["POST"])
    coordinator.app.router.routes.insert(0, coordinator.app.router.routes.pop())  # first match
    answer = coordinator.client.post(
        "/v1/jobs",
        json={
            "name": "train",
            "device_kinds": ["cpu"],
            "tasks": [{"energy_j": 3.6e6, "task_input": {"n": n}} for n in range(3)],
        },
        headers=coordinator.auth(coordinator.submitter_key()),
    )
    assert answer.status_code == 201, answer.text
    code = coordinator.enrollment_code(coordinator.owner_key())
    now_ts = coordinator.clock()
    client_clock = [0.0]
    recording = _Recording(httpx.ASGITransport(app=coordinator.app))

    async def agent() -> list[str]:
        states = []
        async with CoordinatorClient(
            "http://coordinator.test", transport=recording, clock=lambda: client_clock[0]
        ) as client:
            device_id, token, _ = await _enroll_wanting_heat(client, code, now_ts)
            for step_s in (0.0, 600.0, REFUSED_FIELD_RETRY_S):  # within the hour, then after
                client_clock[0] += step_s
                [lease] = (await client.claim(device_id, token, v1.ClaimRequest(slots=1))).leases
                report = v1.TaskCompletion(
                    attempt=lease.attempt, energy_j=30.0, result={"ok": True}, start_mark=_MARK
                )
                states.append(
                    (await client.complete(device_id, token, lease.task_id, report)).state
                )
        return states

    with caplog.at_level(logging.WARNING, logger="heatgrid.agent"):
        states = coordinator.client.portal.call(functools.partial(agent))
    assert states == ["completed"] * 3
    completions = [(named, status) for path, named, status in recording.sent if path == "complete"]
    # refused, sent plain; plain (left out within the hour); tried again an hour on: refused, plain
    assert completions == [(True, 422), (False, 200), (False, 200), (True, 422), (False, 200)]
    warnings = [
        record.message for record in caplog.records if "older than this agent" in record.message
    ]
    assert len(warnings) == 2
    assert "start_mark of TaskCompletion" in warnings[0]
    assert "update the coordinator" in warnings[0]
