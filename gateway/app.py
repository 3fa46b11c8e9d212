"""build_app(settings): the whole gateway wired in one place, dependencies handed down."""

from __future__ import annotations

import contextlib
import gc
import hashlib
import hmac
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis
from opentelemetry.sdk.trace.export import SpanExporter
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from gateway import authn
from gateway.apis import CHAT, COUNT_TOKENS, EMBEDDINGS, MESSAGES, RESPONSES
from gateway.errors import (
    ConfigError,
    GatewayError,
    InvalidRequest,
    NotFound,
    PolicyDenied,
    ServiceUnavailable,
    Unauthenticated,
)
from gateway.followups import StoredResponses
from gateway.forward import Upstream
from gateway.ledger import build_writer
from gateway.ledger.commands import day
from gateway.ledger.export import summary_json
from gateway.ledger.rows import usd
from gateway.ledger.store import GROUPS, StoreUnavailable
from gateway.metering.dollars import DollarBudgets
from gateway.metering.meter import Meter
from gateway.metering.redis_store import RedisStore
from gateway.metering.tokens import TokenCounter
from gateway.observe.metrics import Metrics
from gateway.observe.tracing import Tracing, make_tracing
from gateway.pipeline import Context, Pipeline
from gateway.policy.decision_log import DecisionLogger
from gateway.policy.embedded import EmbeddedEngine
from gateway.policy.engine import PolicyEngine
from gateway.policy.gate import PolicyGate, RequestContext, RequestFacts
from gateway.policy.remote import RemoteEngine
from gateway.resilience.breakers import Breakers, LocalBreakers
from gateway.resilience.queue import CooldownQueue
from gateway.resilience.shared import SharedBreakers
from gateway.routing import Router
from gateway.settings import Settings
from gateway.state import Instances, Outage, ResponseOwners, redis_client

log = logging.getLogger("gateway.app")


@dataclass
class Components:
    settings: Settings
    metrics: Metrics
    policy: PolicyEngine
    upstream: Upstream
    meter: Meter
    breakers: Breakers
    router: Router
    pipeline: Pipeline
    stored: StoredResponses
    redis: aioredis.Redis | None
    decision_log: DecisionLogger
    gate: PolicyGate
    tracing: Tracing
    dollars: DollarBudgets


def build_components(
    settings: Settings, *, policy: PolicyEngine | None = None, span_exporter: SpanExporter | None = None
) -> Components:
    metrics = Metrics()
    if policy is None:
        policy = _policy_engine(settings, metrics)
    url = settings.state.redis_url
    client = redis_client(url, timeout_ms=settings.state.timeout_ms) if url else None
    upstream = Upstream()
    probe_ttl = max((p.timeout_seconds for p in settings.providers), default=60.0) + 5
    breakers: Breakers
    owners = ResponseOwners()
    zone = settings.budgets.time_zone
    dollars = DollarBudgets(None, None, time_zone=zone)
    if client is not None:  # shared state: one outage tracker for budgets, breakers, heartbeats and owners
        outage = Outage(client, metrics)
        owners = ResponseOwners(client, outage)
        dollars = DollarBudgets(client, outage, time_zone=zone, expected_instances=settings.state.expected_instances)
        meter = Meter(
            metrics,
            shared=RedisStore(client),
            outage=outage,
            instances=Instances(client, outage),
            expected_instances=settings.state.expected_instances,
        )
        breakers = SharedBreakers(client, settings.breaker, metrics, outage=outage, probe_ttl=probe_ttl)
    else:
        meter = Meter(metrics)
        breakers = LocalBreakers(settings.breaker, probe_ttl=probe_ttl)
    queue = CooldownQueue(settings.queue.max_depth, metrics)
    tracing = make_tracing(settings.telemetry.otlp_endpoint, exporter=span_exporter)
    counter = TokenCounter()
    router = Router(
        settings, upstream, meter, breakers, queue, counter, metrics, budgets=dollars, tracer=tracing.tracer
    )
    decision_log = DecisionLogger(settings.policy.decision_logs, metrics, masker=policy.masker)
    gate = PolicyGate(policy, metrics, decision_log)
    ledger = build_writer(settings, metrics)
    pipeline = Pipeline(settings, policy, gate, router, metrics, owners, ledger, dollars, tracing.tracer)
    stored = StoredResponses(settings, gate, upstream, pipeline)
    return Components(
        settings,
        metrics,
        policy,
        upstream,
        meter,
        breakers,
        router,
        pipeline,
        stored,
        client,
        decision_log,
        gate,
        tracing,
        dollars,
    )


def _policy_engine(settings: Settings, metrics: Metrics) -> PolicyEngine:
    p = settings.policy
    if p.engine == "opa":
        return RemoteEngine(p.opa_url, timeout_ms=p.timeout_ms, token_env=p.opa_token_env)
    key = Path(p.verification_key).read_bytes() if p.verification_key else None
    return EmbeddedEngine(
        p.bundle,
        verification_key=key,
        poll_seconds=p.poll_seconds,
        on_activate=metrics.set_bundle,
        cache_entries=p.decision_cache_entries,
    )


