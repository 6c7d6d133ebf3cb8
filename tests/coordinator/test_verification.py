"""Result verification in the coordinator (issue 17), on SQLite and PostgreSQL.

Real HTTP requests of heaters of several owners against a coordinator that verifies results:
a device that returns a wrong result for a deterministic task is caught by replicas on other
owners' devices, is not paid, forfeits its held credit and is quarantined, while the honest
devices of the same job are paid and the job completes with the correct results; two devices
of one owner never replicate each other; the ledger balances after every step.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from heatgrid.coordinator import housekeeping, verification
from heatgrid.coordinator.db import make_engine, make_session_factory
from heatgrid.coordinator.db.models import (
    Device,
    DeviceReputation,
    LedgerTransaction,
    Task,
    TaskAttempt,
)
from heatgrid.coordinator.ledger import account_balances, unbalanced_transactions
from heatgrid.coordinator.settings import Settings

from .conftest import Coordinator
from .test_dashboard import _log_in

pytestmark = pytest.mark.usefixtures("backend")

TASK_ENERGY_J = 360_000.0  # 0.1 kWh: 20,000 micro-EUR at the default 0.20 EUR/kWh
TASK_COST = 20_000
Answer = Callable[[dict[str, Any]], dict[str, Any]]


@pytest.fixture
def settings_overrides(settings_overrides: dict[str, Any]) -> dict[str, Any]:
    """Verify results: every result of a new device is replicated on another owner's."""
    return {**settings_overrides, "verify_results": True}


def _honest(task_input: dict[str, Any]) -> dict[str, Any]:
    return {"square": task_input["n"] ** 2}


def _cheat(task_input: dict[str, Any]) -> dict[str, Any]:
    return {"square": task_input["n"] ** 2 + 1}


class Heater:
    """A GPU heater enrolled for an owner, driven over the coordinator's HTTP API."""

    def __init__(self, coordinator: Coordinator, owner_key: str, name: str, answer: Answer):
        self.coordinator = coordinator
        self.answer = answer
        body = coordinator.enroll_body(coordinator.enrollment_code(owner_key), name)
        body.update(device_kind="gpu", hardware={"max_power_w": 900.0, "vram_gb": 24.0})
        enrolled = coordinator.client.post("/v1/devices/enroll", json=body)
        assert enrolled.status_code == 201, enrolled.text
        self.device_id = str(enrolled.json()["device_id"])
        self.headers = coordinator.auth(enrolled.json()["device_token"])
        self.beat()

    def beat(self) -> None:
        """Send a heartbeat now (a device long silent is offered no task)."""
        beat = self.coordinator.client.post(
            f"/v1/devices/{self.device_id}/heartbeat",
            json=self.coordinator.heartbeat_body(self.coordinator.clock(), [0.0]),
            headers=self.headers,
        )
        assert beat.status_code == 200, beat.text

    def claim(self) -> dict[str, Any] | None:
        """Claim one task; None when none is offered or the device is quarantined."""
        answer = self.coordinator.client.post(
            f"/v1/devices/{self.device_id}/claim", json={"slots": 1}, headers=self.headers
        )
        if answer.status_code == 403:
            assert "quarantined" in answer.json()["detail"]
            return None
        assert answer.status_code == 200, answer.text
        leases = answer.json()["leases"]
        return dict(leases[0]) if leases else None

    def complete(self, lease: dict[str, Any]) -> dict[str, Any]:
        """Run the lease (this heater's way) and report its result; return the task status."""
        answer = self.coordinator.client.post(
            f"/v1/devices/{self.device_id}/tasks/{lease['task_id']}/complete",
            json={
                "attempt": lease["attempt"],
                "energy_j": TASK_ENERGY_J,
                "result": self.answer(lease["task_input"]),
            },
            headers=self.headers,
        )
        assert answer.status_code == 200, answer.text
        return dict(answer.json())

    def work(self) -> dict[str, Any] | None:
        """Claim and complete one task; return the lease, or None when there was none."""
        lease = self.claim()
        if lease is not None:
            self.complete(lease)
        return lease


