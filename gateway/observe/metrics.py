"""Prometheus metrics (CONTRACT.md). Label values come from policy output and config, never raw headers."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

_LATENCY = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
_FAST = (0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.1)


class Metrics:
    def __init__(self) -> None:
        self.registry = r = CollectorRegistry()
        self.requests = Counter(
            "gateway_requests", "Requests by outcome", ["team", "use_case", "provider", "model", "status"], registry=r
        )
        self.tokens = Counter(
            "gateway_tokens", "Tokens by direction", ["team", "use_case", "provider", "model", "direction"], registry=r
        )
        self.cost = Counter(
            "gateway_cost_usd",
            "Cost in USD from the prices table",
            ["team", "use_case", "provider", "model"],
            registry=r,
        )
        self.request_duration = Histogram(
            "gateway_request_duration_seconds", "Whole request time", ["provider"], buckets=_LATENCY, registry=r
        )
        self.upstream_duration = Histogram(
            "gateway_upstream_duration_seconds",
            "Upstream time of the final attempt",
            ["provider"],
            buckets=_LATENCY,
            registry=r,
        )
        self.policy_decisions = Counter("gateway_policy_decisions", "Policy decisions", ["result"], registry=r)
        self.policy_eval = Histogram("gateway_policy_eval_seconds", "Policy evaluation time", buckets=_FAST, registry=r)
        self.rate_limited = Counter(
            "gateway_rate_limited", "Requests or routes refused for budget", ["scope"], registry=r
        )
        self.queue_wait = Histogram(
            "gateway_queue_wait_seconds", "Time waiting for an upstream cool-down", buckets=_LATENCY, registry=r
        )
        self.breaker_state = Gauge("gateway_breaker_state", "0 closed, 1 half-open, 2 open", ["provider"], registry=r)
        self.failovers = Counter(
            "gateway_failovers", "Moves to the next route", ["from_provider", "to_provider", "reason"], registry=r
        )
        self.bundle_info = Gauge("gateway_policy_bundle_info", "Active policy bundle", ["revision"], registry=r)
        self.state_fallback = Gauge(
            "gateway_state_fallback", "1 while the shared state store is unreachable", registry=r
        )
        self.token_estimate_ratio = Histogram(
            "gateway_token_estimate_ratio",
            "Reserved prompt estimate / provider-reported prompt tokens",
            ["provider", "model"],
            buckets=(0.5, 0.8, 0.9, 1.0, 1.1, 1.25, 1.5, 2, 4),
            registry=r,
        )
        self.settle_failures = Counter("gateway_settle_failures", "Settlements that could not be written", registry=r)
        self.decision_logs = Counter(
            "gateway_decision_logs", "Decision log events by outcome", ["outcome"], registry=r
        )  # written | dropped (buffer full) | dropped_by_policy | retried
        self.ledger_rows = Counter("gateway_ledger_rows", "Usage ledger rows written to the store", registry=r)
        self.ledger_spilled = Counter(
            "gateway_ledger_spilled_rows", "Usage ledger rows written to the spill file (store unreachable)", registry=r
        )

    def set_bundle(self, revision: str) -> None:
        self.bundle_info.clear()
        self.bundle_info.labels(revision=revision).set(1)

    def render(self) -> bytes:
        return generate_latest(self.registry)