def build_app(
    settings: Settings, *, policy: PolicyEngine | None = None, span_exporter: SpanExporter | None = None
) -> Starlette:
    """The gateway: routes read their components from `request.app.state.components`. `span_exporter`:
    where traces go instead of `telemetry.otlp_endpoint` (the tests' in-memory exporter)."""
    c = build_components(settings, policy=policy, span_exporter=span_exporter)
    app = GatewayApp(
        routes=[
            Route("/v1/chat/completions", chat_completions, methods=["POST"]),
            Route("/v1/embeddings", embeddings, methods=["POST"]),
            Route("/v1/responses", responses, methods=["POST"]),
            Route("/v1/responses/{response_id}", stored_response, methods=["GET", "DELETE"]),
            Route("/v1/messages", messages, methods=["POST"]),
            Route("/v1/messages/count_tokens", count_tokens, methods=["POST"]),
            Route("/v1/models", models, methods=["GET"]),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/readyz", readyz, methods=["GET"]),
            Route("/metrics", admin_only(metrics_endpoint, open_without_token=True), methods=["GET"]),
            Route("/admin/status", admin_only(admin_status), methods=["GET"]),
            Route("/admin/usage", admin_only(admin_usage), methods=["GET"]),
        ],
        exception_handlers={HTTPException: _http_error, GatewayError: _gateway_error, Exception: _unexpected},
        lifespan=_lifespan,
    )
    app.state.components = c
    app.state.admin_digest = _digest(settings.admin.token())
    return app


class GatewayApp(Starlette):
    """Starlette, with the model endpoints (`MODEL_CALLS`: a POST to one of these exact paths) called
    directly: the request skips the error and exception middleware, the route table and the per-route
    wrappers, which cost ~5% of a proxied request and add nothing here, since the pipeline answers every
    error itself. Their behaviour is kept: a GatewayError is its JSON error, anything else the same
    content-free 500 as `_unexpected`. Every other method, path and scope goes through Starlette."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST" and not scope.get("root_path"):
            endpoint = MODEL_CALLS.get(scope["path"])
            if endpoint is not None:
                scope["app"] = self
                request = Request(scope, receive, send)
                try:
                    response = await endpoint(request)
                except GatewayError as exc:
                    response = _error(exc)
                except Exception as exc:
                    response = await _unexpected(request, exc)
                await response(scope, receive, send)
                return
        await super().__call__(scope, receive, send)


def _components(request: Request) -> Components:
    components: Components = request.app.state.components
    return components


async def chat_completions(request: Request) -> Response:
    return await _components(request).pipeline(request, CHAT)


async def embeddings(request: Request) -> Response:
    return await _components(request).pipeline(request, EMBEDDINGS)


async def responses(request: Request) -> Response:
    return await _components(request).pipeline(request, RESPONSES)


async def stored_response(request: Request) -> Response:
    return await _components(request).stored(request)


async def messages(request: Request) -> Response:
    return await _components(request).pipeline(request, MESSAGES)


async def count_tokens(request: Request) -> Response:
    return await _components(request).pipeline.count_tokens(request, COUNT_TOKENS)


async def models(request: Request) -> Response:
    """The models the caller's team may use, each with the endpoints it serves: one decision per served
    model, through the same gate as every request. Anthropic's SDK (x-api-key) is answered too."""
    c = _components(request)
    ctx = Context()
    principal = MESSAGES.credential(request.headers)
    try:
        if authn.precheck(principal, c.policy.known_api_key_hashes()) == "refuse":
            raise Unauthenticated("no valid API key or token for a known team")
        context = RequestContext(request.headers.get("x-use-case"), None, None)
        allowed: list[str] = []
        for name in sorted(c.pipeline.endpoints):
            decision = ctx.decision = await c.gate.decide(principal, RequestFacts("models.list", name), context)
            c.gate.admit(decision)
            if decision.allow:
                allowed.append(name)
    except GatewayError as exc:
        return c.pipeline.respond_error(exc, ctx)
    data = [
        {"id": m, "object": "model", "created": 0, "owned_by": "gateway", "endpoints": c.pipeline.endpoints[m]}
        for m in allowed
    ]
    return JSONResponse({"object": "list", "data": data}, headers={"X-Request-Id": ctx.request_id})


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    c = _components(request)
    body: dict[str, Any] = {"policy_revision": c.policy.revision, "state": c.meter.mode}
    if not c.policy.ready:
        return JSONResponse({**body, "ready": False, "reason": "no policy bundle is active"}, status_code=503)
    if c.meter.in_fallback:
        reason = "state store unreachable: serving with per-process budgets and breakers"
        return JSONResponse({**body, "ready": False, "reason": reason}, status_code=503)
    return JSONResponse({**body, "ready": True})


