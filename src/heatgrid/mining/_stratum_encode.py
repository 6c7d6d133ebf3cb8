"""Encode a Stratum v1 message as one JSON-RPC line."""

from __future__ import annotations

import json
from typing import Any

from heatgrid.mining._stratum_messages import (
    Authorize,
    Configure,
    ExtranonceSubscribe,
    Message,
    Notify,
    Response,
    SetDifficulty,
    SetExtranonce,
    SetVersionMask,
    Submit,
    Subscribe,
    SuggestDifficulty,
)

__all__ = ["encode"]


def _line(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, separators=(",", ":")).encode() + b"\n"


def _request_payload(message: Message) -> tuple[str, list[Any]]:
    if isinstance(message, Subscribe):
        params: list[Any] = [] if message.user_agent is None else [message.user_agent]
        if message.session_id is not None:
            params = [message.user_agent, message.session_id]
        return "mining.subscribe", params
    if isinstance(message, Authorize):
        return "mining.authorize", [message.username, message.password]
    if isinstance(message, Submit):
        params = [
            message.worker,
            message.job_id,
            message.extranonce2.hex(),
            f"{message.ntime:08x}",
            f"{message.nonce:08x}",
        ]
        if message.version_bits is not None:
            params.append(f"{message.version_bits:08x}")
        return "mining.submit", params
    if isinstance(message, Configure):
        options: dict[str, Any] = {}
        if message.version_rolling_mask is not None:
            options["version-rolling.mask"] = f"{message.version_rolling_mask:08x}"
        if message.version_rolling_min_bit_count is not None:
            options["version-rolling.min-bit-count"] = message.version_rolling_min_bit_count
        return "mining.configure", [list(message.extensions), options]
    if isinstance(message, ExtranonceSubscribe):
        return "mining.extranonce.subscribe", []
    if isinstance(message, SuggestDifficulty):
        return "mining.suggest_difficulty", [message.difficulty]
    raise TypeError(f"not a request: {message!r}")


def _notification_payload(message: Message) -> tuple[str, list[Any]] | None:
    if isinstance(message, Notify):
        return "mining.notify", [
            message.job_id,
            message.prevhash.hex(),
            message.coinbase1.hex(),
            message.coinbase2.hex(),
            [h.hex() for h in message.merkle_branch],
            f"{message.version:08x}",
            f"{message.nbits:08x}",
            f"{message.ntime:08x}",
            message.clean_jobs,
        ]
    if isinstance(message, SetDifficulty):
        return "mining.set_difficulty", [message.difficulty]
    if isinstance(message, SetExtranonce):
        return "mining.set_extranonce", [message.extranonce1.hex(), message.extranonce2_size]
    if isinstance(message, SetVersionMask):
        return "mining.set_version_mask", [f"{message.mask:08x}"]
    return None


def encode(message: Message) -> bytes:
    """Return ``message`` as one JSON-RPC line, newline included."""
    if isinstance(message, Response):
        error = None
        if message.error is not None:
            error = [message.error.code, message.error.message, None]
        return _line({"id": message.id, "result": message.result, "error": error})
    notification = _notification_payload(message)
    if notification is not None:
        method, params = notification
        return _line({"id": None, "method": method, "params": params})
    method, params = _request_payload(message)
    return _line({"id": message.id, "method": method, "params": params})  # type: ignore[union-attr]
