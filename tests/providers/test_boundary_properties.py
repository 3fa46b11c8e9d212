"""Whatever a provider answers, the router keeps its promises (hypothesis, real router, real HTTP on loopback).

For each adapter, drawn answers (statuses, headers, bodies in arbitrary pieces, stream event sequences with
wrong types, garbage, comments and any line endings) go through the real Router against a stand-in that
writes them byte for byte. After every case:

- the outcome is an answer, a stream, or a GatewayError that is 400, 502, 503 or 504: never anything else;
- every reservation was settled or released: the team's budget holds exactly what the attempts were charged;
- every half-open probe permit was returned;
- a stream's settled completion tokens are never fewer than the content deltas the client received.

GATEWAY_PROPERTY_EXAMPLES sets the number of cases per adapter (default 800; more for a soak run).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.chat import from_body
from gateway.demo.standins import BackgroundLoop, Behavior, Raw, StandIn, StandInServers, provider_config
from gateway.errors import GatewayError
from gateway.forward import Upstream
from gateway.metering.meter import Meter
from gateway.metering.tokens import TokenCounter
from gateway.observe.metrics import Metrics
from gateway.policy.engine import Decision, Route
from gateway.providers.sse import SSEParser
from gateway.resilience.breakers import LocalBreakers
from gateway.resilience.queue import CooldownQueue
from gateway.routing import Completed, Router, Walk
from gateway.settings import Settings, from_dict
from tests.harness import PRICES

EXAMPLES = int(os.environ.get("GATEWAY_PROPERTY_EXAMPLES", "800"))
MODELS = {"openai": "gpt-4o", "azure_openai": "gpt-4o", "anthropic": "claude-sonnet-4"}

# -- drawn answers ----------------------------------------------------------------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False)
    | st.text(st.characters(codec="utf-8"), max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=4,
)


def field(valid: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Mostly the documented value, sometimes any JSON at all."""
    return st.one_of(valid, valid, valid, json_values)


tokens = field(st.integers(0, 5000))
texts = field(st.text(st.characters(codec="utf-8"), max_size=16))


def openai_answer() -> st.SearchStrategy[dict[str, Any]]:
    message = st.fixed_dictionaries({"role": field(st.just("assistant")), "content": texts})
    choice = st.fixed_dictionaries(
        {"index": field(st.just(0)), "message": field(message), "finish_reason": field(st.just("stop"))}
    )
    usage = st.fixed_dictionaries({"prompt_tokens": tokens, "completion_tokens": tokens})
    return st.fixed_dictionaries(
        {"id": texts, "object": field(st.just("chat.completion")), "choices": field(st.lists(choice, max_size=2))},
        optional={"usage": field(usage)},
    )


def anthropic_answer() -> st.SearchStrategy[dict[str, Any]]:
    block = st.one_of(
        st.fixed_dictionaries({"type": field(st.just("text")), "text": texts}),
        st.fixed_dictionaries(
            {"type": st.just("tool_use"), "id": texts, "name": texts, "input": field(st.just({"a": 1}))}
        ),
    )
    usage = st.fixed_dictionaries({"input_tokens": tokens, "output_tokens": tokens})
    return st.fixed_dictionaries(
        {"id": texts, "type": field(st.just("message")), "content": field(st.lists(block, max_size=3))},
        optional={"usage": field(usage), "stop_reason": field(st.sampled_from(["end_turn", "max_tokens", "tool_use"]))},
    )


def openai_events() -> st.SearchStrategy[list[tuple[str | None, Any]]]:
    delta = st.fixed_dictionaries({}, optional={"content": texts, "role": texts, "tool_calls": json_values})
    chunk = st.fixed_dictionaries(
        {"choices": field(st.lists(st.fixed_dictionaries({"delta": field(delta)}), max_size=2))},
        optional={"usage": field(st.fixed_dictionaries({"prompt_tokens": tokens, "completion_tokens": tokens}))},
    )
    event = st.one_of(chunk, chunk, chunk, st.just("[DONE]"), json_values, st.just({"error": {"message": "x"}}))
    return st.lists(st.tuples(st.none(), event), max_size=12)


