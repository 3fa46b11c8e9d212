"""OpenTelemetry traces: one SERVER span per request with gen_ai.* attributes, children for the decision and
each upstream attempt (a failover shows both), W3C traceparent to the provider, never content; and the
OTLP/HTTP exporter delivering to a local receiver from `gateway serve`."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest
from aiohttp import web
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from gateway.demo.standins import BackgroundLoop, Behavior, StandInServers, serve_local
from gateway.settings import from_dict
from tests.harness import ADMIN_TOKEN, GatewayProcess, GatewayThread, gateway_config

NOTE = "Patient note: chest pain, troponin raised."


@pytest.fixture(scope="module")
def traced(standins: StandInServers) -> Iterator[tuple[GatewayThread, InMemorySpanExporter]]:
    exporter = InMemorySpanExporter()
    with GatewayThread(from_dict(gateway_config(standins)), span_exporter=exporter) as gateway:
        yield gateway, exporter


def test_a_failover_as_the_trace_shows_it(
    traced: tuple[GatewayThread, InMemorySpanExporter], standins: StandInServers
) -> None:
    gateway, exporter = traced
    exporter.clear()
    standins["azure-us-east"].script(Behavior(status=500))
    reply = httpx.post(
        gateway.base_url + "/v1/chat/completions",
        json={"model": "gpt-4o", "messages": [{"role": "user", "content": NOTE}]},
        headers={"Authorization": "Bearer gw-demo-cardiology", "X-Use-Case": "discharge-summary"},
    )
    assert reply.status_code == 200 and reply.headers["x-gateway-provider"] == "anthropic-us"
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not any(
        s.name == "chat gpt-4o" and s.kind.name == "SERVER" for s in exporter.get_finished_spans()
    ):
        time.sleep(0.1)
    spans = exporter.get_finished_spans()
    [root] = [s for s in spans if s.kind.name == "SERVER"]
    children = sorted(
        (s for s in spans if s.parent and s.parent.span_id == root.context.span_id), key=lambda s: s.start_time or 0
    )
    assert [s.name for s in children] == [
        "policy decision",
        "budget reserve",
        "chat gpt-4o",
        "budget reserve",
        "chat claude-sonnet-4",
    ]
    reserves = [dict(s.attributes or {}) for s in children if s.name == "budget reserve"]
    assert [r["gateway.provider"] for r in reserves] == ["azure-us-east", "anthropic-us"]
    failed, served = dict(children[2].attributes or {}), dict(children[4].attributes or {})
    served_span = children[4]
    for attempt in (children[2], served_span):  # each attempt's settlement is its child
        [settle] = [s for s in spans if s.parent and s.parent.span_id == attempt.context.span_id]
        assert settle.name == "budget settle" and "gateway.cost_nusd" in dict(settle.attributes or {})
    for span in [root, *children]:  # the tree, for the eye (pytest -s)
        print(f"{'  ' if span is not root else ''}{span.name} [{span.kind.name}] {dict(span.attributes or {})}")
        for child in (c for c in spans if c.parent and c.parent.span_id == span.context.span_id and span is not root):
            print(f"    {child.name} [{child.kind.name}] {dict(child.attributes or {})}")
    top: dict[str, Any] = dict(root.attributes or {})
    assert failed["error.type"] == "status_5xx" and failed["gen_ai.provider.name"] == "azure.ai.openai"
    assert served["gen_ai.provider.name"] == "anthropic" and served["gen_ai.usage.output_tokens"] == 4
    assert top["gen_ai.operation.name"] == "chat" and top["gen_ai.request.model"] == "gpt-4o"
    assert top["gen_ai.response.model"] == "claude-sonnet-4" and top["gateway.attempts"] == 2
    assert top["gateway.decision_id"] == reply.headers["x-gateway-decision-id"]
    assert top["gen_ai.usage.input_tokens"] > 0
    # the W3C trace context went to each provider, in this trace, from the attempt's own span
    sent = standins["anthropic-us"].received[-1].headers["traceparent"]
    assert sent.split("-")[1] == format(root.context.trace_id, "032x")
    assert sent.split("-")[2] == format(served_span.context.span_id, "016x")
    # never content
    everything = json.dumps([dict(s.attributes or {}) for s in spans] + [[e.name for e in s.events] for s in spans])
    assert "chest pain" not in everything and "troponin" not in everything


def test_with_traces_off_no_trace_context_is_made_or_sent(standins: StandInServers) -> None:
    """Off (the default) is OffTracer: no span, no context attached, no traceparent to the provider, and a
    failover still answers as it does with traces on."""
    standins["azure-us-east"].script(Behavior(status=500))
    with GatewayThread(from_dict(gateway_config(standins))) as gateway:
        assert type(gateway.app.state.components.tracing.tracer).__name__ == "OffTracer"
        reply = httpx.post(
            gateway.base_url + "/v1/chat/completions",
            json={"model": "gpt-4o", "messages": [{"role": "user", "content": NOTE}]},
            headers={"Authorization": "Bearer gw-demo-cardiology", "X-Use-Case": "discharge-summary"},
        )
    assert reply.status_code == 200 and reply.headers["x-gateway-provider"] == "anthropic-us"
    assert "traceparent" not in {k.lower() for k in standins["anthropic-us"].received[-1].headers}


def test_otlp_http_export_from_gateway_serve(standins: StandInServers, tmp_path: Path) -> None:
    received: list[ExportTraceServiceRequest] = []

    async def collect(request: web.Request) -> web.Response:
        message = ExportTraceServiceRequest()
        message.ParseFromString(await request.read())
        received.append(message)
        return web.Response(body=b"", content_type="application/x-protobuf")

    app = web.Application()
    app.router.add_post("/v1/traces", collect)
    loop = BackgroundLoop("otlp")
    runner, port = loop.run(serve_local(app))
    try:
        config = gateway_config(standins, telemetry={"otlp_endpoint": f"http://127.0.0.1:{port}"})
        with GatewayProcess(config, workdir=tmp_path, env={"GATEWAY_ADMIN_TOKEN": ADMIN_TOKEN}) as gateway:
            reply = httpx.post(
                gateway.base_url + "/v1/chat/completions",
                json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": NOTE}]},
                headers={"Authorization": "Bearer gw-demo-marketing"},
            )
            assert reply.status_code == 200
            admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
            status = httpx.get(gateway.base_url + "/admin/status", headers=admin)
            assert status.status_code == 200, status.text
            process = status.json()["process"]
            # `gateway serve` tuned the collector once started (server.tune_gc): the startup heap frozen
            assert process["gc_threshold"] == 20_000 and process["gc_frozen_objects"] > 10_000
        # stopping the gateway flushes its batch
        names = [s.name for m in received for r in m.resource_spans for ss in r.scope_spans for s in ss.spans]
        assert "chat gpt-4o-mini" in names and "policy decision" in names
        assert NOTE.encode() not in b"".join(m.SerializeToString() for m in received)
    finally:
        loop.run(runner.cleanup())
        loop.close()
