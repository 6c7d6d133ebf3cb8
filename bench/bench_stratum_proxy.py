"""The Stratum proxy under load: miner connections held, and submit-to-answer latency.

A real ``heatgrid stratum`` process on a SQLite database (or ``--database postgresql``: a
throwaway server) sits between ``--connections`` miner connections and the test pool (in its
own process, so that checking the forwarded shares does not delay this process's reading of
the answers it times). Every connection negotiates version
rolling, subscribes and authorizes (100 workers per device), then the connections together
submit valid shares at ``--rate`` per second (each share validated, committed, answered, then
forwarded to the pool). Held: connections that got through the handshake and a job and were
still open at the end. Latency: from writing a ``mining.submit`` line to reading its answer, in
this process. CPU: what the proxy process used while the shares were submitted, per answer (on
a shared machine this moves far less than the latency percentiles do).

Baseline, same run, same load generator: a bare asyncio line echo server in its own process,
holding the same number of connections and echoing the same lines at the same rate. It starts
only after the proxy and the test pool have exited (their connections closed), so that it is
not timed beside the proxy's teardown of its connections. The ratios are proxy / echo for the
p50 and p99 latency. Goals (issue 15): >= 10,000 connections held, p99 under 10 ms at 1,000
shares/s.

The probe also times where a share's time goes inside the proxy (``proxy_stages``, the shares'
window only): from its line handled to its "accepted" written (``in_proxy_ms``); from its
acceptance to the start of the commit that stored it (``queue_wait_ms``); each commit (wall,
and CPU for SQLite's writer thread) and the gaps between commits; how late a 10 ms timer of
the event loop ran (``loop_lag_ms``); and the event-loop callbacks that ran over 2 ms, by
name, with their CPU time (wall time without CPU is the process waiting for a core). Its log
is written beside ``PATH`` (``.stages.json``).

The proxy runs under a probe that times its garbage collections (``gc.callbacks``): the
result's ``proxy_gc`` gives the collections per generation and the longest full (generation 2)
pause while the miners connected and while the shares were measured, and how many objects a
full pass walked when the shares began.

Usage: ``python bench/bench_stratum_proxy.py --out PATH [--connections N] [--rate R]
[--database sqlite|postgresql] [--gc-census]``; the probe's log of every collection is written
beside ``PATH`` (``.gc.json``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from _cpu import tree_cpu_s
from _postgres import running_postgres
from heatgrid.coordinator.accounts import create_api_key, create_enrollment_code
from heatgrid.coordinator.db import make_engine, make_session_factory, upgrade
from heatgrid.coordinator.devices import enroll_device
from heatgrid.coordinator.mining_credentials import issue_password
from heatgrid.emulators.stratum_pool import StratumPool
from heatgrid.mining import stratum
from heatgrid.mining.shares import Job, ShareValidator, job_from_notify
from heatgrid.protocol import v1

_DIFFICULTY = 2.0**-30  # a few hashes a share: the load generator pre-mines them cheaply
_MASK = 0x1FFFE000
_WORKERS_PER_DEVICE = 100
_GOAL_CONNECTIONS = 10_000
_GOAL_P99_MS = 10.0
_POOL_USER, _POOL_PASSWORD = "operator", "bench"
_ECHO_JOB = StratumPool().job

_POOL_SERVER = """
import asyncio, json, os, sys
from heatgrid.emulators.stratum_pool import StratumPool
async def main():
    users = {os.environ["BENCH_POOL_USER"]: os.environ["BENCH_POOL_PASSWORD"]}
    async with StratumPool(difficulty=float(sys.argv[1]), users=users) as pool:
        print(pool.url, flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
        print(sum(pool.stats.accepted_shares.values()), flush=True)
asyncio.run(main())
"""

_GC_PROBE = """
import atexit, collections, gc, json, os, runpy, signal, sys, time
events, marks, started, census = [], [], [0.0, 0.0], []
CENSUS = os.environ.get("BENCH_GC_CENSUS") == "1"
def count(objects):
    kinds = collections.Counter(type(o).__qualname__ for o in objects)
    return [len(objects), kinds.most_common(12)]
def probe(phase, info):
    if phase == "start":
        if CENSUS and marks and info["generation"] >= 1 and len(census) < 12:
            census.append({"generation": info["generation"], "young": count(gc.get_objects(0)),
                           "generation1": count(gc.get_objects(1))})
        started[:] = time.perf_counter(), time.thread_time()
    else:
        events.append([time.time(), info["generation"], time.perf_counter() - started[0],
                       time.thread_time() - started[1]])
def mark(_signum, _frame):
    marks.append([time.time(), len(gc.get_objects(2)), gc.get_freeze_count(), gc.get_count()])
def dump():
    with open(os.environ["BENCH_GC_LOG"], "w") as sink:
        json.dump({"collections": events, "marks": marks, "census": census}, sink)
gc.callbacks.append(probe)
signal.signal(signal.SIGUSR1, mark)
atexit.register(dump)
import asyncio, asyncio.events
from heatgrid.coordinator.stratum import accounting, proxy
stages = {"writes": [], "lags": [], "slow": []}
def timed_write(write):
    def timed(self, rows, rejects, verdicts):
        start_ts, start, cpu = time.time(), time.perf_counter(), time.thread_time()
        try:
            return write(self, rows, rejects, verdicts)
        finally:
            stages["writes"].append([start_ts, time.perf_counter() - start,
                                     time.thread_time() - cpu, len(verdicts),
                                     [round(start_ts - row.accepted_ts, 6) for row in rows]])
    return timed
accounting.ShareRecorder._write = timed_write(accounting.ShareRecorder._write)
def timed_write_pipelined(write):
    # PostgreSQL's writer awaits its commit on the event loop: wall time only (the loop's CPU
    # while it waits is the miners')
    async def timed(self, rows, rejects, verdicts):
        start_ts, start = time.time(), time.perf_counter()
        try:
            return await write(self, rows, rejects, verdicts)
        finally:
            stages["writes"].append([start_ts, time.perf_counter() - start, None,
                                     len(verdicts),
                                     [round(start_ts - row.accepted_ts, 6) for row in rows]])
    return timed
if asyncio.iscoroutinefunction(accounting.ShareRecorder._write_pipelined):  # older: a thread
    accounting.ShareRecorder._write_pipelined = timed_write_pipelined(
        accounting.ShareRecorder._write_pipelined)
def timed_start(start):
    async def timed(self):
        await start(self)
        loop = asyncio.get_running_loop()
        def tick(due):
            now = loop.time()
            stages["lags"].append([time.time(), now - due])
            loop.call_at(now + 0.01, tick, now + 0.01)
        loop.call_soon(tick, loop.time())
    return timed
proxy.StratumProxy.start = timed_start(proxy.StratumProxy.start)
from heatgrid.coordinator.stratum import miner
handled = {}
def timed_submit(submit_share):
    def timed(self, submit):
        handled[id(self), submit.id] = time.perf_counter()
        submit_share(self, submit)
    return timed
def timed_send(send):
    def timed(self, line):
        send(self, line)
        if line.endswith(b'"result":true,"error":null}\\n'):
            started = handled.pop((id(self), json.loads(line)["id"]), None)
            if started is not None:
                stages["answers"].append([time.time(), time.perf_counter() - started])
    return timed
stages["answers"] = []
miner.MinerSession._submit = timed_submit(miner.MinerSession._submit)
miner.MinerSession.send = timed_send(miner.MinerSession.send)
def named(callback):
    owner = getattr(callback, "__self__", None)
    coro = getattr(owner, "get_coro", None)
    if coro is not None:
        return "task " + getattr(coro(), "__qualname__", "?")
    return getattr(callback, "__qualname__", type(callback).__qualname__)
def timed_run(run):
    def timed(self):
        start, cpu = time.perf_counter(), time.thread_time()
        run(self)
        took = time.perf_counter() - start
        if took > 0.002:
            stages["slow"].append([time.time(), took, time.thread_time() - cpu,
                                   named(self._callback)])
    return timed
asyncio.events.Handle._run = timed_run(asyncio.events.Handle._run)
def dump_stages():
    with open(os.environ["BENCH_STAGE_LOG"], "w") as sink:
        json.dump(stages, sink)
atexit.register(dump_stages)
sys.argv = ["heatgrid", *sys.argv[1:]]
runpy.run_module("heatgrid.cli.main", run_name="__main__")
"""
"""Runs ``heatgrid stratum`` with its garbage collections timed (``gc.callbacks``): each one's
wall-clock end, generation, pause and CPU time (the pause less the time without a core);
SIGUSR1 notes the objects a full collection would walk (generation 2, frozen ones not included)
and the frozen count. With ``BENCH_GC_CENSUS=1``, the first 12 collections of generation 1 or 2
after that note also count what generations 0 and 1 hold at their start, by type (the 12
commonest): what survived into them. Written as JSON at exit."""

_ECHO_SERVER = """
import asyncio, sys
async def echo(reader, writer):
    try:
        while True:
            writer.write(await reader.readuntil(b"\\n"))
    except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
        writer.close()
async def main():
    server = await asyncio.start_server(echo, "127.0.0.1", int(sys.argv[1]), backlog=4096)
    async with server:
        await server.serve_forever()
asyncio.run(main())
"""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _devices(database_url: str, count: int) -> list[tuple[str, str]]:
    engine = make_engine(database_url)
    upgrade(engine)
    found = []
    now_ts = time.time()
    with make_session_factory(engine)() as session:
        create_api_key(session, name="owner", role="owner", scopes=None, now_ts=now_ts)
        for index in range(count):
            code = create_enrollment_code(
                session, owner_name="owner", ttl_s=600.0, actor=None, now_ts=now_ts
            )
            request = v1.EnrollRequest(
                enrollment_code=code.token,
                device_name=f"heater {index}",
                device_kind="asic",
                has_room=True,
                hardware=v1.Hardware(model="S9", max_power_w=1400.0, min_power_w=400.0),
            )
            device, _ = enroll_device(session, request, now_ts=now_ts)
            found.append((device.id, issue_password(session, device, now_ts=now_ts).password))
    engine.dispose()
    return found


@dataclass(eq=False)
class _Miner:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    worker: str = ""
    shares: list[bytes] = field(default_factory=list)
    sent: dict[int, float] = field(default_factory=dict)
    job: Job | None = None


@dataclass
class _Load:
    latencies_s: list[float] = field(default_factory=list)
    errors: int = 0
    open: int = 0
    answered_ts: float = 0.0
    """When the last answers were in, before the connections were closed [POSIX s]."""


async def _read_answers(miner: _Miner, load: _Load) -> None:
    try:
        while True:
            line = await miner.reader.readuntil(b"\n")
            now = time.perf_counter()
            message = json.loads(line)
            sent = miner.sent.pop(message.get("id"), None) if message.get("id") else None
            if sent is not None:
                load.latencies_s.append(now - sent)
                if message.get("error") is not None and message.get("method") is None:
                    load.errors += 1
    except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
        load.open -= 1


async def _call(miner: _Miner, message: stratum.Message) -> stratum.Response:
    miner.writer.write(stratum.encode(message))
    while True:
        answer = stratum.decode(await miner.reader.readuntil(b"\n"))
        if isinstance(answer, stratum.Notify):
            miner.job = job_from_notify(answer)
        elif isinstance(answer, stratum.Response) and answer.id == getattr(message, "id", None):
            return answer


def _mine(miner: _Miner, extranonce1: bytes, size: int, count: int) -> None:
    """Find ``count`` valid shares of the miner's job (a few hashes each at the tiny target)."""
    assert miner.job is not None
    probe = ShareValidator(extranonce1, size, _MASK)
    probe.authorize(miner.worker)
    probe.add_job(miner.job, _DIFFICULTY)
    nonce = 0
    while len(miner.shares) < count:
        submit = stratum.Submit(
            0, miner.worker, miner.job.job_id, bytes(size), miner.job.ntime, nonce, 0x2000
        )
        if probe.check(submit).accepted:
            miner.shares.append(stratum.encode(submit)[:-1])
        nonce += 1


async def _stratum_connect(port: int, worker: str, password: str, shares: int) -> _Miner:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    miner = _Miner(reader, writer, worker)
    await _call(miner, stratum.Configure(1, ("version-rolling",), _MASK, 2))
    subscribed = stratum.subscribe_result((await _call(miner, stratum.Subscribe(2))).result)
    assert isinstance(subscribed, stratum.SubscribeResult), subscribed
    answer = await _call(miner, stratum.Authorize(3, worker, password))
    assert answer.result is True, answer
    while miner.job is None:
        message = stratum.decode(await reader.readuntil(b"\n"))
        if isinstance(message, stratum.Notify):
            miner.job = job_from_notify(message)
    _mine(miner, subscribed.extranonce1, subscribed.extranonce2_size, shares)
    return miner


async def _echo_connect(port: int, shares: int) -> _Miner:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    job = _ECHO_JOB
    miner = _Miner(reader, writer, "echo.rig")
    miner.shares = [
        stratum.encode(stratum.Submit(0, "echo.rig", job.job_id, bytes(2), job.ntime, n, 0x2000))[
            :-1
        ]
        for n in range(shares)
    ]
    return miner


async def _connect_all(make: object, count: int) -> tuple[list[_Miner], float]:
    gate = asyncio.Semaphore(256)
    started = time.perf_counter()

    async def one(index: int) -> _Miner | None:
        async with gate:
            with contextlib.suppress(OSError, AssertionError, asyncio.IncompleteReadError):
                return await make(index)  # type: ignore[operator]
            return None

    found = await asyncio.gather(*(one(i) for i in range(count)))
    return [m for m in found if m is not None], time.perf_counter() - started


async def _drive(miners: list[_Miner], rate: float, duration_s: float) -> _Load:
    load = _Load(open=len(miners))
    readers = [asyncio.create_task(_read_answers(m, load)) for m in miners]
    total = int(rate * duration_s)
    ids = iter(range(1000, 10**9))
    start = time.perf_counter()
    for index in range(total):
        due = start + index / rate
        delay = due - time.perf_counter()
        if delay > 0.0005:
            await asyncio.sleep(delay)
        miner = miners[index % len(miners)]
        if not miner.shares:
            continue
        rid = next(ids)
        line = miner.shares.pop()
        line = line.replace(b'"id":0,', f'"id":{rid},'.encode(), 1) + b"\n"
        miner.sent[rid] = time.perf_counter()
        miner.writer.write(line)
    await asyncio.sleep(2.0)  # the last answers
    load.answered_ts = time.time()
    held = load.open
    for task in readers:
        task.cancel()
    await asyncio.gather(*readers, return_exceptions=True)
    load.open = held
    for miner in miners:
        miner.writer.close()
    await asyncio.gather(*(m.writer.wait_closed() for m in miners), return_exceptions=True)
    return load


def _percentile_ms(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    return (
        statistics.quantiles(values, n=1000)[int(q * 1000) - 1] * 1e3
        if len(values) > 1
        else values[0] * 1e3
    )


def _gc_report(path: Path, window: tuple[float, float]) -> dict[str, object]:
    """The proxy's collections before and during the shares, from the probe's JSON."""
    found = json.loads(path.read_text())
    marks = found["marks"]
    during = [c for c in found["collections"] if window[0] <= c[0] <= window[1]]
    before = [c for c in found["collections"] if c[0] < window[0]]

    def summary(collections: list[list[float]]) -> dict[str, object]:
        full = [pause for _, generation, pause, _ in collections if generation == 2]
        return {
            "collections_by_generation": [
                sum(1 for c in collections if c[1] == g) for g in range(3)
            ],
            "full_pause_ms_max": 1e3 * max(full, default=0.0),
            "full_pause_ms_total": 1e3 * sum(full),
            "cpu_ms_total": 1e3 * sum(cpu for *_, cpu in collections),
            "full_cpu_ms_max": 1e3
            * max((cpu for _, generation, _, cpu in collections if generation == 2), default=0.0),
            "generation1_pause_ms_max": 1e3
            * max((p for _, generation, p, _ in collections if generation == 1), default=0.0),
            "generation1_cpu_ms_max": 1e3
            * max((cpu for _, generation, _, cpu in collections if generation == 1), default=0.0),
            "longest_pauses": [
                {
                    "generation": generation,
                    "pause_ms": round(1e3 * pause, 2),
                    "cpu_ms": round(1e3 * cpu, 2),
                }
                for _, generation, pause, cpu in sorted(collections, key=lambda c: -c[2])[:5]
            ],
        }

    return {
        "generation2_objects_at_start_of_shares": marks[0][1] if marks else None,
        "frozen_objects_at_start_of_shares": marks[0][2] if marks else None,
        "while_connecting": summary(before),
        "during_shares": summary(during),
        "census": found.get("census", []),
    }


def _spread_ms(values: list[float]) -> dict[str, float]:
    return {
        "p50": _percentile_ms(values, 0.5),
        "p99": _percentile_ms(values, 0.99),
        "max": 1e3 * max(values, default=float("nan")),
    }


def _stage_report(path: Path, window: tuple[float, float]) -> dict[str, object]:
    """Where the shares' time went inside the proxy, from the probe's JSON (the shares' window).

    ``queue_wait_ms``: from a share's acceptance (its timestamp) to the start of the commit
    that stored it; ``commit_ms``: the writer's transaction, per batch (wall, and CPU where it
    runs in a thread of its own: SQLite; PostgreSQL's is awaited on the event loop);
    ``loop_lag_ms``: how late a 10 ms timer ran; ``slow_callbacks``: event-loop callbacks that
    ran over 2 ms, by name (count, total and longest).
    """
    found = json.loads(path.read_text())
    writes = [w for w in found["writes"] if window[0] <= w[0] <= window[1]]
    waits = [wait for w in writes for wait in w[4]]
    lags = [lag for ts, lag in found["lags"] if window[0] <= ts <= window[1]]
    slow: dict[str, list[float]] = {}
    slow_cpu: dict[str, list[float]] = {}
    for ts, took, cpu, name in found["slow"]:
        if window[0] <= ts <= window[1]:
            slow.setdefault(name, []).append(took)
            slow_cpu.setdefault(name, []).append(cpu)
    commits = sorted((w[0], w[0] + w[1]) for w in writes)
    answers = [took for ts, took in found["answers"] if window[0] <= ts <= window[1]]
    return {
        "in_proxy_ms": _spread_ms(answers),
        "commits": len(writes),
        "shares_per_commit": _spread_ms([len(w[4]) / 1e3 for w in writes]),
        "commit_mean_ms": 1e3 * statistics.fmean([w[1] for w in writes]) if writes else None,
        "between_commits_ms": _spread_ms([b[0] - a[1] for a, b in itertools.pairwise(commits)]),
        "queue_wait_ms": _spread_ms(waits),
        "commit_ms": _spread_ms([w[1] for w in writes]),
        "commit_cpu_ms": _spread_ms([w[2] for w in writes if w[2] is not None]),
        "loop_lag_ms": _spread_ms(lags),
        "slow_callbacks": {
            name: {
                "count": len(t),
                "total_ms": 1e3 * sum(t),
                "max_ms": 1e3 * max(t),
                "cpu_total_ms": 1e3 * sum(slow_cpu[name]),
                "cpu_max_ms": 1e3 * max(slow_cpu[name]),
            }
            for name, t in sorted(slow.items(), key=lambda item: -sum(item[1]))[:8]
        },
    }


async def _wait_for_port(port: int) -> None:
    for _ in range(300):
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port)):
            return
        await asyncio.sleep(0.1)


