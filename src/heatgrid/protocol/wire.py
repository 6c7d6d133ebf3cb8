"""Which way the wire is strict: the coordinator refuses unknown fields, an agent ignores them.

Every wire model is declared strict (``extra="forbid"``): that is how the coordinator parses
what reaches it, requests from devices in strangers' homes and from anyone on the internet,
so a misspelt or made-up field is answered 422 naming it instead of being silently dropped.

An agent parses the coordinator's answers (leases, heartbeat replies, challenge orders,
receipts…) with :func:`parse_response`, which ignores fields it does not know, at every
level of nesting. Agents run for years in homes and are updated long after the coordinator:
a coordinator may add a field to any answer (a lease that now carries ``stop_step``) without
breaking the agents built before it. What an older agent cannot do without is never a new
field of an existing answer: a coordinator that needs an agent to act on something new adds
it so that ignoring it stays safe, or serves a new protocol version.

The other way, a new field in a *request* needs a coordinator that knows it: a newer agent
must not rely on an older coordinator reading it (the coordinator is updated first). The agent
leaves fields at their default out of its requests, and an *informational* field that an older
coordinator refuses as unknown (:mod:`heatgrid.protocol.informational`) is sent again without.
"""

from __future__ import annotations

from typing import TypeVar

from pydantic import BaseModel

__all__ = ["parse_response"]

_Answer = TypeVar("_Answer", bound=BaseModel)


def parse_response(model: type[_Answer], content: bytes | str) -> _Answer:
    """Parse a coordinator's JSON answer as ``model``, ignoring fields it does not know.

    Everything else is checked as declared: types (JSON numbers for floats, as JSON has no
    other), ranges, finite numbers, required fields.

    Raises
    ------
    pydantic.ValidationError
        When the answer is not JSON, or misses a field, or a known field is out of range.
    """
    return model.model_validate_json(content, strict=False, extra="ignore")
