"""Clawback (issue 17): a caught device's unchecked pay taken back, on SQLite and PostgreSQL.

A trusted device that cheats on one result in N is paid for a cheated result when a later
spot check of an honest one passes (held credit is released by a check of a *later* result).
When it is then caught: with clawback on (the default, 90 days; the tests set a 30-day
window), what its unchecked results reported within the window were paid is taken back from
its owner's balance (never more than it holds) and refunded to the submitter, in the same
transaction that quarantines it, with the ledger balanced after every step; with
``clawback_window_s`` 0 (off) what was released stays paid. An honest device, of the same
owner or another, is never clawed back. The operator's release of the caught device reverses
its clawbacks (once each, whatever the retries), unless asked to keep them; the job's API
shows each attempt's ``clawed_back`` and ``clawback_reversed``.
"""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest
from sqlalchemy import select

from heatgrid.cli.main import main
from heatgrid.coordinator import ledger, verification, views
from heatgrid.coordinator.auth import AccountPrincipal
from heatgrid.coordinator.db import make_engine, make_session_factory
from heatgrid.coordinator.db.models import Device, LedgerTransaction, TaskAttempt
from heatgrid.coordinator.settings import Settings
from heatgrid.core.errors import InputError

from .conftest import Coordinator
from .test_dashboard import _log_in
from .test_verification import (
    _TRUSTING,
    TASK_COST,
    Heater,
    _balances,
    _cheat,
    _checked,
    _honest,
    _job,
    _owner_id,
    _rows,
    _submit,
    _unchecked,
)

pytestmark = pytest.mark.usefixtures("backend")

SHARE = round(TASK_COST * 0.85)
FEE = TASK_COST - SHARE
DAY_S = 86_400.0
_HOLD = {**_TRUSTING, "hold_limit_s": 60 * DAY_S}  # results held 40 days stay held
_OFF = {**_HOLD, "clawback_window_s": 0.0}
_CLAWBACK = {**_HOLD, "clawback_window_s": 30 * DAY_S}


def _one_in_n_cheat(
    coordinator: Coordinator, submitter: str, cheat: Heater, replicas: list[Heater]
) -> str:
    """Play a 1-in-3 cheat: paid for a cheated result by a passed check, then caught.

    The cheat's first unchecked result is reported 40 days before the catch (outside a 30-day
    window), then an honest and a cheated one; a spot check of an honest result passes and
    releases all three; then an unchecked cheated one (held), and a check of a cheated result
    catches it. Each result is of a job of its own; returns the id of the paid cheated one's.
    """
    _submit(coordinator, submitter, tasks=1)
    _unchecked(cheat, coordinator)  # honest, old: outside the window at the catch
    coordinator.clock.advance(40 * DAY_S)
    for heater in (cheat, *replicas):
        heater.beat()
    _submit(coordinator, submitter, tasks=1)
    _unchecked(cheat, coordinator)  # honest
    cheat.answer = _cheat
    job_id = _submit(coordinator, submitter, tasks=1)
    _unchecked(cheat, coordinator)  # cheated, let through unchecked
    cheat.answer = _honest
    _submit(coordinator, submitter, tasks=1)
    _checked(cheat, replicas[:1], coordinator)  # passes: releases the three before it
    cheat.answer = _cheat
    _submit(coordinator, submitter, tasks=1)
    _unchecked(cheat, coordinator)  # cheated, held
    _submit(coordinator, submitter, tasks=1)
    _checked(cheat, replicas, coordinator)  # cheated and checked: caught
    return job_id


def _attempts(coordinator: Coordinator, heater: Heater) -> list[tuple[str, bool]]:
    rows = _rows(
        coordinator,
        select(TaskAttempt.verdict, TaskAttempt.clawed_back)
        .where(TaskAttempt.device_id == heater.device_id)
        .order_by(TaskAttempt.ended_ts),
    )
    return [(str(verdict), bool(clawed)) for verdict, clawed in rows]


def _quarantined(coordinator: Coordinator, heater: Heater) -> bool:
    [(quarantined_ts,)] = _rows(
        coordinator, select(Device.quarantined_ts).where(Device.id == heater.device_id)
    )
    return quarantined_ts is not None


