"""The request path, in order:

    read body -> parse -> credential -> decide (OPA) -> route: reserve, forward, fail over -> settle -> record

Each stage either passes on or raises a GatewayError, rendered once in
`respond_error`. Nothing here decides what is allowed: the decision does.
"""

from __future__ import annotations

import logging
import math
import re
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import anyio
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from gateway import authn, chat
from gateway.errors import (
    GatewayError,
    InvalidRequest,
    PolicyDenied,
    PolicyUnavailable,
    RequestTooLarge,
    Unauthenticated,
)
from gateway.forward import AttemptFailed
from gateway.metering.meter import Meter
from gateway.observe import logs
from gateway.observe.metrics import Metrics
from gateway.policy.decision_log import DecisionLogger
from gateway.policy.engine import UNAVAILABLE, Decision, PolicyEngine
from gateway.providers.base import BadUpstreamAnswer, Usage, answer_text
from gateway.providers.sse import frame
from gateway.resilience.queue import ClientGone, ClientLeft
from gateway.routing import Completed, Router, Streaming, Walk
from gateway.settings import Settings

log = logging.getLogger("gateway.pipeline")
USE_CASE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
CLASSIFICATIONS = ("phi", "pii", "none")


@dataclass
class Context:
    """What one request accumulates for its headers, its log record and its metrics."""

    request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    started: float = field(default_factory=time.perf_counter)
    decision: Decision | None = None
    classification: str | None = None
    stream: bool = False
    provider: str = ""
    model: str = ""
    status: int = 200
    error_code: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    upstream_seconds: float | None = None
    team_remaining: float | None = None
    walk: Walk = field(default_factory=Walk)
    messages: Any = None
    completion: str | None = None

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
        return headers


