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

A failure before the first byte reaches the client releases the reservation,
feeds the breaker, and moves on: a 429 starts the provider's shared cool-down
and, when the wait fits, queues for the same route; other failures go to the
next route. Attempts per request are bounded (`queue.max_attempts`). Nothing
left: 503 no_route_available with Retry-After, or the single route's own
502/504 when the policy allowed only one.

Non-stream attempts read and parse the whole answer before returning. Stream
attempts read until the first frame for the client is ready, so a stream that
fails at once can still fail over.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from gateway.chat import ChatRequest
from gateway.errors import InvalidRequest, NoRouteAvailable, RateLimited, UpstreamError, UpstreamTimeout
from gateway.forward import AttemptFailed, Upstream
from gateway.metering.meter import Meter, Reservation
from gateway.metering.store import Budget
from gateway.metering.tokens import TokenCounter
from gateway.observe.metrics import Metrics
from gateway.policy.engine import Decision, Route
from gateway.providers.base import Adapter, Answer, BadUpstreamAnswer, StreamTranslator, Usage, answer_text
from gateway.providers.registry import ADAPTERS
from gateway.providers.sse import SSEParser
from gateway.resilience.breakers import Breakers
from gateway.resilience.queue import ClientGone, CooldownQueue
from gateway.settings import ProviderSettings, Settings


@dataclass
class Attempt:
    route: Route
    provider: ProviderSettings
    adapter: Adapter
    reservation: Reservation
    prompt_estimate: int
    upstream_started: float
    probe: bool


@dataclass
class Completed:
    attempt: Attempt
    answer: Answer
    upstream_seconds: float


@dataclass
class Streaming:
    attempt: Attempt
    response: aiohttp.ClientResponse
    translator: StreamTranslator
    parser: SSEParser
    first_frames: list[bytes]
    chunks: Any  # the async iterator over upstream chunks, already started


