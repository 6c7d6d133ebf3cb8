"""Transaction encoding for coinbases, through python-bitcoinlib (not written again here).

A Stratum job carries the coinbase transaction without its witness, split around the
extranonce space. These helpers build such a split for a pool's job (BIP 34 height first in
the scriptSig, the extranonce as one push), strip the witness from a full coinbase, and check
that bytes a pool sent really form a coinbase transaction.
"""

from __future__ import annotations

import io

from bitcoin.core import (
    COutPoint,
    CScript,
    CTransaction,
    CTxIn,
    CTxOut,
)
from bitcoin.core.serialize import SerializationError

from heatgrid.core.errors import InputError

__all__ = ["CoinbaseOutput", "coinbase_parts", "parse_coinbase", "strip_witness"]

_MAX_DIRECT_PUSH = 75
CoinbaseOutput = tuple[bytes, int]
"""A coinbase output: (scriptPubKey bytes, value [sat])."""


def _deserialize(tx_bytes: bytes) -> CTransaction:
    try:
        return CTransaction.deserialize(tx_bytes)
    except (SerializationError, ValueError, IndexError, TypeError) as error:
        raise InputError(f"not a transaction: {error}") from None


def parse_coinbase(coinbase: bytes) -> CTransaction:
    """Return ``coinbase`` parsed as a transaction, checking that it is a coinbase.

    Raises
    ------
    InputError
        If the bytes are not exactly one transaction, or it is not a coinbase
        (one input spending the null outpoint).
    """
    tx = _deserialize(coinbase)
    if not tx.is_coinbase():
        raise InputError("the transaction is not a coinbase (its input is not the null outpoint)")
    return tx


def strip_witness(tx_bytes: bytes) -> bytes:
    """Return a transaction serialized without its witness (what its txid hashes)."""
    tx = _deserialize(tx_bytes)
    stream = io.BytesIO()
    tx.stream_serialize(stream, include_witness=False)
    return stream.getvalue()


def coinbase_parts(
    height: int,
    outputs: list[CoinbaseOutput],
    extranonce_size: int,
    tag: bytes = b"/heatgrid/",
) -> tuple[bytes, bytes]:
    """Return ``(coinbase1, coinbase2)`` of a coinbase with room for the extranonces.

    Parameters
    ----------
    height : int
        Block height, pushed first in the scriptSig (BIP 34) [-].
    outputs : list of (bytes, int)
        The outputs: scriptPubKey and value [sat] (a witness commitment is an output with
        value 0 and an ``OP_RETURN aa21a9ed…`` script).
    extranonce_size : int
        ``len(extranonce1) + extranonce2_size``: the bytes miners fill in [bytes].
    tag : bytes
        Text pushed after the height (a pool's signature).

    Returns
    -------
    tuple of bytes
        The serialized transaction without witness, split where the extranonce goes.
    """
    if not 1 <= extranonce_size <= _MAX_DIRECT_PUSH:
        raise InputError(f"extranonce size must be 1 to 75 bytes, got {extranonce_size}")
    if height < 0:
        raise InputError(f"height must be >= 0, got {height}")
    marker = bytes([0xA5]) * extranonce_size
    script = bytes(CScript([height, tag])) + bytes([extranonce_size]) + marker
    tx = CTransaction(
        [CTxIn(COutPoint(), CScript(script), 0xFFFFFFFF)],
        [CTxOut(value, CScript(spk)) for spk, value in outputs],
    )
    stream = io.BytesIO()
    tx.stream_serialize(stream, include_witness=False)
    raw = stream.getvalue()
    start = raw.index(bytes([extranonce_size]) + marker) + 1
    return raw[:start], raw[start + extranonce_size :]