class ChatPipeline:
    def __init__(
        self,
        settings: Settings,
        policy: PolicyEngine,
        router: Router,
        meter: Meter,
        metrics: Metrics,
        decision_log: DecisionLogger,
    ) -> None:
        self._decision_log = decision_log
        self._settings = settings
        self._policy = policy
        self._router = router
        self._meter = meter
        self._metrics = metrics
        self._models = {m for p in settings.providers for m in p.models}

    async def __call__(self, request: Request) -> Response:
        ctx = Context()
        try:
            raw = await self._read_body(request)
            parsed = chat.parse(raw)
            ctx.stream = parsed.stream
            use_case, ctx.classification = _context_headers(request)
            if parsed.model not in self._models:
                raise InvalidRequest("model is not served by this gateway; GET /v1/models lists yours", param="model")
            prompt_estimate = await self._router.estimate(parsed)
            principal = authn.principal(request.headers.get("authorization"))
            decision = ctx.decision = await self._decide(principal, parsed, prompt_estimate, use_case, ctx, request)
            max_tokens = parsed.max_tokens or decision.max_tokens
            keep_text = decision.log_level == "content"  # the policy alone decides whether content may be logged
            if keep_text:
                ctx.messages = parsed.messages
            result = await self._router.run(
                parsed,
                decision,
                max_tokens,
                ctx.walk,
                keep_text=keep_text,
                prompt_tokens=prompt_estimate,
                client_gone=_disconnected(request),
            )
        except GatewayError as exc:
            return self.respond_error(exc, ctx)
        except ClientLeft:
            ctx.status, ctx.error_code = 499, "client_disconnected"
            self.record(ctx)
            return Response(status_code=499)  # nobody is listening; the record says what happened
        if isinstance(result, Completed):
            return await self._complete(result, ctx)
        return self._stream(result, ctx)

    async def _read_body(self, request: Request) -> bytes:
        limit = self._settings.listen.max_body_bytes
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > limit:
            raise RequestTooLarge(f"request body is over the {limit} byte limit")
        chunks, size = [], 0
        try:
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise RequestTooLarge(f"request body is over the {limit} byte limit")
                chunks.append(chunk)
        except ClientDisconnect:
            raise InvalidRequest("the client disconnected while sending the request") from None
        return b"".join(chunks)

    async def _decide(
        self,
        principal: authn.Principal,
        parsed: chat.ChatRequest,
        prompt_tokens: int,
        use_case: str | None,
        ctx: Context,
        request: Request,
    ) -> Decision:
        policy_input = {
            "principal": principal.as_input(),
            "request": {
                "endpoint": "chat.completions",
                "model": parsed.model,
                "stream": parsed.stream,
                "max_tokens": parsed.max_tokens,
                "prompt_tokens": prompt_tokens,
            },
            "context": {
                "use_case": use_case,
                "data_classification": ctx.classification,
                "client_ip": request.client.host if request.client else None,
            },
        }
        started = time.perf_counter_ns()
        decision = await self._policy.decide(policy_input)
        elapsed = time.perf_counter_ns() - started
        self._metrics.policy_eval.observe(elapsed / 1e9)
        self._decision_log.record(policy_input, decision, path="gateway/decision", eval_ns=elapsed)
        outcome = "error" if decision.error else ("allow" if decision.allow else "deny")
        self._metrics.policy_decisions.labels(result=outcome).inc()
        if decision.allow:
            return decision
        ctx.decision = decision
        if decision.error in UNAVAILABLE:
            raise PolicyUnavailable(
                "the policy engine cannot answer now; retry later", retry_after=1, decision_id=decision.decision_id
            )
        if decision.unauthenticated:
            raise Unauthenticated("no valid API key or token for a known team", decision_id=decision.decision_id)
        reasons = "; ".join(f"{r.code}: {r.message}" for r in decision.reasons) or "denied by policy"
        raise PolicyDenied(reasons, decision_id=decision.decision_id)

    async def _complete(self, result: Completed, ctx: Context) -> Response:
        attempt = result.attempt
        ctx.provider, ctx.model = attempt.provider.name, attempt.route.model
        ctx.upstream_seconds = result.upstream_seconds
        assert result.answer.usage is not None  # the router fills in a counted usage when the provider's is unusable
        await self._settle(ctx, attempt, result.answer.usage)
        if ctx.decision and ctx.decision.log_level == "content":
            ctx.completion = answer_text(result.answer.completion)
        self.record(ctx)
        return Response(result.answer.body, media_type="application/json", headers=ctx.headers())

    def _stream(self, result: Streaming, ctx: Context) -> Response:
        attempt = result.attempt
        ctx.provider, ctx.model = attempt.provider.name, attempt.route.model
        ctx.team_remaining = attempt.reservation.team_remaining
        return StreamingResponse(self._relay(result, ctx), media_type="text/event-stream", headers=ctx.headers())

    async def _relay(self, result: Streaming, ctx: Context) -> AsyncIterator[bytes]:
        state = result.translator.state
        recorded = False
        try:
            for first in result.first_frames:
                yield first
            while not state.finished:
                try:
                    chunk = await result.chunks.__anext__()
                except StopAsyncIteration:
                    raise AttemptFailed("truncated") from None
                for event in result.parser.feed(chunk):
                    for out in result.translator.translate(event):
                        yield out
            for out in result.translator.close():
                yield out
        except (AttemptFailed, BadUpstreamAnswer, ValueError) as exc:
            reason = exc.reason if isinstance(exc, AttemptFailed) else "bad_answer"
            ctx.status, ctx.error_code = 502, "upstream_error"
            recorded = True
            await self._router.record_outcome(result.attempt, AttemptFailed(reason))
            yield frame(
                {
                    "error": {
                        "type": "api_error",
                        "code": "upstream_error",
                        "message": f"the provider stream failed ({reason}) after it started",
                        "param": None,
                    }
                }
            )
        except BaseException:
            ctx.status, ctx.error_code = 499, "client_disconnected"
            raise
        else:
            recorded = True
            await self._router.record_outcome(result.attempt, None)
        finally:
            with anyio.CancelScope(shield=True):
                result.response.close()
                ctx.upstream_seconds = time.perf_counter() - result.attempt.upstream_started
                if not recorded:  # the client left: the provider was answering, so this is no failure of its own
                    await self._router.record_outcome(result.attempt, None)
                usage = state.usage or Usage(result.attempt.prompt_estimate, state.deltas, reported=False)
                await self._settle(ctx, result.attempt, usage)
                if state.keep_text:
                    ctx.completion = "".join(state.text)
                self.record(ctx)

    async def _settle(self, ctx: Context, attempt: Any, usage: Usage) -> None:
        reservation = attempt.reservation
        await self._meter.settle(reservation, usage.prompt_tokens + usage.completion_tokens)
        ctx.team_remaining = reservation.team_remaining
        ctx.prompt_tokens, ctx.completion_tokens = usage.prompt_tokens, usage.completion_tokens
        price = self._settings.prices.get(attempt.route.model)
        if price:
            ctx.cost_usd = (usage.prompt_tokens * price.input + usage.completion_tokens * price.output) / 1_000_000
        if usage.reported and usage.prompt_tokens > 0:
            self._metrics.token_estimate_ratio.labels(
                provider=attempt.provider.name, model=attempt.route.model
            ).observe(attempt.prompt_estimate / usage.prompt_tokens)

    def respond_error(self, exc: GatewayError, ctx: Context) -> Response:
        ctx.status, ctx.error_code = exc.status_code, exc.code
        headers = ctx.headers()
        if exc.retry_after is not None:
            headers["Retry-After"] = str(max(1, math.ceil(exc.retry_after)))
        self.record(ctx)
        return JSONResponse(exc.body(), status_code=exc.status_code, headers=headers)

    def record(self, ctx: Context) -> None:
        d = ctx.decision
        team = d.team if d else ""
        use_case = d.use_case if d else ""
        provider, model = ctx.provider or ctx.walk.last_provider, ctx.model
        elapsed = time.perf_counter() - ctx.started
        m = self._metrics
        m.requests.labels(team=team, use_case=use_case, provider=provider, model=model, status=str(ctx.status)).inc()
        if ctx.prompt_tokens or ctx.completion_tokens:
            m.tokens.labels(team=team, use_case=use_case, provider=provider, model=model, direction="prompt").inc(
                ctx.prompt_tokens
            )
            m.tokens.labels(team=team, use_case=use_case, provider=provider, model=model, direction="completion").inc(
                ctx.completion_tokens
            )
            m.cost.labels(team=team, use_case=use_case, provider=provider, model=model).inc(ctx.cost_usd)
        m.request_duration.labels(provider=provider).observe(elapsed)
        if ctx.upstream_seconds is not None:
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
            "cost_usd": round(ctx.cost_usd, 8),
            "latency_ms": round(elapsed * 1000, 2),
            "upstream_latency_ms": round(ctx.upstream_seconds * 1000, 2) if ctx.upstream_seconds is not None else None,
            "attempts": ctx.walk.attempts,
            "stream": ctx.stream,
            "log_level": log_level,
        }
        logs.emit_request(record, log_level=log_level, content={"messages": ctx.messages, "completion": ctx.completion})


def _context_headers(request: Request) -> tuple[str | None, str | None]:
    use_case = request.headers.get("x-use-case")
    if use_case is not None and not USE_CASE.match(use_case):
        raise InvalidRequest("X-Use-Case must be 1-64 letters, digits, '.', '_' or '-'")
    classification = request.headers.get("x-data-classification")
    if classification is not None:
        classification = classification.strip().lower()
        if classification not in CLASSIFICATIONS:
            raise InvalidRequest("X-Data-Classification must be phi, pii or none")
    return use_case, classification


def _disconnected(request: Request) -> ClientGone:
    """Resolves when the client goes away (the body is already read, so the next message is the disconnect)."""

    async def gone() -> None:
        while (await request.receive())["type"] != "http.disconnect":
            pass

    return gone