def _submit(coordinator: Coordinator, key: str, tasks: int) -> str:
    answer = coordinator.client.post(
        "/v1/jobs",
        json={
            "name": "squares",
            "device_kinds": ["gpu"],
            "tasks": [{"task_input": {"n": n}, "energy_j": TASK_ENERGY_J} for n in range(tasks)],
        },
        headers=coordinator.auth(key),
    )
    assert answer.status_code == 201, answer.text
    return str(answer.json()["job_id"])


def _job(coordinator: Coordinator, key: str, job_id: str) -> dict[str, Any]:
    answer = coordinator.client.get(f"/v1/jobs/{job_id}", headers=coordinator.auth(key))
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def _balances(coordinator: Coordinator) -> dict[str, int]:
    engine = make_engine(coordinator.database_url)
    try:
        with make_session_factory(engine)() as session:
            assert unbalanced_transactions(session) == []
            return {
                account: amount
                for (account, unit), amount in account_balances(session).items()
                if unit == "micro_eur"
            }
    finally:
        engine.dispose()


def _rows(coordinator: Coordinator, query: Any) -> list[Any]:
    engine = make_engine(coordinator.database_url)
    try:
        with make_session_factory(engine)() as session:
            return list(session.execute(query).all())
    finally:
        engine.dispose()


def _owner_id(coordinator: Coordinator, heater: Heater) -> int:
    [(owner_id,)] = _rows(coordinator, select(Device.owner_id).where(Device.id == heater.device_id))
    return int(owner_id)


def test_a_wrong_result_is_caught_unpaid_and_the_job_completes_correctly(
    coordinator: Coordinator,
) -> None:
    submitter = coordinator.submitter_key()
    cheat = Heater(coordinator, coordinator.owner_key("alice"), "cheat", _cheat)
    bob = Heater(coordinator, coordinator.owner_key("bob"), "bob", _honest)
    dave = Heater(coordinator, coordinator.owner_key("dave"), "dave", _honest)
    job_id = _submit(coordinator, submitter, tasks=2)

    first = cheat.claim()
    assert first is not None
    status = cheat.complete(first)
    assert status["state"] == "reported"  # a new device's result is always replicated
    assert status["stop"] is True
    balances = _balances(coordinator)
    held = verification.held_account(_owner_id(coordinator, cheat))
    assert balances[held] == TASK_COST  # held, not paid
    assert f"owner:{_owner_id(coordinator, cheat)}" not in balances

    for _ in range(10):  # rounds of claims until the job is done
        for heater in (cheat, bob, dave):
            heater.work()
            _balances(coordinator)  # balanced after every step
        if _job(coordinator, submitter, job_id)["state"] != "running":
            break

    job = _job(coordinator, submitter, job_id)
    assert job["state"] == "completed"
    assert job["tasks_by_state"] == {"verified": 2}
    assert [task["result"] for task in job["tasks"]] == [{"square": 0}, {"square": 1}]

    device = coordinator.client.get(
        f"/v1/devices/{cheat.device_id}", headers=coordinator.auth(coordinator.operator_key)
    ).json()
    assert device["quarantined_ts"] is not None
    assert "wrong result" in device["quarantine_reason"]

    verdicts = _rows(
        coordinator,
        select(TaskAttempt.device_id, TaskAttempt.verdict)
        .join(Task, Task.id == TaskAttempt.task_id)
        .where(Task.job_id == job_id),
    )
    assert {verdict for device_id, verdict in verdicts if device_id == cheat.device_id} == {
        "caught"
    }
    assert {verdict for device_id, verdict in verdicts if device_id != cheat.device_id} == {
        "verified"
    }
    paid = {device_id for device_id, verdict in verdicts if verdict == "verified"}
    assert paid == {bob.device_id, dave.device_id}

    balances = _balances(coordinator)
    owners = {name: _owner_id(coordinator, heater) for name, heater in (("alice", cheat),
              ("bob", bob), ("dave", dave))}  # fmt: skip
    assert balances.get(f"owner:{owners['alice']}", 0) == 0
    assert all(balances.get(verification.held_account(owner), 0) == 0 for owner in owners.values())
    verified = sum(1 for _, verdict in verdicts if verdict == "verified")
    share = round(TASK_COST * 0.85)
    assert balances[f"owner:{owners['bob']}"] + balances[f"owner:{owners['dave']}"] == (
        verified * share
    )
    submitter_account = next(name for name in balances if name.startswith("submitter:"))
    assert balances[submitter_account] == -verified * TASK_COST  # the cheat's work refunded
    assert job["cost_eur"] == pytest.approx(verified * TASK_COST / 1e6)

    reputations = dict(
        _rows(
            coordinator,
            select(DeviceReputation.device_id, DeviceReputation.consecutive_verified),
        )
    )
    assert reputations[cheat.device_id] == 0
    # bob and dave ran only replicas of the cheat's results (it took both tasks first):
    # agreeing as a replica is paid but earns no reputation (core.trust.after_check)
    assert reputations[bob.device_id] == 0
    assert reputations[dave.device_id] == 0

    assert _log_in(coordinator, submitter, f"/jobs/{job_id}").status_code == 303
    page = coordinator.client.get(f"/jobs/{job_id}")
    assert page.status_code == 200, page.text
    assert "completed · result caught" in page.text
    assert "completed · result verified" in page.text


