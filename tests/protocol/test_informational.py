"""The informational request fields an agent may drop for an older coordinator (issue 17)."""

from __future__ import annotations

from heatgrid.protocol import v1
from heatgrid.protocol.informational import INFORMATIONAL, informational_fields


def test_every_informational_field_is_an_optional_field_of_its_request() -> None:
    """Dropping a field must leave a request its coordinator reads with the field's default."""
    for (model, field), why in INFORMATIONAL.items():
        assert field in model.model_fields, (model.__name__, field)
        assert not model.model_fields[field].is_required(), (model.__name__, field)
        assert why.strip(), (model.__name__, field)


def test_the_fields_are_found_by_their_request() -> None:
    assert informational_fields(v1.Heartbeat) == {"features"}
    assert informational_fields(v1.TaskCompletion) == {"start_mark", "energy_method"}
    assert informational_fields(v1.TaskFailure) == {"energy_method"}
    assert informational_fields(v1.EnrollRequest) == frozenset()  # its claims are not dropped
    assert "hardware" not in informational_fields(v1.Heartbeat)