@dataclass
class Walk:
    """What happened while walking the routes, for the record and the final error."""

    attempts: int = 0
    failures: list[AttemptFailed] = field(default_factory=list)
    retry_after: float | None = None
    last_provider: str = ""
    team_remaining: float | None = None  # as the store last reported it, for X-RateLimit-Remaining-Tokens
    waited: float = 0.0  # seconds spent in cool-down queues

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
    ) -> None:
        self._settings = settings
        self._upstream = upstream
        self._meter = meter
        self._breakers = breakers
        self._queue = queue
        self._counter = counter
        self._metrics = metrics
        self._providers = {p.name: p for p in settings.providers}

    async def estimate(self, chat: ChatRequest) -> int:
        """Prompt tokens of the request for the model it names (the policy input's prompt_tokens)."""
        return await self._counter.prompt_tokens_async(chat, chat.model)

    async def run(
        self,
        chat: ChatRequest,
        decision: Decision,
        max_tokens: int,
        walk: Walk,
        *,
        keep_text: bool,
        prompt_tokens: int | None = None,
        client_gone: ClientGone | None = None,
    ) -> Completed | Streaming:
        # the prompt was already counted for the requested model (the policy input): never count it twice
        estimates: dict[str, int] = {chat.model: prompt_tokens} if prompt_tokens is not None else {}
        previous: tuple[str, str] | None = None  # (provider, why we left it)
        for route in decision.routes:
            provider = self._providers.get(route.provider)
            if provider is None or route.model not in provider.models:
                continue
            while walk.attempts < self._settings.queue.max_attempts:
                gate = await self._breakers.peek(provider.name)
                if not gate.allowed:
                    if gate.reason == "cooldown" and await self._wait_out(provider.name, gate.wait, walk, client_gone):
                        continue
                    walk.wait_hint(gate.wait)
                    previous = (provider.name, gate.reason)
                    break
                prompt = estimates.get(route.model)
                if prompt is None:
                    prompt = estimates[route.model] = await self._counter.prompt_tokens_async(chat, route.model)
                reserved = await self._reserve(decision, provider, prompt + max_tokens, walk)
                if reserved is None:
                    previous = (provider.name, "provider_budget")
                    break
                admission = await self._breakers.admit(provider.name)
                if not admission.allowed:  # the state moved since the peek (another request's 429 or trip)
                    await self._meter.release(reserved)
                    if admission.reason == "cooldown" and await self._wait_out(
                        provider.name, admission.wait, walk, client_gone
                    ):
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
                    route, provider, ADAPTERS[provider.kind], reserved, prompt, time.perf_counter(), admission.probe
                )
                try:
                    if chat.stream:
                        return await self._open_stream(chat, attempt, max_tokens, keep_text=keep_text)
                    return await self._complete(chat, attempt, max_tokens)
                except AttemptFailed as failure:
                    await self._meter.release(reserved)
                    await self._breakers.record(provider.name, not failure.breaker_failure, probe=attempt.probe)
                    walk.failures.append(failure)
                    if failure.reason == "client_error":
                        raise InvalidRequest(
                            f"the provider refused this request (HTTP {failure.status})",
                            decision_id=decision.decision_id,
                        ) from None
                    if failure.reason == "rate_limited":
                        wait = failure.retry_after if failure.retry_after is not None else 1.0
                        await self._breakers.cooldown(provider.name, wait)
                        if await self._wait_out(provider.name, wait, walk, client_gone):
                            continue
                        walk.wait_hint(wait)
                    previous = (provider.name, failure.reason)
                    break
        raise self._exhausted(decision, walk)

    async def _wait_out(self, provider: str, seconds: float, walk: Walk, client_gone: ClientGone | None) -> bool:
        """Queue for a cool-down when the wait fits this request's remaining queue budget."""
        if walk.waited + seconds > self._settings.queue.max_wait_seconds:
            return False
        started = time.perf_counter()
        queued = await self._queue.wait(provider, seconds, client_gone)
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

    async def record_outcome(self, attempt: Attempt, failure: AttemptFailed | None) -> None:
        """A stream's outcome, known only when it ends: feeds the provider's breaker."""
        ok = failure is None or not failure.breaker_failure
        await self._breakers.record(attempt.provider.name, ok, probe=attempt.probe)

    def _exhausted(self, decision: Decision, walk: Walk) -> Exception:
        retry_after = max(1, math.ceil(walk.retry_after if walk.retry_after is not None else 1))
        reasons = {f.reason for f in walk.failures}
        only_one_route = len(decision.routes) == 1 and walk.attempts == 1
        if only_one_route and reasons == {"timeout"}:
            return UpstreamTimeout("the provider timed out", decision_id=decision.decision_id, retry_after=retry_after)
        if only_one_route and reasons and reasons <= {"connect", "status_5xx", "bad_answer", "truncated", "auth"}:
            return UpstreamError(
                "the provider failed to answer", decision_id=decision.decision_id, retry_after=retry_after
            )
        return NoRouteAvailable(
            "no allowed route can take this request now (failing, open-circuited or at its limits); retry later",
            retry_after=retry_after,
            decision_id=decision.decision_id,
        )

    async def _complete(self, chat: ChatRequest, attempt: Attempt, max_tokens: int) -> Completed:
        upstream_model = attempt.provider.models[attempt.route.model]
        request = attempt.adapter.build(chat, attempt.provider, upstream_model, max_tokens)
        response = await self._upstream.open(attempt.provider, request, stream=False)
        body = await self._upstream.read_all(response)
        try:
            answer = attempt.adapter.parse(body, chat)
        except BadUpstreamAnswer as exc:
            raise AttemptFailed("bad_answer") from exc
        if answer.usage is None:  # missing or absurd usage: account with our own count, never trust it blindly
            text = answer_text(answer.completion) or ""
            completion_tokens = self._counter.count_text(text, attempt.route.model)
            answer.usage = Usage(attempt.prompt_estimate, completion_tokens, reported=False)
        seconds = time.perf_counter() - attempt.upstream_started
        await self._breakers.record(attempt.provider.name, True, probe=attempt.probe)
        return Completed(attempt, answer, seconds)

    async def _open_stream(self, chat: ChatRequest, attempt: Attempt, max_tokens: int, *, keep_text: bool) -> Streaming:
        upstream_model = attempt.provider.models[attempt.route.model]
        request = attempt.adapter.build(chat, attempt.provider, upstream_model, max_tokens)
        response = await self._upstream.open(attempt.provider, request, stream=True)
        translator = attempt.adapter.translator(chat, keep_text=keep_text)
        parser = SSEParser()
        chunks = self._upstream.chunks(response).__aiter__()
        frames: list[bytes] = []
        try:
            while not frames:
                try:
                    chunk = await chunks.__anext__()
                except StopAsyncIteration:
                    raise AttemptFailed("truncated") from None
                for event in parser.feed(chunk):
                    frames.extend(translator.translate(event))
        except AttemptFailed:
            response.close()
            raise
        except (BadUpstreamAnswer, ValueError) as exc:  # ValueError: an SSE event over the size limit
            response.close()
            raise AttemptFailed("bad_answer") from exc
        return Streaming(attempt, response, translator, parser, frames, chunks)
