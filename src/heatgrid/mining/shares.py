"""Share validation: is a ``mining.submit`` valid work on a job this miner was given.

A :class:`Job` is a ``mining.notify`` with what every check needs computed once. A
:class:`ShareValidator` holds one miner connection's view: its extranonce1 and extranonce2
size, the version-rolling mask it negotiated, the share difficulty each job was sent at, the
workers it authorized, and the shares already accepted per job (duplicates). :meth:`check`
rebuilds the coinbase, the merkle root and the header, hashes it, and answers
:class:`ShareResult`: accepted, or rejected with a reason and its Stratum error code.
Pure and fast: no I/O, no clock (the caller passes nothing time-dependent; ``ntime`` is
checked against the job's).
"""

from __future__ import annotations

import hashlib
import struct
from collections import OrderedDict
from dataclasses import dataclass, field
from enum import Enum
from typing import NamedTuple

from heatgrid.core.errors import InputError
from heatgrid.mining.hashing import hash_hex, prevhash_from_stratum
from heatgrid.mining.stratum import ErrorCode, Notify, Submit
from heatgrid.mining.targets import hash_difficulty, target_from_difficulty, target_from_nbits

__all__ = [
    "MAX_NTIME_ROLL_S",
    "Job",
    "RejectReason",
    "ShareResult",
    "ShareValidator",
    "job_from_notify",
]

MAX_NTIME_ROLL_S = 7000
"""How far past the job's ntime a share's ntime may go (as ckpool) [s]."""

_MAX_CACHED_ROOTS = 64
_sha256 = hashlib.sha256
_pack_version = struct.Struct("<I").pack
_pack_tail = struct.Struct("<III").pack


class RejectReason(Enum):
    """Why a share was rejected; ``code`` is the Stratum error code answered."""

    MALFORMED = ("malformed submission", ErrorCode.OTHER)
    BAD_EXTRANONCE2_LENGTH = ("extranonce2 of the wrong length", ErrorCode.OTHER)
    NTIME_OUT_OF_RANGE = ("ntime out of range", ErrorCode.OTHER)
    BAD_VERSION_BITS = ("version bits outside the negotiated mask", ErrorCode.OTHER)
    STALE_JOB = ("job not found (stale)", ErrorCode.JOB_NOT_FOUND)
    DUPLICATE = ("duplicate share", ErrorCode.DUPLICATE_SHARE)
    LOW_DIFFICULTY = ("low difficulty share", ErrorCode.LOW_DIFFICULTY)
    UNAUTHORIZED = ("unauthorized worker", ErrorCode.UNAUTHORIZED)
    NOT_SUBSCRIBED = ("not subscribed", ErrorCode.NOT_SUBSCRIBED)

    @property
    def message(self) -> str:
        """Text for the error answer."""
        return self.value[0]

    @property
    def code(self) -> ErrorCode:
        """The Stratum error code."""
        return self.value[1]


@dataclass(frozen=True, slots=True)
class Job:
    """A job from ``mining.notify``, with the header prefix and the network target computed."""

    job_id: str
    prevhash: bytes
    """Previous block hash in header (internal) order, 32 bytes."""
    coinbase1: bytes
    coinbase2: bytes
    merkle_branch: tuple[bytes, ...]
    version: int
    nbits: int
    ntime: int
    clean_jobs: bool
    network_target: int
    """The block target from ``nbits`` [-]."""
    notify: Notify


def job_from_notify(notify: Notify) -> Job:
    """Return the :class:`Job` of a ``mining.notify``; raise InputError for a bad ``nbits``."""
    return Job(
        job_id=notify.job_id,
        prevhash=prevhash_from_stratum(notify.prevhash),
        coinbase1=notify.coinbase1,
        coinbase2=notify.coinbase2,
        merkle_branch=notify.merkle_branch,
        version=notify.version,
        nbits=notify.nbits,
        ntime=notify.ntime,
        clean_jobs=notify.clean_jobs,
        network_target=target_from_nbits(notify.nbits),
        notify=notify,
    )


class ShareResult(NamedTuple):
    """The verdict on one submission (a named tuple: made once per share, so made cheaply).

    ``difficulty`` is the share difficulty credited when accepted (the job's, not the hash's);
    ``is_block`` when the hash meets the network target; ``digest`` the header's double SHA-256
    (internal order) once it was hashed; ``header`` the 80 bytes of an accepted share.
    """

    accepted: bool
    reason: RejectReason | None = None
    difficulty: float = 0.0
    is_block: bool = False
    digest: bytes = b""
    header: bytes = b""

    @property
    def code(self) -> ErrorCode | None:
        """The Stratum error code of a rejection, None when accepted."""
        return None if self.reason is None else self.reason.code

    @property
    def block_hash(self) -> str:
        """The header's hash as explorers show it ('' if the share was not hashed)."""
        return hash_hex(self.digest) if self.digest else ""

    @property
    def hash_difficulty(self) -> float:
        """The difficulty the hash achieved (0 if the share was not hashed) [-]."""
        return hash_difficulty(self.digest) if self.digest else 0.0


