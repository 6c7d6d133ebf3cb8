"""The validator against python-bitcoinlib, on random jobs and shares (hypothesis).

For any coinbase, block of transactions, version mask, rolled bits, time and nonce, the header
the validator hashes must be the one python-bitcoinlib builds from the same block: merkle
root from every txid (``CBlock.build_merkle_tree_from_txids``), header serialization and hash
(``CBlockHeader``).
"""

from __future__ import annotations

from bitcoin.core import CBlock, CBlockHeader
from hypothesis import given
from hypothesis import strategies as st

from heatgrid.mining import stratum
from heatgrid.mining.hashing import (
    assemble_coinbase,
    merkle_branch,
    prevhash_from_stratum,
    sha256d,
)
from heatgrid.mining.shares import ShareValidator, job_from_notify
from heatgrid.mining.transactions import coinbase_parts

uint32 = st.integers(min_value=0, max_value=0xFFFFFFFF)


@given(
    height=st.integers(min_value=0, max_value=10_000_000),
    value_sat=st.integers(min_value=0, max_value=21_000_000 * 10**8),
    txids=st.lists(st.binary(min_size=32, max_size=32), max_size=40),
    prevhash=st.binary(min_size=32, max_size=32),
    version=st.integers(min_value=0, max_value=0x7FFFFFFF),
    mask=st.sampled_from([0, 0x1FFFE000, 0x00FFFF00]),
    bits=uint32,
    ntime=st.integers(min_value=0, max_value=0xFFFFFFFF - 7000),
    roll_s=st.integers(min_value=0, max_value=7000),
    nonce=uint32,
    en1=st.binary(min_size=0, max_size=8),
    en2=st.binary(min_size=1, max_size=8),
)
def test_the_validator_hashes_the_header_python_bitcoinlib_builds(
    *,
    height: int,
    value_sat: int,
    txids: list[bytes],
    prevhash: bytes,
    version: int,
    mask: int,
    bits: int,
    ntime: int,
    roll_s: int,
    nonce: int,
    en1: bytes,
    en2: bytes,
) -> None:
    coinbase1, coinbase2 = coinbase_parts(
        height, [(bytes.fromhex("0014") + bytes(20), value_sat)], len(en1) + len(en2)
    )
    notify = stratum.Notify(
        "j",
        prevhash_from_stratum(prevhash),
        coinbase1,
        coinbase2,
        tuple(merkle_branch([bytes(32), *txids])),
        version,
        0x1D00FFFF,
        ntime,
        True,
    )
    validator = ShareValidator(en1, len(en2), mask)
    validator.authorize("w")
    validator.add_job(job_from_notify(stratum.decode(stratum.encode(notify))), 2.0**-40)  # type: ignore[arg-type]
    rolled = bits & mask
    result = validator.check(stratum.Submit(1, "w", "j", en2, ntime + roll_s, nonce, rolled))
    assert result.accepted

    coinbase_txid = sha256d(assemble_coinbase(coinbase1, en1, en2, coinbase2))
    root = CBlock.build_merkle_tree_from_txids([coinbase_txid, *txids])[-1]
    header = CBlockHeader(
        nVersion=(version & ~mask) | rolled,
        hashPrevBlock=prevhash,
        hashMerkleRoot=root,
        nTime=ntime + roll_s,
        nBits=0x1D00FFFF,
        nNonce=nonce,
    )
    assert result.header == header.serialize()
    assert result.digest == header.GetHash()
