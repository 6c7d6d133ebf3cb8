"""The ``--clock`` option (also ``HEATGRID_CLOCK``) and the clock a command runs on.

Every command that stamps times (the agent, the emulators, the coordinator and its Stratum
proxy) may run on one shared emulated clock (:mod:`heatgrid.core.clock`), given as one line of
text; without it, it runs on the wall clock.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import typer

from heatgrid.core.clock import CLOCK_ENV, ClockSpec, parse_clock

__all__ = ["clock_option", "follow", "read_clock"]


def clock_option(help_text: str) -> Any:
    """Return the ``--clock`` option (also :data:`~heatgrid.core.clock.CLOCK_ENV`).

    ``help_text`` says what running on the clock means for the command.
    """
    return typer.Option(
        "--clock",
        envvar=CLOCK_ENV,
        help=f"Run on a shared emulated clock, start=DATE,speed=X,origin_ts=POSIX_S: {help_text}",
        show_default=False,
    )


def follow(spec: ClockSpec | None) -> Callable[[], float]:
    """Return a function that reads ``spec``'s present off the wall clock [POSIX s].

    ``None``: the wall clock itself.
    """
    if spec is None:
        return time.time
    return lambda: spec.emulated_ts(time.time())


def read_clock(text: str | None) -> Callable[[], float]:
    """Return the clock ``--clock TEXT`` names (the wall clock for None); InputError if bad."""
    return follow(None if text is None else parse_clock(text))
