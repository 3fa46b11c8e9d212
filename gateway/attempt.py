"""One upstream attempt, owned from its reservation to its settlement.

An Attempt holds all that one try at one route takes: the token reservation,
the breaker admission (perhaps a half-open probe permit), the upstream
response and, for a stream, the SSE parser and the translator. Whatever
happens -- an answer, a provider failure, an exception nobody listed in a
translator, the client leaving, a shutdown -- `_finish` runs exactly once and
leaves nothing held:

    outcome                               reservation settled with           breaker
    answer, or stream ended normally      the usage (reported, else counted)  success
    failed before the request was sent    nothing (released)                  failure when it is the provider's
    provider answered 3xx/4xx/429/5xx     nothing (error statuses are unbilled) failure for 3xx and 5xx
    failed after sending (timeout,        the prompt estimate, or more when   failure
      truncated, bad or too large answer)   content was already streamed
    client left or task cancelled         sent: as above; not sent: nothing   no verdict (probe permit returned)

For any stream that did not end normally the usage is the larger of what the
provider reported and what the gateway counted: Anthropic's `message_start`
reports `output_tokens: 1` whatever follows.

Any exception while building, sending, reading, parsing or translating is a
failed attempt (`AttemptFailed`), never an escape past the cleanup: before
the first frame reaches the client the router fails over; after it, `relay`
ends the stream with an error event.

Deadlines: a non-stream answer must arrive whole within `timeout_seconds`; a
stream must send its status line within `timeout_seconds`, its first content
within `first_content_timeout_seconds` (frames before it are held, so a stream
of keep-alives can still fail over) and end within `stream_timeout_seconds`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, Awaitable
from dataclasses import dataclass, field
from typing import Any, NoReturn, Protocol

import aiohttp
import anyio
from opentelemetry import trace
from opentelemetry.trace import Span, Tracer

from gateway.forward import CAUGHT, SENT_REASONS, AttemptFailed, Sent, Upstream, translate
from gateway.inbound import Inbound
from gateway.ledger.rows import Prices, cost_nusd
from gateway.metering.dollars import DollarBudgets, DollarHold
from gateway.metering.meter import Meter, Reservation
from gateway.metering.tokens import TokenCounter
from gateway.observe.tracing import OffTracer, fail, inject
from gateway.policy.engine import Route
from gateway.providers.base import Adapter, Answer, StreamState, StreamTranslator, UpstreamRequest, Usage, answer_text
from gateway.providers.sse import Event, SSEParser
from gateway.resilience.breakers import Breakers
from gateway.settings import ProviderSettings


class Decoder(Protocol):
    def feed(self, chunk: bytes) -> list[Event]: ...


@dataclass(frozen=True, slots=True)
class Services:
    """What every attempt uses, shared by the router."""

    upstream: Upstream
    meter: Meter
    breakers: Breakers
    counter: TokenCounter
    prices: dict[str, Prices]  # every served model's (checked at start)
    budgets: DollarBudgets | None = None
    tracer: Tracer = field(default_factory=OffTracer)


def as_failure(exc: Exception, *, stage: str) -> AttemptFailed:
    """Any exception of an attempt as an AttemptFailed: the one place where foreign exceptions end."""
    if isinstance(exc, AttemptFailed):
        return exc
    if isinstance(exc, CAUGHT):
        return translate(exc)
    if stage == "build":
        return AttemptFailed("untranslatable")
    return AttemptFailed("bad_answer")  # a translator or parser met what the provider's API never documents


class Attempt:
    def __init__(
        self,
        route: Route,
        provider: ProviderSettings,
        adapter: Adapter[Any],
        reservation: Reservation,
        prompt_estimate: int,
        *,
        probe: bool,
        services: Services,
        dollars: DollarHold | None = None,
    ) -> None:
        self.route = route
        self.provider = provider
        self.adapter = adapter
        self.reservation = reservation
        self.prompt_estimate = prompt_estimate
        self.probe = probe
        self.upstream_started = time.perf_counter()
        self.upstream_seconds: float | None = None
        self.dollars = dollars  # this attempt's reservation in the team's dollar budgets, if it has any
        self.span: Span | None = None  # its CLIENT span (tracing.py), ended when the attempt finishes
        self.cost_nusd = 0  # what the attempt cost, once finished (nano-dollars)
        self.started_at = time.time()  # wall clock, for the ledger
        self.ended_at: float | None = None
        self.usage: Usage | None = None  # set when the attempt finishes
        self.failure: AttemptFailed | None = None  # why it failed, when it did
        self.abandoned = False  # the client left or the task was cancelled
        self._services = services
        self._sent = Sent()
        self._response: aiohttp.ClientResponse | None = None
        self._translator: StreamTranslator | None = None
        self._parser: Decoder = SSEParser()
        self._held: list[bytes] = []
        self._finished = False

    @property
    def outcome(self) -> str:
        """For the ledger: ok, the failure's reason, or abandoned."""
        if self.abandoned:
            return "abandoned"
        return self.failure.reason if self.failure is not None else "ok"

    @property
    def state(self) -> StreamState | None:
        return self._translator.state if self._translator is not None else None

    # -- non-stream ----------------------------------------------------------

    async def complete(self, request: Inbound, max_tokens: int) -> Answer:
        """The whole answer, settled. Raises AttemptFailed when it failed (already settled and released)."""
        try:
            upstream_request = self._build(request, max_tokens)
            async with asyncio.timeout(self.provider.timeout_seconds):
                response = await self._open(upstream_request)
                body = await self._services.upstream.read_all(response, self.provider.max_answer_bytes)
            answer = self.adapter.parse(body, request)
            if answer.usage is None:  # missing or absurd usage: account with our own count, never trust it blindly
                text = answer_text(answer.completion) or ""
                completion = self._services.counter.count_text(text, self.route.model)
                answer.usage = Usage(self.prompt_estimate, completion, reported=False)
        except Exception as exc:
            await self._fail(as_failure(exc, stage="answer"))
        except BaseException:
            await self._abandon()
            raise
        await self._finish(answer.usage)
        return answer

    # -- stream ----------------------------------------------------------------

    async def open_stream(self, request: Inbound, max_tokens: int, *, keep_text: bool) -> None:
        """Send, then read until the first content (or the end). Raises AttemptFailed, already released."""
        loop = asyncio.get_running_loop()
        self._stream_deadline = loop.time() + self.provider.stream_timeout_seconds
        first_content = loop.time() + self.provider.first_content_timeout
        try:
            upstream_request = self._build(request, max_tokens)
            async with asyncio.timeout(self.provider.timeout_seconds):
                self._response = await self._open(upstream_request)
            self._translator = translator = self.adapter.translator(request, keep_text=keep_text)
            decoder = getattr(self.adapter, "decoder", None)  # framing other than SSE (Bedrock's event stream)
            if decoder is not None:
                self._parser = decoder()
            async with asyncio.timeout_at(min(first_content, self._stream_deadline)):
                while not (translator.state.deltas or translator.state.finished):
                    self._held.extend(await self._next_frames())
        except Exception as exc:
            await self._fail(as_failure(exc, stage="answer"))
        except BaseException:
            await self._abandon()
            raise

    async def relay(self) -> AsyncGenerator[bytes, None]:
        """The client's frames: the held ones, the rest as they come, then the closing ones or an error event.

        Settles in every case; a client that leaves mid-stream (cancellation or aclose) abandons it.
        """
        assert self._translator is not None
        failure: AttemptFailed | None = None
        try:
            try:
                held, self._held = self._held, []
                for out in held:
                    yield out
                while not self._translator.state.finished:
                    async with asyncio.timeout_at(self._stream_deadline):  # around the read, never a yield
                        frames = await self._next_frames()
                    for out in frames:
                        yield out
                closing = self._translator.close()
            except Exception as exc:
                failure = as_failure(exc, stage="answer")
            if failure is None:
                await self._finish(self._stream_usage(ended=True))
                for out in closing:
                    yield out
            else:
                await self._record_failure(failure)
                yield self._translator.error(f"the provider stream failed ({failure.reason}) after it started")
        finally:
            if not self._finished:
                await self._abandon()

    async def _next_frames(self) -> list[bytes]:
        assert self._response is not None and self._translator is not None
        chunk = await self._services.upstream.read_chunk(self._response)
        if not chunk:
            raise AttemptFailed("truncated")
        frames: list[bytes] = []
        for event in self._parser.feed(chunk):
            frames.extend(self._translator.translate(event))
        return frames

    def _stream_usage(self, *, ended: bool) -> Usage:
        """A stream's usage: never fewer completion tokens than content deltas were relayed.

        Ended normally: the provider's report (when it made one). Otherwise the larger of reported and
        counted, with the provider's prompt count when it gave one before the end, else our estimate.
        """
        state = self.state
        if state is None:
            return Usage(self.prompt_estimate if self._sent.sent else 0, 0, reported=False)
        reported = state.usage
        if reported is not None:
            completion = max(reported.completion_tokens, state.deltas)
            trusted = ended and completion == reported.completion_tokens
            return Usage(reported.prompt_tokens, completion, reported=trusted)
        prompt = state.prompt_tokens if state.prompt_tokens is not None else self.prompt_estimate
        return Usage(prompt, state.deltas, reported=False)

    # -- shared --------------------------------------------------------------

    def _build(self, request: Inbound, max_tokens: int) -> UpstreamRequest:
        upstream_model = self.provider.models[self.route.model]
        try:
            return self.adapter.build(request, self.provider, upstream_model, max_tokens)
        except Exception as exc:
            raise as_failure(exc, stage="build") from exc

    async def _open(self, request: UpstreamRequest) -> aiohttp.ClientResponse:
        self.upstream_started = time.perf_counter()
        inject(request.headers, self.span)  # W3C traceparent: the provider may join the trace
        return await self._services.upstream.open(self.provider, request, sent=self._sent)

    async def _fail(self, failure: AttemptFailed) -> NoReturn:
        """Settle a failed attempt, tell the breaker, and raise the failure for the router."""
        await self._record_failure(failure)
        raise failure

    async def _record_failure(self, failure: AttemptFailed) -> None:
        self.failure = failure
        charged = failure.reason in SENT_REASONS and self._sent.sent
        usage = self._stream_usage(ended=False) if charged else Usage(0, 0, reported=False)
        await self._finish(usage, ok=not failure.breaker_failure)

    async def _abandon(self) -> None:
        self.abandoned = True
        await self._finish(self._stream_usage(ended=False) if self._sent.sent else Usage(0, 0, reported=False))

    async def _finish(self, usage: Usage, *, ok: bool = True) -> None:
        """Exactly once: close the response, settle the reservation, give the breaker its verdict (or none)."""
        if self._finished:
            return
        self._finished = True
        self.usage = usage
        self.upstream_seconds = time.perf_counter() - self.upstream_started
        self.ended_at = time.time()
        s = self._services
        span = self.span
        parent = trace.set_span_in_context(span) if span is not None and span.get_span_context().is_valid else None
        with (
            anyio.CancelScope(shield=True),
            s.tracer.start_as_current_span("budget settle", context=parent) as settle_span,
        ):
            if self._response is not None:
                self._response.close()
            prices = s.prices[self.route.model]
            self.cost_nusd = cost_nusd(prices, usage.prompt_tokens, usage.completion_tokens, usage.cached_tokens)
            # three independent writes (tokens, dollars, breaker): one round trip of waiting, not three
            settling: list[Awaitable[Any]] = [
                s.meter.settle(self.reservation, usage.prompt_tokens + usage.completion_tokens)
            ]
            if self.dollars is not None and s.budgets is not None:
                settling.append(s.budgets.settle(self.dollars, self.cost_nusd))
            if not self.abandoned:
                settling.append(s.breakers.record(self.provider.name, ok, probe=self.probe))
            elif self.probe:
                settling.append(s.breakers.release_probe(self.provider.name))
            # gather also without Redis: settling in turn without yielding measured 2-3x the p99 at 64
            # connections (bench/proxy_overhead.py), the loop serving fewer of the waiting requests' reads
            await asyncio.gather(*settling)
            settle_span.set_attributes(
                {"gateway.tokens": usage.prompt_tokens + usage.completion_tokens, "gateway.cost_nusd": self.cost_nusd}
            )
        self._end_span(usage)

    def _end_span(self, usage: Usage) -> None:
        span = self.span
        if span is None:
            return
        span.set_attributes(
            {
                "gen_ai.usage.input_tokens": usage.prompt_tokens,
                "gen_ai.usage.output_tokens": usage.completion_tokens,
                "gen_ai.usage.cached_input_tokens": usage.cached_tokens,
                "gateway.cost_nusd": self.cost_nusd,
            }
        )
        span.add_event("settled", {"tokens": usage.prompt_tokens + usage.completion_tokens})
        if self.outcome != "ok":
            fail(span, self.outcome)
        span.end()