@dataclass(slots=True)
class _IssuedJob:
    job: Job
    difficulty: float
    share_target: int
    coinbase_prefix: bytes
    accepted: set[bytes] = field(default_factory=set)
    roots: dict[bytes, bytes] = field(default_factory=dict)
    """Merkle root per extranonce2: an ASIC rolls nonce and version bits on one for seconds."""


class ShareValidator:
    """One miner connection's share checks.

    Parameters
    ----------
    extranonce1 : bytes
        The extranonce1 given to this miner.
    extranonce2_size : int
        The extranonce2 length this miner must submit [bytes].
    version_mask : int
        The version-rolling mask negotiated (0: no rolling) [-].
    max_jobs : int
        Jobs kept for late shares; older ones are stale [-].
    """

    def __init__(
        self,
        extranonce1: bytes,
        extranonce2_size: int,
        version_mask: int = 0,
        max_jobs: int = 8,
    ) -> None:
        if not 1 <= extranonce2_size <= 16:
            raise InputError(f"extranonce2 size must be 1 to 16 bytes, got {extranonce2_size}")
        self.extranonce1 = extranonce1
        self.extranonce2_size = extranonce2_size
        self.version_mask = version_mask
        self.subscribed = True
        self.authorized: set[str] = set()
        self._max_jobs = max_jobs
        self._jobs: OrderedDict[str, _IssuedJob] = OrderedDict()

    def authorize(self, worker: str) -> None:
        """Let ``worker`` submit shares on this connection."""
        self.authorized.add(worker)

    def add_job(self, job: Job, difficulty: float) -> None:
        """Record that ``job`` was sent at share ``difficulty``; a clean job makes others stale.

        The same job sent again (a new difficulty) keeps its accepted shares, so a share
        accepted before is still a duplicate; another job under a used id replaces it.
        """
        previous = self._jobs.pop(job.job_id, None)
        if job.clean_jobs:
            self._jobs.clear()
        issued = _IssuedJob(
            job, difficulty, target_from_difficulty(difficulty), job.coinbase1 + self.extranonce1
        )
        if previous is not None and previous.job.notify == job.notify:
            issued.accepted, issued.roots = previous.accepted, previous.roots
        self._jobs[job.job_id] = issued
        while len(self._jobs) > self._max_jobs:
            self._jobs.popitem(last=False)

    def clear_jobs(self) -> None:
        """Forget every job (upstream lost): every later share on them is stale."""
        self._jobs.clear()

    def job(self, job_id: str) -> Job | None:
        """Return the job ``job_id`` if it is still current for this miner, else None."""
        issued = self._jobs.get(job_id)
        return None if issued is None else issued.job

    def check(self, submit: Submit) -> ShareResult:  # noqa: PLR0911 (a return per reason)
        """Validate a submission; accepted shares are remembered to refuse duplicates."""
        if not self.subscribed:
            return ShareResult(False, RejectReason.NOT_SUBSCRIBED)
        if submit.worker not in self.authorized:
            return ShareResult(False, RejectReason.UNAUTHORIZED)
        issued = self._jobs.get(submit.job_id)
        if issued is None:
            return ShareResult(False, RejectReason.STALE_JOB)
        job = issued.job
        if len(submit.extranonce2) != self.extranonce2_size:
            return ShareResult(False, RejectReason.BAD_EXTRANONCE2_LENGTH)
        if not job.ntime <= submit.ntime <= job.ntime + MAX_NTIME_ROLL_S:
            return ShareResult(False, RejectReason.NTIME_OUT_OF_RANGE)
        version = job.version
        if submit.version_bits is not None:
            mask = self.version_mask
            if submit.version_bits & ~mask:
                return ShareResult(False, RejectReason.BAD_VERSION_BITS)
            version = (version & ~mask & 0xFFFFFFFF) | submit.version_bits
        root = issued.roots.get(submit.extranonce2)
        if root is None:
            root = _sha256(
                _sha256(issued.coinbase_prefix + submit.extranonce2 + job.coinbase2).digest()
            ).digest()
            for sibling in job.merkle_branch:
                root = _sha256(_sha256(root + sibling).digest()).digest()
            if len(issued.roots) >= _MAX_CACHED_ROOTS:
                issued.roots.clear()
            issued.roots[submit.extranonce2] = root
        header = (
            _pack_version(version)
            + job.prevhash
            + root
            + _pack_tail(submit.ntime, job.nbits, submit.nonce)
        )
        digest = _sha256(_sha256(header).digest()).digest()
        value = int.from_bytes(digest, "little")
        if value > issued.share_target:
            return ShareResult(False, RejectReason.LOW_DIFFICULTY, 0.0, False, digest)
        if digest in issued.accepted:
            return ShareResult(False, RejectReason.DUPLICATE, 0.0, False, digest)
        issued.accepted.add(digest)
        return ShareResult(
            True, None, issued.difficulty, value <= job.network_target, digest, header
        )
