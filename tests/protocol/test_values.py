"""Free JSON and free text: what can be stored and served passes, nothing else does."""

from __future__ import annotations

import json
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from heatgrid.protocol import values
from heatgrid.protocol.values import (
    MAX_JSON_DEPTH,
    check_json_object,
    check_text,
    text_problem,
)

_TEXT = st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\x00"), max_size=20)
_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | _TEXT,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(_TEXT, children, max_size=4),
    max_leaves=30,
)


@given(st.dictionaries(_TEXT, _JSON, max_size=5))
def test_storable_json_passes_and_survives_a_round_trip(value: dict[str, object]) -> None:
    assert check_json_object(value) is value
    text = json.dumps(value, ensure_ascii=False, allow_nan=False)
    assert json.loads(text.encode("utf-8").decode("utf-8")) == value


@pytest.mark.parametrize(
    ("value", "where"),
    [
        ({"a": {"b": [1, "x\x00"]}}, "a.b[1] contains a NUL"),
        ({"a": ["\udc00"]}, "a[0] is not valid Unicode"),
        ({"a": [float("nan")]}, "a[0] is nan"),
        ({"a": (1, 2)}, "a is a tuple"),
        ({"a\x00": 1}, "the key 'a\\x00' in the value contains a NUL"),
    ],
)
def test_each_fault_is_named_with_its_path(value: dict[str, object], where: str) -> None:
    with pytest.raises(ValueError, match=re.escape(where)):
        check_json_object(value)


def test_depth_counts_levels_of_objects_and_lists() -> None:
    value: dict[str, object] = {}
    for _ in range(MAX_JSON_DEPTH - 3):
        value = {"a": value}
    check_json_object({"x": [value]})  # exactly MAX_JSON_DEPTH levels
    with pytest.raises(ValueError, match=f"deeper than {MAX_JSON_DEPTH}"):
        check_json_object({"x": [[value]]})


def test_text_checks() -> None:
    assert check_text("h\u00e9at \U0001f525") == "h\u00e9at \U0001f525"
    assert text_problem("ok") is None
    with pytest.raises(ValueError, match="NUL"):
        check_text("a\x00")
    with pytest.raises(ValueError, match="lone surrogate at position 1"):
        check_text("a\ud800")


_ANY_TEXT = st.text(max_size=5)  # surrogates and NUL included
_ANY_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | _ANY_TEXT,
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(_ANY_TEXT, children, max_size=3)
    ),
    max_leaves=20,
)


@given(st.dictionaries(_ANY_TEXT, _ANY_JSON, max_size=4))
def test_the_fast_walk_agrees_with_the_one_that_names_the_fault(value: dict[str, object]) -> None:
    assert values._json_fine(value) == (values._json_problem(value) is None)