async def metrics_endpoint(request: Request) -> Response:
    return Response(_components(request).metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")


async def admin_status(request: Request) -> Response:
    c = _components(request)
    breakers = await c.breakers.snapshot()
    return JSONResponse(
        {
            "policy": c.policy.status(),
            "process": {"gc_threshold": gc.get_threshold()[0], "gc_frozen_objects": gc.get_freeze_count()},
            "policy_revision": c.policy.revision,
            "policy_engine": c.settings.policy.engine,
            "state_store": c.meter.mode,
            # group commit: budget calls and the Redis script calls they took ({} without Redis)
            "state_batches": {**c.meter.batches(), **c.dollars.batches()},
            "breakers": {
                p.name: breakers.get(p.name, {"state": "closed", "trips": 0, "open_for_seconds": 0.0})
                for p in c.settings.providers
            },
        }
    )


async def admin_usage(request: Request) -> Response:
    """Ledger sums: `group_by` some of team, use_case, provider, model, endpoint; `from`/`to` days (UTC, `to`
    included; default today). This instance's buffered rows are flushed first, so they are counted."""
    ledger = _components(request).pipeline.ledger
    if ledger is None:
        return _error(NotFound("the usage ledger is off (ledger.store: none)"))
    params = request.query_params
    group_by = [g for g in params.get("group_by", "").split(",") if g]
    try:
        if any(g not in GROUPS for g in group_by):
            raise ConfigError(f"group_by takes some of {', '.join(GROUPS)}")
        today = datetime.now(UTC).date().isoformat()
        start, end = day(params.get("from", today)), day(params.get("to", today)) + 86400
    except ConfigError as exc:
        return _error(InvalidRequest(str(exc), param="group_by"))
    await ledger.flush()
    try:
        groups = summary_json(await ledger.store.summary(group_by, start, end))
    except StoreUnavailable:
        return _error(ServiceUnavailable("the ledger store cannot be reached now; retry later", retry_after=5))
    total_nusd = sum(int(g["cost_nusd"] or 0) for g in groups)
    total = {"rows": sum(int(g["rows"]) for g in groups), "cost_usd": usd(total_nusd), "cost_nusd": total_nusd}
    body = {"from": params.get("from", today), "to": params.get("to", today), "group_by": group_by}
    return JSONResponse({**body, "groups": groups, "total": total})


Endpoint = Callable[[Request], Awaitable[Response]]
MODEL_CALLS: dict[str, Endpoint] = {
    "/v1/chat/completions": chat_completions,
    "/v1/embeddings": embeddings,
    "/v1/responses": responses,
    "/v1/messages": messages,
    "/v1/messages/count_tokens": count_tokens,
}


def admin_only(endpoint: Endpoint, *, open_without_token: bool = False) -> Endpoint:
    """The one admin guard: `Authorization: Bearer <admin token>`, compared by hash; any other scheme is
    refused. Without a configured token, admin endpoints are off, except those `open_without_token`
    (/metrics, as the contract allows scraping when no token is set)."""

    async def guarded(request: Request) -> Response:
        digest: bytes | None = request.app.state.admin_digest
        if digest is None:
            if open_without_token:
                return await endpoint(request)
            return _error(PolicyDenied("admin endpoints are off: set the admin token env var to use them"))
        scheme, _, token = request.headers.get("authorization", "").strip().partition(" ")
        given = hashlib.sha256(token.strip().encode()).digest()
        if scheme.lower() != "bearer" or not hmac.compare_digest(given, digest):
            return _error(Unauthenticated("the admin token is required"))
        return await endpoint(request)

    return guarded


def _digest(token: str | None) -> bytes | None:
    return hashlib.sha256(token.encode()).digest() if token else None


@contextlib.asynccontextmanager
async def _lifespan(app: Starlette) -> AsyncIterator[None]:
    c: Components = app.state.components
    await c.upstream.start()
    await c.policy.start()
    if c.policy.revision:
        c.metrics.set_bundle(c.policy.revision)
    await c.meter.start()
    await c.decision_log.start()
    await c.breakers.start()
    if c.pipeline.ledger is not None:
        await c.pipeline.ledger.start()
    for started in getattr(app.state, "after_start", ()):  # gateway serve's process tuning (server.py)
        started()
    try:
        yield
    finally:
        if c.pipeline.ledger is not None:
            await c.pipeline.ledger.close()
        await c.breakers.close()
        c.tracing.shutdown()
        await c.meter.close()
        await c.decision_log.close()
        await c.policy.close()
        await c.upstream.close()
        if c.redis is not None:
            await c.redis.aclose()


def _error(exc: GatewayError) -> Response:
    return JSONResponse(exc.body(), status_code=exc.status_code)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 405:
        return JSONResponse(
            {
                "error": {
                    "type": "invalid_request_error",
                    "code": "method_not_allowed",
                    "message": "method not allowed here",
                    "param": None,
                }
            },
            status_code=405,
        )
    return _error(NotFound("no such endpoint"))


async def _gateway_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, GatewayError)
    return _error(exc)


async def _unexpected(request: Request, exc: Exception) -> Response:
    log.error("unexpected error", extra={"error_type": type(exc).__name__})
    body = {"error": {"type": "api_error", "code": "internal_error", "message": "internal error", "param": None}}
    return JSONResponse(body, status_code=500)
