"""Stratum v1 messages as typed values (see :mod:`heatgrid.mining.stratum`).

Messages are slotted dataclasses, not frozen ones (a frozen one costs five times as much to
make, and a proxy makes one per share): treat them as values.
"""

from __future__ import annotations

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
    "RequestId",
    "Response",
    "SetDifficulty",
    "SetExtranonce",
    "SetVersionMask",
    "StratumError",
    "Submit",
    "Subscribe",
    "SubscribeResult",
    "SuggestDifficulty",
]

DEFAULT_MAX_LINE_BYTES = 8192
"""Longest line accepted (a notify with a 12-deep branch is about 1.5 KiB) [bytes]."""


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
