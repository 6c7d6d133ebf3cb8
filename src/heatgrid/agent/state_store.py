"""The agent's local SQLite file: identity, controller state, unsent telemetry and history.

The file holds the device token, so it is created with mode 0600 (owner only) and kept so.
Telemetry samples wait in a queue keyed by ``sample_ts`` (one per timestamp) until the
coordinator acknowledges them; a restart resumes both the controller and the queue.
The room history (room and outdoor temperature, delivered power) is kept apart from the queue,
which is drained on upload: it is what the room model is learned from, pruned by age.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import stat
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
from numpy.typing import NDArray

from heatgrid.core.errors import InputError
from heatgrid.protocol.v1 import TelemetrySample

__all__ = ["History", "Identity", "StateStore"]

_FILE_MODE = 0o600
_SCHEMA = """
CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS telemetry (sample_ts REAL PRIMARY KEY, body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS history (
    sample_ts REAL PRIMARY KEY,
    room_temp_c REAL NOT NULL,
    outdoor_temp_c REAL,
    power_w REAL NOT NULL
);
"""
_IDENTITY_KEY = "identity"


@dataclass(frozen=True, kw_only=True)
class Identity:
    """Who this heater is at the coordinator, as learned at enrollment.

    Attributes
    ----------
    url : str
        Base URL of the coordinator.
    device_id : str
        The device's identifier.
    device_token : str
        The device's bearer token (secret).
    """

    url: str
    device_id: str
    device_token: str


@dataclass(frozen=True, kw_only=True)
class History:
    """Recorded room samples, oldest first, as arrays of one length.

    Attributes
    ----------
    sample_ts : ndarray
        When each sample was taken, POSIX UTC [s].
    room_temp_c : ndarray
        Room temperature [°C].
    outdoor_temp_c : ndarray
        Outdoor temperature [°C]; NaN where it was not known.
    power_w : ndarray
        Heat power the devices delivered [W].
    """

    sample_ts: NDArray[np.float64]
    room_temp_c: NDArray[np.float64]
    outdoor_temp_c: NDArray[np.float64]
    power_w: NDArray[np.float64]


class StateStore:
    """A local SQLite file holding the agent's identity, state and unsent telemetry.

    Parameters
    ----------
    path : pathlib.Path
        The file; created (mode 0600) with its parent directory when missing.

    Raises
    ------
    InputError
        If the file cannot be created or opened, or is not this agent's database.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            os.close(os.open(path, os.O_CREAT | os.O_RDWR, _FILE_MODE))
            os.chmod(path, _FILE_MODE)
            self._db = sqlite3.connect(path, isolation_level=None)
        except (OSError, sqlite3.Error) as error:
            raise InputError(f"state.path: cannot open {path}: {error}") from None
        try:
            self._db.executescript(_SCHEMA)
        except sqlite3.DatabaseError as error:
            self._db.close()
            raise InputError(f"state.path: {path} is not an agent state file: {error}") from None

    @property
    def file_mode(self) -> int:
        """Permission bits of the file (0o600)."""
        return stat.S_IMODE(self.path.stat().st_mode)

    def close(self) -> None:
        """Close the database."""
        self._db.close()

    def __enter__(self) -> StateStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    # ------------------------------------------------------------------ key-value

    def get(self, key: str) -> Any:
        """Return the JSON value stored under ``key``, or None."""
        row = self._db.execute("SELECT value FROM kv WHERE key = ?", (key,)).fetchone()
        return None if row is None else json.loads(row[0])

    def put(self, key: str, value: Any) -> None:
        """Store a JSON-serialisable ``value`` under ``key`` (infinities are kept)."""
        self._db.execute(
            "INSERT INTO kv (key, value) VALUES (?, ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, json.dumps(value)),
        )

    def delete(self, key: str) -> None:
        """Remove ``key`` and its value (nothing happens if it is not stored)."""
        self._db.execute("DELETE FROM kv WHERE key = ?", (key,))

    @property
    def identity(self) -> Identity | None:
        """The enrolled identity, or None before enrollment."""
        value = self.get(_IDENTITY_KEY)
        return None if value is None else Identity(**value)

    def save_identity(self, identity: Identity) -> None:
        """Store the identity learned at enrollment (replacing an earlier one)."""
        self.put(
            _IDENTITY_KEY,
            {
                "url": identity.url,
                "device_id": identity.device_id,
                "device_token": identity.device_token,
            },
        )

    def forget_identity(self) -> None:
        """Forget the enrolled identity (the heater leaves its coordinator)."""
        self.delete(_IDENTITY_KEY)

    # ------------------------------------------------------------------ telemetry queue

    def enqueue(self, sample: TelemetrySample) -> None:
        """Queue a sample for upload; a second sample at the same ``sample_ts`` replaces it."""
        self._db.execute(
            "INSERT OR REPLACE INTO telemetry (sample_ts, body) VALUES (?, ?)",
            (sample.sample_ts, sample.model_dump_json()),
        )

    def pending(self, limit: int) -> list[TelemetrySample]:
        """Return up to ``limit`` queued samples, oldest first."""
        rows = self._db.execute(
            "SELECT body FROM telemetry ORDER BY sample_ts LIMIT ?", (limit,)
        ).fetchall()
        return [TelemetrySample.model_validate_json(body) for (body,) in rows]

    def pending_count(self) -> int:
        """Return the number of queued samples."""
        return int(self._db.execute("SELECT count(*) FROM telemetry").fetchone()[0])

    def acknowledge(self, samples: list[TelemetrySample]) -> None:
        """Forget samples the coordinator has stored."""
        with contextlib.closing(self._db.cursor()) as cursor:
            cursor.execute("BEGIN")
            cursor.executemany(
                "DELETE FROM telemetry WHERE sample_ts = ?", [(s.sample_ts,) for s in samples]
            )
            cursor.execute("COMMIT")

    # ------------------------------------------------------------------ room history

    def record_history(
        self, sample_ts: float, room_temp_c: float, outdoor_temp_c: float | None, power_w: float
    ) -> None:
        """Record a room sample (``outdoor_temp_c`` None when unknown); one per ``sample_ts``."""
        self._db.execute(
            "INSERT OR REPLACE INTO history (sample_ts, room_temp_c, outdoor_temp_c, power_w) "
            "VALUES (?, ?, ?, ?)",
            (sample_ts, room_temp_c, outdoor_temp_c, power_w),
        )

    def history(self, since_ts: float) -> History:
        """Return the samples taken at or after ``since_ts`` [POSIX s], oldest first."""
        rows = self._db.execute(
            "SELECT sample_ts, room_temp_c, outdoor_temp_c, power_w FROM history "
            "WHERE sample_ts >= ? ORDER BY sample_ts",
            (since_ts,),
        ).fetchall()
        columns = np.array(rows, dtype=np.float64).reshape(len(rows), 4).T  # None -> NaN
        return History(
            sample_ts=columns[0],
            room_temp_c=columns[1],
            outdoor_temp_c=columns[2],
            power_w=columns[3],
        )

    def prune_history(self, before_ts: float) -> None:
        """Forget the samples taken before ``before_ts`` [POSIX s]."""
        self._db.execute("DELETE FROM history WHERE sample_ts < ?", (before_ts,))
