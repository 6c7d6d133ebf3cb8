"""The read models: what each role sees, the numbers on them, and a fixed number of statements
per page whatever the page holds (counted with an SQLAlchemy event hook), on SQLite and
PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from sqlalchemy import event
from sqlalchemy.orm import Session

from heatgrid.coordinator import views
from heatgrid.coordinator.auth import AccountPrincipal, authenticate_account
from heatgrid.coordinator.db import make_engine, make_session_factory
from heatgrid.coordinator.errors import NotFoundError

from .conftest import Coordinator
from .dashboard_fleet import TASK_ENERGY_J, heartbeat, populate

pytestmark = pytest.mark.usefixtures("backend")

ONLINE_WINDOW_S = 180.0


@contextmanager
def _session(coordinator: Coordinator) -> Iterator[tuple[Session, list[str]]]:
    """A session on the coordinator's database and the list of statements it runs."""
    engine = make_engine(coordinator.database_url)
    statements: list[str] = []

    def count(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", count)
    try:
        with make_session_factory(engine)() as session:
            yield session, statements
    finally:
        event.remove(engine, "before_cursor_execute", count)
        engine.dispose()


def _principal(session: Session, key: str) -> AccountPrincipal:
    return authenticate_account(session, key)


def _enroll_heaters(coordinator: Coordinator, owner_key: str, count: int) -> list[str]:
    ids = []
    for index in range(count):
        device_id, token = coordinator.enroll(coordinator.enrollment_code(owner_key), f"h{index}")
        answer = coordinator.client.post(
            f"/v1/devices/{device_id}/heartbeat",
            json=heartbeat(coordinator.clock(), samples=3, phase=index),
            headers=coordinator.auth(token),
        )
        assert answer.status_code == 200, answer.text
        ids.append(device_id)
    return ids


def _statements_for_fleet(coordinator: Coordinator, owner_key: str) -> tuple[int, int]:
    with _session(coordinator) as (session, statements):
        actor = _principal(session, owner_key)
        before = len(statements)
        fleet = views.fleet_view(
            session, actor, now_ts=coordinator.clock(), online_window_s=ONLINE_WINDOW_S
        )
        return len(statements) - before, len(fleet.devices)


def test_the_fleet_page_takes_as_many_statements_for_50_heaters_as_for_1(
    coordinator: Coordinator,
) -> None:
    few, many = coordinator.owner_key("few"), coordinator.owner_key("many")
    _enroll_heaters(coordinator, few, 1)
    _enroll_heaters(coordinator, many, 50)
    count_1, shown_1 = _statements_for_fleet(coordinator, few)
    count_50, shown_50 = _statements_for_fleet(coordinator, many)
    assert (shown_1, shown_50) == (1, 50)
    assert count_1 == count_50 == 3


def test_job_pages_take_fixed_statements_whatever_their_size(coordinator: Coordinator) -> None:
    submitter = coordinator.submitter_key()
    for tasks in (1, 40):
        body = {
            "name": f"job of {tasks}",
            "device_kinds": ["gpu"],
            "tasks": [{"task_input": {"n": n}, "energy_j": 1000.0} for n in range(tasks)],
        }
        answer = coordinator.client.post("/v1/jobs", json=body, headers=coordinator.auth(submitter))
        assert answer.status_code == 201, answer.text
        coordinator.clock.advance(60.0)
    with _session(coordinator) as (session, statements):
        actor = _principal(session, submitter)
        start = len(statements)
        jobs = views.jobs_view(session, actor)
        listed = len(statements) - start
        counts = []
        for job in jobs:
            start = len(statements)
            detail = views.job_detail_view(session, actor, job.job_id)
            counts.append(len(statements) - start)
            assert len(detail.tasks) == job.task_count
    assert [job.task_count for job in jobs] == [40, 1]  # newest first
    assert listed == 3
    assert counts == [6, 6]


def test_an_owner_sees_only_their_heaters_and_an_operator_sees_all(
    coordinator: Coordinator,
) -> None:
    fleet = populate(coordinator.client, coordinator.operator_key, coordinator.clock())
    with _session(coordinator) as (session, _):
        alice = _principal(session, fleet.keys["alice"])
        seen = views.fleet_view(
            session, alice, now_ts=coordinator.clock(), online_window_s=ONLINE_WINDOW_S
        )
        assert [device.name for device in seen.devices] == ["living room", "study"]
        assert {device.owner_name for device in seen.devices} == {"alice"}
        assert (seen.devices_total, seen.devices_online) == (2, 2)
        assert seen.heat_power_w == pytest.approx(
            sum(device.power_w or 0.0 for device in seen.devices)
        )
        bobs_attic = fleet.heaters["attic office"][0]
        with pytest.raises(NotFoundError, match=bobs_attic):
            views.device_history(
                session,
                alice,
                bobs_attic,
                now_ts=coordinator.clock(),
                online_window_s=ONLINE_WINDOW_S,
                since_ts=0.0,
            )
        operator = _principal(session, coordinator.operator_key)
        everything = views.fleet_view(
            session, operator, now_ts=coordinator.clock(), online_window_s=ONLINE_WINDOW_S
        )
        assert len(everything.devices) == 4
        carol = _principal(session, fleet.keys["carol"])
        assert (
            views.fleet_view(
                session, carol, now_ts=coordinator.clock(), online_window_s=ONLINE_WINDOW_S
            ).devices
            == ()
        )
        assert [job.job_id for job in views.jobs_view(session, carol)] == [fleet.job_id]
        assert views.jobs_view(session, alice) == ()
        with pytest.raises(NotFoundError):
            views.job_detail_view(session, alice, fleet.job_id)
        with pytest.raises(NotFoundError):
            views.ledger_account_for(alice, "owner:999")


def test_status_health_history_job_and_ledger_numbers(coordinator: Coordinator) -> None:
    fleet = populate(coordinator.client, coordinator.operator_key, coordinator.clock())
    now_ts = coordinator.clock()
    with _session(coordinator) as (session, statements):
        operator = _principal(session, coordinator.operator_key)
        by_name = {
            device.name: device
            for device in views.fleet_view(
                session, operator, now_ts=now_ts, online_window_s=ONLINE_WINDOW_S
            ).devices
        }
        attic = by_name["attic office"]
        assert attic.room_temp_c is not None
        assert attic.setpoint_c is not None
        assert attic.room_temp_c < attic.setpoint_c - views.COMFORT_TOLERANCE_K
        assert attic.health == "too cold"
        assert by_name["study"].earnings_eur > 0  # its task was settled
        assert by_name["study"].compute_energy_kwh == pytest.approx(TASK_ENERGY_J / 3.6e6)
        assert by_name["living room"].planned_heat_power_w == pytest.approx(0.8 * 1400.0)

        start = len(statements)
        history = views.device_history(
            session,
            operator,
            by_name["study"].device_id,
            now_ts=now_ts,
            online_window_s=ONLINE_WINDOW_S,
            since_ts=now_ts - 86_400.0,
        )
        assert len(statements) - start == 6
        assert len(history.points) == 288
        assert [point.ts for point in history.points] == sorted(p.ts for p in history.points)
        assert history.points[-1].ts == now_ts
        assert [attempt.outcome for attempt in history.attempts] == ["completed"]
        assert len(history.heat_window) == 2

        detail = views.job_detail_view(session, operator, fleet.job_id)
        states = sorted(task.state for task in detail.tasks)
        assert states == ["completed", "leased", "queued"]
        # one task done in full, one saved a quarter of its energy at its checkpoint:
        assert detail.summary.progress_fraction == pytest.approx((1 + 0.25) / 3)
        assert detail.summary.tasks_done == 1
        assert {checkpoint.device_name for checkpoint in detail.checkpoints} == {
            "study",
            "attic office",
        }
        leased = next(task for task in detail.tasks if task.state == "leased")
        assert leased.lease_device_name == "attic office"
        assert detail.cost_eur == pytest.approx(0.2 * 0.20)
        assert detail.heat_reused_kwh == pytest.approx(0.2)

        alice = _principal(session, fleet.keys["alice"])
        account = views.ledger_account_for(alice, None)
        ledger = views.ledger_view(session, alice, account)
        assert account == f"owner:{alice.account_id}"
        money = {balance.unit: balance.amount for balance in ledger.balances}
        assert money["micro_eur"] == round(0.2 * 0.20 * 0.85 * 1e6)
        assert ledger.all_balances == ()  # only an operator sees every account
        assert views.ledger_view(session, operator, "platform").all_balances


def test_the_mining_view_reads_each_heaters_hashrate_from_its_telemetry(
    coordinator: Coordinator,
) -> None:
    fleet = populate(coordinator.client, coordinator.operator_key, coordinator.clock())
    expected = heartbeat(coordinator.clock(), samples=288, max_power_w=1400.0)["telemetry"]
    with _session(coordinator) as (session, statements):
        operator = _principal(session, fleet.keys["operator"])
        alice = _principal(session, fleet.keys["alice"])
        before = len(statements)
        everything = views.mining_view(session, operator, now_ts=coordinator.clock())
        assert len(statements) - before == 1
        alices = views.mining_view(session, alice, now_ts=coordinator.clock())
    # The GPU heaters ran tasks: only the two ASICs mined.
    assert [d.name for d in everything.devices] == ["kitchen", "living room"]
    assert [d.name for d in alices.devices] == ["living room"]
    living = alices.devices[0]
    rates = [sample["hashrate_ths"] for sample in expected]
    assert living.samples == 288
    assert living.mining_share == 1.0
    assert living.mean_hashrate_ths == pytest.approx(sum(rates) / len(rates), rel=1e-3)
    assert living.work_ph == pytest.approx(living.mean_hashrate_ths * 288 * 300.0 / 1000.0)
    assert [name for name, _, _ in everything.owners] == ["alice", "bob"]
    assert everything.work_ph == pytest.approx(sum(d.work_ph for d in everything.devices))
