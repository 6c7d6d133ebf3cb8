"""The codec reproduces the hashes of real blocks from their fields, through a share check.

Each block's coinbase is split into Stratum's coinbase1 / extranonce1 / extranonce2 /
coinbase2, its header fields become a ``mining.notify`` (prevhash in Stratum's word-swapped
order, version / nbits / ntime as big-endian hex), and the nonce a ``mining.submit``; the
validator must rebuild the block's header and hash exactly. Data and sources: ``blocks.py``.
"""

from __future__ import annotations

import io

import pytest
from bitcoin.core import CBlock, CBlockHeader, b2lx
from tests.mining import blocks

from heatgrid.mining import stratum
from heatgrid.mining.hashing import (
    apply_version_mask,
    hash_hex,
    header_bytes,
    merkle_branch,
    merkle_root,
    prevhash_from_stratum,
    sha256d,
)
from heatgrid.mining.shares import ShareResult, ShareValidator, job_from_notify
from heatgrid.mining.targets import target_from_nbits
from heatgrid.mining.transactions import parse_coinbase, strip_witness

BIP320_MASK = 0x1FFFE000


def _serialize_no_witness(tx: object) -> bytes:
    stream = io.BytesIO()
    tx.stream_serialize(stream, include_witness=False)  # type: ignore[attr-defined]
    return stream.getvalue()


def _mine_through_stratum(
    *,
    coinbase: bytes,
    en_start: int,
    en1_size: int,
    en2_size: int,
    branch: tuple[bytes, ...],
    header_prev: bytes,
    version: int,
    mask: int,
    ntime: int,
    nbits: int,
    nonce: int,
) -> ShareResult:
    """Send the block as notify + submit lines through the codec and the validator."""
    en1 = coinbase[en_start : en_start + en1_size]
    en2 = coinbase[en_start + en1_size : en_start + en1_size + en2_size]
    job_version = version & ~mask
    notify_line = stratum.encode(
        stratum.Notify(
            job_id="b1",
            prevhash=prevhash_from_stratum(header_prev),
            coinbase1=coinbase[:en_start],
            coinbase2=coinbase[en_start + en1_size + en2_size :],
            merkle_branch=branch,
            version=job_version,
            nbits=nbits,
            ntime=ntime,
            clean_jobs=True,
        )
    )
    notify = stratum.decode(notify_line)
    assert isinstance(notify, stratum.Notify)
    validator = ShareValidator(en1, en2_size, version_mask=mask)
    validator.authorize("w")
    validator.add_job(job_from_notify(notify), difficulty=1.0)
    submit = stratum.decode(
        stratum.encode(
            stratum.Submit(1, "w", "b1", en2, ntime, nonce, (version & mask) if mask else None)
        )
    )
    assert isinstance(submit, stratum.Submit)
    return validator.check(submit)


def test_genesis_block_hash_from_its_fields() -> None:
    block = CBlock.deserialize(blocks.GENESIS_BLOCK)
    coinbase = _serialize_no_witness(block.vtx[0])
    script = bytes(block.vtx[0].vin[0].scriptSig)
    script_end = coinbase.index(script) + len(script)
    assert merkle_root(sha256d(coinbase), ()) == block.hashMerkleRoot
    result = _mine_through_stratum(
        coinbase=coinbase,
        en_start=script_end - 8,
        en1_size=4,
        en2_size=4,
        branch=(),
        header_prev=block.hashPrevBlock,
        version=block.nVersion,
        mask=0,
        ntime=block.nTime,
        nbits=block.nBits,
        nonce=block.nNonce,
    )
    assert result.accepted
    assert result.is_block
    assert result.block_hash == blocks.GENESIS_HASH


def test_block_100000_merkle_branch_and_hash_from_its_fields() -> None:
    block = CBlock.deserialize(blocks.BLOCK_100000)
    txids = [tx.GetTxid() for tx in block.vtx]
    branch = merkle_branch(txids)
    assert len(branch) == 2
    assert merkle_root(txids[0], branch) == block.hashMerkleRoot == block.calc_merkle_root()
    coinbase = _serialize_no_witness(block.vtx[0])
    script = bytes(block.vtx[0].vin[0].scriptSig)
    assert script.hex() == "044c86041b020602"
    script_end = coinbase.index(script) + len(script)
    result = _mine_through_stratum(
        coinbase=coinbase,
        en_start=script_end - 3,
        en1_size=1,
        en2_size=2,
        branch=tuple(branch),
        header_prev=block.hashPrevBlock,
        version=block.nVersion,
        mask=0,
        ntime=block.nTime,
        nbits=block.nBits,
        nonce=block.nNonce,
    )
    assert result.accepted
    assert result.is_block
    assert result.block_hash == blocks.BLOCK_100000_HASH


