"""Stratum v1 codec: line-delimited JSON-RPC messages as typed values, parsed strictly.

Messages are slotted dataclasses, not frozen ones (a frozen one costs five times as much to
make, and a proxy makes one per share): treat them as values. They live in
``_stratum_messages``, the per-method parsers in ``_stratum_requests`` (with the field readers
of ``_stratum_fields``), :func:`decode` in ``_stratum_decode`` and :func:`encode` in
``_stratum_encode``; this module is their one public face.

:func:`decode` turns one line into a message, or into :class:`Malformed` naming what is wrong
(never an exception): bad UTF-8 or JSON, a line over the cap, a wrong parameter count or type,
hex of the wrong length, an unknown method. :func:`encode` writes a message back as one line.

Methods: ``mining.subscribe``, ``mining.authorize``, ``mining.submit`` (with BIP 310 version
bits), ``mining.configure`` (BIP 310 version rolling), ``mining.extranonce.subscribe``,
``mining.suggest_difficulty`` from miners; ``mining.notify``, ``mining.set_difficulty``,
``mining.set_extranonce``, ``mining.set_version_mask`` from pools; responses both ways.
"""

from __future__ import annotations

from heatgrid.mining._stratum_decode import configure_result, decode, subscribe_result
from heatgrid.mining._stratum_encode import encode
from heatgrid.mining._stratum_messages import (
    DEFAULT_MAX_LINE_BYTES,
    Authorize,
    Configure,
    ErrorCode,
    ExtranonceSubscribe,
    Malformed,
    Message,
    Notify,
    RequestId,
    Response,
    SetDifficulty,
    SetExtranonce,
    SetVersionMask,
    StratumError,
    Submit,
    Subscribe,
    SubscribeResult,
    SuggestDifficulty,
)

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
    "configure_result",
    "decode",
    "encode",
    "subscribe_result",
]