def test_two_devices_of_one_owner_never_replicate_each_other(coordinator: Coordinator) -> None:
    submitter = coordinator.submitter_key()
    alice = coordinator.owner_key("alice")
    first = Heater(coordinator, alice, "alice 1", _cheat)
    second = Heater(coordinator, alice, "alice 2", _cheat)
    bob = Heater(coordinator, coordinator.owner_key("bob"), "bob", _honest)
    dave = Heater(coordinator, coordinator.owner_key("dave"), "dave", _honest)
    job_id = _submit(coordinator, submitter, tasks=1)

    assert first.work() is not None
    assert second.claim() is None  # alice already holds the only result
    replica = bob.claim()
    assert replica is not None
    assert bob.complete(replica)["state"] == "reported"  # one against one: a third is wanted
    assert second.claim() is None  # still not alice's, however many devices she runs
    assert bob.claim() is None  # nor bob's again
    assert dave.work() is not None
    job = _job(coordinator, submitter, job_id)
    assert job["state"] == "completed"
    assert job["tasks"][0]["state"] == "verified"
    assert job["tasks"][0]["result"] == {"square": 0}
    ran = [device_id for (device_id,) in _rows(coordinator, select(TaskAttempt.device_id))]
    assert sorted(ran) == sorted([first.device_id, bob.device_id, dave.device_id])


def test_results_without_a_quorum_are_void_refunded_and_the_task_runs_again(
    coordinator: Coordinator,
) -> None:
    submitter = coordinator.submitter_key()
    heaters = [
        Heater(coordinator, coordinator.owner_key(name), name, answer)
        for name, answer in (
            ("alice", _cheat),
            ("bob", lambda task_input: {"square": -1}),
            ("dave", _honest),
            ("erin", _honest),
        )
    ]
    job_id = _submit(coordinator, submitter, tasks=1)
    for heater in heaters[:3]:  # three owners, three answers: verify_max_results reached
        assert heater.work() is not None
    job = _job(coordinator, submitter, job_id)
    task = job["tasks"][0]
    assert task["state"] == "queued"
    assert task["result"] is None
    assert "no quorum" in task["last_error"]
    verdicts = [verdict for (verdict,) in _rows(coordinator, select(TaskAttempt.verdict))]
    assert verdicts == ["void"] * 3
    balances = _balances(coordinator)
    assert {name: amount for name, amount in balances.items() if amount != 0} == {}
    assert not any(name.startswith("owner:") for name in balances)  # nobody paid or caught

    coordinator.clock.advance(1_000.0)  # past the retry backoff
    assert heaters[2].work() is not None  # a new round: dave's earlier result counts no more
    assert heaters[3].work() is not None
    job = _job(coordinator, submitter, job_id)
    assert job["state"] == "completed"
    assert job["tasks"][0]["result"] == {"square": 0}
    balances = _balances(coordinator)
    assert sum(amount for name, amount in balances.items() if name.startswith("owner:")) == (
        2 * round(TASK_COST * 0.85)
    )


