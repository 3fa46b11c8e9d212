"""The request path, in order, the same for every client API (apis.py):

    read body -> parse -> credential -> decide (OPA) -> route: reserve, forward, fail over -> settle -> record

Each stage either passes on or raises a GatewayError, rendered once in
`respond_error`. Nothing here decides what is allowed: the decision does.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import anyio
from opentelemetry import trace
from opentelemetry.trace import Span, Tracer
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from gateway import authn
from gateway.apis import CHAT, Api
from gateway.attempt import Attempt
from gateway.content.redact import redact_body, texts_in
from gateway.content.scan import Scanners
from gateway.errors import (
    BudgetExceeded,
    GatewayError,
    InternalError,
    InvalidRequest,
    NotFound,
    PolicyDenied,
    RequestTimeout,
    RequestTooLarge,
    ServerBusy,
    Unauthenticated,
)
from gateway.ids import new_id
from gateway.inbound import Inbound
from gateway.ledger import LedgerWriter, price_table
from gateway.ledger.rows import NANO_PER_USD, Row, usd
from gateway.metering.dollars import DollarBudgets, DollarLimit
from gateway.observe import logs
from gateway.observe.metrics import GENAI_OPERATIONS, GENAI_PROVIDERS, Metrics
from gateway.observe.tracing import OffTracer, SpanKind, attributes, fail, is_off
from gateway.policy.engine import Decision, PolicyEngine
from gateway.policy.gate import PolicyGate, RequestContext, RequestFacts
from gateway.providers.base import answer_text
from gateway.providers.registry import model_endpoints
from gateway.resilience.breakers import MAX_COOLDOWN_SECONDS
from gateway.resilience.queue import ClientLeft
from gateway.routing import Completed, Router, Streaming, Walk
from gateway.settings import Settings
from gateway.state.owners import Owner, ResponseOwners

log = logging.getLogger("gateway.pipeline")
USE_CASE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
CLASSIFICATIONS = ("phi", "pii", "none")


@dataclass
class Context:
    """What one request accumulates for its headers, its log record and its metrics."""

    api: Api = CHAT
    request_id: str = field(default_factory=new_id)
    started: float = field(default_factory=time.perf_counter)
    started_at: float = field(default_factory=time.time)
    decision: Decision | None = None
    classification: str | None = None
    stream: bool = False
    provider: str = ""
    model: str = ""
    status: int = 200
    error_code: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_nusd: int = 0  # nano-dollars, exact
    recorded: bool = False
    usd_remaining: int | None = None  # nano-dollars left in the tightest dollar budget after this request
    asked: tuple[authn.Principal, RequestFacts, RequestContext] | None = None  # what the decision was asked
    span: Span | None = None  # the request's SERVER span, ended by record()
    upstream_seconds: float | None = None
    team_remaining: float | None = None
    walk: Walk = field(default_factory=Walk)
    messages: Any = None
    completion: str | None = None
    prompt_estimate: int = 0

    def headers(self) -> dict[str, str]:
        headers = {"X-Request-Id": self.request_id}
        d = self.decision
        if d is not None:
            headers["X-Gateway-Decision-Id"] = d.decision_id
            headers["X-Gateway-Policy-Revision"] = d.policy_revision
            if d.allow:
                headers["X-RateLimit-Limit-Tokens"] = str(d.tokens_per_minute)
                remaining = next(
                    (r for r in (self.team_remaining, self.walk.team_remaining) if r is not None), d.tokens_per_minute
                )
                headers["X-RateLimit-Remaining-Tokens"] = str(max(0, math.floor(remaining)))
        if self.provider:
            headers["X-Gateway-Provider"] = self.provider
            headers["X-Gateway-Model"] = self.model
        if self.recorded:
            headers["X-Gateway-Cost-Usd"] = usd(self.cost_nusd)
        if self.usd_remaining is not None:
            headers["X-RateLimit-Remaining-Usd"] = usd(max(0, self.usd_remaining))
        return headers


class Pipeline:
    def __init__(
        self,
        settings: Settings,
        policy: PolicyEngine,
        gate: PolicyGate,
        router: Router,
        metrics: Metrics,
        owners: ResponseOwners,
        ledger: LedgerWriter | None = None,
        budgets: DollarBudgets | None = None,
        tracer: Tracer | None = None,
    ) -> None:
        self._tracer = tracer or OffTracer()
        self._gate = gate
        self.ledger = ledger
        self._budgets = budgets
        self._scanners = Scanners()
        self._prices = price_table(settings)
        self._settings = settings
        self._policy = policy
        self._router = router
        self._metrics = metrics
        self.owners = owners
        self.endpoints = model_endpoints(settings.providers)  # served model -> the endpoints it serves
        self._unverified_reads = asyncio.Semaphore(settings.listen.max_unverified_body_reads)

    def known_keys(self) -> frozenset[str] | None:
        return self._policy.known_api_key_hashes()

    async def __call__(self, request: Request, api: Api = CHAT) -> Response:
        ctx = Context(api)
        if is_off(self._tracer):
            return await self._handle(request, api, ctx)
        operation = GENAI_OPERATIONS.get(api.endpoint, "chat")
        ctx.span = self._tracer.start_span(operation, kind=SpanKind.SERVER)
        ctx.span.set_attributes(attributes(gen_ai__operation__name=operation, http__route=api.endpoint))
        with trace.use_span(ctx.span, end_on_exit=False):
            return await self._handle(request, api, ctx)

    async def _handle(self, request: Request, api: Api, ctx: Context) -> Response:
        try:
            principal = api.credential(request.headers)
            raw = await self._read_body(request, authn.precheck(principal, self._policy.known_api_key_hashes()))
            parsed = api.parse(raw, request.headers)
            ctx.stream = parsed.stream
            owner = await self._owner(parsed)
            decision = await self._decide(request, ctx, principal, parsed, owner)
            parsed = self._redacted(api, parsed, decision, request)
            max_tokens = (parsed.max_tokens or decision.max_tokens) if parsed.generates else 0
            keep_text = decision.log_level == "content"  # the policy alone decides whether content may be logged
            if keep_text:
                ctx.messages = _content(parsed)
            async with _client_watch(request):
                result = await self._router.run(
                    parsed,
                    decision,
                    max_tokens,
                    ctx.walk,
                    keep_text=keep_text,
                    prompt_tokens=ctx.prompt_estimate,
                    dollars=self.dollar_limits(decision),
                )
        except GatewayError as exc:
            return self.respond_error(exc, ctx)
        except ClientLeft:
            ctx.status, ctx.error_code = 499, "client_disconnected"
            self.record(ctx)
            return Response(status_code=499)  # nobody is listening; the record says what happened
        except Exception as exc:  # a defect of ours: still a record and metrics, and no detail in the answer
            log.error("unexpected error", extra={"error_type": type(exc).__name__})
            return self.respond_error(InternalError("internal error"), ctx)
        if isinstance(result, Completed):
            return await self._complete(result, ctx, parsed)
        return self._stream(result, ctx, parsed)

    async def count_tokens(self, request: Request, api: Api) -> Response:
        """Anthropic's count_tokens, answered here: the gateway's own count for the model (Anthropic
        models: a conservative estimate), after the same credential and policy checks as a request."""
        ctx = Context(api)
        try:
            principal = api.credential(request.headers)
            raw = await self._read_body(request, authn.precheck(principal, self.known_keys()))
            parsed = api.parse(raw, request.headers)
            await self._decide(request, ctx, principal, parsed, None)
        except GatewayError as exc:
            return self.respond_error(exc, ctx)
        self.record(ctx)
        return JSONResponse({"input_tokens": ctx.prompt_estimate}, headers=ctx.headers())

    async def _decide(
        self, request: Request, ctx: Context, principal: authn.Principal, parsed: Inbound, owner: Owner | None
    ) -> Decision:
        """The policy's decision, and the 4xx that come before or instead of it, in the one order:
        401 (admit), 400 for a model or endpoint this gateway does not serve, 404 for a follow-up to a
        response this team does not own, then 403 (enforce)."""
        use_case, ctx.classification = context_headers(request)
        ctx.prompt_estimate = await self._router.estimate(parsed)
        scanner = self._scanners.get(self._policy.mrn_patterns())
        signals = await scanner.scan(parsed.token_parts().texts)
        served = self.endpoints.get(parsed.model)
        facts = RequestFacts(
            parsed.endpoint,
            # a model name this gateway does not serve is client text: never into the policy input or its log
            parsed.model if served is not None else None,
            parsed.stream,
            parsed.max_tokens,
            ctx.prompt_estimate,
            provider=owner.provider if owner is not None else None,
            content=signals.as_input(),
        )
        client_ip = request.client.host if request.client else None
        context = RequestContext(use_case, ctx.classification, client_ip)
        ctx.asked = (principal, facts, context)
        if served is not None and ctx.span is not None:  # a served model's name, never client text
            ctx.span.update_name(f"{GENAI_OPERATIONS.get(parsed.endpoint, 'chat')} {parsed.model}")
            ctx.span.set_attribute("gen_ai.request.model", parsed.model)
        with self._tracer.start_as_current_span("policy decision") as span:
            decision = ctx.decision = await self._gate.decide(principal, facts, context)
            span.set_attributes(attributes(gateway__decision_id=decision.decision_id, gateway__allow=decision.allow))
        self._gate.admit(decision)
        if served is None:  # only now: nothing about models is said to a stranger
            raise InvalidRequest(
                "model is not served by this gateway; GET /v1/models lists yours",
                param="model",
                decision_id=decision.decision_id,
            )
        if parsed.endpoint not in served:
            raise InvalidRequest(
                f"this model does not serve {parsed.endpoint}; GET /v1/models lists each model's endpoints",
                param="model",
                decision_id=decision.decision_id,
            )
        previous = getattr(parsed, "previous_response_id", None)
        if previous is not None and (owner is None or owner.team != decision.team):
            raise NotFound(
                "previous_response_id names no response of this team",
                param="previous_response_id",
                decision_id=decision.decision_id,
            )
        self._gate.enforce(decision)
        return decision

    def _redacted(self, api: Api, parsed: Inbound, decision: Decision, request: Request) -> Inbound:
        """The request with the spans of the types the policy's `redact` verdict names replaced by typed
        placeholders (re-parsed, so every API's own checks still hold); unchanged without a verdict."""
        verdict = decision.raw.get("redact")
        if not isinstance(verdict, list) or not verdict:
            return parsed
        wanted = {t for t in verdict if isinstance(t, str)}
        detectors = [d for d in self._scanners.get(self._policy.mrn_patterns()).detectors if d.name in wanted]
        body = redact_body(parsed.body, detectors)
        return api.parse(json.dumps(body).encode(), request.headers)

    def dollar_limits(self, decision: Decision) -> tuple[DollarLimit, ...]:
        """The decision's dollar budgets, as the router reserves them."""
        if self._budgets is None:
            return ()
        return tuple(
            DollarLimit(
                decision.team,
                "team" if scope == "team" else f"use_case:{decision.use_case}",
                "day" if window == "day" else "month",
                nusd,
            )
            for scope, window, nusd in decision.dollar_limits
        )

    async def _owner(self, parsed: Inbound) -> Owner | None:
        previous = getattr(parsed, "previous_response_id", None)
        return await self.owners.get(previous) if isinstance(previous, str) else None

    async def _read_body(self, request: Request, credential: str) -> bytes:
        """The body, after a look at the credential: none, or a key the policy does not list, is refused
        before a byte of it is read; a credential only the policy can verify takes one of a bounded number
        of slots. Over `listen.max_body_bytes`: 413; not all there within `listen.body_timeout_seconds`: 408."""
        if credential == "refuse":
            raise Unauthenticated("no valid API key or token for a known team")
        listen = self._settings.listen
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > listen.max_body_bytes:
            raise RequestTooLarge(f"request body is over the {listen.max_body_bytes} byte limit")
        if credential == "known":
            return await self._receive(request, listen.max_body_bytes, listen.body_timeout_seconds)
        if self._unverified_reads.locked():
            raise ServerBusy("too many requests are waiting to be authenticated; retry shortly", retry_after=1)
        async with self._unverified_reads:
            return await self._receive(request, listen.max_body_bytes, listen.body_timeout_seconds)

    @staticmethod
    async def _receive(request: Request, limit: int, seconds: float) -> bytes:
        chunks, size = [], 0
        try:
            async with asyncio.timeout(seconds):
                async for chunk in request.stream():
                    size += len(chunk)
                    if size > limit:
                        raise RequestTooLarge(f"request body is over the {limit} byte limit")
                    chunks.append(chunk)
        except ClientDisconnect:
            raise InvalidRequest("the client disconnected while sending the request") from None
        except TimeoutError:
            raise RequestTimeout(f"the request body did not arrive within {seconds:g} seconds") from None
        return b"".join(chunks)

    async def _complete(self, result: Completed, ctx: Context, parsed: Inbound) -> Response:
        attempt = result.attempt
        ctx.provider, ctx.model = attempt.provider.name, attempt.route.model
        ctx.team_remaining = attempt.reservation.team_remaining
        body = result.answer.body
        try:
            body = await self.checked_output(result.answer.completion, body, ctx, parsed.endpoint)
        except GatewayError as exc:
            return self.respond_error(exc, ctx)  # recorded: the attempt's cost is in the ledger
        if ctx.decision and ctx.decision.log_level == "content":
            ctx.completion = answer_text(result.answer.completion)
        await self._remember(result.answer.response_id, parsed, ctx)
        self.record(ctx)
        return Response(body, media_type="application/json", headers=ctx.headers())

    async def checked_output(self, answer: dict[str, Any], body: bytes, ctx: Context, endpoint: str) -> bytes:
        """The second decision, on a whole answer: the detectors on what it says, then, when they found
        anything (or failed), data.gateway.output_decision: allow (as is), redact (the named types
        replaced), block (403). An answer without any signal is allowed without asking."""
        if endpoint == "embeddings" or ctx.asked is None or ctx.decision is None:
            return body  # vectors carry no text
        scanner = self._scanners.get(self._policy.mrn_patterns())
        signals = await scanner.scan(texts_in(answer))
        if not signals.counts and not signals.error:
            return body  # nothing for the output policy to act on: no second decision (half the policy cost)
        verdict = await self._gate.decide_output(*ctx.asked, signals.as_input(), ctx.decision)
        if verdict.verdict == "block":
            raise PolicyDenied(verdict.message, decision_id=ctx.decision.decision_id)
        if verdict.verdict == "redact" and verdict.redact:
            wanted = set(verdict.redact)
            return json.dumps(redact_body(answer, [d for d in scanner.detectors if d.name in wanted])).encode()
        return body

    async def _remember(self, response_id: str | None, parsed: Inbound, ctx: Context) -> None:
        """A stored response's owner, so follow-ups find its provider (and only its team does)."""
        if response_id and ctx.decision is not None and getattr(parsed, "store", False):
            await self.owners.remember(response_id, Owner(ctx.provider, ctx.model, ctx.decision.team))

    def _stream(self, result: Streaming, ctx: Context, parsed: Inbound) -> Response:
        attempt = result.attempt
        ctx.provider, ctx.model = attempt.provider.name, attempt.route.model
        ctx.team_remaining = attempt.reservation.team_remaining
        relay = self._relay(attempt, ctx, parsed)
        return RelayResponse(relay, media_type="text/event-stream", headers=ctx.headers())

    async def _relay(self, attempt: Attempt, ctx: Context, parsed: Inbound) -> AsyncIterator[bytes]:
        """Frames from the attempt, untouched; the record once the attempt has settled, however it ended;
        then, for a stream that ended normally, its settled cost as an SSE comment (headers went first)."""
        relay = attempt.relay()
        ended = False
        first = True
        try:
            async for out in relay:
                if first:
                    first = False
                    ttft = time.perf_counter() - ctx.started
                    self._metrics.genai_ttft.labels(**self._genai_labels(ctx, attempt)).observe(ttft)
                yield out
            ended = True
        finally:
            with anyio.CancelScope(shield=True):
                await relay.aclose()  # settles (abandons) the attempt if the client left mid-stream
                if attempt.abandoned:
                    ctx.status, ctx.error_code = 499, "client_disconnected"
                elif attempt.failure is not None:
                    ctx.status, ctx.error_code = 502, "upstream_error"
                state = attempt.state
                if state is not None and state.keep_text:
                    ctx.completion = "".join(state.text)
                ctx.team_remaining = attempt.reservation.team_remaining
                if state is not None and attempt.failure is None and not attempt.abandoned:
                    await self._remember(state.response_id, parsed, ctx)
                self.record(ctx)
        if ended:
            yield f": x-gateway-cost-usd={usd(ctx.cost_nusd)}\n\n".encode()

    def _account(self, ctx: Context, attempt: Attempt, team: str, use_case: str) -> int:
        """One attempt's charged usage into the request's totals and the cost-attribution metrics; its cost."""
        usage = attempt.usage
        if usage is None or not (usage.prompt_tokens or usage.completion_tokens):
            return 0
        provider, model = attempt.provider.name, attempt.route.model
        cost = attempt.cost_nusd
        ctx.prompt_tokens += usage.prompt_tokens
        ctx.completion_tokens += usage.completion_tokens
        ctx.cost_nusd += cost
        m = self._metrics
        m.tokens.labels(team=team, use_case=use_case, provider=provider, model=model, direction="prompt").inc(
            usage.prompt_tokens
        )
        m.tokens.labels(team=team, use_case=use_case, provider=provider, model=model, direction="completion").inc(
            usage.completion_tokens
        )
        m.cost.labels(team=team, use_case=use_case, provider=provider, model=model).inc(cost / NANO_PER_USD)
        genai = self._genai_labels(ctx, attempt)
        m.genai_tokens.labels(**genai, gen_ai_token_type="input").observe(usage.prompt_tokens)  # noqa: S106
        m.genai_tokens.labels(**genai, gen_ai_token_type="output").observe(usage.completion_tokens)  # noqa: S106
        if usage.reported and usage.prompt_tokens > 0:
            m.token_estimate_ratio.labels(provider=provider, model=model).observe(
                attempt.prompt_estimate / usage.prompt_tokens
            )
        return cost

    @staticmethod
    def _end_span(ctx: Context, provider: str, model: str) -> None:
        span = ctx.span
        if span is None:
            return
        d = ctx.decision
        last = ctx.walk.tried[-1] if ctx.walk.tried else None
        span.set_attributes(
            attributes(
                gen_ai__provider__name=GENAI_PROVIDERS.get(last.provider.kind, "") if last else None,
                gen_ai__response__model=model or None,
                gen_ai__usage__input_tokens=ctx.prompt_tokens,
                gen_ai__usage__output_tokens=ctx.completion_tokens,
                http__response__status_code=ctx.status,
                gateway__provider=provider or None,
                gateway__decision_id=d.decision_id if d else None,
                gateway__team=(d.team or None) if d else None,
                gateway__use_case=(d.use_case or None) if d else None,
                gateway__attempts=ctx.walk.attempts,
                gateway__cost_nusd=ctx.cost_nusd,
            )
        )
        if ctx.error_code:
            fail(span, ctx.error_code)
        span.end()
        ctx.span = None

    @staticmethod
    def _genai_labels(ctx: Context, attempt: Attempt) -> dict[str, str]:
        return {
            "gen_ai_operation_name": GENAI_OPERATIONS.get(ctx.api.endpoint, "chat"),
            "gen_ai_provider_name": GENAI_PROVIDERS.get(attempt.provider.kind, attempt.provider.kind),
            "gen_ai_request_model": attempt.route.model,
        }

    def _ledger_rows(self, ctx: Context, costs: list[int]) -> None:
        """One ledger row per attempt, or one for a request that made none (refused when it was a 4xx/5xx)."""
        if self.ledger is None:
            return
        d = ctx.decision
        common: dict[str, Any] = {
            "request_id": ctx.request_id,
            "decision_id": d.decision_id if d else None,
            "policy_revision": d.policy_revision if d else None,
            "team": (d.team or None) if d else None,
            "use_case": (d.use_case or None) if d else None,
            "classification": d.data_classification if d else ctx.classification,
            "endpoint": ctx.api.endpoint,
            "price_version": self._settings.prices_version,
            "instance": "",
            "seq": 0,
            "prev_hash": "",
        }
        now = time.time()
        for number, (attempt, cost) in enumerate(zip(ctx.walk.tried, costs, strict=True), start=1):
            usage = attempt.usage
            self.ledger.record(
                Row(
                    **common,
                    attempt=number,
                    refused=False,
                    provider=attempt.provider.name,
                    model=attempt.route.model,
                    prompt_tokens=usage.prompt_tokens if usage else 0,
                    completion_tokens=usage.completion_tokens if usage else 0,
                    cached_tokens=usage.cached_tokens if usage else 0,
                    reasoning_tokens=usage.reasoning_tokens if usage else 0,
                    cost_nusd=cost,
                    status=attempt.outcome,
                    started_at=attempt.started_at,
                    ended_at=attempt.ended_at or now,
                )
            )
        if not ctx.walk.tried:
            status = f"{ctx.status} {ctx.error_code}" if ctx.error_code else str(ctx.status)
            self.ledger.record(
                Row(
                    **common,
                    attempt=0,
                    refused=ctx.status >= 400,
                    provider=ctx.provider or None,
                    model=ctx.model or None,
                    prompt_tokens=0,
                    completion_tokens=0,
                    cached_tokens=0,
                    reasoning_tokens=0,
                    cost_nusd=0,
                    status=status,
                    started_at=ctx.started_at,
                    ended_at=now,
                )
            )

    def respond_error(self, exc: GatewayError, ctx: Context) -> Response:
        ctx.status, ctx.error_code = exc.status_code, exc.code
        self.record(ctx)
        headers = ctx.headers()
        if exc.retry_after is not None:
            # a dollar window resets at midnight or month end: its wait is not a provider cool-down's
            cap = 32 * 86400 if isinstance(exc, BudgetExceeded) else MAX_COOLDOWN_SECONDS
            headers["Retry-After"] = str(max(1, math.ceil(min(exc.retry_after, cap))))
        return JSONResponse(ctx.api.error_body(exc), status_code=exc.status_code, headers=headers)

    def record(self, ctx: Context) -> None:
        """Metrics and the one request record. Tokens and cost are what every attempt was charged."""
        d = ctx.decision
        team = d.team if d else ""
        use_case = d.use_case if d else ""
        provider, model = ctx.provider or ctx.walk.last_provider, ctx.model
        if not model and ctx.walk.tried:
            model = ctx.walk.tried[-1].route.model
        elapsed = time.perf_counter() - ctx.started
        m = self._metrics
        m.requests.labels(team=team, use_case=use_case, provider=provider, model=model, status=str(ctx.status)).inc()
        costs = [self._account(ctx, attempt, team, use_case) for attempt in ctx.walk.tried]
        for attempt in ctx.walk.tried:
            if attempt.upstream_seconds is not None:
                error = attempt.outcome if attempt.outcome != "ok" else ""
                labels = self._genai_labels(ctx, attempt)
                m.genai_duration.labels(**labels, error_type=error).observe(attempt.upstream_seconds)
        ctx.recorded = True
        ctx.usd_remaining = ctx.walk.usd_remaining()
        self._end_span(ctx, provider, model)
        self._ledger_rows(ctx, costs)
        m.request_duration.labels(provider=provider).observe(elapsed)
        last = ctx.walk.tried[-1] if ctx.walk.tried else None
        if last is not None and last.upstream_seconds is not None:
            ctx.upstream_seconds = last.upstream_seconds
            m.upstream_duration.labels(provider=provider).observe(ctx.upstream_seconds)
        log_level = d.log_level if d else "metadata"
        record = {
            "ts": logs.now_iso(),
            "request_id": ctx.request_id,
            "decision_id": d.decision_id if d else None,
            "policy_revision": d.policy_revision if d else None,
            "team": team or None,
            "use_case": use_case or None,
            "data_classification": d.data_classification if d else ctx.classification,
            "provider": provider or None,
            "model": model or None,
            "status": ctx.status,
            "error_code": ctx.error_code,
            "prompt_tokens": ctx.prompt_tokens,
            "completion_tokens": ctx.completion_tokens,
            "cost_usd": ctx.cost_nusd / NANO_PER_USD,
            "latency_ms": round(elapsed * 1000, 2),
            "upstream_latency_ms": round(ctx.upstream_seconds * 1000, 2) if ctx.upstream_seconds is not None else None,
            "attempts": ctx.walk.attempts,
            "stream": ctx.stream,
            "log_level": log_level,
        }
        logs.emit_request(record, log_level=log_level, content={"messages": ctx.messages, "completion": ctx.completion})


def context_headers(request: Request) -> tuple[str | None, str | None]:
    use_case = request.headers.get("x-use-case")
    if use_case is not None and not USE_CASE.match(use_case):
        raise InvalidRequest("X-Use-Case must be 1-64 letters, digits, '.', '_' or '-'")
    classification = request.headers.get("x-data-classification")
    if classification is not None:
        classification = classification.strip().lower()
        if classification not in CLASSIFICATIONS:
            raise InvalidRequest("X-Data-Classification must be phi, pii or none")
    return use_case, classification


class RelayResponse(StreamingResponse):
    """A StreamingResponse that always closes its body iterator, so the attempt settles even when the
    client leaves while a frame is being sent (Starlette then drops the iterator without closing it)."""

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            close = getattr(self.body_iterator, "aclose", None)
            if close is not None:
                with anyio.CancelScope(shield=True):
                    await close()


@contextlib.asynccontextmanager
async def _client_watch(request: Request) -> AsyncIterator[None]:
    """Raise ClientLeft in the body as soon as the client disconnects (the request body is already read,
    so the next ASGI message is the disconnect). Queued, sending or awaiting an answer: the attempt in
    flight is cancelled and abandons itself; nothing is left running."""
    task = asyncio.current_task()
    assert task is not None
    left = False

    async def watcher() -> None:
        nonlocal left
        while (await request.receive())["type"] != "http.disconnect":
            pass
        left = True
        task.cancel()

    watching = asyncio.create_task(watcher())
    try:
        yield
    except asyncio.CancelledError:
        if not left:
            raise
        task.uncancel()
        raise ClientLeft from None
    finally:
        watching.cancel()


def _content(parsed: Inbound) -> Any:
    """What a request record at `content` level shows of the prompt (only ever when the policy says so)."""
    body = parsed.body
    if parsed.endpoint == "embeddings":
        return body.get("input")
    if parsed.endpoint == "responses":
        return {"instructions": body.get("instructions"), "input": body.get("input")}
    if parsed.endpoint == "messages":
        return {"system": body.get("system"), "messages": body.get("messages")}
    return body.get("messages")
