"""Settings of a coordinator process."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Settings"]


@dataclass(frozen=True)
class Settings:
    """What a coordinator process needs to know.

    Attributes
    ----------
    database_url : str
        ``sqlite:///FILE`` or ``postgresql+psycopg://USER@HOST:PORT/NAME``.
    heartbeat_interval_s : float
        How often heaters are asked to send a heartbeat [s].
    online_window_s : float
        A device whose last heartbeat is younger than this counts as online [s].
    max_body_bytes : int
        Largest request body accepted [bytes]; larger ones are answered 413.
    max_clock_skew_s : float
        How far in the future (by the coordinator's clock) a telemetry sample may be [s].
    """

    database_url: str
    heartbeat_interval_s: float = 60.0
    online_window_s: float = 180.0
    max_body_bytes: int = 1024 * 1024
    max_clock_skew_s: float = 300.0