def test_cancelling_a_job_voids_its_held_results(coordinator: Coordinator) -> None:
    submitter = coordinator.submitter_key()
    alice = Heater(coordinator, coordinator.owner_key("alice"), "alice", _honest)
    job_id = _submit(coordinator, submitter, tasks=1)
    assert alice.work() is not None
    assert _balances(coordinator)[verification.held_account(_owner_id(coordinator, alice))] == (
        TASK_COST
    )
    cancelled = coordinator.client.post(
        f"/v1/jobs/{job_id}/cancel", headers=coordinator.auth(submitter)
    )
    assert cancelled.status_code == 200, cancelled.text
    assert _job(coordinator, submitter, job_id)["tasks"][0]["state"] == "cancelled"
    balances = _balances(coordinator)
    assert {name: amount for name, amount in balances.items() if amount != 0} == {}


_TRUSTING = {
    "rate_limit_per_s": 1e9,
    "rate_limit_burst": 1_000_000,
    "anonymous_rate_limit_per_s": 1e9,
    "anonymous_rate_limit_burst": 1_000_000,
    "verify_results": True,
    "spot_check_floor": 1e-12,
}
TRUSTED = 2_000_000_000
"""Agreeing results in a row: spot-checked with probability 5e-9 at a floor of 1e-12."""


def _set_reputation(coordinator: Coordinator, heater: Heater, consecutive_verified: int) -> None:
    engine = make_engine(coordinator.database_url)
    try:
        with make_session_factory(engine)() as session:
            row = session.get(DeviceReputation, (heater.device_id, verification.INLINE_JOB_KIND))
            if row is None:
                row = DeviceReputation(
                    device_id=heater.device_id,
                    job_kind=verification.INLINE_JOB_KIND,
                    consecutive_verified=0,
                    updated_ts=coordinator.clock(),
                )
                session.add(row)
            row.consecutive_verified = consecutive_verified
            session.commit()
    finally:
        engine.dispose()


def _owner_paid_and_held(coordinator: Coordinator, heater: Heater) -> tuple[int, int]:
    owner = _owner_id(coordinator, heater)
    balances = _balances(coordinator)  # asserts that every transaction balances
    return balances.get(f"owner:{owner}", 0), balances.get(verification.held_account(owner), 0)


def _unchecked(heater: Heater, coordinator: Coordinator) -> None:
    """Let the trusted heater return one result that is not spot-checked."""
    _set_reputation(coordinator, heater, TRUSTED)
    lease = heater.claim()
    assert lease is not None
    assert heater.complete(lease)["state"] == "verified"  # no replica: verified at once
    coordinator.clock.advance(1.0)


def _checked(heater: Heater, replicas: list[Heater], coordinator: Coordinator) -> None:
    """Have the heater's next result spot-checked by the replicas (other owners)."""
    _set_reputation(coordinator, heater, 0)  # as if a spot check were drawn for it
    lease = heater.claim()
    assert lease is not None
    assert heater.complete(lease)["state"] == "reported"
    coordinator.clock.advance(1.0)
    for replica in replicas:
        assert replica.work() is not None
        coordinator.clock.advance(1.0)


@pytest.mark.parametrize("settings_overrides", [_TRUSTING])
def test_a_trusted_devices_unchecked_results_are_paid_when_a_later_spot_check_passes(
    coordinator: Coordinator,
) -> None:
    submitter = coordinator.submitter_key()
    alice = Heater(coordinator, coordinator.owner_key("alice"), "alice", _honest)
    bob = Heater(coordinator, coordinator.owner_key("bob"), "bob", _honest)
    job_id = _submit(coordinator, submitter, tasks=4)
    share = round(TASK_COST * 0.85)
    for count in (1, 2, 3):  # however many: held until a check, not for N results
        _unchecked(alice, coordinator)
        assert _owner_paid_and_held(coordinator, alice) == (0, count * TASK_COST)
    _checked(alice, [bob], coordinator)
    assert _owner_paid_and_held(coordinator, alice) == (4 * share, 0)
    job = _job(coordinator, submitter, job_id)
    assert job["state"] == "completed"
    assert [task["result"] for task in job["tasks"]] == [{"square": n * n} for n in range(4)]
    reputation = _rows(
        coordinator,
        select(DeviceReputation.consecutive_verified).where(
            DeviceReputation.device_id == alice.device_id
        ),
    )
    assert reputation == [(1,)]  # the checked result earned one; unchecked ones earn nothing