def test_block_100000_prevhash_as_stratum_sends_it() -> None:
    """Stratum's prevhash is the displayed hash with its eight 4-byte words in reverse order."""
    block = CBlockHeader.deserialize(blocks.BLOCK_100000[:80])
    shown = b2lx(block.hashPrevBlock)
    assert shown == "000000000002d01c1fccc21636b607dfd930d31d01c3a62104612a1719011250"
    as_sent = prevhash_from_stratum(block.hashPrevBlock).hex()
    assert as_sent == "1901125004612a1701c3a621d930d31d36b607df1fccc2160002d01c00000000"
    assert as_sent == "".join(reversed([shown[i : i + 8] for i in range(0, 64, 8)]))
    assert prevhash_from_stratum(bytes.fromhex(as_sent)) == block.hashPrevBlock


def test_block_881423_version_rolled_with_full_segwit_coinbase() -> None:
    segwit = blocks.BLOCK_881423_COINBASE_SEGWIT
    coinbase = strip_witness(segwit)
    tx = parse_coinbase(coinbase)
    assert len(coinbase) == len(segwit) - 2 - 34  # marker, flag and the 32-byte witness
    assert tx.GetTxid() == sha256d(coinbase)
    assert tx.vout[1].scriptPubKey[:6].hex() == "6a24aa21a9ed"  # the witness commitment
    en_start = coinbase.index(blocks.BLOCK_881423_EXTRANONCE1 + blocks.BLOCK_881423_EXTRANONCE2)
    root = merkle_root(sha256d(coinbase), blocks.BLOCK_881423_MERKLE_BRANCH)
    assert root == blocks.BLOCK_881423_MERKLE_ROOT
    assert apply_version_mask(0x20000000, 0x0E596000, BIP320_MASK) == blocks.BLOCK_881423_VERSION
    result = _mine_through_stratum(
        coinbase=coinbase,
        en_start=en_start,
        en1_size=4,
        en2_size=4,
        branch=blocks.BLOCK_881423_MERKLE_BRANCH,
        header_prev=blocks.BLOCK_881423_PREVHASH,
        version=blocks.BLOCK_881423_VERSION,
        mask=BIP320_MASK,
        ntime=blocks.BLOCK_881423_TIME,
        nbits=blocks.BLOCK_881423_BITS,
        nonce=blocks.BLOCK_881423_NONCE,
    )
    assert result.accepted
    assert result.is_block
    assert result.block_hash == blocks.BLOCK_881423_HASH
    header = CBlockHeader.deserialize(result.header)
    assert header.nVersion == blocks.BLOCK_881423_VERSION
    assert b2lx(header.GetHash()) == blocks.BLOCK_881423_HASH


@pytest.mark.parametrize("raw", [blocks.GENESIS_BLOCK, blocks.BLOCK_100000])
def test_header_bytes_match_python_bitcoinlib(raw: bytes) -> None:
    header = CBlockHeader.deserialize(raw[:80])
    ours = header_bytes(
        header.nVersion,
        header.hashPrevBlock,
        header.hashMerkleRoot,
        ntime=header.nTime,
        nbits=header.nBits,
        nonce=header.nNonce,
    )
    assert ours == raw[:80] == header.serialize()
    assert hash_hex(sha256d(ours)) == b2lx(header.GetHash())
    assert int.from_bytes(sha256d(ours), "little") <= target_from_nbits(header.nBits)


def test_the_same_nonce_on_another_version_is_not_a_block() -> None:
    """Version rolling matters: without the rolled bits, block 881423's nonce is worthless."""
    coinbase = strip_witness(blocks.BLOCK_881423_COINBASE_SEGWIT)
    en_start = coinbase.index(blocks.BLOCK_881423_EXTRANONCE1 + blocks.BLOCK_881423_EXTRANONCE2)
    result = _mine_through_stratum(
        coinbase=coinbase,
        en_start=en_start,
        en1_size=4,
        en2_size=4,
        branch=blocks.BLOCK_881423_MERKLE_BRANCH,
        header_prev=blocks.BLOCK_881423_PREVHASH,
        version=0x20000000,
        mask=BIP320_MASK,
        ntime=blocks.BLOCK_881423_TIME,
        nbits=blocks.BLOCK_881423_BITS,
        nonce=blocks.BLOCK_881423_NONCE,
    )
    assert not result.accepted
    assert result.code == stratum.ErrorCode.LOW_DIFFICULTY
