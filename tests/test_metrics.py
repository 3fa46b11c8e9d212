"""Metrics: the per-request metrics' labels() children are remembered per label values, and what they count
is what /metrics renders (the same child each time, a different one for different values, positional and
named label values alike)."""

from __future__ import annotations

from gateway.observe.metrics import Metrics


def test_remembered_children_count_what_is_rendered() -> None:
    m = Metrics()
    first = m.requests.labels(team="a", use_case="u", provider="p", model="gpt-4o", status="200")
    again = m.requests.labels(team="a", use_case="u", provider="p", model="gpt-4o", status="200")
    other = m.requests.labels(team="b", use_case="u", provider="p", model="gpt-4o", status="200")
    positional = m.requests.labels("a", "u", "p", "gpt-4o", "200")
    assert first is again and first is not other
    first.inc()
    again.inc()
    other.inc()
    positional.inc()  # prometheus_client's own child for the same values: the same series
    m.request_duration.labels(provider="p").observe(0.2)
    text = m.render().decode()
    assert 'gateway_requests_total{model="gpt-4o",provider="p",status="200",team="a",use_case="u"} 3.0' in text
    assert 'gateway_requests_total{model="gpt-4o",provider="p",status="200",team="b",use_case="u"} 1.0' in text
    assert 'gateway_request_duration_seconds_count{provider="p"} 1.0' in text


def test_bundle_info_keeps_the_librarys_labels_and_is_cleared_on_a_new_bundle() -> None:
    m = Metrics()
    m.set_bundle("rev-1")
    m.set_bundle("rev-2")
    text = m.render().decode()
    assert 'gateway_policy_bundle_info{revision="rev-2"} 1.0' in text
    assert "rev-1" not in text
