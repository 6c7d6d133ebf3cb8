"""Versioned wire models shared by the agent and the coordinator.

Each protocol version lives in its own module (:mod:`heatgrid.protocol.v1`); a new version is a
new module, and the coordinator serves each version it supports under its own path prefix.
"""

from heatgrid.protocol import jobs, v1

__all__ = ["jobs", "v1"]