def _report(coordinator: Coordinator, key: str, job_id: str) -> dict[str, Any]:
    answer = coordinator.client.get(f"/v1/jobs/{job_id}/report", headers=coordinator.auth(key))
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def _statement_kinds(coordinator: Coordinator, heater: Heater) -> list[str]:
    """Return the kinds of the lines of the owner's statement (the dashboard's ledger page)."""
    owner_id = _owner_id(coordinator, heater)
    owner = AccountPrincipal(owner_id, "owner", "owner", "key", frozenset())
    engine = make_engine(coordinator.database_url)
    try:
        with make_session_factory(engine)() as session:
            statement = views.ledger_view(session, owner, f"owner:{owner_id}")
            return [line.kind for line in statement.lines]
    finally:
        engine.dispose()


@pytest.mark.parametrize("settings_overrides", [_OFF])
def test_off_a_caught_cheat_keeps_what_a_passed_check_released(coordinator: Coordinator) -> None:
    submitter = coordinator.submitter_key()
    alice, bob, dave = _three_owners(coordinator)
    job_id = _one_in_n_cheat(coordinator, submitter, alice, [bob, dave])
    assert _quarantined(coordinator, alice)
    balances = _balances(coordinator)  # asserts that every transaction balances
    # clawback off: the cheated result the passed check released stays paid
    assert balances[f"owner:{_owner_id(coordinator, alice)}"] == 4 * SHARE
    assert _attempts(coordinator, alice) == [("verified", False)] * 4 + [("caught", False)] * 2
    assert "result_clawed_back" not in _statement_kinds(coordinator, alice)
    assert _report(coordinator, submitter, job_id)["clawed_back_results"] == 0
    [attempt] = _api_attempts(coordinator, submitter, job_id)
    assert (attempt["clawed_back"], attempt["clawback_reversed"]) == (False, False)


@pytest.mark.parametrize("settings_overrides", [_CLAWBACK])
def test_on_a_caught_cheats_unchecked_pay_in_the_window_is_taken_back(
    coordinator: Coordinator,
) -> None:
    submitter = coordinator.submitter_key()
    alice, bob, dave = _three_owners(coordinator)
    job_id = _one_in_n_cheat(coordinator, submitter, alice, [bob, dave])
    assert _quarantined(coordinator, alice)
    balances = _balances(coordinator)  # asserts that every transaction balances
    # kept: the old honest result (outside the window) and the checked one (checked: honest)
    assert balances[f"owner:{_owner_id(coordinator, alice)}"] == 2 * SHARE
    assert _attempts(coordinator, alice) == [
        ("verified", False),  # 40 days before the catch: outside the 30-day window
        ("verified", True),  # honest but unchecked: taken back with the cheated one
        ("verified", True),  # the cheated result the passed check paid for
        ("verified", False),  # the checked result itself
        ("caught", False),
        ("caught", False),
    ]
    assert balances[f"owner:{_owner_id(coordinator, bob)}"] == 2 * SHARE  # both checks
    assert balances[f"owner:{_owner_id(coordinator, dave)}"] == SHARE  # the tie-break
    [submitter_account] = [name for name in balances if name.startswith("submitter:")]
    kept = 2 + 3  # alice's two results still paid, the replicas' three
    assert balances[submitter_account] == -kept * TASK_COST  # all the rest refunded
    assert balances["platform"] == kept * FEE
    assert balances.get(ledger.held_account(_owner_id(coordinator, alice)), 0) == 0
    assert _statement_kinds(coordinator, alice).count("result_clawed_back") == 2
    report = _report(coordinator, submitter, job_id)
    assert report["clawed_back_results"] == 1
    assert report["clawed_back_refund_eur"] == pytest.approx(TASK_COST / 1e6)
    assert _log_in(coordinator, submitter, f"/jobs/{job_id}").status_code == 303
    page = coordinator.client.get(f"/jobs/{job_id}")
    assert page.status_code == 200, page.text
    assert "completed · result verified · clawed back" in page.text


def _three_owners(coordinator: Coordinator) -> tuple[Heater, Heater, Heater]:
    """Honest heaters of three owners: alice, bob and dave."""
    return (
        Heater(coordinator, coordinator.owner_key("alice"), "alice", _honest),
        Heater(coordinator, coordinator.owner_key("bob"), "bob", _honest),
        Heater(coordinator, coordinator.owner_key("dave"), "dave", _honest),
    )


