"""The work behind a share: coinbase, merkle root, the 80-byte header and its double SHA-256.

Byte orders, as Stratum v1 sends them (``mining.notify``):

* ``prevhash``: the previous block hash's internal bytes with every 4-byte word reversed
  (8 groups of 4 bytes swapped); :func:`prevhash_from_stratum` undoes it, and is its own inverse.
* ``coinb1``, ``coinb2``, ``extranonce1``, ``extranonce2``: raw bytes; the coinbase transaction
  (without witness) is their concatenation ``coinb1 + extranonce1 + extranonce2 + coinb2``.
* ``merkle_branch``: 32-byte hashes in internal byte order, from the coinbase's sibling up.
* ``version``, ``nbits``, ``ntime`` and the submitted ``nonce``: big-endian hex of a 32-bit
  integer that the header stores little-endian.

A block hash is shown the other way round (big-endian hex, leading zeros):
:func:`hash_hex` turns a digest into that form.
"""

from __future__ import annotations

import hashlib
import struct

from heatgrid.core.errors import InputError

__all__ = [
    "HEADER_BYTES",
    "apply_version_mask",
    "assemble_coinbase",
    "hash_hex",
    "header_bytes",
    "merkle_branch",
    "merkle_root",
    "prevhash_from_stratum",
    "sha256d",
]

HEADER_BYTES = 80
"""Length of a block header [bytes]."""

_HASH_BYTES = 32
_UINT32_MAX = 0xFFFFFFFF
_sha256 = hashlib.sha256


def sha256d(data: bytes) -> bytes:
    """Return SHA-256 of SHA-256 of ``data`` (32 bytes, internal byte order)."""
    return _sha256(_sha256(data).digest()).digest()


def hash_hex(digest: bytes) -> str:
    """Return a digest as block explorers show it: reversed bytes in hex."""
    return digest[::-1].hex()


def prevhash_from_stratum(prevhash: bytes) -> bytes:
    """Swap the bytes of each 4-byte word: Stratum's prevhash to header order, and back.

    Parameters
    ----------
    prevhash : bytes
        32 bytes, as decoded from ``mining.notify``'s hex (or in header order) [-].

    Returns
    -------
    bytes
        The 32 bytes in the other order [-].
    """
    if len(prevhash) != _HASH_BYTES:
        raise InputError(f"a prevhash has 32 bytes, got {len(prevhash)}")
    words = struct.unpack("<8I", prevhash)
    return struct.pack(">8I", *words)


def assemble_coinbase(
    coinbase1: bytes, extranonce1: bytes, extranonce2: bytes, coinbase2: bytes
) -> bytes:
    """Return the coinbase transaction (without witness): ``coinb1 + en1 + en2 + coinb2``."""
    return coinbase1 + extranonce1 + extranonce2 + coinbase2


def merkle_root(coinbase_txid: bytes, branch: tuple[bytes, ...] | list[bytes]) -> bytes:
    """Return the merkle root from the coinbase's txid and its merkle branch.

    Parameters
    ----------
    coinbase_txid : bytes
        ``sha256d`` of the coinbase transaction without witness (internal order) [-].
    branch : sequence of bytes
        The sibling hashes from the leaves up, 32 bytes each (internal order) [-].

    Returns
    -------
    bytes
        The 32-byte merkle root in internal order, as the header stores it [-].
    """
    root = coinbase_txid
    for sibling in branch:
        root = _sha256(_sha256(root + sibling).digest()).digest()
    return root


def merkle_branch(txids: list[bytes]) -> list[bytes]:
    """Return the merkle branch of the first leaf (the coinbase) over a block's txids.

    Parameters
    ----------
    txids : list of bytes
        The txids of every transaction of the block, the coinbase's first (its value is not
        used: the branch holds only its siblings), 32 bytes each, internal order [-].

    Returns
    -------
    list of bytes
        The siblings of the coinbase's path, leaves first; empty for a block of one
        transaction. Levels of odd length pair their last hash with itself, as Bitcoin does.
    """
    if not txids:
        raise InputError("a block has at least one transaction (the coinbase)")
    level = list(txids)
    branch: list[bytes] = []
    while len(level) > 1:
        if len(level) % 2:
            level.append(level[-1])
        branch.append(level[1])
        level = [sha256d(level[i] + level[i + 1]) for i in range(0, len(level), 2)]
    return branch


def apply_version_mask(job_version: int, version_bits: int, mask: int) -> int:
    """Return the rolled version: the job's bits outside ``mask``, the miner's inside (BIP 310).

    Parameters
    ----------
    job_version : int
        ``mining.notify``'s block version [-].
    version_bits : int
        The ``mining.submit`` version bits (BIP 310) [-].
    mask : int
        The negotiated version-rolling mask, e.g. 0x1fffe000 (BIP 320) [-].

    Returns
    -------
    int
        ``(job_version & ~mask) | (version_bits & mask)`` [-].
    """
    return (job_version & ~mask & _UINT32_MAX) | (version_bits & mask)


def header_bytes(
    version: int, prevhash: bytes, merkle_root_: bytes, *, ntime: int, nbits: int, nonce: int
) -> bytes:
    """Return the 80-byte block header.

    Parameters
    ----------
    version : int
        Block version, rolled bits included [-].
    prevhash : bytes
        Previous block hash, internal (header) order, 32 bytes [-].
    merkle_root_ : bytes
        Merkle root, internal order, 32 bytes [-].
    ntime : int
        Block time [POSIX s].
    nbits : int
        Compact target [-].
    nonce : int
        Nonce [-].

    Returns
    -------
    bytes
        ``version | prevhash | merkle_root | ntime | nbits | nonce``, integers little-endian.
    """
    if len(prevhash) != _HASH_BYTES or len(merkle_root_) != _HASH_BYTES:
        raise InputError("prevhash and merkle root have 32 bytes each")
    for name, value in (("version", version), ("ntime", ntime), ("nbits", nbits)):
        if not 0 <= value <= _UINT32_MAX:
            raise InputError(f"{name} must be a 32-bit unsigned value, got {value!r}")
    if not 0 <= nonce <= _UINT32_MAX:
        raise InputError(f"nonce must be a 32-bit unsigned value, got {nonce!r}")
    return (
        struct.pack("<I", version)
        + prevhash
        + merkle_root_
        + struct.pack("<III", ntime, nbits, nonce)
    )
