"""Issue 9, item by item: what a provider sends can never break a guarantee (real gateway, real stand-ins).

Budgets are read from the gateway's own store after each case: whatever happened, the team's window holds
exactly what was charged (nothing left reserved), and no 5xx other than the documented 502/503/504 appears.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import Any

import httpx2 as httpx
import pytest

from gateway.demo.standins import Behavior, Raw, StandInServers, _prompt_tokens
from gateway.settings import ProviderSettings, Settings
from tests.harness import ADMIN_TOKEN, GatewayThread, settings_for

PHI = {"Authorization": "Bearer gw-demo-cardiology", "X-Use-Case": "discharge-summary"}  # azure-us-east, anthropic-us
EU = {"Authorization": "Bearer gw-demo-eu-research"}  # one route: azure-eu-west


@pytest.fixture(scope="module")
def gw(standins: StandInServers) -> Iterator[GatewayThread]:
    os.environ["GATEWAY_ADMIN_TOKEN"] = ADMIN_TOKEN
    settings = settings_for(standins, timeout_seconds=1.0)
    with GatewayThread(settings) as gateway:
        yield gateway


@pytest.fixture(autouse=True)
def _fresh_state(gw: GatewayThread) -> None:
    c = gw.components
    c.meter._local._buckets.clear()
    c.breakers._breakers.clear()


def post(gw: GatewayThread, headers: dict[str, str], **body: object) -> httpx.Response:
    payload = {"model": "gpt-4o", "messages": [{"role": "user", "content": "Summarise the visit."}], **body}
    return httpx.post(gw.base_url + "/v1/chat/completions", json=payload, headers=headers, timeout=20)


def used(gw: GatewayThread, budget: str) -> int:
    """Tokens held in a budget's window now (reserved and not settled, or settled)."""
    return sum(gw.components.meter._local._buckets.get(budget, {}).values())


def _stream(gw: GatewayThread, headers: dict[str, str], model: str) -> AbstractContextManager[httpx.Response]:
    """A streamed chat request the caller reads as far as it likes, then walks away from."""
    body = {"model": model, "stream": True, "messages": [{"role": "user", "content": "hi"}]}
    return httpx.stream("POST", gw.base_url + "/v1/chat/completions", json=body, headers=headers, timeout=10)


def billed(standins: StandInServers, *names: str) -> int:
    return sum(r.billed for n in names for r in standins[n].received)


# 1. redirects


def test_redirect_is_never_followed_and_phi_stays_with_baa_providers(
    gw: GatewayThread, standins: StandInServers
) -> None:
    elsewhere = standins["openai-us"].base_url + "/chat/completions"  # no BAA
    standins["azure-us-east"].script(Behavior(redirect_to=elsewhere))
    answer = post(gw, PHI)
    assert answer.status_code == 200
    assert answer.headers["x-gateway-provider"] == "anthropic-us"  # failed over along the policy's routes
    assert standins["openai-us"].count == 0, "the prompt (and azure's key) went to a host nobody configured"
    assert used(gw, "team:cardiology") == billed(standins, "anthropic-us")


def test_redirect_on_the_only_route_is_502(gw: GatewayThread, standins: StandInServers) -> None:
    standins["azure-eu-west"].script(Behavior(redirect_to=standins["azure-us-east"].base_url + "/x"))
    answer = post(gw, EU)
    assert answer.status_code == 502 and answer.json()["error"]["code"] == "upstream_error"
    assert standins["azure-us-east"].count == 0
    assert used(gw, "team:eu-research") == 0


# 2. answers in pieces, and too large


@pytest.mark.parametrize(
    "behavior",
    [Behavior(pieces=2, piece_delay=0.05), Behavior(pieces=7, piece_delay=0.01), Behavior(text="x" * 2_000_000)],
    ids=["two-reads", "chunked", "2MB"],
)
def test_answer_arriving_in_several_reads_is_whole(
    gw: GatewayThread, standins: StandInServers, behavior: Behavior
) -> None:
    standins["azure-eu-west"].script(behavior)
    answer = post(gw, EU)
    assert answer.status_code == 200, answer.text
    assert answer.json()["choices"][0]["message"]["content"] == behavior.text
    assert used(gw, "team:eu-research") == billed(standins, "azure-eu-west")


def test_answer_over_the_size_limit_is_a_distinct_502(standins: StandInServers) -> None:
    settings = settings_for(standins, timeout_seconds=2.0)
    small = [p if p.name != "azure-eu-west" else _with(p, max_answer_bytes=4096) for p in settings.providers]
    with GatewayThread(_replace(settings, providers=small)) as gateway:
        standins["azure-eu-west"].script(Behavior(text="word " * 5000))
        answer = post(gateway, EU)
        assert answer.status_code == 502
        assert answer.json()["error"]["code"] == "upstream_answer_too_large"
        assert used(gateway, "team:eu-research") > 0, "the provider answered: the prompt is charged"
        assert used(gateway, "team:eu-research") < billed(standins, "azure-eu-west")


