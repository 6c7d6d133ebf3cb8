"""The pool connection's verdicts on forwarded shares: handed to a function, once each.

A forwarded share holds no task or future while the pool judges it: :meth:`Upstream.submit_soon`
keeps the function that takes the verdict by request id, and calls it when the pool answers,
with ``None`` when no answer comes in time (the proxy's housekeeping expires them once a
second) or when there is no pool session to send it to.
"""

from __future__ import annotations

import time

from heatgrid.coordinator.stratum.upstream import PoolSession, Upstream
from heatgrid.mining import stratum
from heatgrid.mining.shares import Job


class _Listener:
    def pool_ready(self, session: PoolSession) -> None:
        pass

    def pool_lost(self) -> None:
        pass

    def pool_job(self, job: Job) -> None:
        pass


class _Wire:
    """What the upstream writes to the pool, kept."""

    def __init__(self) -> None:
        self.lines: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.lines.append(data)


def _connected() -> tuple[Upstream, _Wire]:
    upstream = Upstream("127.0.0.1", 3333, "operator", "x", _Listener())
    wire = _Wire()
    upstream._writer = wire  # type: ignore[assignment]  # the session's writer, as if connected
    upstream.session = PoolSession(bytes(4), 4, 0x1FFFE000)
    return upstream, wire


def _share(nonce: int) -> stratum.Submit:
    return stratum.Submit(7, "operator.dev", "1", bytes(4), 0x6500_0000, nonce, 0)


def _sent_id(line: bytes) -> int:
    message = stratum.decode(line)
    assert isinstance(message, stratum.Submit)
    assert isinstance(message.id, int)
    return message.id


def test_each_verdict_goes_to_its_share_once() -> None:
    upstream, wire = _connected()
    verdicts: dict[int, list[bool | None]] = {1: [], 2: []}
    upstream.submit_soon(_share(1), verdicts[1].append)
    upstream.submit_soon(_share(2), verdicts[2].append)
    first, second = (_sent_id(line) for line in wire.lines)
    assert first != second
    upstream._on_message(stratum.Response(second, None, stratum.StratumError(23, "low")))
    upstream._on_message(stratum.Response(first, True))
    upstream._on_message(stratum.Response(first, True))  # said twice: taken once
    assert verdicts == {1: [True], 2: [False]}
    upstream.expire(time.monotonic() + 3600.0)
    assert verdicts == {1: [True], 2: [False]}


def test_a_share_the_pool_never_answers_is_given_up_after_the_answer_timeout() -> None:
    upstream, _ = _connected()
    verdicts: list[bool | None] = []
    sent_s = time.monotonic()
    upstream.submit_soon(_share(1), verdicts.append)
    upstream.expire(sent_s + 29.0)
    assert verdicts == []
    upstream.expire(sent_s + 31.0)
    upstream.expire(sent_s + 62.0)
    assert verdicts == [None]


def test_without_a_pool_session_a_share_is_not_sent_and_has_no_verdict() -> None:
    upstream, wire = _connected()
    upstream.session = None
    verdicts: list[bool | None] = []
    upstream.submit_soon(_share(1), verdicts.append)
    assert verdicts == [None]
    assert wire.lines == []


def test_a_fault_in_one_verdict_function_does_not_stop_the_others() -> None:
    upstream, wire = _connected()
    taken: list[bool | None] = []

    def broken(_verdict: bool | None) -> None:
        raise RuntimeError("a bug in the taker")

    upstream.submit_soon(_share(1), broken)
    upstream.submit_soon(_share(2), taken.append)
    for line in wire.lines:
        upstream._on_message(stratum.Response(_sent_id(line), True))
    assert taken == [True]
