"""The GCMiner RPC of FluxOS (cgminer dialect, TCP 4028): requests in, JSON answers out.

A request is a JSON object ``{"command": "summary", "parameter": ...}`` or cgminer's plain
``command|parameter``; commands joined with ``+`` get one combined answer keyed by command.
Each answer carries cgminer's ``STATUS`` section (``S`` success, ``E`` error, with cgminer's
message codes) and ends with a NUL byte, as cgminer's API writes it. Hashrates are in MH/s.
Unknown commands answer ``Invalid command`` (code 14); nothing here raises on bad input.
"""

from __future__ import annotations

import json
from typing import Any

from heatgrid.emulators import miner_model as model
from heatgrid.emulators._fluxos_device import DeviceView

__all__ = ["answer_rpc", "pools_section", "status_section"]

_MHS_PER_THS = 1e6
_CODE_INVALID_COMMAND = 14
_CODE_INVALID_JSON = 23


def status_section(view: DeviceView, severity: str, code: int, msg: str) -> list[dict[str, Any]]:
    """Return cgminer's ``STATUS`` list: severity ``S``/``E``, message code and text."""
    return [
        {
            "STATUS": severity,
            "When": int(view.state.now_ts),
            "Code": code,
            "Msg": msg,
            "Description": view.identity.gcminer_version,
        }
    ]


def answer_rpc(request: bytes, view: DeviceView) -> bytes:
    """Return the bytes the RPC writes back for ``request`` (JSON and a trailing NUL)."""
    command, parameter = _parse(request)
    if command is None:
        document = {
            "STATUS": status_section(view, "E", _CODE_INVALID_JSON, "Message is not JSON"),
            "id": 1,
        }
    elif "+" in command:
        document = {part: [_answer_one(part, parameter, view)] for part in command.split("+")}
        document["id"] = 1
    else:
        document = _answer_one(command, parameter, view)
    return json.dumps(document).encode("utf-8") + b"\x00"


def _parse(request: bytes) -> tuple[str | None, object]:
    text = request.rstrip(b"\x00\r\n").decode("utf-8", errors="replace").strip()
    if text.startswith("{"):
        try:
            message = json.loads(text)
        except json.JSONDecodeError:
            return None, None
        command = message.get("command") if isinstance(message, dict) else None
        if not isinstance(command, str):
            return None, None
        return command.strip(), message.get("parameter")
    command, _, parameter = text.partition("|")
    return command.strip(), parameter or None


def _answer_one(command: str, parameter: object, view: DeviceView) -> dict[str, Any]:
    builder = _COMMANDS.get(command)
    if builder is None:
        return {
            "STATUS": status_section(view, "E", _CODE_INVALID_COMMAND, "Invalid command"),
            "id": 1,
        }
    return builder(view)


def _version(view: DeviceView) -> dict[str, Any]:
    identity = view.identity
    return {
        "STATUS": status_section(view, "S", 22, f"{identity.gcminer_version} versions"),
        "VERSION": [
            {
                "GCMiner": identity.gcminer_version.split(" ")[-1],
                "API": identity.api_version,
                "Miner": identity.firmware_version,
                "Type": identity.model,
            }
        ],
        "id": 1,
    }


def _summary(view: DeviceView) -> dict[str, Any]:
    state, params = view.state, view.params
    mhs = model.hashrate_ths(state, params) * _MHS_PER_THS
    elapsed_s = max(0, int(state.now_ts - state.started_ts))
    total_mh = state.work_th * _MHS_PER_THS
    return {
        "STATUS": status_section(view, "S", 11, "Summary"),
        "SUMMARY": [
            {
                "Elapsed": elapsed_s,
                "MHS av": total_mh / elapsed_s if elapsed_s else 0.0,
                "MHS 5s": mhs,
                "MHS 1m": mhs,
                "MHS 5m": mhs,
                "MHS 15m": mhs,
                "Found Blocks": 0,
                "Getworks": 0,
                "Accepted": 0,
                "Rejected": 0,
                "Hardware Errors": 0,
                "Utility": 0.0,
                "Discarded": 0,
                "Stale": 0,
                "Get Failures": 0,
                "Local Work": 0,
                "Remote Failures": 0,
                "Network Blocks": 0,
                "Total MH": total_mh,
                "Work Utility": 0.0,
                "Difficulty Accepted": 0.0,
                "Difficulty Rejected": 0.0,
                "Difficulty Stale": 0.0,
                "Best Share": 0,
                "Device Hardware%": 0.0,
                "Device Rejected%": 0.0,
                "Pool Rejected%": 0.0,
                "Pool Stale%": 0.0,
                "Last getwork": int(state.now_ts),
            }
        ],
        "id": 1,
    }