def _two_cheats_paid(coordinator: Coordinator, submitter: str) -> tuple[Heater, Heater, Heater]:
    """Alice's two cheated results, unchecked, paid by a passed check of her third (with bob's
    replica); dave is a third honest owner. Returns (alice, bob, dave)."""
    alice, bob, dave = _three_owners(coordinator)
    alice.answer = _cheat
    for _ in range(2):
        _submit(coordinator, submitter, tasks=1)
        _unchecked(alice, coordinator)
    alice.answer = _honest
    _submit(coordinator, submitter, tasks=1)
    _checked(alice, [bob], coordinator)  # releases both cheated results: 3 shares paid
    return alice, bob, dave


@pytest.mark.parametrize("settings_overrides", [_CLAWBACK])
def test_clawback_takes_no_more_than_the_owners_balance(coordinator: Coordinator) -> None:
    """Money moved out of the owner's account (as a payout would) is not reached: no debt."""
    submitter = coordinator.submitter_key()
    alice, bob, dave = _two_cheats_paid(coordinator, submitter)
    owner = f"owner:{_owner_id(coordinator, alice)}"
    assert _balances(coordinator)[owner] == 3 * SHARE
    paid_out = 3 * SHARE - SHARE // 2  # the owner's account keeps half a share
    engine = make_engine(coordinator.database_url)
    try:
        with make_session_factory(engine)() as session:
            ledger.post(
                session,
                key="test:payout",
                kind="payout",
                postings=[
                    ledger.Posting(owner, "micro_eur", -paid_out),
                    ledger.Posting("paid_out", "micro_eur", paid_out),
                ],
                now_ts=coordinator.clock(),
            )
            session.commit()
    finally:
        engine.dispose()
    alice.answer = _cheat
    _submit(coordinator, submitter, tasks=1)
    _checked(alice, [bob, dave], coordinator)  # caught
    balances = _balances(coordinator)  # asserts that every transaction balances
    assert balances[owner] == 0  # took what was left, not more
    assert balances["paid_out"] == paid_out  # paid-out money untouched
    clawed = _rows(
        coordinator,
        select(LedgerTransaction.id).where(LedgerTransaction.kind == "result_clawed_back"),
    )
    assert len(clawed) == 2
    assert [clawed for _, clawed in _attempts(coordinator, alice)] == [True, True, False, False]
    [submitter_account] = [name for name in balances if name.startswith("submitter:")]
    charged = 4 + 3  # alice's four results and the three replicas
    refunded = TASK_COST + 2 * FEE + SHARE // 2  # the forfeited result; the clawback
    assert balances[submitter_account] == -charged * TASK_COST + refunded
    assert balances["platform"] == (6 - 2) * FEE  # six results paid, two fees returned


@pytest.mark.parametrize("settings_overrides", [_CLAWBACK])
def test_an_honest_device_is_never_clawed_back(coordinator: Coordinator) -> None:
    """Honest devices, of the cheat's owner and of others, keep their unchecked pay."""
    submitter = coordinator.submitter_key()
    alice_key = coordinator.owner_key("alice")
    honest = Heater(coordinator, alice_key, "alice-honest", _honest)
    cheat = Heater(coordinator, alice_key, "alice-cheat", _honest)
    bob = Heater(coordinator, coordinator.owner_key("bob"), "bob", _honest)
    dave = Heater(coordinator, coordinator.owner_key("dave"), "dave", _honest)
    erin = Heater(coordinator, coordinator.owner_key("erin"), "erin", _honest)
    for heater in (honest, bob):  # two honest devices paid for an unchecked result each
        _submit(coordinator, submitter, tasks=1)
        _unchecked(heater, coordinator)
        _submit(coordinator, submitter, tasks=1)
        _checked(heater, [dave], coordinator)
    cheat.answer = _cheat
    _submit(coordinator, submitter, tasks=1)
    _unchecked(cheat, coordinator)  # cheated, unchecked
    cheat.answer = _honest
    _submit(coordinator, submitter, tasks=1)
    _checked(cheat, [dave], coordinator)  # passes: pays the cheated one
    cheat.answer = _cheat
    _submit(coordinator, submitter, tasks=1)
    _checked(cheat, [dave, erin], coordinator)  # caught
    assert _quarantined(coordinator, cheat)
    assert not _quarantined(coordinator, honest)
    assert not _quarantined(coordinator, bob)
    for heater in (honest, bob):
        assert _attempts(coordinator, heater) == [("verified", False)] * 2
    assert _attempts(coordinator, cheat) == [
        ("verified", True),
        ("verified", False),
        ("caught", False),
    ]
    balances = _balances(coordinator)  # asserts that every transaction balances
    assert balances[f"owner:{_owner_id(coordinator, bob)}"] == 2 * SHARE
    # alice's account: the honest device's two shares and the cheat's checked one remain
    assert balances[f"owner:{_owner_id(coordinator, honest)}"] == 3 * SHARE


