"""Read-only sessions: on SQLite they never take the write lock; they refuse to write."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from heatgrid.coordinator.accounts import create_api_key
from heatgrid.coordinator.db import make_engine, make_session_factory
from heatgrid.coordinator.db.models import Account

pytestmark = pytest.mark.usefixtures("backend")


def test_a_writer_commits_while_a_reader_holds_its_snapshot(database_url: str) -> None:
    engine = make_engine(database_url)
    try:
        readers = make_session_factory(engine, read_only=True)
        writers = make_session_factory(engine)
        with readers() as reader, writers() as writer:
            assert reader.scalar(select(func.count()).select_from(Account)) == 0  # open, reading
            # On SQLite a reader that had begun IMMEDIATE would make this wait 30 s and fail.
            create_api_key(writer, name="carol", role="submitter", scopes=None, now_ts=1.0)
            assert writer.scalar(select(func.count()).select_from(Account)) == 1
            reader.rollback()
            assert reader.scalar(select(func.count()).select_from(Account)) == 1
    finally:
        engine.dispose()


def test_a_read_only_session_refuses_to_write(database_url: str) -> None:
    engine = make_engine(database_url)
    try:
        with make_session_factory(engine, read_only=True)() as reader:
            reader.add(Account(name="mallory", role="owner", created_ts=1.0))
            with pytest.raises(RuntimeError, match="read-only session"):
                reader.flush()
    finally:
        engine.dispose()