@pytest.mark.parametrize("settings_overrides", [_TRUSTING])
def test_agreeing_as_a_replica_pays_the_replica_but_releases_no_held_credit(
    coordinator: Coordinator,
) -> None:
    """A device knows a replica will be compared (its lease's attempt is not the first), so a
    cheat could be honest exactly there: only a check drawn for its own result releases."""
    submitter = coordinator.submitter_key()
    alice = Heater(coordinator, coordinator.owner_key("alice"), "alice", _honest)
    bob = Heater(coordinator, coordinator.owner_key("bob"), "bob", _honest)
    share = round(TASK_COST * 0.85)
    _submit(coordinator, submitter, tasks=2)
    _unchecked(alice, coordinator)
    _unchecked(alice, coordinator)
    assert _owner_paid_and_held(coordinator, alice) == (0, 2 * TASK_COST)
    _submit(coordinator, submitter, tasks=1)
    _checked(bob, [alice], coordinator)  # alice runs the replica of bob's drawn check
    assert _owner_paid_and_held(coordinator, bob) == (share, 0)
    assert _owner_paid_and_held(coordinator, alice) == (share, 2 * TASK_COST)
    _submit(coordinator, submitter, tasks=1)
    _checked(alice, [bob], coordinator)  # a check drawn for alice's own result
    assert _owner_paid_and_held(coordinator, alice) == (4 * share, 0)


def _reputation(coordinator: Coordinator, heater: Heater) -> int:
    [(consecutive_verified,)] = _rows(
        coordinator,
        select(DeviceReputation.consecutive_verified).where(
            DeviceReputation.device_id == heater.device_id
        ),
    )
    return int(consecutive_verified)


def test_only_a_check_drawn_for_its_own_result_raises_a_devices_reputation(
    coordinator: Coordinator,
) -> None:
    """A cheat honest on every replica it runs (its lease tells it one) must not lower its own
    spot-check rate by them: an agreeing replica is paid for itself and earns no reputation; a
    disagreeing one still resets it and quarantines (core.trust.after_check)."""
    submitter = coordinator.submitter_key()
    alice = Heater(coordinator, coordinator.owner_key("alice"), "alice", _honest)
    bob = Heater(coordinator, coordinator.owner_key("bob"), "bob", _honest)
    dave = Heater(coordinator, coordinator.owner_key("dave"), "dave", _honest)
    share = round(TASK_COST * 0.85)
    _set_reputation(coordinator, alice, 5)
    _set_reputation(coordinator, dave, 7)
    _submit(coordinator, submitter, tasks=1)
    _checked(bob, [alice], coordinator)  # alice runs the replica of bob's drawn check
    assert _reputation(coordinator, bob) == 1  # its own result's check passed
    assert _reputation(coordinator, alice) == 5  # agreeing as a replica earns nothing
    assert _owner_paid_and_held(coordinator, alice) == (share, 0)  # but is paid for itself

    alice.answer = _cheat
    job_id = _submit(coordinator, submitter, tasks=1)
    _set_reputation(coordinator, alice, 5)
    bob_before = _owner_paid_and_held(coordinator, bob)
    _checked(bob, [alice, dave], coordinator)  # alice's replica disagrees, dave breaks the tie
    assert _job(coordinator, submitter, job_id)["tasks"][0]["result"] == {"square": 0}
    assert _reputation(coordinator, alice) == 0  # caught as a replica: reset
    assert _reputation(coordinator, dave) == 7  # the tie-break agreed: a replica, unchanged
    assert _reputation(coordinator, bob) == 1  # set to 0 for the draw, then its check passed
    assert _owner_paid_and_held(coordinator, bob)[0] == bob_before[0] + share
    [(quarantined,)] = _rows(
        coordinator, select(Device.quarantined_ts).where(Device.id == alice.device_id)
    )
    assert quarantined is not None


