"""A cached answer is parsed once (engine.stamped): every later hit must be exactly what parsing it again
would give, with the request's own id and its own copy of the raw answer."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.policy.embedded import PARSED_ANSWERS, _Active, _from_cache
from gateway.policy.engine import Decision, parse_decision, stamped

_name = st.text(min_size=1, max_size=8)
_route = st.fixed_dictionaries({"provider": _name, "model": _name})
_reason = st.fixed_dictionaries({"code": _name, "message": st.text(max_size=20)})
_limits = st.fixed_dictionaries(
    {"tokens_per_minute": st.integers(1, 10**9), "max_tokens": st.integers(1, 10**6)},
    optional={
        "usd_per_day": st.integers(0, 10**6) | st.floats(0, 1e6, allow_nan=False),
        "use_case_usd_per_month": st.floats(0, 1e6, allow_nan=False),
    },
)
_allow = st.fixed_dictionaries(
    {"allow": st.just(True), "routes": st.lists(_route, min_size=1, max_size=3), "limits": _limits},
    optional={
        "team": _name,
        "use_case": _name | st.none(),
        "log_level": st.sampled_from(["content", "metadata"]),
        "data_classification": st.sampled_from(["phi", "pii", "none"]),
        "redact": st.lists(_name, max_size=2),
    },
)
_deny = st.fixed_dictionaries(
    {"allow": st.just(False), "reasons": st.lists(_reason, max_size=3)},
    optional={"team": _name, "routes": st.lists(_route, max_size=2), "limits": _limits},
)
# and answers the parser refuses (each fails closed, and is never kept parsed)
_odd = st.fixed_dictionaries({"allow": st.sampled_from([True, "yes", 1])}, optional={"routes": st.just("x")})


def _fields(decision: Decision) -> dict[str, Any]:
    return {f.name: getattr(decision, f.name) for f in dataclasses.fields(decision)}


@settings(max_examples=300, deadline=None)
@given(raw=_allow | _deny | _odd)
def test_a_stamped_answer_is_the_parsed_answer(raw: dict[str, Any]) -> None:
    text = json.dumps(raw)
    first = parse_decision(json.loads(text), decision_id="first", revision="rev-1")
    again = parse_decision(json.loads(text), decision_id="second", revision="rev-1")
    if first.error is None:
        made = stamped(first, decision_id="second", raw=json.loads(text))
        assert _fields(made) == _fields(again)  # every field, including any added to Decision later


@settings(max_examples=100, deadline=None)
@given(raw=_allow | _deny | _odd)
def test_cache_hits_are_each_their_own_decision(raw: dict[str, Any]) -> None:
    active = _Active(engine=None, bundle=_Bundle(), digest="", known_keys=None)  # type: ignore[arg-type]
    text = json.dumps(raw)
    one, two = _from_cache(active, text, "id-1"), _from_cache(active, text, "id-2")
    assert (one.decision_id, two.decision_id) == ("id-1", "id-2")
    assert _fields(two) == _fields(parse_decision(json.loads(text), decision_id="id-2", revision="rev-1"))
    assert one.raw is not two.raw  # a request that edits its answer never reaches the next
    assert (text in active.parsed) == (one.error is None)


def test_parsed_answers_stay_bounded() -> None:
    active = _Active(engine=None, bundle=_Bundle(), digest="", known_keys=None)  # type: ignore[arg-type]
    base = {"allow": True, "routes": [{"provider": "p", "model": "m"}], "limits": {"max_tokens": 5}}
    for n in range(PARSED_ANSWERS * 2 + 5):
        _from_cache(active, json.dumps({**base, "limits": {"max_tokens": 5, "tokens_per_minute": n + 1}}), "id")
    assert 0 < len(active.parsed) <= PARSED_ANSWERS


@dataclasses.dataclass
class _Bundle:
    revision: str = "rev-1"
