"""The services ``heatgrid demo`` starts, and the accounts it makes on them, as people do.

The broker (``mosquitto``), the coordinator (``heatgrid serve``) and its Stratum proxy
(``heatgrid stratum``, on the same database, the test pool as its upstream) are children of the
demo (:class:`~heatgrid.cli._demo_processes.Children`), each on a free loopback port. The
operator's key is made on the server (``heatgrid admin create-key``); everything else goes over
the API: the operator makes the owners' and the submitter's keys, each owner asks for the
one-time enrollment codes of their heaters and for their miners' mining passwords.

The coordinator and the proxy run on the demo's emulated clock (``HEATGRID_CLOCK`` in ``env``),
``speed`` times faster than the wall clock, and read every duration they are given in
emulated seconds; the durations that must last in real time (a heater is online for half a
minute after its last heartbeat, a lease, an enrollment code) are given ``speed`` times longer.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from heatgrid.cli._demo_processes import (
    Children,
    free_port,
    mosquitto_binary,
    run_heatgrid,
    wait_for_port,
)
from heatgrid.cli._demo_world import POOL_DIFFICULTY

__all__ = [
    "POOL_USER",
    "Accounts",
    "create_accounts",
    "operator_key",
    "start_broker",
    "start_coordinator",
    "start_proxy",
]

POOL_USER = "heatgrid-demo"
"""The operator's account at the test pool; the proxy submits as ``POOL_USER.DEVICE_ID``."""

_STARTUP_TIMEOUT_S = 60.0
_HEARTBEAT_INTERVAL_S = 2.0  # real seconds: the agents sleep it
_ONLINE_WINDOW_S = 30.0  # these five in real seconds, given speed times longer
_LEASE_S = 300.0
_CLOCK_SKEW_S = 60.0
_ENROLLMENT_CODE_S = 600.0
_DASHBOARD_SESSION_S = 8 * 3600.0
_SUBMITTER = "carol"
_POOL_PASSWORD = "x"


async def start_broker(children: Children, workdir: Path, env: dict[str, str]) -> tuple[str, int]:
    """Start mosquitto on a free loopback port; return its address."""
    binary = mosquitto_binary()
    assert binary is not None
    port = free_port()
    config = workdir / "mosquitto.conf"
    lines = [f"listener {port} 127.0.0.1", "allow_anonymous true", "persistence false"]
    if os.geteuid() == 0:
        lines.append("user root")
    config.write_text("\n".join(lines) + "\n")
    broker = children.start("mosquitto", [binary, "-c", str(config)], env)
    await wait_for_port(port, broker, _STARTUP_TIMEOUT_S)
    return "127.0.0.1", port


async def operator_key(env: dict[str, str]) -> str:
    """Migrate the database and make the operator's key, as an operator does on the server."""
    await run_heatgrid("db", "upgrade", env=env)
    out = await run_heatgrid(
        "admin", "create-key", "--role", "operator", "--name", "operator", "--json", env=env
    )
    return str(json.loads(out)["api_key"])


async def start_coordinator(
    children: Children,
    env: dict[str, str],
    *,
    port: int,
    stratum_url: str,
    speed: float,
) -> str:
    """Start ``heatgrid serve`` on ``port``, telling miners the proxy's URL; return its URL.

    ``speed`` is the emulated clock's: the durations that must last in real time are given
    ``speed`` times longer in its emulated seconds.
    """
    serve = children.start(
        "coordinator",
        [
            sys.executable, "-m", "heatgrid.cli.main", "serve", "--port", str(port),
            "--heartbeat-interval-s", str(_HEARTBEAT_INTERVAL_S),
            "--online-window-s", str(_ONLINE_WINDOW_S * speed),
            "--lease-s", str(_LEASE_S * speed),
            "--max-clock-skew-s", str(max(_CLOCK_SKEW_S * speed, 300.0)),
            "--dashboard-session-s", str(_DASHBOARD_SESSION_S * speed),
            "--stratum-url", stratum_url, "--log-level", "warning", "--verify-results",
        ],
        env,
    )  # fmt: skip
    await wait_for_port(port, serve, _STARTUP_TIMEOUT_S)
    return f"http://127.0.0.1:{port}"


async def start_proxy(children: Children, env: dict[str, str], *, port: int, pool_url: str) -> str:
    """Start ``heatgrid stratum`` on ``port``, the test pool upstream; return the URL miners dial.

    Every share difficulty is the test pool's (:data:`POOL_DIFFICULTY`, which the emulated
    miners find on a CPU), so that each share a miner finds is credited and forwarded.
    """
    difficulty = repr(POOL_DIFFICULTY)
    proxy_env = {
        **env,
        "HEATGRID_POOL_PASSWORD": _POOL_PASSWORD,
        **{f"HEATGRID_STRATUM_{b}_DIFFICULTY": difficulty for b in ("START", "MIN", "MAX")},
    }
    proxy = children.start(
        "stratum proxy",
        [
            sys.executable, "-m", "heatgrid.cli.main", "stratum",
            "--listen", f"127.0.0.1:{port}", "--pool-url", pool_url, "--pool-user", POOL_USER,
            "--log-level", "warning",
        ],
        proxy_env,
    )  # fmt: skip
    await wait_for_port(port, proxy, _STARTUP_TIMEOUT_S)
    return f"stratum+tcp://127.0.0.1:{port}"


@dataclass(frozen=True)
class Accounts:
    """The demo's API keys, and what their holders ask the coordinator for."""

    http: Any
    owners: dict[str, str]
    """Each owner's API key, by name."""
    submitter: str
    speed: float
    """The emulated clock's speed: an enrollment code lasts ten real minutes [-]."""

    async def _post(self, owner: str, path: str, body: dict[str, Any] | None, what: str) -> Any:
        answer = await self.http.post(
            path, json=body, headers={"Authorization": f"Bearer {self.owners[owner]}"}
        )
        if answer.status_code != 201:
            raise RuntimeError(f"{owner}'s {what}: {answer.status_code} {answer.text}")
        return answer.json()

    async def enrollment_code(self, owner: str) -> str:
        """Return a one-time enrollment code that ``owner`` asked for."""
        body = await self._post(
            owner,
            "/v1/admin/enrollment-codes",
            {"ttl_s": _ENROLLMENT_CODE_S * self.speed},
            "enrollment code",
        )
        return str(body["enrollment_code"])


async def create_accounts(
    http: Any, operator: str, owners: tuple[str, ...], *, speed: float
) -> Accounts:
    """Make the owners' and the submitter's keys over the API, as the operator.

    ``speed`` is the coordinator's emulated clock's (:attr:`Accounts.speed`).
    """
    keys = {}
    for name, role in (*((owner, "owner") for owner in owners), (_SUBMITTER, "submitter")):
        answer = await http.post(
            "/v1/admin/keys",
            json={"name": name, "role": role},
            headers={"Authorization": f"Bearer {operator}"},
        )
        if answer.status_code != 201:
            raise RuntimeError(f"creating {name}'s key: {answer.status_code} {answer.text}")
        keys[name] = str(answer.json()["api_key"])
    return Accounts(http, {owner: keys[owner] for owner in owners}, keys[_SUBMITTER], speed)