def _devs(view: DeviceView) -> dict[str, Any]:
    state, params = view.state, view.params
    count = params.hashboard_count
    board_mhs = model.hashrate_ths(state, params) * _MHS_PER_THS / count
    elapsed_s = max(0, int(state.now_ts - state.started_ts))
    devices = [
        {
            "ASC": index,
            "Name": "GCM",
            "ID": index + 1,
            "Enabled": "Y",
            "Status": "Alive",
            "Temperature": round(state.board_temp_c, 1),
            "Chip Temp Avg": round(state.chip_temp_c, 1),
            "MHS av": state.work_th * _MHS_PER_THS / count / elapsed_s if elapsed_s else 0.0,
            "MHS 5s": board_mhs,
            "MHS 1m": board_mhs,
            "MHS 5m": board_mhs,
            "MHS 15m": board_mhs,
            "Accepted": 0,
            "Rejected": 0,
            "Hardware Errors": 0,
            "Utility": 0.0,
            "Last Share Pool": -1,
            "Last Share Time": 0,
            "Total MH": state.work_th * _MHS_PER_THS / count,
            "Device Elapsed": elapsed_s,
        }
        for index in range(count)
    ]
    return {
        "STATUS": status_section(view, "S", 9, f"{count} ASC(s)"),
        "DEVS": devices,
        "id": 1,
    }


def _devdetails(view: DeviceView) -> dict[str, Any]:
    count = view.params.hashboard_count
    details = [
        {
            "DEVDETAILS": index,
            "Name": "GCM",
            "ID": index + 1,
            "Driver": "gcminer",
            "Kernel": "",
            "Model": view.identity.model,
            "Device Path": "",
        }
        for index in range(count)
    ]
    return {
        "STATUS": status_section(view, "S", 69, "Device Details"),
        "DEVDETAILS": details,
        "id": 1,
    }


def pools_section(view: DeviceView) -> list[dict[str, Any]]:
    """Return cgminer's ``POOLS`` list for the configured pools (the first one is in use)."""
    return [
        {
            "POOL": index,
            "URL": pool.url,
            "Status": "Alive",
            "Priority": index,
            "Quota": 1,
            "Long Poll": "N",
            "Getworks": 0,
            "Accepted": 0,
            "Rejected": 0,
            "Works": 0,
            "Discarded": 0,
            "Stale": 0,
            "Get Failures": 0,
            "Remote Failures": 0,
            "User": pool.user,
            "Last Share Time": 0,
            "Diff1 Shares": 0,
            "Proxy Type": "",
            "Proxy": "",
            "Difficulty Accepted": 0.0,
            "Difficulty Rejected": 0.0,
            "Difficulty Stale": 0.0,
            "Last Share Difficulty": 0.0,
            "Has Stratum": True,
            "Stratum Active": index == 0,
            "Stratum URL": pool.url.partition("://")[2].rsplit(":", 1)[0],
            "Has GBT": False,
            "Best Share": 0,
            "Pool Rejected%": 0.0,
            "Pool Stale%": 0.0,
        }
        for index, pool in enumerate(view.pools)
    ]


def _pools(view: DeviceView) -> dict[str, Any]:
    if not view.pools:
        return {"STATUS": status_section(view, "E", 8, "No pools"), "id": 1}
    return {
        "STATUS": status_section(view, "S", 7, f"{len(view.pools)} Pool(s)"),
        "POOLS": pools_section(view),
        "id": 1,
    }


_COMMANDS = {
    "version": _version,
    "summary": _summary,
    "devs": _devs,
    "devdetails": _devdetails,
    "pools": _pools,
}