def anthropic_events() -> st.SearchStrategy[list[tuple[str | None, Any]]]:
    usage = st.fixed_dictionaries({}, optional={"input_tokens": tokens, "output_tokens": tokens})
    kinds: list[st.SearchStrategy[Any]] = [
        st.fixed_dictionaries(
            {"type": st.just("message_start"), "message": field(st.fixed_dictionaries({"id": texts, "usage": usage}))}
        ),
        st.fixed_dictionaries(
            {
                "type": st.just("content_block_start"),
                "index": field(st.integers(0, 3)),
                "content_block": field(st.fixed_dictionaries({"type": st.sampled_from(["text", "tool_use"])})),
            }
        ),
        st.fixed_dictionaries(
            {
                "type": st.just("content_block_delta"),
                "index": field(st.integers(0, 3)),
                "delta": field(
                    st.one_of(
                        st.fixed_dictionaries({"type": st.just("text_delta"), "text": texts}),
                        st.fixed_dictionaries({"type": st.just("input_json_delta"), "partial_json": texts}),
                    )
                ),
            }
        ),
        st.fixed_dictionaries(
            {"type": st.just("message_delta"), "delta": field(st.just({"stop_reason": "end_turn"})), "usage": usage}
        ),
        st.just({"type": "message_stop"}),
        st.just({"type": "ping"}),
        st.just({"type": "error", "error": {"type": "overloaded_error"}}),
        json_values,
    ]
    named = st.one_of(*kinds).map(lambda e: (e.get("type") if isinstance(e, dict) else None, e))
    return st.lists(named, max_size=14)


line_endings = st.sampled_from(["\n", "\r\n", "\r"])
statuses = st.sampled_from([200] * 12 + [201, 204, 301, 307, 308, 400, 401, 404, 408, 429, 500, 503, 529])
retry_after = st.one_of(
    st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=12),  # what an HTTP server can send
    st.sampled_from(["0", "1", "5 seconds", "120, 120", "9" * 400, "Wed, 21 Oct 2015 07:28:00 GMT", "-3", "1e9"]),
)


