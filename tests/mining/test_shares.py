"""The share validator: every reason a submission is refused, with its Stratum code."""

from __future__ import annotations

from dataclasses import replace

import pytest
from tests.mining import blocks

from heatgrid.mining import stratum
from heatgrid.mining.hashing import (
    assemble_coinbase,
    hash_hex,
    merkle_root,
    prevhash_from_stratum,
    sha256d,
)
from heatgrid.mining.shares import (
    MAX_NTIME_ROLL_S,
    Job,
    RejectReason,
    ShareValidator,
    job_from_notify,
)
from heatgrid.mining.transactions import strip_witness

MASK = 0x1FFFE000
EASY = 2.0**-24  # a share in ~256 hashes
EN1 = bytes.fromhex("0a0b0c0d")


def _job(job_id: str = "j1", clean: bool = True) -> Job:
    coinbase = strip_witness(blocks.BLOCK_881423_COINBASE_SEGWIT)
    start = coinbase.index(blocks.BLOCK_881423_EXTRANONCE1)
    return job_from_notify(
        stratum.Notify(
            job_id=job_id,
            prevhash=prevhash_from_stratum(blocks.BLOCK_881423_PREVHASH),
            coinbase1=coinbase[:start],
            coinbase2=coinbase[start + 8 :],
            merkle_branch=blocks.BLOCK_881423_MERKLE_BRANCH,
            version=0x20000000,
            nbits=blocks.BLOCK_881423_BITS,
            ntime=blocks.BLOCK_881423_TIME,
            clean_jobs=clean,
        )
    )


def _validator(difficulty: float = EASY) -> ShareValidator:
    validator = ShareValidator(EN1, 4, version_mask=MASK)
    validator.authorize("dev1.rig")
    validator.add_job(_job(), difficulty)
    return validator


def _submit(nonce: int, **changes: object) -> stratum.Submit:
    fields: dict[str, object] = {
        "id": 1,
        "worker": "dev1.rig",
        "job_id": "j1",
        "extranonce2": b"\x00\x00\x00\x01",
        "ntime": blocks.BLOCK_881423_TIME,
        "nonce": nonce,
        "version_bits": 0x00002000,
    }
    fields.update(changes)
    return stratum.Submit(**fields)  # type: ignore[arg-type]


def _find(validator_difficulty: float, want_accepted: bool, **changes: object) -> int:
    """The first nonce whose share a fresh validator accepts (or refuses as low difficulty)."""
    for nonce in range(100_000):
        result = _validator(validator_difficulty).check(_submit(nonce, **changes))
        if result.accepted == want_accepted:
            return nonce
    raise AssertionError("no nonce found")


def test_a_valid_share_is_accepted_and_credited_at_the_job_difficulty() -> None:
    validator = _validator()
    nonce = _find(EASY, want_accepted=True)
    result = validator.check(_submit(nonce))
    assert result.accepted
    assert result.code is None
    assert result.difficulty == EASY
    assert result.hash_difficulty >= EASY
    assert not result.is_block
    assert len(result.header) == 80
    assert result.block_hash == hash_hex(sha256d(result.header))


def test_a_share_sent_twice_is_a_duplicate() -> None:
    validator = _validator()
    nonce = _find(EASY, want_accepted=True)
    assert validator.check(_submit(nonce)).accepted
    again = validator.check(_submit(nonce, id=2))
    assert again.reason is RejectReason.DUPLICATE
    assert again.code == 22


def test_duplicates_are_per_job() -> None:
    validator = _validator()
    nonce = _find(EASY, want_accepted=True)
    assert validator.check(_submit(nonce)).accepted
    validator.add_job(_job("j2", clean=False), EASY)
    assert validator.check(_submit(nonce, job_id="j2")).accepted


def test_low_difficulty_share() -> None:
    nonce = _find(1.0, want_accepted=False)
    result = _validator(1.0).check(_submit(nonce))
    assert result.reason is RejectReason.LOW_DIFFICULTY
    assert result.code == 23
    assert 0 < result.hash_difficulty < 1.0


def test_the_block_nonce_is_a_block() -> None:
    validator = ShareValidator(blocks.BLOCK_881423_EXTRANONCE1, 4, version_mask=MASK)
    validator.authorize("w")
    validator.add_job(_job(), 1e6)
    result = validator.check(
        _submit(
            blocks.BLOCK_881423_NONCE,
            worker="w",
            extranonce2=blocks.BLOCK_881423_EXTRANONCE2,
            version_bits=blocks.BLOCK_881423_VERSION & MASK,
        )
    )
    assert result.accepted
    assert result.is_block
    assert result.block_hash == blocks.BLOCK_881423_HASH
    assert result.difficulty == 1e6


