"""The engine keeps the connections it opened: a busy moment does not open and close backends."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event

from heatgrid.coordinator.db import make_engine
from heatgrid.coordinator.db.engine import POOL_CONNECTIONS

_AT_ONCE = 16  # more than the ten the pool used to keep; what the benchmark's claimers hold


def test_connections_returned_at_once_are_kept_for_the_next_burst(
    empty_database_url: str,
) -> None:
    engine = make_engine(empty_database_url)
    opened: list[Any] = []
    event.listen(engine, "connect", lambda connection, _record: opened.append(connection))
    try:
        for _burst in range(3):
            held = [engine.connect() for _ in range(_AT_ONCE)]  # each checks a connection out
            for connection in held:
                connection.close()
        assert len(opened) == _AT_ONCE  # on main: 16, then 6 more for each later burst
        assert engine.pool.size() == POOL_CONNECTIONS  # type: ignore[attr-defined]
    finally:
        engine.dispose()