@pytest.mark.parametrize("settings_overrides", [_TRUSTING])
def test_a_cheat_caught_at_its_second_spot_check_forfeits_everything_since_its_first(
    coordinator: Coordinator,
) -> None:
    submitter = coordinator.submitter_key()
    alice = Heater(coordinator, coordinator.owner_key("alice"), "alice", _honest)
    bob = Heater(coordinator, coordinator.owner_key("bob"), "bob", _honest)
    dave = Heater(coordinator, coordinator.owner_key("dave"), "dave", _honest)
    share = round(TASK_COST * 0.85)
    _submit(coordinator, submitter, tasks=1)
    _unchecked(alice, coordinator)
    _submit(coordinator, submitter, tasks=1)
    _checked(alice, [bob], coordinator)  # first spot check passes: both results paid
    assert _owner_paid_and_held(coordinator, alice) == (2 * share, 0)

    alice.answer = _cheat  # trusted now: it cheats on everything after its first check
    for _ in range(3):
        _submit(coordinator, submitter, tasks=1)
        _unchecked(alice, coordinator)
    assert _owner_paid_and_held(coordinator, alice) == (2 * share, 3 * TASK_COST)
    job_id = _submit(coordinator, submitter, tasks=1)
    _checked(alice, [bob, dave], coordinator)  # second spot check: caught
    assert _job(coordinator, submitter, job_id)["tasks"][0]["result"] == {"square": 0}
    # all three unchecked results since the first check are forfeited with the caught one,
    # and clawback (on by default) takes back the unchecked one the first check paid: only
    # the checked result stays paid
    assert _owner_paid_and_held(coordinator, alice) == (share, 0)
    verdicts = _rows(
        coordinator,
        select(TaskAttempt.verdict)
        .where(TaskAttempt.device_id == alice.device_id)
        .order_by(TaskAttempt.ended_ts),
    )
    assert [verdict for (verdict,) in verdicts] == ["verified"] * 2 + ["caught"] * 4
    [(quarantined,)] = _rows(
        coordinator, select(Device.quarantined_ts).where(Device.id == alice.device_id)
    )
    assert quarantined is not None


def _expire_holds(coordinator: Coordinator, now_ts: float, **overrides: Any) -> int:
    """Run the coordinator's sweep at ``now_ts``; return the held results it refunded."""
    settings = Settings(database_url=coordinator.database_url, verify_results=True, **overrides)
    engine = make_engine(coordinator.database_url)
    try:
        with make_session_factory(engine)() as session:
            before = _refunds(session)
            housekeeping.sweep(
                session, coordinator.app.state.checkpoint_store, now_ts=now_ts, settings=settings
            )
            return _refunds(session) - before
    finally:
        engine.dispose()


def _refunds(session: Session) -> int:
    kinds = select(LedgerTransaction.id).where(LedgerTransaction.kind == "result_unverified")
    return len(session.execute(kinds).all())


@pytest.mark.parametrize("settings_overrides", [_TRUSTING])
def test_unchecked_credit_no_later_check_covers_is_refunded_after_the_hold_limit(
    coordinator: Coordinator,
) -> None:
    submitter = coordinator.submitter_key()
    alice = Heater(coordinator, coordinator.owner_key("alice"), "alice", _honest)
    job_id = _submit(coordinator, submitter, tasks=2)
    _unchecked(alice, coordinator)
    reported_ts = coordinator.clock()
    _unchecked(alice, coordinator)  # alice then goes silent: no later spot check comes
    limit_s = 3 * 86_400.0
    assert _expire_holds(coordinator, reported_ts + limit_s - 2.0, hold_limit_s=limit_s) == 0
    assert _owner_paid_and_held(coordinator, alice) == (0, 2 * TASK_COST)
    assert _expire_holds(coordinator, reported_ts + limit_s - 1.0, hold_limit_s=limit_s) == 1
    assert _owner_paid_and_held(coordinator, alice) == (0, TASK_COST)
    assert _expire_holds(coordinator, reported_ts + limit_s, hold_limit_s=limit_s) == 1
    assert _owner_paid_and_held(coordinator, alice) == (0, 0)
    balances = _balances(coordinator)
    assert {name: amount for name, amount in balances.items() if amount} == {}  # refunded
    kinds = _rows(
        coordinator,
        select(LedgerTransaction.kind, LedgerTransaction.device_id).where(
            LedgerTransaction.kind == "result_unverified"
        ),
    )
    assert kinds == [("result_unverified", alice.device_id)] * 2  # in the owner's ledger
    assert _job(coordinator, submitter, job_id)["state"] == "completed"  # results stay


