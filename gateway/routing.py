"""Walk the policy's routes in order until one answers.

Only routes the decision listed are ever tried, so PHI and residency hold
during failover. For each route:

1. skip it when the provider is not configured or does not map the model;
2. ask its breaker (cached, usually no round trip): open -> next route;
   cooling down after a 429 -> wait in the provider's FIFO queue when the wait
   fits what is left of `queue.max_wait_seconds` (then try it again), else next route;
3. reserve tokens in the team and provider budgets together: team short -> 429
   for the whole request; provider short -> next route;
4. take the breaker's admission (a half-open provider hands out a limited
   number of probe permits across instances) and send.

A failure before the first byte reaches the client has already been settled
by its Attempt (see attempt.py); the router moves on: a 429 starts the
provider's shared cool-down and, when the wait fits and this route has 429
retries left in this request (`queue.max_retries_per_route`), queues for the
same route; other failures go to the next route. Attempts per request are
bounded (`queue.max_attempts`). Nothing left: 503 no_route_available with
Retry-After, or the single route's own 502/504 when the policy allowed only one.

Non-stream attempts read and parse the whole answer before returning. Stream
attempts read until the first content for the client is ready, so a stream that
fails at once, or sends only keep-alives, can still fail over.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

from gateway.attempt import Attempt, Services
from gateway.errors import (
    BudgetExceeded,
    InvalidRequest,
    NoRouteAvailable,
    RateLimited,
    UpstreamAnswerTooLarge,
    UpstreamError,
    UpstreamTimeout,
)
from gateway.forward import AttemptFailed, Upstream
from gateway.inbound import Inbound
from gateway.ledger import price_table
from gateway.ledger.rows import Prices, cost_nusd, usd
from gateway.metering.dollars import BudgetShort, DollarBudgets, DollarHold, DollarLimit
from gateway.metering.meter import Meter, Reservation
from gateway.metering.store import Budget
from gateway.metering.tokens import TokenCounter
from gateway.observe.metrics import GENAI_OPERATIONS, GENAI_PROVIDERS, Metrics
from gateway.observe.tracing import OffTracer, SpanKind, Tracer, attributes, fail
from gateway.policy.engine import Decision
from gateway.providers.base import Answer
from gateway.providers.registry import adapter_for, serves
from gateway.resilience.breakers import Breakers
from gateway.resilience.queue import CooldownQueue
from gateway.settings import ProviderSettings, Settings


@dataclass
class Completed:
    attempt: Attempt
    answer: Answer


@dataclass
class Streaming:
    attempt: Attempt  # opened: its first frames are held, `attempt.relay()` yields them and the rest


@dataclass
class Walk:
    """What happened while walking the routes, for the record and the final error."""

    attempts: int = 0
    failures: list[AttemptFailed] = field(default_factory=list)
    retry_after: float | None = None
    last_provider: str = ""
    team_remaining: float | None = None  # as the store last reported it, for X-RateLimit-Remaining-Tokens
    waited: float = 0.0  # seconds spent in cool-down queues
    tried: list[Attempt] = field(default_factory=list)  # every attempt sent or settled, in order
    usd_short: int | None = None  # the dollar room left when a dollar budget refused the request

    def usd_remaining(self) -> int | None:
        """Nano-dollars left in the tightest dollar budget after this request (None: no dollar budget)."""
        held = [a for a in self.tried if a.dollars is not None]
        if held:
            last = held[-1]
            assert last.dollars is not None
            return last.dollars.remaining_nusd + last.dollars.amount - last.cost_nusd
        return self.usd_short

    def wait_hint(self, seconds: float | None) -> None:
        if seconds is not None and seconds >= 0:
            self.retry_after = seconds if self.retry_after is None else min(self.retry_after, seconds)


class Router:
    def __init__(
        self,
        settings: Settings,
        upstream: Upstream,
        meter: Meter,
        breakers: Breakers,
        queue: CooldownQueue,
        counter: TokenCounter,
        metrics: Metrics,
        *,
        prices: dict[str, Prices] | None = None,
        budgets: DollarBudgets | None = None,
        tracer: Tracer | None = None,
    ) -> None:
        self._settings = settings
        self._budgets = budgets
        self._prices = prices if prices is not None else price_table(settings)
        self._meter = meter
        self._breakers = breakers
        self._queue = queue
        self._counter = counter
        self._metrics = metrics
        self._tracer = tracer or OffTracer()
        self._services = Services(upstream, meter, breakers, counter, self._prices, budgets, self._tracer)
        self._providers = {p.name: p for p in settings.providers}

    async def estimate(self, request: Inbound) -> int:
        """Prompt tokens of the request for the model it names (the policy input's prompt_tokens)."""
        return await self._counter.prompt_tokens_async(request, request.model)

    async def run(
        self,
        request: Inbound,
        decision: Decision,
        max_tokens: int,
        walk: Walk,
        *,
        keep_text: bool,
        prompt_tokens: int | None = None,
        dollars: tuple[DollarLimit, ...] = (),
    ) -> Completed | Streaming:
        # the prompt was already counted for the requested model (the policy input): never count it twice
        estimates: dict[str, int] = {request.model: prompt_tokens} if prompt_tokens is not None else {}
        previous: tuple[str, str] | None = None  # (provider, why we left it)
        q = self._settings.queue
        for route in decision.routes:
            provider = self._providers.get(route.provider)
            if provider is None or route.model not in provider.models:
                continue
            adapter = adapter_for(request.endpoint, provider.kind)
            if adapter is None or not serves(provider, route.model, request.endpoint):
                walk.failures.append(AttemptFailed("untranslatable"))  # this route cannot serve the endpoint
                continue
            retries = 0  # 429 retries of this route in this request
            while walk.attempts < q.max_attempts:
                gate = await self._breakers.peek(provider.name)
                if not gate.allowed:
                    if gate.reason == "cooldown" and await self._wait_out(provider.name, gate.wait, walk):
                        continue
                    walk.wait_hint(gate.wait)
                    previous = (provider.name, gate.reason)
                    break
                prompt = estimates.get(route.model)
                if prompt is None:
                    prompt = estimates[route.model] = await self._counter.prompt_tokens_async(request, route.model)
                with self._tracer.start_as_current_span(
                    "budget reserve",
                    attributes=attributes(gateway__provider=provider.name, gateway__tokens=prompt + max_tokens),
                ) as span:
                    reserved = await self._reserve(decision, provider, prompt + max_tokens, walk)
                    if reserved is None:
                        fail(span, "provider_budget")
                        previous = (provider.name, "provider_budget")
                        break
                    hold = await self._hold_dollars(decision, dollars, route.model, prompt, max_tokens, reserved, walk)
                admission = await self._breakers.admit(provider.name)
                if not admission.allowed:  # the state moved since the peek (another request's 429 or trip)
                    await self._meter.release(reserved)
                    if hold is not None and self._budgets is not None:
                        await self._budgets.settle(hold, 0)
                    if admission.reason == "cooldown" and await self._wait_out(provider.name, admission.wait, walk):
                        continue
                    walk.wait_hint(admission.wait)
                    previous = (provider.name, admission.reason)
                    break
                if previous is not None:
                    self._metrics.failovers.labels(
                        from_provider=previous[0], to_provider=provider.name, reason=previous[1]
                    ).inc()
                    previous = None
                walk.attempts += 1
                walk.last_provider = provider.name
                attempt = Attempt(
                    route,
                    provider,
                    adapter,
                    reserved,
                    prompt,
                    probe=admission.probe,
                    services=self._services,
                    dollars=hold,
                )
                walk.tried.append(attempt)
                attempt.span = self._tracer.start_span(
                    f"{GENAI_OPERATIONS.get(request.endpoint, 'chat')} {route.model}",
                    kind=SpanKind.CLIENT,
                    attributes=attributes(
                        gen_ai__operation__name=GENAI_OPERATIONS.get(request.endpoint, "chat"),
                        gen_ai__provider__name=GENAI_PROVIDERS.get(provider.kind, provider.kind),
                        gen_ai__request__model=route.model,
                        gateway__provider=provider.name,
                        gateway__attempt=walk.attempts,
                    ),
                )
                try:
                    if request.stream:
                        await attempt.open_stream(request, max_tokens, keep_text=keep_text)
                        return Streaming(attempt)
                    return Completed(attempt, await attempt.complete(request, max_tokens))
                except AttemptFailed as failure:
                    walk.failures.append(failure)
                    if failure.reason == "client_error":
                        raise InvalidRequest(
                            f"the provider refused this request (HTTP {failure.status})",
                            decision_id=decision.decision_id,
                        ) from None
                    if failure.reason == "rate_limited":
                        wait = failure.retry_after if failure.retry_after is not None else 1.0
                        await self._breakers.cooldown(provider.name, wait)
                        if retries < q.max_retries_per_route and await self._wait_out(provider.name, wait, walk):
                            retries += 1
                            continue
                        walk.wait_hint(wait)
                    previous = (provider.name, failure.reason)
                    break
        raise self._exhausted(decision, walk)

    async def _hold_dollars(
        self,
        decision: Decision,
        dollars: tuple[DollarLimit, ...],
        model: str,
        prompt: int,
        max_tokens: int,
        reserved: Reservation,
        walk: Walk,
    ) -> DollarHold | None:
        """Reserve this route's worst case (prompt + the completion cap at its model's prices) in every dollar
        budget; a short budget refuses the whole request (429 budget_exceeded), its tokens released."""
        if not dollars or self._budgets is None:
            return None
        worst = cost_nusd(self._prices[model], prompt, max_tokens)
        try:
            return await self._budgets.reserve(dollars, worst)
        except BudgetShort as short:
            await self._meter.release(reserved)
            walk.usd_short = short.remaining_nusd
            scope = "the team" if short.limit.scope == "team" else f"use case {decision.use_case}"
            raise BudgetExceeded(
                f"team {decision.team}'s dollar budget for the {short.limit.window} ({scope}) is spent: "
                f"this request could cost up to {usd(worst)} USD",
                retry_after=short.retry_after,
                decision_id=decision.decision_id,
            ) from None

    async def _wait_out(self, provider: str, seconds: float, walk: Walk) -> bool:
        """Queue for a cool-down when the wait fits this request's remaining queue budget."""
        if walk.waited + seconds > self._settings.queue.max_wait_seconds:
            return False
        started = time.perf_counter()
        queued = await self._queue.wait(provider, seconds)
        walk.waited += time.perf_counter() - started
        return queued

    async def _reserve(
        self, decision: Decision, provider: ProviderSettings, amount: int, walk: Walk
    ) -> Reservation | None:
        if amount > decision.tokens_per_minute:
            raise InvalidRequest(
                f"this request needs about {amount} tokens, more than team {decision.team}'s "
                f"{decision.tokens_per_minute} tokens per minute: shorten the prompt or lower max_tokens",
                decision_id=decision.decision_id,
            )
        team_budget = Budget(f"team:{decision.team}", decision.tokens_per_minute)
        provider_budget = Budget(f"provider:{provider.name}", provider.limits.tokens_per_minute)
        reserved = await self._meter.reserve(team_budget, provider_budget, amount)
        walk.team_remaining = reserved.team_remaining
        if isinstance(reserved, Reservation):
            return reserved
        if reserved.status == "team_short":
            raise RateLimited(
                f"team {decision.team} has used its {decision.tokens_per_minute} tokens per minute",
                retry_after=max(1, math.ceil(reserved.retry_after)),
                decision_id=decision.decision_id,
            )
        walk.wait_hint(reserved.retry_after)
        return None

    def _exhausted(self, decision: Decision, walk: Walk) -> Exception:
        retry_after = max(1, math.ceil(walk.retry_after if walk.retry_after is not None else 1))
        reasons = {f.reason for f in walk.failures}
        if reasons == {"untranslatable"}:
            return InvalidRequest(
                "this request cannot be put into the format of any provider the policy allows",
                decision_id=decision.decision_id,
            )
        only_one_route = len(decision.routes) == 1 and walk.attempts == 1
        if only_one_route and reasons == {"timeout"}:
            return UpstreamTimeout("the provider timed out", decision_id=decision.decision_id, retry_after=retry_after)
        if only_one_route and reasons == {"too_large"}:
            return UpstreamAnswerTooLarge(
                "the provider's answer is over this gateway's size limit",
                decision_id=decision.decision_id,
                retry_after=retry_after,
            )
        failed = {"connect", "status_5xx", "bad_answer", "truncated", "auth", "redirect", "too_large", "not_ready"}
        if only_one_route and reasons and reasons <= failed:
            return UpstreamError(
                "the provider failed to answer", decision_id=decision.decision_id, retry_after=retry_after
            )
        return NoRouteAvailable(
            "no allowed route can take this request now (failing, open-circuited or at its limits); retry later",
            retry_after=retry_after,
            decision_id=decision.decision_id,
        )
