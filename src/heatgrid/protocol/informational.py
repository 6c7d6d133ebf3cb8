"""Optional request fields an agent may leave out for a coordinator older than them.

The coordinator refuses unknown request fields (422, ``Extra inputs are not permitted``), and
agents are often updated before their coordinator. The agent already leaves every field at its
default out of a request body, so an older coordinator sees a new field only where the agent
uses it; there, for the fields listed in :data:`INFORMATIONAL` and only for them, the agent's
client sends the request once more without them (:mod:`heatgrid.agent.client`).

A field belongs here when dropping it for a coordinator that refuses it as unknown loses
nothing that coordinator would have used: it tells the coordinator something, it never asks it
to do something, and the request means the same without it to a coordinator from before it.
Each entry says why. A field that is not informational in this sense (a claimed device kind or
hardware, which challenges and tasks are chosen by; a result) is never dropped: a refusal of it
stays a refusal. A new informational request field is added here when it is added to the
protocol, with its reason; ``tests/protocol/test_informational.py`` checks that each listed
field is optional.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

from pydantic import BaseModel

from heatgrid.protocol import v1

__all__ = ["INFORMATIONAL", "informational_fields"]

_ENERGY_METHOD = (
    "how energy_j was found (rapl, nvml or an estimate from CPU time); a coordinator older "
    "than it takes energy_j as it is, the meaning it had before the field"
)

INFORMATIONAL: Final[Mapping[tuple[type[BaseModel], str], str]] = MappingProxyType(
    {
        (v1.Heartbeat, "features"): (
            "the features the agent understands, so that a coordinator may send answers that "
            "need them; a coordinator older than the field sends no such answer "
            "(heatgrid.protocol.features), so it has nothing to learn from them"
        ),
        (v1.TaskCompletion, "start_mark"): (
            "what a segment replay restored, so that the coordinator checks the start blob "
            "against the original's mark; a coordinator older than it judges a replay by the "
            "segment's end alone, as it always did"
        ),
        (v1.TaskCompletion, "energy_method"): _ENERGY_METHOD,
        (v1.TaskFailure, "energy_method"): _ENERGY_METHOD,
        (v1.TaskHandBack, "energy_method"): _ENERGY_METHOD,
    }
)
"""Each informational request field, as (model, field), and why an older coordinator loses
nothing when it is left out."""


def informational_fields(model: type[BaseModel]) -> frozenset[str]:
    """Return the top-level fields of request ``model`` that are listed in :data:`INFORMATIONAL`."""
    return frozenset(field for owner, field in INFORMATIONAL if owner is model)
