"""Stratum v1 codec: line-delimited JSON-RPC messages as typed values, parsed strictly.

Messages are slotted dataclasses, not frozen ones (a frozen one costs five times as much to
make, and a proxy makes one per share): treat them as values.

:func:`decode` turns one line into a message, or into :class:`Malformed` naming what is wrong
(never an exception): bad UTF-8 or JSON, a line over the cap, a wrong parameter count or type,
hex of the wrong length, an unknown method. :func:`encode` writes a message back as one line.

Methods: ``mining.subscribe``, ``mining.authorize``, ``mining.submit`` (with BIP 310 version
bits), ``mining.configure`` (BIP 310 version rolling), ``mining.extranonce.subscribe``,
``mining.suggest_difficulty`` from miners; ``mining.notify``, ``mining.set_difficulty``,
``mining.set_extranonce``, ``mining.set_version_mask`` from pools; responses both ways.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

__all__ = [
    "DEFAULT_MAX_LINE_BYTES",
    "Authorize",
    "Configure",
    "ErrorCode",
    "ExtranonceSubscribe",
    "Malformed",
    "Message",
    "Notify",
    "Response",
    "SetDifficulty",
    "SetExtranonce",
    "SetVersionMask",
    "StratumError",
    "Submit",
    "Subscribe",
    "SubscribeResult",
    "SuggestDifficulty",
    "configure_result",
    "decode",
    "encode",
    "subscribe_result",
]

DEFAULT_MAX_LINE_BYTES = 8192
"""Longest line accepted (a notify with a 12-deep branch is about 1.5 KiB) [bytes]."""

_HASH_BYTES = 32
_UINT32_HEX = 8
_MAX_ID_ABS = 2**53
_MAX_TEXT = 256
_VERSION_ROLLING = "version-rolling"
_HEX8 = re.compile(r"[0-9a-fA-F]{8}")


class ErrorCode(IntEnum):
    """Stratum v1 error codes (as answered in ``[code, message, null]``)."""

    OTHER = 20
    JOB_NOT_FOUND = 21
    DUPLICATE_SHARE = 22
    LOW_DIFFICULTY = 23
    UNAUTHORIZED = 24
    NOT_SUBSCRIBED = 25


RequestId = int | str | None


@dataclass(slots=True)
class StratumError:
    """An error answer: its code and a message for people."""

    code: int
    message: str


@dataclass(slots=True)
class Subscribe:
    """``mining.subscribe [user_agent, session_id]``."""

    id: RequestId
    user_agent: str | None = None
    session_id: str | None = None


@dataclass(slots=True)
class Authorize:
    """``mining.authorize [username, password]``."""

    id: RequestId
    username: str
    password: str


@dataclass(slots=True)
class Submit:
    """``mining.submit [worker, job_id, extranonce2, ntime, nonce, version_bits]``.

    ``ntime`` [POSIX s], ``nonce`` and ``version_bits`` are the integers their big-endian hex
    encodes; ``version_bits`` is None when the miner sent five parameters.
    """

    id: RequestId
    worker: str
    job_id: str
    extranonce2: bytes
    ntime: int
    nonce: int
    version_bits: int | None = None


@dataclass(slots=True)
class Configure:
    """``mining.configure [extensions, parameters]``; the version-rolling fields (BIP 310)."""

    id: RequestId
    extensions: tuple[str, ...]
    version_rolling_mask: int | None = None
    version_rolling_min_bit_count: int | None = None


@dataclass(slots=True)
class ExtranonceSubscribe:
    """``mining.extranonce.subscribe []``."""

    id: RequestId


@dataclass(slots=True)
class SuggestDifficulty:
    """``mining.suggest_difficulty [difficulty]``."""

    id: RequestId
    difficulty: float


@dataclass(slots=True)
class Notify:
    """``mining.notify``: a job. ``prevhash`` is as sent (see :mod:`heatgrid.mining.hashing`)."""

    job_id: str
    prevhash: bytes
    coinbase1: bytes
    coinbase2: bytes
    merkle_branch: tuple[bytes, ...]
    version: int
    nbits: int
    ntime: int
    clean_jobs: bool


@dataclass(slots=True)
class SetDifficulty:
    """``mining.set_difficulty [difficulty]``: the share difficulty of the next jobs."""

    difficulty: float


@dataclass(slots=True)
class SetExtranonce:
    """``mining.set_extranonce [extranonce1, extranonce2_size]``."""

    extranonce1: bytes
    extranonce2_size: int


@dataclass(slots=True)
class SetVersionMask:
    """``mining.set_version_mask [mask]`` (BIP 310)."""

    mask: int


@dataclass(slots=True)
class Response:
    """An answer to a request: ``result`` (any JSON) or ``error``."""

    id: RequestId
    result: Any = None
    error: StratumError | None = None


@dataclass(slots=True)
class Malformed:
    """A line that is not a valid message; ``id`` is the request's when it could be read."""

    reason: str
    id: RequestId = None


