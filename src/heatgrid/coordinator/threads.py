"""Work handed to a thread that a cancelled task still waits for.

A task that awaits a thread (``asyncio.to_thread``, ``anyio.to_thread.run_sync``) ends at
once when it is cancelled, but the thread cannot be stopped and goes on with whatever it
holds. Where the canceller next disposes of what the thread uses (the engine whose connection
the thread holds: returned to a disposed pool afterwards, that connection is left open),
the task must end only once the thread has: :func:`run_to_its_end`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

__all__ = ["run_to_its_end"]

_T = TypeVar("_T")


async def run_to_its_end(work: Awaitable[_T]) -> _T:
    """Await ``work``; cancelled meanwhile, wait for it to end, then raise the cancellation.

    Parameters
    ----------
    work : Awaitable
        The thread's work, as ``asyncio.to_thread(...)`` or ``anyio.to_thread.run_sync(...)``
        returns it.

    Returns
    -------
    T
        What the work returned.

    Raises
    ------
    asyncio.CancelledError
        When the task was cancelled, once the work has ended (its own outcome, a result or an
        error, is then dropped: the canceller no longer wants it).
    """
    running = asyncio.ensure_future(work)
    try:
        return await asyncio.shield(running)
    except asyncio.CancelledError:
        await asyncio.wait({running})
        if not running.cancelled():
            running.exception()  # retrieved, so that asyncio does not log it as never seen
        raise
