"""Slices of a pool's extranonce space, one per downstream miner, and share translation.

A proxy holds one upstream subscription: the pool gives it ``extranonce1`` and an
``extranonce2_size`` of N bytes. It gives each miner a prefix of ``prefix_bytes`` of that
extranonce2, told to the miner as part of its extranonce1; the miner fills in the remaining
``N - prefix_bytes``. Upstream, the share's extranonce2 is ``prefix + miner's extranonce2``:
the coinbase bytes are the same on both sides, so the header and its hash are too, and no two
miners holding different prefixes can ever produce the same work.
"""

from __future__ import annotations

from dataclasses import dataclass

from heatgrid.core.errors import InputError
from heatgrid.mining.stratum import Submit

__all__ = ["ExtranonceSlice", "ExtranonceSlicer", "upstream_submit"]

_MIN_MINER_EXTRANONCE2 = 2


@dataclass(frozen=True, slots=True)
class ExtranonceSlice:
    """One miner's share of the upstream extranonce space."""

    prefix: bytes
    """The bytes this miner's extranonce2 is prefixed with upstream."""
    extranonce1: bytes
    """What the miner is told as its extranonce1: upstream extranonce1 + prefix."""
    extranonce2_size: int
    """What the miner is told as its extranonce2 size [bytes]."""


class ExtranonceSlicer:
    """Hands out distinct prefixes of an upstream extranonce2, and takes them back.

    Parameters
    ----------
    upstream_extranonce1 : bytes
        The pool's extranonce1 for the proxy's upstream connection.
    upstream_extranonce2_size : int
        The pool's extranonce2 size [bytes].
    prefix_bytes : int
        Bytes of each prefix: 2 gives 65,536 miners per upstream connection [bytes].
    """

    def __init__(
        self, upstream_extranonce1: bytes, upstream_extranonce2_size: int, prefix_bytes: int = 2
    ) -> None:
        if not 1 <= prefix_bytes <= upstream_extranonce2_size - _MIN_MINER_EXTRANONCE2:
            raise InputError(
                f"an upstream extranonce2 of {upstream_extranonce2_size} bytes leaves no room for "
                f"{prefix_bytes}-byte prefixes and miners' {_MIN_MINER_EXTRANONCE2}-byte "
                "extranonce2"
            )
        self.upstream_extranonce1 = upstream_extranonce1
        self.upstream_extranonce2_size = upstream_extranonce2_size
        self.prefix_bytes = prefix_bytes
        self._capacity = 1 << (8 * prefix_bytes)
        self._next = 0
        self._free: list[int] = []
        self._used: set[int] = set()

    @property
    def capacity(self) -> int:
        """How many miners the slicer can hold at once [-]."""
        return self._capacity

    def allocate(self) -> ExtranonceSlice:
        """Return a slice no connected miner holds; InputError when all are taken."""
        if self._free:
            number = self._free.pop()
        elif self._next < self._capacity:
            number = self._next
            self._next += 1
        else:
            raise InputError(f"all {self._capacity} extranonce slices are taken")
        self._used.add(number)
        prefix = number.to_bytes(self.prefix_bytes, "big")
        return ExtranonceSlice(
            prefix,
            self.upstream_extranonce1 + prefix,
            self.upstream_extranonce2_size - self.prefix_bytes,
        )

    def release(self, extranonce_slice: ExtranonceSlice) -> None:
        """Take a slice back when its miner disconnects (it may be handed out again)."""
        number = int.from_bytes(extranonce_slice.prefix, "big")
        if number in self._used:
            self._used.remove(number)
            self._free.append(number)


def upstream_submit(
    submit: Submit, extranonce_slice: ExtranonceSlice, request_id: int, pool_worker: str
) -> Submit:
    """Return the miner's share as the proxy sends it to the pool (under the pool account).

    The job id, ntime, nonce and version bits pass unchanged; the extranonce2 gains the
    miner's prefix.
    """
    return Submit(
        request_id,
        pool_worker,
        submit.job_id,
        extranonce_slice.prefix + submit.extranonce2,
        submit.ntime,
        submit.nonce,
        submit.version_bits,
    )