def test_a_checked_result_no_other_owner_replicates_is_refunded_and_runs_again(
    coordinator: Coordinator,
) -> None:
    submitter = coordinator.submitter_key()
    alice = Heater(coordinator, coordinator.owner_key("alice"), "alice", _honest)
    job_id = _submit(coordinator, submitter, tasks=1)
    assert alice.work() is not None  # a new device: checked, but alice's owner is alone
    reported_ts = coordinator.clock()
    assert alice.claim() is None  # never its own replica
    limit_s = 86_400.0
    assert _expire_holds(coordinator, reported_ts + limit_s - 1.0, hold_limit_s=limit_s) == 0
    assert _job(coordinator, submitter, job_id)["tasks"][0]["state"] == "reported"
    assert _expire_holds(coordinator, reported_ts + limit_s, hold_limit_s=limit_s) == 1
    assert _job(coordinator, submitter, job_id)["tasks"][0]["state"] == "queued"
    [(last_error,)] = _rows(coordinator, select(Task.last_error))
    assert "refunded" in last_error
    assert {name: amount for name, amount in _balances(coordinator).items() if amount} == {}
    coordinator.clock.advance(limit_s)
    beat = coordinator.client.post(
        f"/v1/devices/{alice.device_id}/heartbeat",
        json=coordinator.heartbeat_body(coordinator.clock(), [0.0]),
        headers=alice.headers,
    )
    assert beat.status_code == 200, beat.text
    bob = Heater(coordinator, coordinator.owner_key("bob"), "bob", _honest)
    assert alice.work() is not None  # it runs again; now another owner can replicate it
    assert bob.work() is not None
    assert _job(coordinator, submitter, job_id)["state"] == "completed"
    assert _owner_paid_and_held(coordinator, alice) == (round(TASK_COST * 0.85), 0)


def test_a_replica_starts_from_scratch_and_a_lost_one_goes_to_another_owner(
    coordinator: Coordinator,
) -> None:
    submitter = coordinator.submitter_key()
    alice = Heater(coordinator, coordinator.owner_key("alice"), "alice", _honest)
    bob = Heater(coordinator, coordinator.owner_key("bob"), "bob", _honest)
    dave = Heater(coordinator, coordinator.owner_key("dave"), "dave", _honest)
    job_id = _submit(coordinator, submitter, tasks=1)
    lease = alice.claim()
    assert lease is not None
    task_url = f"/v1/devices/{alice.device_id}/tasks/{lease['task_id']}"
    saved = coordinator.client.put(
        f"{task_url}/checkpoint",
        params={"attempt": lease["attempt"], "energy_j": TASK_ENERGY_J / 2},
        content=b"half of the work",
        headers={**alice.headers, "Content-Type": "application/octet-stream"},
    )
    assert saved.status_code == 200, saved.text
    assert alice.complete(lease)["state"] == "reported"

    replica = bob.claim()
    assert replica is not None
    assert replica["task_id"] == lease["task_id"]
    assert replica["checkpoint_seq"] is None  # never from the work it checks
    assert replica["progress_energy_j"] == 0.0
    bob_url = f"/v1/devices/{bob.device_id}/tasks/{replica['task_id']}"
    other = coordinator.client.get(f"{bob_url}/checkpoints/1", headers=bob.headers)
    assert other.status_code == 404
    assert "another attempt" in other.json()["detail"]
    newest = coordinator.client.get(f"{bob_url}/checkpoint", headers=bob.headers)
    assert newest.status_code == 204
    assert _job(coordinator, submitter, job_id)["tasks"][0]["state"] == "verifying"

    coordinator.clock.advance(1_000.0)  # bob falls silent: his lease lapses at the next claim
    again = dave.claim()
    assert again is not None
    assert again["task_id"] == lease["task_id"]
    assert again["checkpoint_seq"] is None
    dave.complete(again)
    job = _job(coordinator, submitter, job_id)
    assert job["state"] == "completed"
    assert job["tasks"][0]["state"] == "verified"
    outcomes = _rows(coordinator, select(TaskAttempt.device_id, TaskAttempt.outcome))
    assert (bob.device_id, "expired") in outcomes
    _balances(coordinator)


