"""Loopback ports for tests: one helper, for a server to take or for a client to be refused."""

from __future__ import annotations

import socket

__all__ = ["free_port"]


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on now.

    The port is bound and closed again: a server started next can take it, and a client that
    connects to it is refused.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