def _release(coordinator: Coordinator, heater: Heater, *, keep: bool = False) -> dict[str, Any]:
    """Release the heater as the operator; return the answer."""
    path = f"/v1/devices/{heater.device_id}/release"
    if keep:
        path += "?keep_clawbacks=true"
    answer = coordinator.client.post(path, headers=coordinator.auth(coordinator.operator_key))
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def _reversed(coordinator: Coordinator, heater: Heater) -> list[bool]:
    rows = _rows(
        coordinator,
        select(TaskAttempt.clawback_reversed_ts)
        .where(TaskAttempt.device_id == heater.device_id)
        .order_by(TaskAttempt.ended_ts),
    )
    return [reversed_ts is not None for (reversed_ts,) in rows]


def _api_attempts(coordinator: Coordinator, key: str, job_id: str) -> list[dict[str, Any]]:
    """Return the attempts of the job's task, from GET /v1/jobs/{id} and its task list."""
    detail = _job(coordinator, key, job_id)
    listed = coordinator.client.get(f"/v1/jobs/{job_id}/tasks", headers=coordinator.auth(key))
    assert listed.status_code == 200, listed.text
    [task] = detail["tasks"]
    assert listed.json()["items"] == [task]  # the task list shows the same attempts
    return list(task["attempts"])


def _kind_count(coordinator: Coordinator, kind: str) -> int:
    return len(
        _rows(coordinator, select(LedgerTransaction.id).where(LedgerTransaction.kind == kind))
    )


def _submitter_account(balances: dict[str, int]) -> str:
    [account] = [name for name in balances if name.startswith("submitter:")]
    return account