def test_a_job_may_ask_for_three_agreeing_owners(coordinator: Coordinator) -> None:
    submitter = coordinator.submitter_key()
    heaters = [
        Heater(coordinator, coordinator.owner_key(name), name, _honest)
        for name in ("alice", "bob", "dave")
    ]
    body = {
        "name": "squares",
        "device_kinds": ["gpu"],
        "verify_quorum": 3,
        "tasks": [{"task_input": {"n": 3}, "energy_j": TASK_ENERGY_J}],
    }
    answer = coordinator.client.post("/v1/jobs", json=body, headers=coordinator.auth(submitter))
    assert answer.status_code == 201, answer.text
    job_id = str(answer.json()["job_id"])
    assert heaters[0].work() is not None
    assert heaters[1].work() is not None
    job = _job(coordinator, submitter, job_id)
    assert job["verify_quorum"] == 3
    assert job["tasks"][0]["state"] == "reported"  # two owners agree: not enough for this job
    assert heaters[2].work() is not None
    job = _job(coordinator, submitter, job_id)
    assert job["tasks"][0]["state"] == "verified"
    assert job["tasks"][0]["result"] == {"square": 9}
    bad = coordinator.client.post(
        "/v1/jobs", json={**body, "verify_quorum": 1}, headers=coordinator.auth(submitter)
    )
    assert bad.status_code == 422
    assert "verify_quorum" in bad.text


def test_a_task_never_resumes_from_another_devices_checkpoint(coordinator: Coordinator) -> None:
    """A device answers for its whole result: a lost task starts again on the next device."""
    submitter = coordinator.submitter_key()
    alice = Heater(coordinator, coordinator.owner_key("alice"), "alice", _cheat)
    bob = Heater(coordinator, coordinator.owner_key("bob"), "bob", _honest)
    dave = Heater(coordinator, coordinator.owner_key("dave"), "dave", _honest)
    job_id = _submit(coordinator, submitter, tasks=1)
    lease = alice.claim()
    assert lease is not None
    saved = coordinator.client.put(
        f"/v1/devices/{alice.device_id}/tasks/{lease['task_id']}/checkpoint",
        params={"attempt": lease["attempt"], "energy_j": TASK_ENERGY_J / 2},
        content=b"a made-up half",
        headers={**alice.headers, "Content-Type": "application/octet-stream"},
    )
    assert saved.status_code == 200, saved.text
    coordinator.clock.advance(1_000.0)  # alice falls silent; her lease lapses at this claim
    assert bob.claim() is None  # requeued with a backoff
    coordinator.clock.advance(100.0)
    taken = bob.claim()
    assert taken is not None
    assert taken["task_id"] == lease["task_id"]
    assert taken["checkpoint_seq"] is None
    assert taken["progress_energy_j"] == 0.0
    assert _job(coordinator, submitter, job_id)["tasks"][0]["progress_energy_j"] == 0.0
    bob_url = f"/v1/devices/{bob.device_id}/tasks/{taken['task_id']}"
    other = coordinator.client.get(f"{bob_url}/checkpoints/1", headers=bob.headers)
    assert other.status_code == 404  # not even on request
    assert coordinator.client.get(f"{bob_url}/checkpoint", headers=bob.headers).status_code == 204
    bob.complete(taken)
    assert dave.work() is not None
    job = _job(coordinator, submitter, job_id)
    assert job["tasks"][0]["state"] == "verified"
    starts = _rows(coordinator, select(TaskAttempt.device_id, TaskAttempt.start_progress_energy_j))
    assert sorted(start for _, start in starts) == [0.0, 0.0, 0.0]
    _balances(coordinator)