def test_unknown_and_stale_jobs() -> None:
    validator = _validator()
    nonce = _find(EASY, want_accepted=True)
    assert validator.check(_submit(nonce, job_id="nope")).reason is RejectReason.STALE_JOB
    validator.add_job(_job("j2", clean=True), EASY)
    stale = validator.check(_submit(nonce))
    assert stale.reason is RejectReason.STALE_JOB
    assert stale.code == 21
    validator.clear_jobs()
    assert validator.check(_submit(nonce, job_id="j2")).code == 21


def test_old_jobs_expire_after_max_jobs() -> None:
    validator = ShareValidator(EN1, 4, version_mask=MASK, max_jobs=2)
    validator.authorize("dev1.rig")
    for name in ("j1", "j2", "j3"):
        validator.add_job(_job(name, clean=False), EASY)
    assert validator.job("j1") is None
    assert validator.job("j3") is not None
    assert validator.check(_submit(0)).reason is RejectReason.STALE_JOB


@pytest.mark.parametrize("extranonce2", [b"\x00\x01", b"\x00" * 5, b""])
def test_extranonce2_of_the_wrong_length(extranonce2: bytes) -> None:
    result = _validator().check(_submit(0, extranonce2=extranonce2))
    assert result.reason is RejectReason.BAD_EXTRANONCE2_LENGTH
    assert result.code == 20


@pytest.mark.parametrize(
    "ntime", [blocks.BLOCK_881423_TIME - 1, blocks.BLOCK_881423_TIME + MAX_NTIME_ROLL_S + 1]
)
def test_ntime_out_of_range(ntime: int) -> None:
    result = _validator().check(_submit(0, ntime=ntime))
    assert result.reason is RejectReason.NTIME_OUT_OF_RANGE
    assert result.code == 20


def test_rolled_ntime_within_range_is_checked_on_its_hash() -> None:
    ntime = blocks.BLOCK_881423_TIME + MAX_NTIME_ROLL_S
    nonce = _find(EASY, want_accepted=True, ntime=ntime)
    assert _validator().check(_submit(nonce, ntime=ntime)).accepted


def test_version_bits_outside_the_mask() -> None:
    result = _validator().check(_submit(0, version_bits=0x00001000))
    assert result.reason is RejectReason.BAD_VERSION_BITS
    assert result.code == 20


def test_unauthorized_worker_and_unsubscribed_connection() -> None:
    validator = _validator()
    result = validator.check(_submit(0, worker="dev2.rig"))
    assert result.reason is RejectReason.UNAUTHORIZED
    assert result.code == 24
    validator.subscribed = False
    assert validator.check(_submit(0)).code == 25


def test_a_bad_extranonce2_size_is_refused_at_construction() -> None:
    with pytest.raises(ValueError, match="extranonce2 size"):
        ShareValidator(EN1, 0)


def test_each_extranonce2_gets_its_own_merkle_root() -> None:
    """The root cached for one extranonce2 is never used for another one."""
    validator = _validator(2.0**-40)  # every hash meets the target
    job = _job()
    headers = {}
    for en2 in (b"\x00\x00\x00\x01", b"\x00\x00\x00\x02", b"\x00\x00\x00\x01"):
        for nonce in (1, 2):
            result = validator.check(_submit(nonce, extranonce2=en2, id=nonce))
            if en2 in headers and nonce in headers[en2]:
                assert result.reason is RejectReason.DUPLICATE
                continue
            assert result.accepted
            coinbase = assemble_coinbase(job.coinbase1, EN1, en2, job.coinbase2)
            assert result.header[36:68] == merkle_root(sha256d(coinbase), job.merkle_branch)
            headers.setdefault(en2, {})[nonce] = result.header
    assert headers[b"\x00\x00\x00\x01"][1][36:68] != headers[b"\x00\x00\x00\x02"][1][36:68]


def test_the_same_job_sent_again_still_knows_its_shares() -> None:
    validator = _validator()
    nonce = _find(EASY, want_accepted=True)
    assert validator.check(_submit(nonce)).accepted
    validator.add_job(_job(), EASY / 2)  # resent, e.g. at a new difficulty
    assert validator.check(_submit(nonce, id=2)).reason is RejectReason.DUPLICATE
    other = _job()
    other = job_from_notify(replace(other.notify, ntime=other.ntime + 1))  # same id, new job
    validator.add_job(other, EASY)
    replaced = validator.check(_submit(nonce, id=3))
    assert replaced.reason is RejectReason.NTIME_OUT_OF_RANGE  # the new job's ntime rules