@pytest.mark.parametrize("settings_overrides", [_CLAWBACK])
def test_releasing_a_caught_device_reverses_its_clawbacks_once(coordinator: Coordinator) -> None:
    """Caught, clawed back, released: its owner's pay and the platform's fees come back (the
    submitter's account holds no credit, so the platform pays the refund back), each result
    once however often the release is retried; an honest device of the same owner is
    untouched; the job's API shows the attempt clawed back, then reversed."""
    submitter = coordinator.submitter_key()
    alice_key = coordinator.owner_key("alice")
    cheat = Heater(coordinator, alice_key, "alice-cheat", _honest)
    honest = Heater(coordinator, alice_key, "alice-honest", _honest)
    bob = Heater(coordinator, coordinator.owner_key("bob"), "bob", _honest)
    dave = Heater(coordinator, coordinator.owner_key("dave"), "dave", _honest)
    honest_job = _submit(coordinator, submitter, tasks=1)
    _unchecked(honest, coordinator)
    _submit(coordinator, submitter, tasks=1)
    _checked(honest, [dave], coordinator)  # pays the honest device's unchecked result
    job_id = _one_in_n_cheat(coordinator, submitter, cheat, [bob, dave])
    owner = f"owner:{_owner_id(coordinator, cheat)}"
    caught = _balances(coordinator)  # asserts that every transaction balances
    assert caught[owner] == 4 * SHARE  # the honest device's two, the cheat's two kept
    [attempt] = _api_attempts(coordinator, submitter, job_id)
    assert (attempt["device_id"], attempt["verdict"]) == (cheat.device_id, "verified")
    assert (attempt["clawed_back"], attempt["clawback_reversed"]) == (True, False)

    released = _release(coordinator, cheat)
    assert released["quarantined_ts"] is None
    assert released["clawbacks_reversed"] == 2
    assert released["owner_restored_eur"] == pytest.approx(2 * SHARE / 1e6)
    assert released["fee_restored_eur"] == pytest.approx(2 * FEE / 1e6)
    assert released["from_submitters_eur"] == pytest.approx(2 * TASK_COST / 1e6)
    after = _balances(coordinator)  # asserts that every transaction balances
    assert after[owner] == caught[owner] + 2 * SHARE
    assert after["platform"] == caught["platform"] + 2 * FEE
    submitter_account = _submitter_account(after)
    assert after[submitter_account] == caught[submitter_account] - 2 * TASK_COST
    assert _attempts(coordinator, cheat) == [
        ("verified", False),
        ("verified", True),
        ("verified", True),
        ("verified", False),
        ("caught", False),
        ("caught", False),
    ]  # clawed_back stays: the history shows both
    assert _reversed(coordinator, cheat) == [False, True, True, False, False, False]
    [attempt] = _api_attempts(coordinator, submitter, job_id)
    assert (attempt["clawed_back"], attempt["clawback_reversed"]) == (True, True)
    report = _report(coordinator, submitter, job_id)
    assert report["clawed_back_results"] == 0
    assert report["clawback_reversed_results"] == 1
    assert report["clawed_back_refund_eur"] == 0.0  # charged back: nothing kept
    assert _statement_kinds(coordinator, cheat).count("result_clawback_reversed") == 2
    assert _log_in(coordinator, submitter, f"/jobs/{job_id}").status_code == 303
    page = coordinator.client.get(f"/jobs/{job_id}")
    assert page.status_code == 200, page.text
    assert "result verified · clawed back · clawback reversed" in page.text

    again = _release(coordinator, cheat)  # a retry, or a second release: nothing twice
    assert again["clawbacks_reversed"] == 0
    assert again["owner_restored_eur"] == again["from_submitters_eur"] == 0.0
    assert _balances(coordinator) == after
    assert _kind_count(coordinator, "result_clawback_reversed") == 2
    assert _attempts(coordinator, honest) == [("verified", False)] * 2
    assert _reversed(coordinator, honest) == [False, False]
    [attempt] = _api_attempts(coordinator, submitter, honest_job)
    assert (attempt["clawed_back"], attempt["clawback_reversed"]) == (False, False)


@pytest.mark.parametrize("settings_overrides", [_CLAWBACK])
def test_a_reversal_charges_the_submitter_its_refund_again_in_full(
    coordinator: Coordinator,
) -> None:
    """The submitter is charged its refund again, in full, as for a task (its account, charged
    for its tasks, goes further below zero);
    ``keep_clawbacks`` releases the device and gives nothing back (a later release may)."""
    submitter = coordinator.submitter_key()
    alice, bob, dave = _two_cheats_paid(coordinator, submitter)
    alice.answer = _cheat
    _submit(coordinator, submitter, tasks=1)
    _checked(alice, [bob, dave], coordinator)  # caught: both clawed back
    caught = _balances(coordinator)
    owner = f"owner:{_owner_id(coordinator, alice)}"
    assert caught[owner] == SHARE
    submitter_account = _submitter_account(caught)

    kept = _release(coordinator, alice, keep=True)
    assert kept["quarantined_ts"] is None
    assert kept["clawbacks_reversed"] == 0
    assert _balances(coordinator) == caught
    assert _reversed(coordinator, alice) == [False] * 4

    released = _release(coordinator, alice)
    assert released["clawbacks_reversed"] == 2
    assert released["from_submitters_eur"] == pytest.approx(2 * TASK_COST / 1e6)
    after = _balances(coordinator)  # asserts that every transaction balances
    assert after[owner] == 3 * SHARE
    assert after[submitter_account] == caught[submitter_account] - 2 * TASK_COST < 0
    assert after["platform"] == caught["platform"] + 2 * FEE
    assert _reversed(coordinator, alice) == [True, True, False, False]


def _cli_release(
    coordinator: Coordinator, heater: Heater, capsys: pytest.CaptureFixture[str], *extra: str
) -> dict[str, Any]:
    capsys.readouterr()
    url = coordinator.database_url
    args = ["devices", "release", heater.device_id, "--json", "--database-url", url, *extra]
    assert main(args) == 0
    return dict(json.loads(capsys.readouterr().out))