def _stop(process: subprocess.Popen[bytes]) -> None:
    """Stop a server and wait until it has exited (its connections closed with it)."""
    if process.poll() is None:
        process.terminate()
    process.wait(timeout=60)


async def _echo_phase(
    connections: int, shares_each: int, rate: float, duration_s: float
) -> tuple[_Load, float, float, tuple[float, float, float]]:
    """The baseline: the echo server alone, the same connections, lines and rate.

    Returns the load's answers, the time to connect all [s], the server's CPU time over the
    lines [s] and the load average when the lines began.
    """
    echo_port = _free_port()
    echo = subprocess.Popen([sys.executable, "-c", _ECHO_SERVER, str(echo_port)])
    try:
        await _wait_for_port(echo_port)

        async def echo_miner(_index: int) -> _Miner:
            return await _echo_connect(echo_port, shares_each)

        echoed, connect_s = await _connect_all(echo_miner, connections)
        await asyncio.sleep(0.5)
        cpu_before_s = tree_cpu_s(echo.pid)
        load_average = os.getloadavg()
        load = await _drive(echoed, rate, duration_s)
        return load, connect_s, tree_cpu_s(echo.pid) - cpu_before_s, load_average
    finally:
        _stop(echo)


async def _run(
    connections: int,
    rate: float,
    duration_s: float,
    workdir: Path,
    database_url: str,
    *,
    census: bool = False,
) -> dict[str, object]:
    shares_each = max(2, int(rate * duration_s / connections) + 2)
    devices = _devices(database_url, max(1, connections // _WORKERS_PER_DEVICE))
    gc_log = workdir / "gc.json"
    stage_log = workdir / "stages.json"
    log = (workdir / "stratum.log").open("wb")
    pool = subprocess.Popen(
        [sys.executable, "-c", _POOL_SERVER, repr(_DIFFICULTY)],
        env={**os.environ, "BENCH_POOL_USER": _POOL_USER, "BENCH_POOL_PASSWORD": _POOL_PASSWORD},
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    assert pool.stdin is not None
    assert pool.stdout is not None
    pool_url = pool.stdout.readline().decode().strip()
    load_before = os.getloadavg()
    # The phases do not overlap: the proxy (and the test pool) have exited, their connections
    # closed, before the echo server starts, so the baseline is timed on a machine that no
    # longer runs the proxy's teardown of its connections.
    try:
        port = _free_port()
        text = repr(_DIFFICULTY)
        proxy = subprocess.Popen(
            [sys.executable, "-c", _GC_PROBE, "stratum",
             "--listen", f"127.0.0.1:{port}", "--database-url", database_url,
             "--pool-url", pool_url, "--pool-user", _POOL_USER, "--start-difficulty", text,
             "--min-difficulty", text, "--max-difficulty", text, "--log-level", "warning"],
            env={
                **os.environ,
                "HEATGRID_POOL_PASSWORD": _POOL_PASSWORD,
                "BENCH_GC_LOG": str(gc_log),
                "BENCH_STAGE_LOG": str(stage_log),
                "BENCH_GC_CENSUS": "1" if census else "0",
            },
            stdout=log,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            await _wait_for_port(port)

            async def proxy_miner(index: int) -> _Miner:
                device_id, password = devices[index % len(devices)]
                return await _stratum_connect(port, f"{device_id}.w{index}", password, shares_each)

            proxied, proxy_connect_s = await _connect_all(proxy_miner, connections)
            if not proxied:
                log.flush()
                tail = (workdir / "stratum.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"no miner got through the handshake; the proxy said:\n{tail}")
            proxy.send_signal(signal.SIGUSR1)  # the probe notes what a full pass would walk
            await asyncio.sleep(0.5)
            cpu_before_s = tree_cpu_s(proxy.pid)
            load_proxy = os.getloadavg()
            window_start_ts = time.time()
            proxy_load = await _drive(proxied, rate, duration_s)
            window = (window_start_ts, proxy_load.answered_ts)
            proxy_cpu_s = tree_cpu_s(proxy.pid) - cpu_before_s
            del proxied
        finally:
            _stop(proxy)
            log.close()
        pool.stdin.close()
        forwarded = int(pool.stdout.readline() or 0)
    finally:
        if not pool.stdin.closed:  # stopped before the pool's count was read
            pool.kill()
        pool.wait(timeout=30)
        pool.stdout.close()
    echo_load, echo_connect_s, echo_cpu_s, load_echo = await _echo_phase(
        connections, shares_each, rate, duration_s
    )
    proxy_gc = _gc_report(gc_log, window)
    p50, p99 = (
        _percentile_ms(proxy_load.latencies_s, 0.5),
        _percentile_ms(proxy_load.latencies_s, 0.99),
    )
    e50, e99 = (
        _percentile_ms(echo_load.latencies_s, 0.5),
        _percentile_ms(echo_load.latencies_s, 0.99),
    )
    return {
        "benchmark": "stratum_proxy",
        "what": "heatgrid stratum between miner connections and the test pool: "
        "connections held, submit-to-answer latency of valid shares at a fixed rate",
        "database": database_url.split(":", 1)[0].split("+", 1)[0],
        "connections_wanted": connections,
        "rate_shares_per_s": rate,
        "duration_s": duration_s,
        "connections_held": proxy_load.open,
        "connect_all_s": proxy_connect_s,
        "answers": len(proxy_load.latencies_s),
        "error_answers": proxy_load.errors,
        "forwarded_to_pool": forwarded,
        "p50_ms": p50,
        "p99_ms": p99,
        "proxy_cpu_ms_per_share": 1e3 * proxy_cpu_s / max(1, len(proxy_load.latencies_s)),
        "proxy_gc": proxy_gc,
        "proxy_stages": _stage_report(stage_log, window),
        "baseline": "bare asyncio line echo server, same connections, lines and rate",
        "baseline_connections_held": echo_load.open,
        "baseline_connect_all_s": echo_connect_s,
        "baseline_p50_ms": e50,
        "baseline_p99_ms": e99,
        "baseline_cpu_ms_per_line": 1e3 * echo_cpu_s / max(1, len(echo_load.latencies_s)),
        "ratio_p50_vs_baseline": p50 / e50,
        "ratio_p99_vs_baseline": p99 / e99,
        "goal_connections": _GOAL_CONNECTIONS,
        "goal_p99_ms": _GOAL_P99_MS,
        "connections_goal_met": proxy_load.open >= _GOAL_CONNECTIONS,
        "p99_goal_met": p99 < _GOAL_P99_MS,
        "machine": {
            "python": platform.python_version(),
            "processor": platform.machine(),
            "cpus": os.cpu_count(),
            "load_average_before": load_before,
            "load_average_at_proxy_shares": load_proxy,
            "load_average_at_echo_lines": load_echo,
            "load_average": os.getloadavg(),
        },
    }


def main() -> None:
    """Run the benchmark, print its JSON and write it to ``--out``."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--connections", type=int, default=_GOAL_CONNECTIONS)
    parser.add_argument("--rate", type=float, default=1000.0)
    parser.add_argument("--duration-s", type=float, default=20.0)
    parser.add_argument(
        "--database",
        choices=("sqlite", "postgresql"),
        default="sqlite",
        help="the proxy's database: SQLite in a temporary directory, or a throwaway "
        "PostgreSQL server (full durability: fsync and synchronous_commit on)",
    )
    parser.add_argument(
        "--gc-census",
        action="store_true",
        help="count what the proxy's generations 0 and 1 hold, by type, at the start of its "
        "first 12 generation-1 or full collections among the shares (proxy_gc.census); the "
        "counting delays the proxy, so the latencies of such a run are not comparable",
    )
    args = parser.parse_args()
    with contextlib.ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-stratum-")))
        if args.database == "postgresql":
            server = stack.enter_context(running_postgres({"max_connections": "50"}))
            with server.connect() as connection:
                connection.execute("CREATE DATABASE heatgrid")
            database_url = server.url("heatgrid")
        else:
            database_url = f"sqlite:///{workdir / 'coordinator.sqlite3'}"
        result = asyncio.run(
            _run(
                args.connections,
                args.rate,
                args.duration_s,
                workdir,
                database_url,
                census=args.gc_census,
            )
        )
        args.out.parent.mkdir(parents=True, exist_ok=True)
        # every collection, for a closer look: [end (POSIX s), generation, pause s, CPU s]
        shutil.copyfile(workdir / "gc.json", args.out.with_suffix(".gc.json"))
        shutil.copyfile(workdir / "stages.json", args.out.with_suffix(".stages.json"))
    text = json.dumps(result, indent=2)
    print(text)
    args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