# 3. anything unexpected between reservation and answer


@pytest.mark.parametrize("value", ["5 seconds", "120, 120", "9" * 400, "Wed, 21 Oct 2015 07:28:00 GMT", "\u00e9"])
def test_malformed_retry_after_is_never_a_500(gw: GatewayThread, standins: StandInServers, value: str) -> None:
    standins["azure-eu-west"].script(Behavior(status=429, retry_after=value.encode("latin-1").decode("latin-1")))
    answer = post(gw, EU)
    assert answer.status_code in (200, 503), answer.text
    if answer.status_code == 503:
        assert 1 <= int(answer.headers["retry-after"]) <= 600
    assert used(gw, "team:eu-research") == billed(standins, "azure-eu-west")


def test_string_image_url_is_a_400_naming_the_param(gw: GatewayThread) -> None:
    content = [{"type": "image_url", "image_url": "http://example.invalid/x.png"}]
    answer = post(gw, PHI, model="claude-sonnet-4", messages=[{"role": "user", "content": content}])
    assert answer.status_code == 400 and "image_url" in answer.json()["error"]["message"]


ODD_ANSWERS = {
    "text-not-a-string": {"type": "message", "content": [{"type": "text", "text": 5}], "usage": {}},
    "content-of-strings": {"type": "message", "content": ["a", "b"]},
    "usage-a-list": {"type": "message", "content": [], "usage": [1, 2]},
    "tool-input-a-string": {"content": [{"type": "tool_use", "id": 1, "name": [], "input": "x"}]},
}


@pytest.mark.parametrize("body", list(ODD_ANSWERS.values()), ids=list(ODD_ANSWERS))
def test_anthropic_answers_of_the_wrong_types(gw: GatewayThread, standins: StandInServers, body: object) -> None:
    raw = Raw(200, (("Content-Type", "application/json"),), (json.dumps(body).encode(),))
    standins["anthropic-us"].script(Behavior(raw=raw))
    answer = post(gw, PHI, model="claude-sonnet-4")
    assert answer.status_code in (200, 502), answer.text
    assert used(gw, "team:cardiology") >= 0 and _no_probe_held(gw)


def test_deeply_nested_provider_json_is_a_failed_attempt(gw: GatewayThread, standins: StandInServers) -> None:
    nested = b"[" * 200_000 + b"]" * 200_000
    standins["azure-eu-west"].script(Behavior(raw=Raw(200, (("Content-Type", "application/json"),), (nested,))))
    answer = post(gw, EU)
    assert answer.status_code == 502
    assert used(gw, "team:eu-research") > 0  # sent and answered: the prompt is charged, nothing more is held


