"""One parser per Stratum v1 method: its parameters into its typed message."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from heatgrid.mining._stratum_fields import (
    _HASH_BYTES,
    _VERSION_ROLLING,
    _BadError,
    _count,
    _difficulty,
    _hex,
    _text,
    _uint32,
)
from heatgrid.mining._stratum_messages import (
    Authorize,
    Configure,
    ExtranonceSubscribe,
    Message,
    Notify,
    RequestId,
    SetDifficulty,
    SetExtranonce,
    SetVersionMask,
    Submit,
    Subscribe,
    SuggestDifficulty,
)

__all__: list[str] = []  # private to heatgrid.mining's Stratum modules


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