@pytest.mark.parametrize("settings_overrides", [_CLAWBACK])
def test_the_cli_release_reverses_clawbacks_as_the_api_does(
    coordinator: Coordinator, capsys: pytest.CaptureFixture[str]
) -> None:
    """``heatgrid devices release`` (the database directly): the same rule, once per result."""
    submitter = coordinator.submitter_key()
    alice, bob, dave = _three_owners(coordinator)
    _one_in_n_cheat(coordinator, submitter, alice, [bob, dave])
    caught = _balances(coordinator)
    kept = _cli_release(coordinator, alice, capsys, "--keep-clawbacks")
    assert kept["clawbacks_reversed"] == 0
    assert not _quarantined(coordinator, alice)
    assert _balances(coordinator) == caught
    released = _cli_release(coordinator, alice, capsys)
    assert released["clawbacks_reversed"] == 2
    assert released["owner_restored_eur"] == pytest.approx(2 * SHARE / 1e6)
    assert released["from_submitters_eur"] == pytest.approx(2 * TASK_COST / 1e6)
    after = _balances(coordinator)  # asserts that every transaction balances
    owner = f"owner:{_owner_id(coordinator, alice)}"
    assert after[owner] == caught[owner] + 2 * SHARE
    assert _release(coordinator, alice)["clawbacks_reversed"] == 0  # the API: nothing twice
    assert _balances(coordinator) == after
    assert main(["devices", "release", "nope", "--database-url", coordinator.database_url]) == 2


@pytest.mark.parametrize("settings_overrides", [_CLAWBACK])
def test_two_releases_at_once_reverse_each_clawback_once(
    coordinator: Coordinator, backend: str
) -> None:
    """A second release while the first is not committed yet (PostgreSQL, row locks): each
    clawback is reversed once and the ledger balances."""
    if backend != "postgresql":
        pytest.skip("SQLite takes one writer at a time: no two releases can overlap")
    submitter = coordinator.submitter_key()
    alice, bob, dave = _three_owners(coordinator)
    _one_in_n_cheat(coordinator, submitter, alice, [bob, dave])
    caught = _balances(coordinator)
    released, commit = threading.Event(), threading.Event()
    counts: dict[bool, int] = {}

    def release(first: bool) -> None:
        engine = make_engine(coordinator.database_url)
        try:
            with make_session_factory(engine)() as session:
                device = session.get_one(Device, alice.device_id)
                restored = verification.release(session, device, now_ts=coordinator.clock())
                if first:  # hold the transaction open while the second release starts
                    released.set()
                    commit.wait(timeout=60)
                session.commit()
                counts[first] = restored.results
        finally:
            engine.dispose()

    first = threading.Thread(target=release, args=(True,))
    first.start()
    assert released.wait(timeout=60)
    second = threading.Thread(target=release, args=(False,))
    second.start()
    second.join(timeout=0.5)  # it waits for the first one's locks (or is done, wrongly)
    commit.set()
    for thread in (first, second):
        thread.join(timeout=60)
    assert counts == {True: 2, False: 0}  # the second found them given back
    after = _balances(coordinator)  # asserts that every transaction balances
    owner = f"owner:{_owner_id(coordinator, alice)}"
    assert after[owner] == caught[owner] + 2 * SHARE
    assert after["platform"] == caught["platform"] + 2 * FEE
    assert _kind_count(coordinator, "result_clawback_reversed") == 2


def test_clawback_is_on_by_default() -> None:
    assert Settings(database_url="sqlite://").clawback_window_s == 90 * DAY_S


def test_serve_refuses_a_negative_clawback_window(capsys: pytest.CaptureFixture[str]) -> None:
    status = main(["serve", "--database-url", "sqlite://", "--clawback-window-s", "-1"])
    assert status == 2
    assert "--clawback-window-s" in capsys.readouterr().err


@pytest.mark.parametrize("window_s", [-1.0, float("inf"), float("nan")])
def test_settings_refuse_a_window_that_is_not_a_number_of_seconds(window_s: float) -> None:
    with pytest.raises(InputError, match="clawback_window_s"):
        Settings(database_url="sqlite://", clawback_window_s=window_s)
