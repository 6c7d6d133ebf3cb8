"""Play a hardware challenge with the agent's own code in a process whose memory is limited.

Run as ``python limited_agent.py MEMORY_BYTES``: the order (JSON) comes on the first line of
stdin. Once everything is imported (and BLAS has set its buffers up), the process's address
space is limited to what it uses then plus ``MEMORY_BYTES`` (``RLIMIT_AS``): the memory this
stand-in device really has for the challenge. It prints the commitment (JSON, one line),
reads the check (JSON, one line) when the coordinator asks for rows, and prints the reveal.
"""

from __future__ import annotations

import resource
import sys

import numpy as np

from heatgrid.agent import challenge
from heatgrid.protocol.challenge import ChallengeCheck, ChallengeOrder


def _address_space_bytes() -> int:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmSize in /proc/self/status")


def main() -> None:
    """Solve under the limit, commit, reveal."""
    room_bytes = int(sys.argv[1])
    order = ChallengeOrder.model_validate_json(sys.stdin.readline())
    warm = np.ones((256, 256), dtype=np.float32)
    assert float((warm @ warm)[0, 0]) == 256.0  # BLAS sets its buffers up before the limit
    limit = _address_space_bytes() + room_bytes
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    solution = challenge.solve(order, give_up_monotonic=float("inf"))
    print(challenge.commitment(solution).model_dump_json(), flush=True)
    line = sys.stdin.readline()
    if solution is None or not line.strip():
        return
    check = ChallengeCheck.model_validate_json(line)
    print(challenge.reveal_rows(solution, check.places, check.blocks).model_dump_json(), flush=True)


if __name__ == "__main__":
    main()