@dataclass(slots=True)
class SubscribeResult:
    """The result of ``mining.subscribe``: the extranonce1 given and the extranonce2 size."""

    extranonce1: bytes
    extranonce2_size: int
    subscription_id: str | None = None


Message = (
    Subscribe
    | Authorize
    | Submit
    | Configure
    | ExtranonceSubscribe
    | SuggestDifficulty
    | Notify
    | SetDifficulty
    | SetExtranonce
    | SetVersionMask
    | Response
)


class _BadError(Exception):
    """A parse failure inside :func:`decode`; never leaves this module."""


def _reject_constant(name: str) -> None:
    raise _BadError(f"{name} is not a JSON number")


_DECODER = json.JSONDecoder(parse_constant=_reject_constant)


def _hex(value: object, field: str, size: int | None = None) -> bytes:
    if not isinstance(value, str):
        raise _BadError(f"{field} must be a hex string")
    try:
        data = bytes.fromhex(value)
    except ValueError:
        raise _BadError(f"{field} is not hex: {value[:80]!r}") from None
    if len(value) != 2 * len(data):
        raise _BadError(f"{field} is not hex: {value[:80]!r}")
    if size is not None and len(data) != size:
        raise _BadError(f"{field} must be {size} bytes ({2 * size} hex digits), got {len(data)}")
    return data


def _uint32(value: object, field: str) -> int:
    if not isinstance(value, str) or _HEX8.fullmatch(value) is None:
        if isinstance(value, str) and len(value) == _UINT32_HEX:
            raise _BadError(f"{field} is not hex: {value!r}")
        raise _BadError(f"{field} must be 8 hex digits")
    return int(value, 16)


def _text(value: object, field: str) -> str:
    if not isinstance(value, str):
        raise _BadError(f"{field} must be a string")
    if len(value) > _MAX_TEXT:
        raise _BadError(f"{field} is longer than {_MAX_TEXT} characters")
    return value


