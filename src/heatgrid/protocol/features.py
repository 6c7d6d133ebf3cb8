"""Features an agent declares, and the answer fields whose values need them.

An agent ignores fields of an answer it does not know
(:func:`heatgrid.protocol.wire.parse_response`), so a coordinator may add a field to an answer
as long as ignoring it is safe. Some fields are not: they change what the agent must *do*.
``ChallengeOrder.steps`` makes each link of a hardware challenge ``steps`` products; an agent
built before it computes one product per link, its rows are not the products the coordinator
checks, and an honest device would be quarantined as a cheat.

The rule for such a *meaning-changing* field, the same for every future one:

1. Its default keeps the old meaning (``steps = 1``: one product per link), so that an answer
   with the default means to an older agent exactly what it always meant.
2. It is listed in :data:`MEANING_CHANGING` under a feature name (a new name per field).
3. An agent that acts on the field declares the feature in every heartbeat
   (:attr:`heatgrid.protocol.v1.Heartbeat.features`). An agent older than the declaration
   sends none. A coordinator older than the field refuses it as any unknown request field
   (422); an agent updated before its coordinator then sends its heartbeats without the field
   for an hour, and asks again after (``features`` is an informational request field:
   :mod:`heatgrid.protocol.informational`, applied by the agent's client).
4. Before sending an answer, the coordinator asks :func:`missing_features` with what the
   agent declared; if anything is missing it does not send the answer with that value, and
   does something safe instead, which it says where the device's owner and the operator see it.
   What is safe depends on the field: for ``steps``, a GPU claim that only a stepped
   challenge proves stays unproven (no challenge, no tasks, no quarantine; see
   :func:`heatgrid.coordinator.challenges.issue_due`), because an unstepped challenge is
   exactly the one a many-core CPU passes for a big GPU.

Declared names the coordinator does not know are accepted and ignored, so a newer agent may
declare features an older coordinator never heard of.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import Annotated, Final

from pydantic import BaseModel, StringConstraints

from heatgrid.protocol.challenge import ChallengeOrder

__all__ = [
    "CHALLENGE_STEPS",
    "MAX_FEATURES",
    "MEANING_CHANGING",
    "FeatureName",
    "missing_features",
    "needed_features",
]

FeatureName = Annotated[
    str, StringConstraints(min_length=1, max_length=48, pattern=r"^[a-z][a-z0-9_]*$")
]
"""A feature's name: lower-case letters, digits and ``_``, starting with a letter."""

MAX_FEATURES: Final = 64
"""Most features one heartbeat may declare."""

CHALLENGE_STEPS: Final = "challenge_steps"
"""The agent computes ``ChallengeOrder.steps`` products per link of a hardware challenge."""

MEANING_CHANGING: Final[Mapping[tuple[type[BaseModel], str], str]] = MappingProxyType(
    {(ChallengeOrder, "steps"): CHALLENGE_STEPS}
)
"""Each meaning-changing answer field, as (model, field), and the feature its non-default
values need."""


def needed_features(message: BaseModel) -> frozenset[str]:
    """Return the features an agent must declare to be sent ``message``.

    A field listed in :data:`MEANING_CHANGING` needs its feature when its value differs from
    its model's default. Nested messages (a challenge in a heartbeat's answer, lists of them)
    are looked into.
    """
    needed: set[str] = set()
    pending: list[object] = [message]
    while pending:
        value = pending.pop()
        if isinstance(value, (list, tuple)):
            pending.extend(value)
            continue
        if not isinstance(value, BaseModel):
            continue
        model = type(value)
        for (owner, field), feature in MEANING_CHANGING.items():
            default = owner.model_fields[field].default
            if isinstance(value, owner) and getattr(value, field) != default:
                needed.add(feature)
        pending.extend(getattr(value, name) for name in model.model_fields)
    return frozenset(needed)


def missing_features(message: BaseModel, declared: Iterable[str] | None) -> frozenset[str]:
    """Return the features ``message`` needs that the agent did not declare (None: none)."""
    return needed_features(message) - frozenset(declared or ())
