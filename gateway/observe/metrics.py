"""Prometheus metrics (CONTRACT.md). Label values come from policy output and config, never raw headers."""

from __future__ import annotations

import os
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest, multiprocess

_LATENCY = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
_FAST = (0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.1)


_GENAI_TOKENS = (1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864)
_GENAI_DURATION = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92)
_GENAI_TTFT = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)
# the semantic conventions' names for operations and providers (labels come from config, never input)
GENAI_OPERATIONS = {"chat.completions": "chat", "messages": "chat", "responses": "chat", "embeddings": "embeddings"}
GENAI_PROVIDERS = {
    "openai": "openai",
    "azure_openai": "azure.ai.openai",
    "anthropic": "anthropic",
    "bedrock": "aws.bedrock",
}


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
        self.breaker_state = Gauge(
            "gateway_breaker_state", "0 closed, 1 half-open, 2 open", ["provider"], registry=r, multiprocess_mode="max"
        )
        self.failovers = Counter(
            "gateway_failovers", "Moves to the next route", ["from_provider", "to_provider", "reason"], registry=r
        )
        self.bundle_info = Gauge(
            "gateway_policy_bundle_info", "Active policy bundle", ["revision"], registry=r, multiprocess_mode="max"
        )
        self.state_fallback = Gauge(
            "gateway_state_fallback",
            "1 while the shared state store is unreachable",
            registry=r,
            multiprocess_mode="max",
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
        # OpenTelemetry GenAI semantic conventions, in Prometheus naming, with their bucket boundaries
        genai = ["gen_ai_operation_name", "gen_ai_provider_name", "gen_ai_request_model"]
        self.genai_tokens = Histogram(
            "gen_ai_client_token_usage",
            "Input and output tokens per provider call (gen_ai.client.token.usage)",
            [*genai, "gen_ai_token_type"],
            buckets=_GENAI_TOKENS,
            registry=r,
        )
        self.genai_duration = Histogram(
            "gen_ai_client_operation_duration_seconds",
            "Duration of each provider call (gen_ai.client.operation.duration)",
            [*genai, "error_type"],
            buckets=_GENAI_DURATION,
            registry=r,
        )
        self.genai_ttft = Histogram(
            "gen_ai_server_time_to_first_token_seconds",
            "Request to the first streamed content sent to the client (gen_ai.server.time_to_first_token)",
            genai,
            buckets=_GENAI_TTFT,
            registry=r,
        )
        self.ledger_rows = Counter("gateway_ledger_rows", "Usage ledger rows written to the store", registry=r)
        self.ledger_spilled = Counter(
            "gateway_ledger_spilled_rows", "Usage ledger rows written to the spill file (store unreachable)", registry=r
        )

        for metric in (
            self.requests,
            self.tokens,
            self.cost,
            self.request_duration,
            self.upstream_duration,
            self.policy_decisions,
            self.rate_limited,
            self.failovers,
            self.token_estimate_ratio,
            self.genai_tokens,
            self.genai_duration,
            self.genai_ttft,
        ):
            _remember_children(metric)

    def set_bundle(self, revision: str) -> None:
        self.bundle_info.clear()
        self.bundle_info.labels(revision=revision).set(1)

    def render(self) -> bytes:
        """This process's metrics; with several workers (PROMETHEUS_MULTIPROC_DIR set), every worker's, summed."""
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
            return generate_latest(registry)
        return generate_latest(self.registry)


def _remember_children(metric: Any) -> None:
    """`metric.labels(...)` answered from a dict after the first call with the same values: prometheus_client
    checks the names and takes a lock on every call (about 3% of a request's instructions, a dozen calls).
    Label values come from config and policy output, so the dict is as bounded as the metric's own series;
    these metrics are never cleared (one that is, like bundle_info, keeps the library's labels())."""
    children: dict[tuple[Any, ...], Any] = {}
    labels = metric.labels

    def remembered(*values: Any, **named: Any) -> Any:
        key = (values, *named.items()) if named else values
        child = children.get(key)
        if child is None:
            child = children[key] = labels(*values, **named)
        return child

    metric.labels = remembered