def _difficulty(value: object, field: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _BadError(f"{field} must be a number")
    number = float(value)
    if not (math.isfinite(number) and number > 0.0):
        raise _BadError(f"{field} must be a finite number > 0")
    return number


def _count(params: list[Any], low: int, high: int, method: str) -> None:
    if not low <= len(params) <= high:
        wanted = str(low) if low == high else f"{low} to {high}"
        raise _BadError(f"{method} takes {wanted} parameters, got {len(params)}")


def _subscribe(rid: RequestId, params: list[Any]) -> Subscribe:
    _count(params, 0, 4, "mining.subscribe")
    agent = None if not params or params[0] is None else _text(params[0], "user agent")
    session = None if len(params) < 2 or params[1] is None else _text(params[1], "session id")
    return Subscribe(rid, agent, session)


def _authorize(rid: RequestId, params: list[Any]) -> Authorize:
    _count(params, 1, 2, "mining.authorize")
    password = "" if len(params) < 2 or params[1] is None else _text(params[1], "password")
    return Authorize(rid, _text(params[0], "username"), password)


def _submit(rid: RequestId, params: list[Any]) -> Submit:
    _count(params, 5, 6, "mining.submit")
    bits = _uint32(params[5], "version bits") if len(params) == 6 else None
    return Submit(
        rid,
        worker=_text(params[0], "worker"),
        job_id=_text(params[1], "job id"),
        extranonce2=_hex(params[2], "extranonce2"),
        ntime=_uint32(params[3], "ntime"),
        nonce=_uint32(params[4], "nonce"),
        version_bits=bits,
    )


def _configure(rid: RequestId, params: list[Any]) -> Configure:
    _count(params, 1, 2, "mining.configure")
    names, options = params[0], params[1] if len(params) == 2 else {}
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise _BadError("mining.configure's extensions must be a list of names")
    if not isinstance(options, dict):
        raise _BadError("mining.configure's parameters must be an object")
    mask = min_bits = None
    if _VERSION_ROLLING in names:
        if "version-rolling.mask" in options:
            mask = _uint32(options["version-rolling.mask"], "version-rolling.mask")
        raw_min = options.get("version-rolling.min-bit-count")
        if raw_min is not None:
            if isinstance(raw_min, bool) or not isinstance(raw_min, int) or not 0 <= raw_min <= 32:
                raise _BadError("version-rolling.min-bit-count must be an integer from 0 to 32")
            min_bits = raw_min
    return Configure(rid, tuple(names), mask, min_bits)


def _notify(params: list[Any]) -> Notify:
    _count(params, 9, 9, "mining.notify")
    branch = params[4]
    if not isinstance(branch, list):
        raise _BadError("merkle branch must be a list of hex hashes")
    if not isinstance(params[8], bool):
        raise _BadError("clean_jobs must be true or false")
    return Notify(
        job_id=_text(params[0], "job id"),
        prevhash=_hex(params[1], "prevhash", _HASH_BYTES),
        coinbase1=_hex(params[2], "coinbase1"),
        coinbase2=_hex(params[3], "coinbase2"),
        merkle_branch=tuple(_hex(h, "merkle branch hash", _HASH_BYTES) for h in branch),
        version=_uint32(params[5], "version"),
        nbits=_uint32(params[6], "nbits"),
        ntime=_uint32(params[7], "ntime"),
        clean_jobs=params[8],
    )


def _set_extranonce(params: list[Any]) -> SetExtranonce:
    _count(params, 2, 2, "mining.set_extranonce")
    size = params[1]
    if isinstance(size, bool) or not isinstance(size, int) or not 0 <= size <= 16:
        raise _BadError("extranonce2 size must be an integer from 0 to 16")
    return SetExtranonce(_hex(params[0], "extranonce1"), size)


def _suggest_difficulty(rid: RequestId, params: list[Any]) -> SuggestDifficulty:
    _count(params, 1, 1, "mining.suggest_difficulty")
    return SuggestDifficulty(rid, _difficulty(params[0], "difficulty"))


def _set_difficulty(_rid: RequestId, params: list[Any]) -> SetDifficulty:
    _count(params, 1, 1, "mining.set_difficulty")
    return SetDifficulty(_difficulty(params[0], "difficulty"))


def _set_version_mask(_rid: RequestId, params: list[Any]) -> SetVersionMask:
    _count(params, 1, 1, "mining.set_version_mask")
    return SetVersionMask(_uint32(params[0], "version mask"))


_PARSERS: dict[str, Callable[[RequestId, list[Any]], Message]] = {
    "mining.submit": _submit,
    "mining.subscribe": _subscribe,
    "mining.authorize": _authorize,
    "mining.configure": _configure,
    "mining.extranonce.subscribe": lambda rid, _params: ExtranonceSubscribe(rid),
    "mining.suggest_difficulty": _suggest_difficulty,
    "mining.notify": lambda _rid, params: _notify(params),
    "mining.set_difficulty": _set_difficulty,
    "mining.set_extranonce": lambda _rid, params: _set_extranonce(params),
    "mining.set_version_mask": _set_version_mask,
}


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
