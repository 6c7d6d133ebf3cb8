"""The emulated FluxOS device: the miner model plus its configuration, under one clock.

Every read and every command first moves the model to the clock's present, so what the API
reports is the model's truth at the instant of the request. The clock is injected; nothing
here reads the system time.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass

from heatgrid.core.errors import InputError
from heatgrid.emulators import miner_model as model

__all__ = ["DeviceView", "FluxDevice", "Identity", "Pool"]

_MAX_POOLS = 3


@dataclass(frozen=True)
class Pool:
    """One configured Stratum pool."""

    url: str
    user: str
    password: str


@dataclass(frozen=True)
class Identity:
    """What the device says about itself (model, firmware, network names)."""

    model: str = "AT1500"
    firmware_version: str = "FluxOS v2024.10.1-heatgrid-emulated"
    gcminer_version: str = "GCMiner 1.3.0"
    api_version: str = "3.7"
    hostname: str = "heatgrid-emulated-miner"
    mac: str = "02:00:00:00:48:47"
    serial_prefix: str = "HGEMU"


@dataclass(frozen=True)
class DeviceView:
    """A consistent snapshot of the device at one instant, for building answers."""

    state: model.MinerState
    params: model.MinerParams
    mode: str
    pools: tuple[Pool, ...]
    led_code: int
    identity: Identity
    host: str


class FluxDevice:
    """The mutable device: model state, mining mode, pools, LED, and issued web tokens.

    Parameters
    ----------
    params : MinerParams
        The miner's properties.
    clock : callable
        Returns the present time [POSIX s].
    identity : Identity
        Model and firmware names reported by the APIs.
    web_user, web_password : str
        Credentials the web API's ``token`` command accepts.
    host : str
        The address the device serves on (reported in ``ipreport``).
    """

    def __init__(
        self,
        params: model.MinerParams,
        clock: Callable[[], float],
        *,
        identity: Identity | None = None,
        web_user: str = "admin",
        web_password: str = "admin",
        host: str = "127.0.0.1",
    ) -> None:
        self.params = params
        self._clock = clock
        self._state = model.initial_state(clock(), params)
        self._mode = "normal"
        self._pools: tuple[Pool, ...] = ()
        self._led_code = 2
        self.identity = identity or Identity()
        self._web_user = web_user
        self._web_password = web_password
        self._tokens: set[str] = set()
        self._host = host

    def view(self) -> DeviceView:
        """Move the model to the present and return a snapshot."""
        self._state = model.advance(self._state, self._clock(), self.params)
        return DeviceView(
            self._state,
            self.params,
            self._mode,
            self._pools,
            self._led_code,
            self.identity,
            self._host,
        )

    def issue_token(self, user: object, password: object) -> str | None:
        """Return a new token for the right credentials, else None."""
        if user != self._web_user or password != self._web_password:
            return None
        token = secrets.token_hex(16)
        self._tokens.add(token)
        return token

    def token_valid(self, token: str | None) -> bool:
        """Return True when ``token`` was issued by :meth:`issue_token`."""
        return token is not None and token in self._tokens

    def set_mode(self, mode: str, power_target_w: float) -> None:
        """Switch to a named mining mode with its power target [W]; refuses an invalid one."""
        self.view()
        self._state = model.set_power_target(self._state, power_target_w, self.params)
        self._mode = mode

    def set_sleep(self, sleep: bool) -> None:
        """Pause (sleep) or resume mining."""
        self.view()
        if sleep:
            self._state = model.pause(self._state)
        else:
            self._state = model.resume(self._state, self.params)

    def set_fan_percent(self, fan_percent: float | None) -> None:
        """Fix the fans at ``fan_percent`` [%] or return them to automatic (None)."""
        self.view()
        self._state = model.set_fan_percent(self._state, fan_percent)

    def set_led_code(self, code: int) -> None:
        """Set the LED code (2 normal, 3 locate)."""
        self._led_code = code

    def restart_mining(self) -> None:
        """Restart the mining process: no hashing for the restart delay."""
        self.view()
        self._state = model.restart(self._state, self.params)

    def update_pools(self, pools: object) -> None:
        """Replace the pool list; a malformed list is refused and the old one is kept."""
        if not isinstance(pools, list) or not 1 <= len(pools) <= _MAX_POOLS:
            raise InputError(f"pools must be a list of 1 to {_MAX_POOLS} pools")
        parsed: list[Pool] = []
        for index, pool in enumerate(pools):
            if not isinstance(pool, dict):
                raise InputError(f"pools[{index}] must be an object")
            url, user, password = pool.get("url"), pool.get("user"), pool.get("pass", "")
            if not isinstance(url, str) or "://" not in url:
                raise InputError(f"pools[{index}].url must be a URL such as stratum+tcp://h:p")
            if not isinstance(user, str) or not isinstance(password, str):
                raise InputError(f"pools[{index}].user and .pass must be strings")
            parsed.append(Pool(url, user, password))
        self._pools = tuple(parsed)
