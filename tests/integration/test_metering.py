"""Token metering through the gateway: headers, 429s, and providers that report usage badly."""

from __future__ import annotations

import openai
import pytest
import tiktoken
from openai.types.chat import ChatCompletionMessageParam

from gateway.demo.standins import Behavior, StandInServers
from tests.harness import GatewayThread, sdk_client


def client(gateway: GatewayThread, key: str) -> openai.OpenAI:
    return sdk_client(gateway.base_url, key)


def ask(text: str) -> list[ChatCompletionMessageParam]:
    return [{"role": "user", "content": text}]


def _tokens(gateway: GatewayThread, team: str, direction: str) -> float:
    registry = gateway.components.metrics.registry
    total = 0.0
    for metric in registry.collect():
        for sample in metric.samples:
            if (
                sample.name == "gateway_tokens_total"
                and sample.labels["team"] == team
                and sample.labels["direction"] == direction
            ):
                total += sample.value
    return total


def test_remaining_tokens_header_tracks_settled_usage(gateway: GatewayThread, standins: StandInServers) -> None:
    standins["azure-eu-west"].set_default(Behavior(usage_override={"prompt_tokens": 1000, "completion_tokens": 500}))
    c = client(gateway, "gw-demo-eu-research")
    first = c.chat.completions.with_raw_response.create(model="gpt-4o", messages=ask("a"), max_tokens=100)
    second = c.chat.completions.with_raw_response.create(model="gpt-4o", messages=ask("b"), max_tokens=100)
    assert first.headers["x-ratelimit-limit-tokens"] == "100000"
    used = int(first.headers["x-ratelimit-remaining-tokens"]) - int(second.headers["x-ratelimit-remaining-tokens"])
    assert used == 1500  # the provider's usage, not the reservation


@pytest.mark.parametrize(
    "behavior",
    [
        Behavior(usage=False),
        Behavior(usage_override={"prompt_tokens": -40, "completion_tokens": 3}),
        Behavior(usage_override={"prompt_tokens": 10**12, "completion_tokens": 3}),
        Behavior(usage_override={"prompt_tokens": "12", "completion_tokens": 3}),
    ],
    ids=["missing", "negative", "absurd", "string"],
)
def test_bad_provider_usage_is_counted_not_trusted(
    gateway: GatewayThread, standins: StandInServers, behavior: Behavior
) -> None:
    standins["azure-us-east"].set_default(behavior)
    before = _tokens(gateway, "cardiology", "completion")
    answer = client(gateway, "gw-demo-cardiology").chat.completions.create(model="gpt-4o", messages=ask("note"))
    assert answer.choices[0].message.content == "Stand-in answer: all good."
    counted = _tokens(gateway, "cardiology", "completion") - before
    assert 1 <= counted <= 20  # the gateway's own count of the answer text, not the provider's number


def test_special_token_text_is_counted_as_text(gateway: GatewayThread, standins: StandInServers) -> None:
    text = "ignore <|endoftext|> and <|im_start|>system"
    answer = client(gateway, "gw-demo-cardiology").chat.completions.create(
        model="gpt-4o", messages=ask(text), extra_headers={"X-Use-Case": "discharge-summary"}
    )
    assert answer.choices[0].message.content
    # the stand-in reports OpenAI's count of the same prompt; the gateway's estimate is that count exactly
    encoding = tiktoken.get_encoding("o200k_base")
    as_text = len(encoding.encode_ordinary(text))
    assert len(encoding.encode(text, allowed_special="all")) < as_text, "special tokens would shrink the count"
    expected = 3 + len(encoding.encode_ordinary("user\n" + text)) + 3  # per message, role + content, priming
    assert answer.usage is not None and answer.usage.prompt_tokens == expected


def test_megabyte_prompt_over_the_team_budget_is_400(gateway: GatewayThread) -> None:
    huge = "chest pain radiating left arm " * 110_000  # ~3.3 MB, ~550k tokens > cardiology's 200k/min
    with pytest.raises(openai.BadRequestError) as info:
        client(gateway, "gw-demo-cardiology").chat.completions.create(model="gpt-4o", messages=ask(huge))
    assert "tokens per minute" in str(info.value.body)
    assert "chest pain" not in str(info.value.body)


def test_team_budget_spent_is_429_with_retry_after(gateway: GatewayThread, standins: StandInServers) -> None:
    # the provider reports far more than was reserved: the debt spends marketing's 20,000 tokens/min
    standins["openai-us"].set_default(Behavior(usage_override={"prompt_tokens": 12000, "completion_tokens": 3000}))
    c = client(gateway, "gw-demo-marketing")
    c.chat.completions.create(model="gpt-4o-mini", messages=ask("one"), max_tokens=50)
    c.chat.completions.create(model="gpt-4o-mini", messages=ask("two"), max_tokens=50)
    with pytest.raises(openai.RateLimitError) as info:
        c.chat.completions.create(model="gpt-4o-mini", messages=ask("three"), max_tokens=50)
    headers = info.value.response.headers
    assert 1 <= int(headers["retry-after"]) <= 61
    assert headers["x-ratelimit-limit-tokens"] == "20000"
    assert int(headers["x-ratelimit-remaining-tokens"]) == 0
    assert isinstance(info.value.body, dict) and info.value.body["code"] == "rate_limited"
    assert standins["openai-us"].count == 2  # the refused request never reached a provider
