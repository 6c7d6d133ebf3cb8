"""Versioned wire models shared by the agent and the coordinator.

Each protocol version lives in its own module (:mod:`heatgrid.protocol.v1`); a new version is a
new module, and the coordinator serves each version it supports under its own path prefix.

The models refuse unknown fields, which is how the coordinator reads requests; an agent reads
the coordinator's answers with :func:`heatgrid.protocol.wire.parse_response`, which ignores
fields it does not know, so a new field in an answer never breaks an older agent.
"""

from heatgrid.protocol import features, informational, jobs, v1, wire

__all__ = ["features", "informational", "jobs", "v1", "wire"]
