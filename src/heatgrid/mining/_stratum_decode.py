"""Decode one Stratum v1 line into a typed message, or :class:`Malformed` saying why."""

from __future__ import annotations

import json
from typing import Any

from heatgrid.mining._stratum_fields import (
    _MAX_ID_ABS,
    _MAX_TEXT,
    _VERSION_ROLLING,
    _BadError,
    _hex,
    _uint32,
)
from heatgrid.mining._stratum_messages import (
    DEFAULT_MAX_LINE_BYTES,
    Malformed,
    Message,
    RequestId,
    Response,
    StratumError,
    SubscribeResult,
)
from heatgrid.mining._stratum_requests import _PARSERS

__all__ = ["configure_result", "decode", "subscribe_result"]


def _reject_constant(name: str) -> None:
    raise _BadError(f"{name} is not a JSON number")


_DECODER = json.JSONDecoder(parse_constant=_reject_constant)


def _request(method: str, rid: RequestId, params: list[Any]) -> Message:
    parser = _PARSERS.get(method)
    if parser is None:
        raise _BadError(f"unknown method {method[:80]!r}")
    return parser(rid, params)


def _error(raw: object) -> StratumError | None:
    if raw is None:
        return None
    if isinstance(raw, list) and len(raw) >= 2 and isinstance(raw[0], int):
        return StratumError(raw[0], str(raw[1]))
    if isinstance(raw, dict) and isinstance(raw.get("code"), int):
        return StratumError(raw["code"], str(raw.get("message", "")))
    raise _BadError("error must be [code, message, data] or null")


def _id(raw: dict[str, Any]) -> RequestId:
    rid = raw.get("id")
    if rid is None or (isinstance(rid, str) and len(rid) <= _MAX_TEXT):
        return rid
    if isinstance(rid, int) and not isinstance(rid, bool) and abs(rid) <= _MAX_ID_ABS:
        return rid
    raise _BadError("id must be an integer, a short string or null")


def decode(line: bytes, max_line_bytes: int = DEFAULT_MAX_LINE_BYTES) -> Message | Malformed:
    """Parse one line (with or without its newline) into a message, or say what is wrong.

    Parameters
    ----------
    line : bytes
        One line as read from the connection.
    max_line_bytes : int
        Longest line accepted [bytes].

    Returns
    -------
    Message or Malformed
        The typed message; :class:`Malformed` (with the request id when it was readable)
        for anything else. No exception escapes.
    """
    if len(line) > max_line_bytes:
        return Malformed(f"line longer than {max_line_bytes} bytes")
    rid: RequestId = None
    try:
        raw = _DECODER.decode(line.decode("utf-8"))
        if not isinstance(raw, dict):
            raise _BadError("a message must be a JSON object")
        rid = _id(raw)
        method = raw.get("method")
        if method is not None:
            if not isinstance(method, str):
                raise _BadError("method must be a string")
            params = raw.get("params", [])
            if not isinstance(params, list):
                raise _BadError("params must be a list")
            return _request(method, rid, params)
        if "result" in raw or "error" in raw:
            return Response(rid, raw.get("result"), _error(raw.get("error")))
        raise _BadError("a message needs a method, a result or an error")
    except _BadError as bad:
        return Malformed(str(bad), rid)
    except UnicodeDecodeError:
        return Malformed("line is not UTF-8")
    except (ValueError, RecursionError):
        return Malformed("line is not JSON")


def subscribe_result(result: Any) -> SubscribeResult | Malformed:
    """Read a ``mining.subscribe`` result: ``[subscriptions, extranonce1, extranonce2_size]``."""
    try:
        if not isinstance(result, list) or len(result) < 3:
            raise _BadError("a subscribe result is [subscriptions, extranonce1, extranonce2_size]")
        size = result[2]
        if isinstance(size, bool) or not isinstance(size, int) or not 1 <= size <= 16:
            raise _BadError("extranonce2 size must be an integer from 1 to 16")
        subscription = None
        subs = result[0]
        if isinstance(subs, list) and subs and isinstance(subs[0], list) and len(subs[0]) > 1:
            subscription = str(subs[0][1])
        return SubscribeResult(_hex(result[1], "extranonce1"), size, subscription)
    except _BadError as bad:
        return Malformed(str(bad))


def configure_result(result: Any) -> int | Malformed | None:
    """Read a ``mining.configure`` result: the version-rolling mask granted, or None."""
    if not isinstance(result, dict):
        return Malformed("a configure result is an object")
    if result.get(_VERSION_ROLLING) is not True:
        return None
    try:
        return _uint32(result.get("version-rolling.mask"), "version-rolling.mask")
    except _BadError as bad:
        return Malformed(str(bad))