def test_wrong_types_mid_stream_end_with_an_error_event_and_a_breaker_failure(
    gw: GatewayThread, standins: StandInServers
) -> None:
    events: list[dict[str, Any]] = [
        {"type": "message_start", "message": {"id": "m", "usage": {"input_tokens": 9, "output_tokens": 1}}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hello"}},
        {"type": "content_block_delta", "index": [0], "delta": {"type": "input_json_delta", "partial_json": "{"}},
    ]
    frames = [f"event: {e['type']}\ndata: {json.dumps(e)}\n\n".encode() for e in events]
    pieces = (frames[0] + frames[1], frames[2])  # the bad event comes after the first content was relayed
    standins["anthropic-us"].script(Behavior(raw=Raw(200, (("Content-Type", "text/event-stream"),), pieces, 0.1)))
    answer = post(gw, PHI, model="claude-sonnet-4", stream=True)
    assert answer.status_code == 200
    assert '"upstream_error"' in answer.text and "[DONE]" not in answer.text
    breaker = gw.components.breakers._get("anthropic-us")
    assert sum(f for _, f in breaker.buckets.values()) == 1, "recorded as a failure, not a success"
    assert 9 + 1 <= used(gw, "team:cardiology") <= 9 + 2  # its prompt, the delta relayed (and the malformed one)


# 4. cancelled or broken Anthropic streams


def test_cut_anthropic_stream_settles_the_counted_deltas(gw: GatewayThread, standins: StandInServers) -> None:
    standins["anthropic-us"].script(Behavior(stream_cut_after=3))
    answer = post(gw, PHI, model="claude-sonnet-4", stream=True)
    assert '"upstream_error"' in answer.text
    assert used(gw, "team:cardiology") == billed(standins, "anthropic-us"), "prompt + 3, not prompt + 1"


def test_client_leaving_an_anthropic_stream_settles_what_was_streamed(
    gw: GatewayThread, standins: StandInServers
) -> None:
    standins["anthropic-us"].script(Behavior(chunk_delay=0.1, text="one two three four five six seven eight"))
    with _stream(gw, PHI, "claude-sonnet-4") as answer:
        seen = 0
        for line in answer.iter_lines():
            seen += '"content":"' in line and '"content":""' not in line
            if seen == 2:
                break
    _eventually(lambda: standins["anthropic-us"].in_flight == 0)
    _eventually(lambda: used(gw, "team:cardiology") > 0)
    prompt = _prompt_tokens(standins["anthropic-us"].received[0].body)
    held = used(gw, "team:cardiology")
    assert held >= prompt + 2, "at least the prompt and the two deltas the client received (not + 1)"
    assert held <= billed(standins, "anthropic-us"), "never more than the provider produced"


# 5. a 429 storm on one route


@pytest.mark.parametrize("retry_after", ["0", "Wed, 21 Oct 2015 07:28:00 GMT"], ids=["zero", "date-in-the-past"])
def test_429_storm_moves_on_to_the_healthy_route(gw: GatewayThread, standins: StandInServers, retry_after: str) -> None:
    standins["azure-us-east"].set_default(Behavior(status=429, retry_after=retry_after))
    answer = post(gw, PHI)
    assert answer.status_code == 200 and answer.headers["x-gateway-provider"] == "anthropic-us"
    assert standins["azure-us-east"].count == 2, "one try and one retry of the rate-limited route, then the next"


def test_retry_after_passed_to_clients_is_capped(gw: GatewayThread, standins: StandInServers) -> None:
    standins["azure-eu-west"].set_default(Behavior(status=429, retry_after="86400"))
    answer = post(gw, EU)
    assert answer.status_code == 503 and int(answer.headers["retry-after"]) == 600


# 7. streams without a deadline


@pytest.mark.parametrize("provider", ["azure-us-east", "anthropic-us"])
def test_keepalive_only_stream_fails_over_before_the_first_byte(
    gw: GatewayThread, standins: StandInServers, provider: str
) -> None:
    other = "anthropic-us" if provider == "azure-us-east" else "azure-us-east"
    standins[provider].script(Behavior(keepalive_only=True))
    model = "gpt-4o" if provider == "azure-us-east" else "claude-sonnet-4"
    started = time.monotonic()
    answer = post(gw, PHI, model=model, stream=True)
    assert time.monotonic() - started < 4
    assert answer.status_code == 200 and answer.headers["x-gateway-provider"] == other  # the equivalent model
    assert "[DONE]" in answer.text


def test_keepalive_only_stream_on_the_only_route_is_504(gw: GatewayThread, standins: StandInServers) -> None:
    standins["azure-eu-west"].script(Behavior(keepalive_only=True))
    started = time.monotonic()
    answer = post(gw, EU, stream=True)
    assert answer.status_code == 504 and time.monotonic() - started < 3
    assert used(gw, "team:eu-research") > 0  # sent: the prompt is charged


def test_stream_past_its_total_deadline_ends_with_an_error_event(standins: StandInServers) -> None:
    settings = settings_for(standins, timeout_seconds=2.0)
    short = [_with(p, stream_timeout_seconds=1.0) if p.name == "azure-eu-west" else p for p in settings.providers]
    with GatewayThread(_replace(settings, providers=short)) as gateway:
        standins["azure-eu-west"].script(Behavior(chunk_delay=0.3, text="one two three four five six seven eight"))
        started = time.monotonic()
        answer = post(gateway, EU, stream=True)
        assert answer.status_code == 200 and time.monotonic() - started < 2.5
        assert '"upstream_error"' in answer.text and "(timeout)" in answer.text and "[DONE]" not in answer.text


def test_client_leaving_while_a_stream_opens_stops_the_upstream(gw: GatewayThread, standins: StandInServers) -> None:
    standins["azure-eu-west"].script(Behavior(keepalive_only=True))
    body = json.dumps({"model": "gpt-4o", "stream": True, "messages": [{"role": "user", "content": "hi"}]})
    with socket.create_connection(("127.0.0.1", gw.port)) as conn:
        conn.sendall(
            f"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer gw-demo-eu-research\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n{body}".encode()
        )
        _eventually(lambda: standins["azure-eu-west"].in_flight == 1)
    _eventually(lambda: standins["azure-eu-west"].in_flight == 0, within=0.8)  # well before the 1 s deadline
    _eventually(lambda: used(gw, "team:eu-research") > 0)  # the prompt was sent: it is charged


# 9. cancellation edges


def test_half_open_probe_whose_client_leaves_returns_the_permit(gw: GatewayThread, standins: StandInServers) -> None:
    breakers = gw.components.breakers
    breakers._get("azure-eu-west").state = "half_open"
    standins["azure-eu-west"].script(Behavior(chunk_delay=0.2))
    with _stream(gw, EU, "gpt-4o") as answer:
        next(answer.iter_lines())
    _eventually(lambda: breakers._get("azure-eu-west").probes == 0)
    assert breakers._get("azure-eu-west").state == "half_open", "no evidence: the breaker must not close"


def test_queued_request_cancelled_from_outside_leaves_no_task(gw: GatewayThread) -> None:
    queue = gw.components.router._queue

    async def scenario() -> None:
        waiter = asyncio.create_task(queue.wait("p", 5.0))
        await asyncio.sleep(0.05)
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        await asyncio.sleep(0)
        others = asyncio.all_tasks() - {asyncio.current_task()}
        assert not others, f"orphan tasks: {others}"
        assert queue.depth("p") == 0

    asyncio.run(scenario())


# 10. timeouts after the request was sent


def test_timeout_after_sending_charges_the_prompt(gw: GatewayThread, standins: StandInServers) -> None:
    standins["azure-eu-west"].script(Behavior(stall=True))
    answer = post(gw, EU)
    assert answer.status_code == 504
    team, provider = used(gw, "team:eu-research"), used(gw, "provider:azure-eu-west")
    assert team > 0 and team == provider, "the provider may have processed it: both budgets pay the prompt"
    assert team < 100, "the prompt only, not prompt + max_tokens"


def test_connect_failure_charges_nothing(standins: StandInServers) -> None:
    settings = settings_for(standins, timeout_seconds=1.0)
    dead = [_with(p, base_url="http://127.0.0.1:9") if p.name == "azure-eu-west" else p for p in settings.providers]
    with GatewayThread(_replace(settings, providers=dead)) as gateway:
        answer = post(gateway, EU)
        assert answer.status_code == 502
        assert used(gateway, "team:eu-research") == 0


# helpers


def _no_probe_held(gw: GatewayThread) -> bool:
    return all(b.probes == 0 for b in gw.components.breakers._breakers.values())


def _eventually(check: Callable[[], bool], within: float = 3.0) -> None:
    deadline = time.monotonic() + within
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def _with(provider: ProviderSettings, **changes: Any) -> ProviderSettings:
    return dataclasses.replace(provider, **changes)


def _replace(settings: Settings, **changes: Any) -> Settings:
    return dataclasses.replace(settings, **changes)


# cookies


def test_a_providers_cookie_is_never_sent_back_nor_passed_on(standins: StandInServers) -> None:
    """One pooled client serves every team: a cookie one answer sets would ride along on the next team's
    request to that host. The gateway keeps none and forwards none. (A host name, not an IP: aiohttp's
    default jar ignores cookies from IP addresses, which would hide the leak here.)"""
    settings = settings_for(standins)
    by_name = [
        p if p.name != "azure-eu-west" else _with(p, base_url=(p.base_url or "").replace("127.0.0.1", "localhost"))
        for p in settings.providers
    ]
    answer = {
        "id": "chatcmpl-cookie",
        "object": "chat.completion",
        "created": 0,
        "model": "gpt-4o",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6},
    }
    cookie = ("Set-Cookie", "__cf_bm=team-a-session; Path=/; HttpOnly")
    headers = (("Content-Type", "application/json"), cookie)
    with GatewayThread(_replace(settings, providers=by_name)) as gateway:
        standins["azure-eu-west"].script(Behavior(raw=Raw(200, headers, (json.dumps(answer).encode(),))))
        first = post(gateway, EU)
        assert first.status_code == 200, first.text
        assert "set-cookie" not in first.headers
        second = post(gateway, EU)
        assert second.status_code == 200
        assert standins["azure-eu-west"].received[-1].path == standins["azure-eu-west"].received[-2].path
        assert "cookie" not in {k.lower() for k in standins["azure-eu-west"].received[-1].headers}


def test_an_answer_holding_nan_is_a_bad_answer_and_fails_over(gw: GatewayThread, standins: StandInServers) -> None:
    """NaN is not JSON: an answer carrying one is not passed on (nor turned into null by a re-encoding)."""
    answer = (
        b'{"id":"chatcmpl-nan","object":"chat.completion","created":0,"model":"gpt-4o","choices":[{"index":0,'
        b'"message":{"role":"assistant","content":"ok"},"logprobs":NaN,"finish_reason":"stop"}],'
        b'"usage":{"prompt_tokens":5,"completion_tokens":1,"total_tokens":6}}'
    )
    standins["azure-us-east"].script(Behavior(raw=Raw(200, (("Content-Type", "application/json"),), (answer,))))
    served = post(gw, PHI)
    assert served.status_code == 200
    assert served.headers["x-gateway-provider"] == "anthropic-us"  # the next route the policy allowed
    assert "NaN" not in served.text
