"""Share accounting: one row per share however many proxies record it; rejects per hour."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from heatgrid.coordinator.db import make_engine, make_session_factory
from heatgrid.coordinator.db.models import MiningReject
from heatgrid.coordinator.stratum import accounting
from heatgrid.coordinator.stratum.accounting import ShareRecorder, ShareRow

from .stratum_fleet import make_miners, rejects_by_device, shares_by_device


def test_two_proxies_recording_the_same_shares_store_each_once(database_url: str) -> None:
    ((device_id, _),) = make_miners(database_url, 1)
    rows = [
        ShareRow(f"{index:064x}", device_id, f"{device_id}.rig", "1", 0.5, time.time(), None)
        for index in range(300)
    ]

    async def scenario() -> tuple[list[bool], list[bool]]:
        engines = [make_engine(database_url), make_engine(database_url)]
        recorders = [ShareRecorder(engine, max_batch=64) for engine in engines]
        for recorder in recorders:
            recorder.start()
        try:
            first, second = await asyncio.gather(
                asyncio.gather(*(recorders[0].record(row) for row in rows)),
                asyncio.gather(*(recorders[1].record(row) for row in reversed(rows))),
            )
        finally:
            for recorder in recorders:
                await recorder.close()
            for engine in engines:
                engine.dispose()
        return list(first), list(reversed(second))

    first, second = asyncio.run(scenario())
    assert all(a != b for a, b in zip(first, second, strict=True))  # exactly one stored each
    work, counts = shares_by_device(database_url)
    assert counts == {device_id: 300}
    assert work[device_id] == 150.0


def test_rejects_are_counted_per_device_reason_and_hour(database_url: str) -> None:
    ((device_id, _),) = make_miners(database_url, 1)
    hour_ts = 1_767_225_600.0

    async def scenario() -> None:
        engine = make_engine(database_url)
        recorder = ShareRecorder(engine)
        recorder.start()
        for offset_s in (0.0, 10.0, 3599.0, 3600.0):
            recorder.count_reject(device_id, "stale_job", hour_ts + offset_s)
        recorder.count_reject(device_id, "low_difficulty", hour_ts)
        await recorder.close()
        recorder = ShareRecorder(engine)  # a second proxy life adds to the same hour
        recorder.start()
        recorder.count_reject(device_id, "stale_job", hour_ts + 5.0)
        await recorder.close()
        engine.dispose()

    asyncio.run(scenario())
    assert rejects_by_device(database_url) == {
        (device_id, "stale_job"): 5,
        (device_id, "low_difficulty"): 1,
    }
    engine = make_engine(database_url)
    with make_session_factory(engine)() as session:
        hours = {
            (row.reason, row.hour_start_ts): row.count
            for row in session.scalars(select(MiningReject))
        }
    engine.dispose()
    assert hours == {
        ("stale_job", hour_ts): 4,
        ("stale_job", hour_ts + 3600.0): 1,
        ("low_difficulty", hour_ts): 1,
    }


@pytest.mark.parametrize("backend", ["sqlite"])
def test_sqlite_wal_is_checkpointed_beside_the_writer(database_url: str, tmp_path: Path) -> None:
    """The proxy's commits never checkpoint SQLite's WAL; its recorder does, beside them."""
    ((device_id, _),) = make_miners(database_url, 1)
    rows = [
        ShareRow(f"{index:064x}", device_id, f"{device_id}.rig", "1", 0.5, time.time(), None)
        for index in range(200)
    ]
    database_path = Path(database_url.removeprefix("sqlite:///"))
    snapshot = tmp_path / "database-file-alone.sqlite3"

    async def scenario() -> tuple[int, int]:
        engine = make_engine(database_url)
        recorder = ShareRecorder(engine, max_batch=16)
        recorder.start()
        try:
            await asyncio.gather(*(recorder.record(row) for row in rows))
            with engine.connect() as connection:
                autocheckpoint = connection.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar()
            while recorder.checkpoints < 1:  # the first one comes within a second
                await asyncio.sleep(0.05)
            shutil.copyfile(database_path, snapshot)  # without its WAL
        finally:
            await recorder.close()
            engine.dispose()
        with contextlib.closing(sqlite3.connect(snapshot)) as connection:
            (stored,) = connection.execute("SELECT count(*) FROM mining_shares").fetchone()
        return int(autocheckpoint or 0), int(stored)

    autocheckpoint, stored_in_database_file = asyncio.run(scenario())
    assert autocheckpoint == 0  # no commit of the proxy copies pages and fsyncs the database
    assert stored_in_database_file == 200  # the recorder's checkpoint did


@pytest.mark.parametrize("backend", ["sqlite"])
def test_closing_waits_for_a_checkpoint_running_in_its_thread(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The recorder's close returns once a running checkpoint gave its connection back.

    Before, cancelling the checkpointer ended its task at once while the checkpoint's thread
    went on; the proxy then disposed of the engine, and the connection the checkpoint returned
    afterwards was left open (as the coordinator's lease sweeper did, fixed in d41ef40).
    """
    started, finished = threading.Event(), threading.Event()
    real_checkpoint = ShareRecorder._checkpoint

    def slow_checkpoint(recorder: ShareRecorder, mode: str) -> int:
        started.set()
        finished.wait(timeout=0.5)  # still running when the recorder is closed
        frames = real_checkpoint(recorder, mode)
        finished.set()
        return frames

    monkeypatch.setattr(ShareRecorder, "_checkpoint", slow_checkpoint)

    async def scenario() -> bool:
        engine = make_engine(database_url)
        recorder = ShareRecorder(engine)
        recorder.start()
        try:
            while not started.is_set():  # the first one comes within a second
                await asyncio.sleep(0.01)
        finally:
            await recorder.close()
            done = finished.is_set()
            engine.dispose()
        return done

    assert asyncio.run(scenario())


