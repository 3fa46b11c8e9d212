"""gateway/jsontext.py: orjson where the bytes are ours, the standard library where its semantics matter."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway import jsontext

# everything a strict parse can produce: any text (lone surrogates too), integers of any size, finite floats
_text = st.text(st.characters(codec=None, exclude_categories=()), max_size=12)
_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | _text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_text, inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=400, deadline=None)
@given(value=_values)
def test_compact_and_canonical_round_trip_every_parsed_value(value: Any) -> None:
    assert json.loads(jsontext.compact(value)) == value
    assert jsontext.loads(jsontext.canonical(value)) == value


@settings(max_examples=200, deadline=None)
@given(value=st.dictionaries(_text, _values, max_size=6))
def test_canonical_is_one_text_per_value(value: dict[str, Any]) -> None:
    reordered = dict(reversed(list(value.items())))
    assert jsontext.canonical(reordered) == jsontext.canonical(value)


def test_what_orjson_refuses_is_encoded_as_before() -> None:
    for value in ({"content": "a\ud800b"}, {"n": 2**80}, {1: "int key"}):
        assert jsontext.compact(value) == json.dumps(value, separators=(",", ":")).encode()


@pytest.mark.parametrize("text", ["NaN", "[Infinity]", '{"temperature": -Infinity}', "1e400", '{"t": -2.5e308}'])
def test_loads_refuses_what_is_not_json(text: str) -> None:
    with pytest.raises(ValueError, match="not JSON"):
        jsontext.loads(text)


def test_loads_keeps_every_finite_number() -> None:
    assert jsontext.loads("[1.7976931348623157e308, 5e-324, -0.0, 1e-400, 0.1]") == [
        1.7976931348623157e308,
        5e-324,
        -0.0,
        0.0,
        0.1,
    ]


def test_loads_keeps_big_integers_and_surrogates_exactly() -> None:
    assert jsontext.loads('{"n": 123456789012345678901234567890, "s": "\\ud800"}') == {
        "n": 123456789012345678901234567890,
        "s": "\ud800",
    }
