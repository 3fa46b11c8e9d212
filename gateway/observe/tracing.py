"""OpenTelemetry traces, off unless `telemetry.otlp_endpoint` is set (then OTLP/HTTP, batched).

One SERVER span per request, named "<operation> <model>" as the GenAI semantic conventions say, with
children: the policy decision, each upstream attempt (a CLIENT span per provider tried, so a failover is
two children, the first with `error.type`), and the settlement as an event of its attempt. Attributes are
metadata only: `gen_ai.*` (operation, provider, request and response model, input/output/cached tokens),
the decision id and the team and use case the policy returned. Never content, never a header's raw value.
The W3C `traceparent` of each attempt's span goes to the provider.
"""

from __future__ import annotations

import contextlib
from collections.abc import MutableMapping
from typing import Any

from opentelemetry import propagate, trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.trace import INVALID_SPAN, NoOpTracer, Span, SpanKind, Status, StatusCode, Tracer

SERVICE = "policy-gateway"


class OffTracer(NoOpTracer):
    """Traces off: every span is OpenTelemetry's one invalid, non-recording span, and no context is attached.
    (The API's NoOpTracer still wraps each span in a context manager that attaches and detaches a context:
    about 3% of a request's instructions here, bench/instructions.py.)"""

    _CURRENT = contextlib.nullcontext(INVALID_SPAN)  # reusable: entering it does nothing

    def start_span(self, *args: Any, **kwargs: Any) -> Span:
        return INVALID_SPAN

    def start_as_current_span(self, *args: Any, **kwargs: Any) -> Any:
        return self._CURRENT


def is_off(tracer: Tracer) -> bool:
    return isinstance(tracer, OffTracer)


class Tracing:
    """The tracer and, when traces go anywhere, the provider to flush at shutdown."""

    def __init__(self, tracer: Tracer, provider: TracerProvider | None = None) -> None:
        self.tracer = tracer
        self._provider = provider

    def shutdown(self) -> None:
        if self._provider is not None:
            self._provider.shutdown()  # exports what the batch still holds


def make_tracing(otlp_endpoint: str | None, *, exporter: SpanExporter | None = None) -> Tracing:
    """Traces to `exporter` (tests) or OTLP/HTTP at `otlp_endpoint`; a no-op tracer otherwise."""
    if exporter is None and not otlp_endpoint:
        return Tracing(OffTracer())
    if exporter is None:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter(endpoint=otlp_endpoint.rstrip("/") + "/v1/traces" if otlp_endpoint else None)
    provider = TracerProvider(resource=Resource.create({"service.name": SERVICE}))
    provider.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=1000))
    return Tracing(provider.get_tracer("gateway"), provider)


def inject(headers: MutableMapping[str, str], span: Span | None) -> None:
    """W3C trace context of `span` into an upstream request's headers."""
    if span is not None and span.get_span_context().is_valid:
        propagate.inject(headers, context=trace.set_span_in_context(span))


def fail(span: Span, error_type: str) -> None:
    span.set_attribute("error.type", error_type)
    span.set_status(Status(StatusCode.ERROR))


def attributes(**values: Any) -> dict[str, Any]:
    """Only set values (OpenTelemetry refuses None)."""
    return {k.replace("__", "."): v for k, v in values.items() if v is not None and v != ""}


__all__ = ["OffTracer", "SpanKind", "Tracer", "Tracing", "attributes", "fail", "inject", "is_off", "make_tracing"]