def _two_shares_on_postgresql(database_url: str) -> tuple[str, list[ShareRow]]:
    """A miner's device and two shares of it; skipped but on PostgreSQL, where the writer keeps
    a connection of its own."""
    if not database_url.startswith("postgresql"):
        pytest.skip("the writer keeps a connection of its own on PostgreSQL only")
    ((device_id, _),) = make_miners(database_url, 1)
    rows = [
        ShareRow(f"{index:064x}", device_id, f"{device_id}.rig", "1", 1.0, time.time(), None)
        for index in range(2)
    ]
    return device_id, rows


def test_the_writer_replaces_a_connection_the_database_dropped(database_url: str) -> None:
    """On PostgreSQL the writer keeps its connection; one the server dropped is replaced.

    The share of the batch that found it dropped is committed on the new connection, not
    answered with an error.
    """
    device_id, rows = _two_shares_on_postgresql(database_url)

    async def scenario() -> list[bool]:
        engine = make_engine(database_url)
        recorder = ShareRecorder(engine)
        recorder.start()
        try:
            stored = [await recorder.record(rows[0])]
            held = recorder._held
            assert held is not None
            backend_pid = held.info.backend_pid
            with engine.connect() as connection:
                connection.exec_driver_sql("SELECT pg_terminate_backend(%s)", (backend_pid,))
            stored.append(await recorder.record(rows[1]))
            return stored
        finally:
            await recorder.close()
            engine.dispose()

    assert asyncio.run(scenario()) == [True, True]
    _, counts = shares_by_device(database_url)
    assert counts == {device_id: 2}


def test_a_batch_whose_commit_answer_was_lost_is_answered_as_stored(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The server commits, then the connection breaks before its answer arrives.

    The share is answered as stored ("accepted"), not as a duplicate of itself, and the
    batch's rejection count is added once, not again by the retry.
    """
    device_id, rows = _two_shares_on_postgresql(database_url)
    engine = make_engine(database_url)
    committed_then_broken: list[int] = []
    real_pipeline = accounting._pipeline

    async def commit_then_lose_the_answer(connection: Any, *statements: Any) -> set[str]:
        stored = await real_pipeline(connection, *statements)
        if committed_then_broken:  # once, on the second batch
            return stored
        committed_then_broken.append(connection.info.backend_pid)
        with engine.connect() as other:
            other.exec_driver_sql("SELECT pg_terminate_backend(%s)", (connection.info.backend_pid,))
        await connection.execute("SELECT 1")  # raises: the server ended this connection
        raise AssertionError("the connection was expected to be broken")

    async def scenario() -> list[bool]:
        recorder = ShareRecorder(engine)
        recorder.start()
        try:
            stored = [await recorder.record(rows[0])]
            monkeypatch.setattr(accounting, "_pipeline", commit_then_lose_the_answer)
            recorder.count_reject(device_id, "stale_job", time.time())
            stored.append(await recorder.record(rows[1]))
            return stored
        finally:
            await recorder.close()

    try:
        assert asyncio.run(scenario()) == [True, True]
    finally:
        engine.dispose()
    assert len(committed_then_broken) == 1
    _, counts = shares_by_device(database_url)
    assert counts == {device_id: 2}
    assert rejects_by_device(database_url) == {(device_id, "stale_job"): 1}


def test_the_pool_verdicts_find_their_shares_by_index_as_the_table_grows(
    database_url: str,
) -> None:
    """The ``UPDATE`` of the pool's verdicts never reads the whole table of shares.

    psycopg prepares a statement run five times, and after five more runs PostgreSQL may keep
    one plan for the connection's life: made while the table was small, a sequential scan,
    which each later batch repeated over every share stored since. Twenty batches of two
    shares on a small table, the table grown to 20,000 shares, twenty more: together they
    read fewer rows by scanning than one scan of the table would (with the plan kept, twenty
    scans).
    """
    device_id, _ = _two_shares_on_postgresql(database_url)
    engine = make_engine(database_url)

    def scanned_rows() -> int:
        with engine.connect() as connection:
            return int(
                connection.exec_driver_sql(
                    "SELECT seq_tup_read FROM pg_stat_user_tables WHERE relname = 'mining_shares'"
                ).scalar_one()
            )

    async def batches(recorder: ShareRecorder, first: int) -> None:
        for index in range(first, first + 40, 2):  # two shares and two verdicts a batch
            rows = [
                ShareRow(f"{key:064x}", device_id, "rig", "1", 1.0, time.time(), None)
                for key in (index, index + 1)
            ]
            assert await asyncio.gather(*(recorder.record(row) for row in rows)) == [True] * 2
            for row in rows:
                recorder.pool_verdict(row.share_key, True)

    async def scenario() -> int:
        recorder = ShareRecorder(engine)
        recorder.start()
        try:
            await batches(recorder, 0)
            with engine.begin() as connection:
                connection.exec_driver_sql(
                    "INSERT INTO mining_shares (share_key, device_id, worker, job_id, difficulty,"
                    " accepted_ts) SELECT 'e' || lpad(to_hex(n), 63, '0'), %s, 'rig', '1', 1.0, 0"
                    " FROM generate_series(1, 20000) AS n",
                    (device_id,),
                )
            before = scanned_rows()
            await batches(recorder, 40)
        finally:
            await recorder.close()  # its server process reports its counts as it ends
        return before

    try:
        before = asyncio.run(scenario())
        deadline_s = time.monotonic() + 5.0
        after = scanned_rows()
        while after == before and time.monotonic() < deadline_s:  # counts reach the view late
            time.sleep(0.1)
            after = scanned_rows()
    finally:
        engine.dispose()
    assert after - before < 20_000
