"""Wire messages of the hardware challenge (see :mod:`heatgrid.core.challenge` for the rule).

The coordinator hands a :class:`ChallengeOrder` out in a heartbeat's answer; the device
computes the chain, commits to its rows (:class:`ChallengeCommit`), is told which places to
show (:class:`ChallengeCheck`), seals the blocks of its working set it will show
(:class:`ChallengeSeal`, timed), shows them (:class:`ChallengeReveal`) and hears the verdict
(:class:`ChallengeVerdict`).
"""

from __future__ import annotations

from typing import Annotated, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

__all__ = [
    "MAX_REVEALED_BLOCKS",
    "MAX_REVEALED_ROWS",
    "ChallengeCheck",
    "ChallengeCommit",
    "ChallengeOrder",
    "ChallengePlace",
    "ChallengeReveal",
    "ChallengeSeal",
    "ChallengeVerdict",
    "RevealedBlock",
    "RevealedRow",
]

MAX_REVEALED_ROWS: Final = 64
"""Most rows one reveal may carry."""

MAX_REVEALED_BLOCKS: Final = 256
"""Most blocks of the working set one reveal may carry (picks and their parents)."""

_MAX_N = 8192
_MAX_STEPS = 1024
_Hex64 = Annotated[str, StringConstraints(min_length=64, max_length=64, pattern=r"^[0-9a-f]+$")]
_MAX_BLOCK_B64 = 4 * (1 << 22) // 3 + 4
_BlockBase64 = Annotated[
    str,
    StringConstraints(min_length=4, max_length=_MAX_BLOCK_B64, pattern=r"^[A-Za-z0-9+/]+={0,2}$"),
]
_Base64 = Annotated[
    str,
    StringConstraints(
        min_length=4, max_length=4 * _MAX_N * 4 // 3 + 4, pattern=r"^[A-Za-z0-9+/]+={0,2}$"
    ),
]


class _Message(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, allow_inf_nan=False)


class ChallengeOrder(_Message):
    """A challenge to compute now.

    Attributes
    ----------
    challenge_id : str
        Its identifier, in the paths of the commit and reveal.
    seed : int
        Seed of the inputs, in [0, 2**32).
    n : int
        Side of the float32 matrices [entries].
    links : int
        Links in the chain (each committed row by row).
    deadline_s : float
        Time from the heartbeat's answer to the commitment the device is allowed [s].
    memory_bytes : int
        Working set to hold on the claimed device until the reveal [bytes]; 0: none.
    steps : int
        Products by ``B`` in each link (1 by default, as before this field).
    """

    challenge_id: str
    seed: Annotated[int, Field(ge=0, lt=1 << 32)]
    n: Annotated[int, Field(ge=1, le=_MAX_N)]
    links: Annotated[int, Field(ge=1, le=1 << 20)]
    deadline_s: Annotated[float, Field(gt=0.0)]
    memory_bytes: Annotated[int, Field(ge=0, le=1 << 50)] = 0
    steps: Annotated[int, Field(ge=1, le=_MAX_STEPS)] = 1


class ChallengeCommit(_Message):
    """The device's commitment: the Merkle root over every row digest, hex; or giving up.

    ``root_hex`` None says the device could not finish in time, or could not hold the
    working set (the challenge fails). ``memory_root_hex`` is the Merkle root over the working
    set's block digests (None when the order asked for none).
    """

    protocol_version: Literal[1] = 1
    root_hex: _Hex64 | None
    memory_root_hex: _Hex64 | None = None


class ChallengePlace(_Message):
    """A row of a link to reveal (with the same row of the link before, for links > 0)."""

    link: Annotated[int, Field(ge=0)]
    row: Annotated[int, Field(ge=0)]


class ChallengeCheck(_Message):
    """The places and working-set blocks the coordinator checks, drawn after the commitment."""

    places: list[ChallengePlace]
    blocks: list[Annotated[int, Field(ge=0)]] = []


class RevealedRow(_Message):
    """One committed row: its place, its float32 values (little-endian, base64), its path.

    ``path_hex`` is the RFC 9162 inclusion path, from the leaf up.
    """

    link: Annotated[int, Field(ge=0)]
    row: Annotated[int, Field(ge=0)]
    values_b64: _Base64
    path_hex: Annotated[list[_Hex64], Field(max_length=64)]


class RevealedBlock(_Message):
    """One block of the working set: its index, its Merkle path, and its contents if asked.

    A picked block comes with its path only (the coordinator makes it from its parents); a
    parent of a picked block comes with its contents (``data_b64``, base64) as well.
    """

    index: Annotated[int, Field(ge=0)]
    path_hex: Annotated[list[_Hex64], Field(max_length=64)]
    data_b64: _BlockBase64 | None = None


class ChallengeSeal(_Message):
    """The SHA-256 over the working set's blocks a reveal will show, sent (timed) before it.

    See :func:`heatgrid.core.challenge_space.seal_digest`.
    """

    protocol_version: Literal[1] = 1
    blocks_sha256_hex: _Hex64


class ChallengeReveal(_Message):
    """The rows and blocks asked for.

    Each checked place and, for links > 0, the row it came from; each picked block of the
    working set, and its parents with their contents.
    """

    protocol_version: Literal[1] = 1
    rows: Annotated[list[RevealedRow], Field(max_length=MAX_REVEALED_ROWS)]
    blocks: Annotated[list[RevealedBlock], Field(max_length=MAX_REVEALED_BLOCKS)] = []


class ChallengeVerdict(_Message):
    """How a challenge ended: ``passed`` or ``failed`` (with the reason), or still ``committed``."""

    challenge_id: str
    state: Literal["issued", "committed", "passed", "failed"]
    reason: str | None = None
    check: ChallengeCheck | None = None