@st.composite
def answers(draw: st.DrawFn, kind: str, stream: bool) -> Raw:
    status = draw(statuses)
    headers: list[tuple[str, str]] = []
    if draw(st.booleans()):
        headers.append(("Retry-After", draw(retry_after)))
    if stream and status == 200:
        headers.append(("Content-Type", "text/event-stream"))
        ending = draw(line_endings)
        events = draw(anthropic_events() if kind == "anthropic" else openai_events())
        text = ""
        for name, data in events:
            if draw(st.integers(0, 5)) == 0:
                text += ": keep-alive" + ending
            payload = data if isinstance(data, str) else json.dumps(data)
            text += (f"event: {name}{ending}" if name else "") + f"data: {payload}{ending}{ending}"
        body = text.encode()
    else:
        headers.append(("Content-Type", "application/json"))
        answer = anthropic_answer() if kind == "anthropic" else openai_answer()
        body = draw(
            st.one_of(
                answer.map(lambda a: json.dumps(a).encode()),
                answer.map(lambda a: json.dumps(a).encode()[: len(json.dumps(a)) // 2]),
                st.binary(max_size=64),
                st.sampled_from([1_000, 50_000]).map(lambda n: b"[" * n + b"]" * n),
            )
        )
    cuts = sorted(draw(st.lists(st.integers(0, max(0, len(body))), max_size=4)))
    pieces = [body[a:b] for a, b in zip([0, *cuts], [*cuts, len(body)], strict=True) if body[a:b]]
    return Raw(status, tuple(headers), tuple(pieces))


# -- the harness ------------------------------------------------------------------


@dataclass
class Bench:
    loop: BackgroundLoop
    servers: StandInServers
    upstream: Upstream
    counter: TokenCounter
    settings: dict[str, Settings]


@pytest.fixture(scope="module")
def bench() -> Iterator[Bench]:
    loop = BackgroundLoop("boundary-properties")
    standins = [StandIn(f"{kind}-a", kind) for kind in MODELS]  # type: ignore[arg-type]
    servers = StandInServers(standins)
    upstream = Upstream()
    loop.run(servers.start())
    loop.run(upstream.start())
    per_kind: dict[str, Settings] = {}
    for s in standins:
        first = {**provider_config(s, timeout_seconds=2.0), "first_content_timeout_seconds": 1.0}
        second = {**first, "name": s.name.replace("-a", "-b")}  # the same server as a second route
        per_kind[s.kind] = from_dict(
            {
                "providers": [first, second],
                "prices": PRICES,
                "queue": {"max_wait_seconds": 0, "max_attempts": 3},
                "breaker": {"min_requests": 1000},
            }
        )
    try:
        yield Bench(loop, servers, upstream, TokenCounter(), per_kind)
    finally:
        loop.run(upstream.close())
        loop.run(servers.stop())
        loop.close()


def _decision(team: str, model: str, providers: list[str]) -> Decision:
    routes = tuple(Route(p, model) for p in providers)
    return Decision(True, team, "uc", (), "metadata", routes, 10_000_000, 4096, "none", "d-1", "rev")


async def _case(bench: Bench, kind: str, stream: bool, raws: list[Raw], probe: bool, case: int) -> None:
    settings = bench.settings[kind]
    standin = bench.servers[f"{kind}-a"]
    standin.set_default(Behavior(raw=raws[-1]))
    standin.script(*(Behavior(raw=r) for r in raws))
    metrics = Metrics()
    meter = Meter(metrics)
    breakers = LocalBreakers(settings.breaker)
    names = [p.name for p in settings.providers]
    if probe:
        breakers._get(names[0]).state = "half_open"
    router = Router(settings, bench.upstream, meter, breakers, CooldownQueue(10, metrics), bench.counter, metrics)
    model = MODELS[kind]
    chat = from_body({"model": model, "messages": [{"role": "user", "content": "hi"}], "stream": stream})
    team = f"team-{kind}-{case}"
    walk = Walk()
    relayed_content = 0
    try:
        result = await router.run(chat, _decision(team, model, names), 64, walk, keep_text=False)
        if not isinstance(result, Completed):
            parser = SSEParser()
            async for out in result.attempt.relay():
                for event in parser.feed(out):
                    relayed_content += _content_frames(event.data)
            usage = result.attempt.usage
            assert usage is not None and usage.completion_tokens >= relayed_content
    except GatewayError as exc:
        assert exc.status_code in (400, 502, 503, 504), exc
    charged = sum((a.usage.prompt_tokens + a.usage.completion_tokens) for a in walk.tried if a.usage is not None)
    assert all(a.usage is not None for a in walk.tried), "an attempt was never settled"
    held = sum(meter._local._buckets.get(f"team:{team}", {}).values())
    assert held == charged, f"team budget holds {held}, attempts were charged {charged}"
    for name in names:
        assert breakers._get(name).probes == 0, "a probe permit was never returned"


def _content_frames(data: str) -> int:
    try:
        chunk = json.loads(data)
        delta = chunk["choices"][0]["delta"]
    except (ValueError, KeyError, IndexError, TypeError):
        return 0
    return int(bool(isinstance(delta, dict) and (delta.get("content") or delta.get("tool_calls"))))


@pytest.mark.parametrize("kind", list(MODELS))
@pytest.mark.parametrize("stream", [False, True], ids=["answer", "stream"])
def test_any_provider_answer_keeps_every_guarantee(bench: Bench, kind: str, stream: bool) -> None:
    counter = iter(range(10**9))

    @settings(
        max_examples=EXAMPLES // 2,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(raws=st.lists(answers(kind, stream), min_size=1, max_size=3), probe=st.booleans())
    def check(raws: list[Raw], probe: bool) -> None:
        bench.loop.run(_case(bench, kind, stream, raws, probe, next(counter)), timeout=30)

    check()
