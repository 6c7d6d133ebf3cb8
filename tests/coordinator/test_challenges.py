"""Hardware challenges: honest devices pass, slow, float16 and faking ones are quarantined."""

from __future__ import annotations

import functools
import threading
from typing import Any

import httpx
import numpy as np
import pytest

from heatgrid.agent import challenge as agent_challenge
from heatgrid.agent.client import CoordinatorClient
from heatgrid.coordinator import challenges
from heatgrid.core import challenge as rule
from heatgrid.protocol.challenge import ChallengeOrder, ChallengePlace

from .conftest import Coordinator


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    """Challenges on, small matrices (fast tests), no random re-checks, no rate limit."""
    return {
        "rate_limit_per_s": 1e9,
        "rate_limit_burst": 10**6,
        "hardware_challenges": True,
        "challenge_max_n": 128,
        "challenge_every_s": 0.0,
        "max_wait_s": 0.0,
    }


_CPU = {"max_power_w": 300.0, "cpu_cores": 1}


def _enroll(coordinator: Coordinator, kind: str, hardware: dict[str, Any]) -> dict[str, Any]:
    owner = coordinator.owner_key("alice")
    body = {
        "enrollment_code": coordinator.enrollment_code(owner),
        "device_name": "study",
        "device_kind": kind,
        "hardware": hardware,
        "has_room": True,
    }
    answer = coordinator.client.post("/v1/devices/enroll", json=body)
    assert answer.status_code == 201, answer.text
    return {
        "id": answer.json()["device_id"],
        "token": answer.json()["device_token"],
        "headers": {"Authorization": f"Bearer {answer.json()['device_token']}"},
        "owner": owner,
    }


