"""Which answers need which agent features (:mod:`heatgrid.protocol.features`)."""

from __future__ import annotations

import pydantic
import pytest

from heatgrid.protocol import features, v1
from heatgrid.protocol.challenge import ChallengeOrder


def _order(steps: int) -> ChallengeOrder:
    return ChallengeOrder(challenge_id="c1", seed=7, n=1024, links=8, deadline_s=4.0, steps=steps)


def test_a_default_value_needs_no_feature() -> None:
    """One product per link means what it meant before ``steps``: any agent may get it."""
    assert features.needed_features(_order(1)) == frozenset()
    assert features.missing_features(_order(1), None) == frozenset()


def test_a_stepped_challenge_needs_challenge_steps() -> None:
    assert features.needed_features(_order(30)) == {features.CHALLENGE_STEPS}
    assert features.missing_features(_order(30), None) == {features.CHALLENGE_STEPS}
    assert features.missing_features(_order(30), []) == {features.CHALLENGE_STEPS}
    assert features.missing_features(_order(30), ["challenge_steps"]) == frozenset()


def test_a_challenge_inside_a_heartbeat_answer_is_looked_into() -> None:
    answer = v1.HeartbeatResponse(
        server_ts=1.0, next_heartbeat_s=60.0, stored_samples=0, duplicate_samples=0,
        challenge=_order(2),
    )  # fmt: skip
    assert features.missing_features(answer, ["something_else"]) == {features.CHALLENGE_STEPS}
    plain = answer.model_copy(update={"challenge": None})
    assert features.needed_features(plain) == frozenset()


def test_every_meaning_changing_field_exists_and_has_a_default() -> None:
    """Rule 1: an answer with the default means to an older agent what it always meant."""
    for (model, field), feature in features.MEANING_CHANGING.items():
        assert field in model.model_fields, (model, field)
        assert not model.model_fields[field].is_required(), (model, field)
        pydantic.TypeAdapter(features.FeatureName).validate_python(feature)


def test_a_heartbeat_declares_features_once_each_and_may_name_unknown_ones() -> None:
    beat = v1.Heartbeat(sent_ts=1.8e9, features=["challenge_steps", "from_a_newer_agent"])
    assert beat.features == ["challenge_steps", "from_a_newer_agent"]
    assert v1.Heartbeat(sent_ts=1.8e9).features == []  # an older agent sends none
    with pytest.raises(pydantic.ValidationError, match="declared twice"):
        v1.Heartbeat(sent_ts=1.8e9, features=["challenge_steps", "challenge_steps"])
    with pytest.raises(pydantic.ValidationError):
        v1.Heartbeat(sent_ts=1.8e9, features=["Challenge Steps"])
    with pytest.raises(pydantic.ValidationError):
        v1.Heartbeat(sent_ts=1.8e9, features=[f"f{index}" for index in range(65)])
