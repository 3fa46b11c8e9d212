from __future__ import annotations

from typing import Any

import pytest

from gateway.policy.engine import parse_decision

GOOD: dict[str, Any] = {
    "allow": True,
    "team": "cardiology",
    "use_case": "discharge-summary",
    "data_classification": "phi",
    "reasons": [],
    "log_level": "metadata",
    "routes": [{"provider": "azure-us-east", "model": "gpt-4o"}],
    "limits": {"tokens_per_minute": 1000, "max_tokens": 100},
}


def test_well_formed_allow_parses() -> None:
    d = parse_decision(GOOD, decision_id="d1", revision="r1")
    assert d.allow and d.error is None
    assert d.routes[0].provider == "azure-us-east"
    assert (d.tokens_per_minute, d.max_tokens) == (1000, 100)
    assert (d.decision_id, d.policy_revision) == ("d1", "r1")


@pytest.mark.parametrize(
    "change",
    [
        {"allow": "yes"},
        {"log_level": "everything"},
        {"routes": "azure"},
        {"routes": [{"provider": 1, "model": "gpt-4o"}]},
        {"routes": []},
        {"limits": {"tokens_per_minute": 0, "max_tokens": 10}},
        {"limits": {"tokens_per_minute": 1.5, "max_tokens": 10}},
        {"reasons": [{"code": "x", "message": "y"}]},
        {"team": 7},
    ],
    ids=[
        "allow-str",
        "log-level",
        "routes-str",
        "route-field",
        "allow-no-routes",
        "zero-tpm",
        "fractional",
        "allow-with-reason",
        "team-int",
    ],
)
def test_malformed_decision_fails_closed(change: dict[str, Any]) -> None:
    d = parse_decision({**GOOD, **change}, decision_id="d1", revision="r1")
    assert not d.allow
    assert d.error == "malformed"
    assert d.log_level == "metadata"
    assert d.routes == ()


@pytest.mark.parametrize("raw", [None, [], "allow", 1])
def test_non_object_decision_fails_closed(raw: Any) -> None:
    d = parse_decision(raw, decision_id="d1", revision="r1")
    assert not d.allow and d.error == "malformed"


def test_dollar_limits_parse_exactly_and_bad_ones_fail_closed() -> None:
    limits = {**GOOD["limits"], "usd_per_day": 0.1, "usd_per_month": None, "use_case_usd_per_month": 3}
    decision = parse_decision({**GOOD, "limits": limits}, decision_id="d", revision="r")
    assert decision.allow
    assert decision.dollar_limits == (("team", "day", 100_000_000), ("use_case", "month", 3_000_000_000))
    for bad in (-1, "5", True):
        broken = parse_decision({**GOOD, "limits": {**limits, "usd_per_day": bad}}, decision_id="d", revision="r")
        assert not broken.allow and broken.error == "malformed"