def _beat(coordinator: Coordinator, device: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """Send a heartbeat declaring what this agent understands (``features=[]``: an older one)."""
    now_ts = coordinator.clock()
    answer = coordinator.client.post(
        f"/v1/devices/{device['id']}/heartbeat",
        json={
            "protocol_version": 1,
            "sent_ts": now_ts,
            "telemetry": [],
            "heat_window": [{"start_ts": now_ts, "duration_s": 6 * 3600.0, "heat_power_w": 300.0}],
            "features": sorted(agent_challenge.FEATURES),
            **extra,
        },
        headers=device["headers"],
    )
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def _order(answer: dict[str, Any]) -> ChallengeOrder:
    assert answer["challenge"] is not None
    return ChallengeOrder.model_validate(answer["challenge"])


def _claim(coordinator: Coordinator, device: dict[str, Any]) -> httpx.Response:
    return coordinator.client.post(
        f"/v1/devices/{device['id']}/claim", json={"slots": 1}, headers=device["headers"]
    )


def _post(
    coordinator: Coordinator, device: dict[str, Any], order: ChallengeOrder, step: str, body: Any
) -> dict[str, Any]:
    answer = coordinator.client.post(
        f"/v1/devices/{device['id']}/challenges/{order.challenge_id}/{step}",
        content=body.model_dump_json(),
        headers={**device["headers"], "Content-Type": "application/json"},
    )
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def _play(
    coordinator: Coordinator,
    device: dict[str, Any],
    order: ChallengeOrder,
    solution: agent_challenge.Solution,
    *,
    took_s: float,
) -> dict[str, Any]:
    """Commit after ``took_s`` on the coordinator's clock, then reveal what is asked."""
    coordinator.clock.advance(took_s)
    commit = agent_challenge.ChallengeCommit(root_hex=solution.root.hex())
    verdict = _post(coordinator, device, order, "commit", commit)
    if verdict["state"] != "committed":
        return verdict
    places = [ChallengePlace.model_validate(p) for p in verdict["check"]["places"]]
    return _post(
        coordinator, device, order, "reveal", agent_challenge.reveal_rows(solution, places)
    )


def _solution(order: ChallengeOrder, dtype: type = np.float32) -> agent_challenge.Solution:
    """The chain computed in ``dtype`` (float16 for a device that cuts corners)."""
    plan = rule.ChallengePlan(order.seed, order.n, order.links, order.deadline_s, 0, order.steps)
    a, b = rule.challenge_inputs(plan)
    links, current = [], a
    for _ in range(plan.links):
        for _ in range(plan.steps):
            current = (current.astype(dtype) @ b.astype(dtype)).astype(np.float32)
        links.append(current)
    digests = [rule.row_digest(j, i, row) for j, m in enumerate(links) for i, row in enumerate(m)]
    return agent_challenge.Solution(plan, links, digests, rule.merkle_root(digests))


def _submit_cpu_job(coordinator: Coordinator) -> None:
    job = coordinator.client.post(
        "/v1/jobs",
        json={"name": "work", "device_kinds": ["cpu", "gpu"], "tasks": [{"energy_j": 1.0e5}]},
        headers=coordinator.auth(coordinator.submitter_key("carol")),
    )
    assert job.status_code == 201, job.text


def test_an_honest_device_passes_then_gets_tasks(coordinator: Coordinator) -> None:
    _submit_cpu_job(coordinator)
    device = _enroll(coordinator, "cpu", _CPU)
    order = _order(_beat(coordinator, device))
    assert _claim(coordinator, device).json()["leases"] == []  # owes its challenge first
    assert _beat(coordinator, device)["challenge"] is None  # not handed out twice
    solution = agent_challenge.solve(order, give_up_monotonic=float("inf"))
    assert solution is not None
    verdict = _play(coordinator, device, order, solution, took_s=order.deadline_s / 2)
    assert verdict["state"] == "passed", verdict
    assert len(_claim(coordinator, device).json()["leases"]) == 1
    assert _beat(coordinator, device)["challenge"] is None


def test_an_older_agent_gets_an_unstepped_challenge_as_before(coordinator: Coordinator) -> None:
    """One product per link means what it always meant: an agent declaring nothing answers it."""
    _submit_cpu_job(coordinator)
    device = _enroll(coordinator, "cpu", _CPU)
    order = _order(_beat(coordinator, device, features=[]))
    assert order.steps == 1
    solution = agent_challenge.solve(order, give_up_monotonic=float("inf"))
    assert solution is not None
    verdict = _play(coordinator, device, order, solution, took_s=order.deadline_s / 2)
    assert verdict["state"] == "passed", verdict
    assert len(_claim(coordinator, device).json()["leases"]) == 1
    shown = coordinator.client.get(
        f"/v1/devices/{device['id']}", headers=coordinator.auth(device["owner"])
    ).json()
    assert shown["agent_features"] == []
    assert shown["claim_unproven_reason"] is None


def test_checking_the_rows_holds_no_database_lock(
    coordinator: Coordinator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The check (seconds for a big GPU's chain) runs while other heaters write: on SQLite a
    transaction held across it would keep them waiting for the whole check."""
    device = _enroll(coordinator, "cpu", _CPU)
    order = _order(_beat(coordinator, device))
    solution = _solution(order)
    commit = agent_challenge.ChallengeCommit(root_hex=solution.root.hex())
    places = _post(coordinator, device, order, "commit", commit)["check"]["places"]
    reveal = agent_challenge.reveal_rows(
        solution, [ChallengePlace.model_validate(p) for p in places]
    )
    checking, done_writing = threading.Event(), threading.Event()
    check = challenges._check_reveal

    def slow_check(*args: Any) -> str | None:
        checking.set()
        assert done_writing.wait(60)
        return check(*args)

    monkeypatch.setattr(challenges, "_check_reveal", slow_check)
    verdicts: list[dict[str, Any]] = []
    revealing = threading.Thread(
        target=lambda: verdicts.append(_post(coordinator, device, order, "reveal", reveal))
    )
    revealing.start()
    try:
        assert checking.wait(60)
        other = _enroll(coordinator, "cpu", _CPU)  # a write while the check runs
        assert _beat(coordinator, other)["challenge"] is not None
    finally:
        done_writing.set()
        revealing.join(60)
    assert [verdict["state"] for verdict in verdicts] == ["passed"]


def test_float16_products_and_unproven_rows_fail(coordinator: Coordinator) -> None:
    cheap = _enroll(coordinator, "cpu", _CPU)
    order = _order(_beat(coordinator, cheap))
    verdict = _play(coordinator, cheap, order, _solution(order, np.float16), took_s=0.5)
    assert verdict["state"] == "failed"
    assert "not the float32 product" in verdict["reason"]

    faker = _enroll(coordinator, "cpu", _CPU)
    order = _order(_beat(coordinator, faker))
    honest = _solution(order)
    committed_to_other = agent_challenge.Solution(
        honest.plan, honest.links, honest.digests, rule.merkle_root(honest.digests[::-1])
    )
    verdict = _play(coordinator, faker, order, committed_to_other, took_s=0.5)
    assert verdict["state"] == "failed"
    assert "not the row committed to" in verdict["reason"]


def test_giving_up_quarantines_and_the_operator_releases(coordinator: Coordinator) -> None:
    device = _enroll(coordinator, "cpu", _CPU)
    order = _order(_beat(coordinator, device))
    verdict = _post(
        coordinator, device, order, "commit", agent_challenge.ChallengeCommit(root_hex=None)
    )
    assert verdict["state"] == "failed"
    path = f"/v1/devices/{device['id']}/release"
    assert (
        coordinator.client.post(path, headers=coordinator.auth(device["owner"])).status_code == 403
    )
    released = coordinator.client.post(path, headers=coordinator.auth(coordinator.operator_key))
    assert released.status_code == 200, released.text
    assert released.json()["quarantined_ts"] is None
    assert _claim(coordinator, device).json()["leases"] == []  # owes a new challenge
    assert _beat(coordinator, device)["challenge"] is not None


def test_unanswered_challenges_are_reissued_then_quarantine(coordinator: Coordinator) -> None:
    device = _enroll(coordinator, "cpu", _CPU)
    orders = []
    for _ in range(3):
        answer = _beat(coordinator, device)
        orders.append(_order(answer))
        coordinator.clock.advance(orders[-1].deadline_s + 1.0)
    assert len({order.challenge_id for order in orders}) == 3
    assert _beat(coordinator, device)["challenge"] is None  # the third lapse quarantines
    assert _claim(coordinator, device).status_code == 403


def test_new_hardware_owes_a_new_challenge(coordinator: Coordinator) -> None:
    device = _enroll(coordinator, "cpu", _CPU)
    order = _order(_beat(coordinator, device))
    solution = _solution(order)
    assert _play(coordinator, device, order, solution, took_s=0.5)["state"] == "passed"
    assert _beat(coordinator, device)["challenge"] is None
    bigger = {**_CPU, "cpu_cores": 4}
    answer = _beat(coordinator, device, device_kind="cpu", hardware=bigger)
    assert _order(answer).links >= order.links  # four cores claim four times the work


def test_the_agent_answers_over_http(coordinator: Coordinator) -> None:
    device = _enroll(coordinator, "cpu", _CPU)
    order = _order(_beat(coordinator, device))

    async def play() -> str:
        transport = httpx.ASGITransport(app=coordinator.app)
        async with CoordinatorClient("http://coordinator.test", transport=transport) as client:
            verdict = await agent_challenge.answer_challenge(
                client, device["id"], device["token"], order, received_monotonic=float("inf")
            )
        return verdict.state

    assert coordinator.client.portal.call(functools.partial(play)) == "passed"
