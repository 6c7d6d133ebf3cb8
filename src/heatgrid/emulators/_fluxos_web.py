"""The FluxOS web API (HTTP JSON, port 8080): token login, reads by GET, writes by POST.

``POST /token`` with ``{"user", "password"}`` returns a token; every other request carries it
in a ``Token`` header. Reads (``GET /ipreport``, ``/psu``, ``/mode``, ``/fan``, ``/led``,
``/pools``) and writes (``POST /mode``, ``/fan``, ``/led``, ``/updatepools``, ``/restart``)
answer a cgminer-style ``STATUS`` section plus one section named after the command. A refused
write (out-of-range power, malformed pools) answers ``STATUS`` ``E`` with the reason and
changes nothing.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from http import HTTPStatus
from typing import Any

from heatgrid.core.errors import InputError
from heatgrid.emulators import miner_model as model
from heatgrid.emulators._fluxos_device import DeviceView, FluxDevice
from heatgrid.emulators._fluxos_rpc import pools_section, status_section
from heatgrid.emulators._http import HttpRequest, HttpResponse

__all__ = ["answer_web"]

_VOLTAGE_IN_V = 230.0
_LED_CODES = frozenset({1, 2, 3, 4, 5, 6, 7, 8, 101, 102})
_ECO_SHARE = 0.75  # eco mode runs at this share of the maximum power


async def answer_web(request: HttpRequest, device: FluxDevice) -> HttpResponse:
    """Answer one web API request against ``device``."""
    command = request.path.strip("/")
    if request.method == "POST" and command == "token":
        return _token(request, device)
    if not device.token_valid(request.headers.get("token")):
        return _error(device.view(), HTTPStatus.UNAUTHORIZED, 45, "Invalid or missing token")
    if request.method == "GET" and command in _READS:
        return HttpResponse(HTTPStatus.OK, _READS[command](device.view()))
    if request.method == "POST" and command in _WRITES:
        try:
            body = _json_object(request.body)
            message = _WRITES[command](device, body)
        except InputError as error:
            return _error(device.view(), HTTPStatus.BAD_REQUEST, 132, str(error))
        return HttpResponse(
            HTTPStatus.OK, {"STATUS": status_section(device.view(), "S", 131, message)}
        )
    return _error(device.view(), HTTPStatus.NOT_FOUND, 14, "Invalid command")


def _error(view: DeviceView, http_status: int, code: int, msg: str) -> HttpResponse:
    return HttpResponse(http_status, {"STATUS": status_section(view, "E", code, msg)})


def _json_object(body: bytes) -> dict[str, Any]:
    try:
        document = json.loads(body or b"{}")
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise InputError("the request body is not JSON") from None
    if not isinstance(document, dict):
        raise InputError("the request body must be a JSON object")
    return document


def _token(request: HttpRequest, device: FluxDevice) -> HttpResponse:
    try:
        body = _json_object(request.body)
    except InputError as error:
        return _error(device.view(), HTTPStatus.BAD_REQUEST, 23, str(error))
    token = device.issue_token(body.get("user"), body.get("password"))
    view = device.view()
    if token is None:
        return _error(view, HTTPStatus.UNAUTHORIZED, 45, "Invalid username or password")
    return HttpResponse(
        HTTPStatus.OK,
        {"STATUS": status_section(view, "S", 134, "Token"), "Token": [{"Token": token}]},
    )


def _ipreport(view: DeviceView) -> dict[str, Any]:
    identity = view.identity
    return {
        "STATUS": status_section(view, "S", 200, "IPReport"),
        "IPReport": [
            {
                "ip": view.host,
                "mac": identity.mac,
                "hostname": identity.hostname,
                "model": identity.model,
                "version": identity.firmware_version,
                "serial": f"{identity.serial_prefix}-CB",
                "HBSerialNo": [
                    f"{identity.serial_prefix}-HB{index}"
                    for index in range(view.params.hashboard_count)
                ],
            }
        ],
    }


def _psu(view: DeviceView) -> dict[str, Any]:
    power_w = view.state.power_w
    return {
        "STATUS": status_section(view, "S", 200, "PSU"),
        "PSU": [
            {
                "ID": 0,
                "PowerIn": f"{power_w:.1f}W",
                "PoutMax": f"{view.params.max_power_w:.0f}W",
                "VoltageIn": f"{_VOLTAGE_IN_V:.1f}V",
                "CurrentIn": f"{power_w / _VOLTAGE_IN_V:.2f}A",
            }
        ],
    }


def _mode(view: DeviceView) -> dict[str, Any]:
    name, _, tune = view.mode.partition("/")
    entry: dict[str, Any] = {
        "Mode": name,
        "Sleep": "off" if view.state.mining else "on",
        "Power": round(view.state.power_target_w),
    }
    if tune:
        entry["Tune"] = tune
    if tune == "ths":
        entry["Ths"] = round(view.state.power_target_w / view.params.efficiency_j_per_th, 2)
    return {"STATUS": status_section(view, "S", 200, "Mode"), "Mode": [entry]}


def _fan(view: DeviceView) -> dict[str, Any]:
    rpm = round(model.fan_rpm(view.state, view.params))
    fans = [
        {
            "ID": index,
            "Speed": rpm,
            "Target": rpm,
            "Max": round(view.params.fan_max_rpm),
            "Mode": "auto" if view.state.fan_percent is None else "manual",
        }
        for index in range(view.params.fan_count)
    ]
    return {"STATUS": status_section(view, "S", 200, "Fan"), "Fan": fans}


def _led(view: DeviceView) -> dict[str, Any]:
    return {"STATUS": status_section(view, "S", 200, "LED"), "LED": [{"Code": view.led_code}]}


def _pools(view: DeviceView) -> dict[str, Any]:
    return {"STATUS": status_section(view, "S", 7, "Pools"), "POOLS": pools_section(view)}


def _number(body: dict[str, Any], key: str) -> float:
    value = body.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise InputError(f"{key} must be a number, got {value!r}")
    try:
        return float(value)
    except ValueError:
        raise InputError(f"{key} must be a number, got {value!r}") from None


def _set_mode(device: FluxDevice, body: dict[str, Any]) -> str:
    params = device.params
    if "sleep" in body:
        if body["sleep"] not in ("on", "off"):
            raise InputError(f"sleep must be 'on' or 'off', got {body['sleep']!r}")
        device.set_sleep(body["sleep"] == "on")
        return f"Sleep {body['sleep']}"
    mode = body.get("mode")
    if mode == "custom":
        tune = body.get("tune")
        if tune == "power":
            device.set_mode("custom/power", _number(body, "power"))
        elif tune == "ths":
            ths = _number(body, "ths")
            device.set_mode("custom/ths", ths * params.efficiency_j_per_th)
        else:
            raise InputError(f"tune must be 'power' or 'ths', got {tune!r}")
    elif mode in {"normal", "turbo"}:
        device.set_mode(mode, params.max_power_w)
    elif mode == "eco":
        device.set_mode(mode, max(params.min_power_w, _ECO_SHARE * params.max_power_w))
    else:
        raise InputError(f"mode must be normal, eco, turbo or custom, got {mode!r}")
    return "Mode set"


def _set_fan(device: FluxDevice, body: dict[str, Any]) -> str:
    device.set_fan_percent(_number(body, "percentage"))
    return "Fan set"


def _set_led(device: FluxDevice, body: dict[str, Any]) -> str:
    code = body.get("code")
    if not isinstance(code, int) or code not in _LED_CODES:
        raise InputError(f"code must be one of {sorted(_LED_CODES)}, got {code!r}")
    device.set_led_code(code)
    return "LED set"


def _update_pools(device: FluxDevice, body: dict[str, Any]) -> str:
    device.update_pools(body.get("pools"))
    return "Pools updated"


def _restart(device: FluxDevice, body: dict[str, Any]) -> str:
    target = body.get("parameter", "system")
    if target == "api-server":
        return "API server restarted"
    if target not in ("gcminer", "system"):
        raise InputError(f"parameter must be gcminer or api-server, got {target!r}")
    device.restart_mining()
    return "Restarting"


_READS: dict[str, Callable[[DeviceView], dict[str, Any]]] = {
    "ipreport": _ipreport,
    "psu": _psu,
    "mode": _mode,
    "fan": _fan,
    "led": _led,
    "pools": _pools,
}
_WRITES: dict[str, Callable[[FluxDevice, dict[str, Any]], str]] = {
    "mode": _set_mode,
    "fan": _set_fan,
    "led": _set_led,
    "updatepools": _update_pools,
    "restart": _restart,
}
