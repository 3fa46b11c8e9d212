"""Embeddings, Responses and Anthropic Messages through the gateway, with the official SDKs unchanged:
each is authenticated, decided, routed along policy routes only, metered, logged, and fails over."""

from __future__ import annotations

import base64
import json
import struct
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx2 as httpx
import openai
import pytest
from anthropic.types import MessageParam, ToolParam

from gateway.demo.standin_apis import vector
from gateway.demo.standins import Behavior, StandInServers
from tests.harness import GatewayThread, sdk_client

_ANTHROPIC: list[anthropic.Anthropic] = []


@pytest.fixture(autouse=True)
def _close_anthropic_clients() -> Iterator[None]:
    yield
    while _ANTHROPIC:
        _ANTHROPIC.pop().close()


def claude(gateway: GatewayThread, key: str, **headers: str) -> anthropic.Anthropic:
    """The official anthropic SDK pointed at the gateway: only the base URL and the key changed."""
    made = anthropic.Anthropic(
        base_url=gateway.base_url, api_key=key, max_retries=0, timeout=15, default_headers=headers or None
    )
    _ANTHROPIC.append(made)
    return made


def gpt(gateway: GatewayThread, key: str, **headers: str) -> openai.OpenAI:
    return sdk_client(gateway.base_url, key, timeout=15, **headers)


def tokens_metric(gateway: GatewayThread, provider: str, direction: str) -> float:
    text = gateway.components.metrics.render().decode()
    total = 0.0
    for line in text.splitlines():
        labels = f'provider="{provider}"' in line and f'direction="{direction}"' in line
        if line.startswith("gateway_tokens_total{") and labels:
            total += float(line.rsplit(" ", 1)[1])
    return total


# -- embeddings -------------------------------------------------------------------------------------


def test_embeddings_string_list_and_token_arrays(gateway: GatewayThread, standins: StandInServers) -> None:
    client = gpt(gateway, "gw-demo-marketing")
    raw = client.embeddings.with_raw_response.create(
        model="text-embedding-3-small", input=["first note", "second note"], dimensions=4, encoding_format="float"
    )
    result = raw.parse()
    assert [d.embedding for d in result.data] == [
        vector(json.dumps("first note"), 4),
        vector(json.dumps("second note"), 4),
    ]
    assert raw.headers["x-gateway-provider"] == "openai-us"
    assert result.usage.prompt_tokens == standins["openai-us"].received[-1].billed
    sent = standins["openai-us"].received[-1].body
    assert sent["dimensions"] == 4 and sent["model"] == "text-embedding-3-small"
    tokens = client.embeddings.create(model="text-embedding-3-small", input=[[1, 2, 3], [4, 5]])
    assert len(tokens.data) == 2 and tokens.usage.prompt_tokens == 5


def test_embeddings_base64_passes_through(gateway: GatewayThread) -> None:
    result = gpt(gateway, "gw-demo-marketing").embeddings.create(
        model="text-embedding-3-small", input="a note", dimensions=3, encoding_format="base64"
    )
    # the SDK decodes base64 itself when it asked for it; either way the numbers are the provider's
    values = result.data[0].embedding
    if isinstance(values, str):
        values = list(struct.unpack("<3f", base64.b64decode(values)))
    assert [round(v, 4) for v in values] == [round(v, 4) for v in vector(json.dumps("a note"), 3)]


def test_embeddings_phi_team_goes_to_a_baa_provider_and_fails_over_to_the_same_model(
    gateway: GatewayThread, standins: StandInServers
) -> None:
    standins["azure-us-east"].set_default(Behavior(status=503))
    with pytest.raises(openai.APIStatusError) as refused:
        gpt(gateway, "gw-demo-cardiology").embeddings.create(model="text-embedding-3-small", input="patient note")
    # the only BAA provider in the team's region failed: no fallback to another model, never openai-us
    assert refused.value.status_code == 502
    assert standins["openai-us"].count == 0
    assert standins["azure-us-east"].count >= 1
    assert "/openai/deployments/embed-small-prod/embeddings" in standins["azure-us-east"].received[-1].path


def test_embeddings_refusals_in_openai_shape(gateway: GatewayThread) -> None:
    client = gpt(gateway, "gw-demo-marketing")
    with pytest.raises(openai.BadRequestError) as bad:
        client.embeddings.create(model="text-embedding-3-small", input="")
    assert isinstance(bad.value.body, dict) and bad.value.body["code"] == "invalid_request"
    with pytest.raises(openai.BadRequestError, match="does not serve embeddings"):
        client.embeddings.create(model="gpt-4o", input="x")
    with pytest.raises(openai.BadRequestError, match=r"does not serve chat\.completions"):
        client.chat.completions.create(model="text-embedding-3-small", messages=[{"role": "user", "content": "x"}])
    with pytest.raises(openai.AuthenticationError):
        gpt(gateway, "nobody").embeddings.create(model="text-embedding-3-small", input="x")
    with pytest.raises(openai.PermissionDeniedError, match="use_case_not_allowed"):
        gpt(gateway, "gw-demo-marketing").embeddings.create(
            model="text-embedding-3-small", input="x", extra_headers={"X-Use-Case": "nope"}
        )


# -- responses --------------------------------------------------------------------------------------


def test_responses_non_stream_and_a_follow_up(gateway: GatewayThread, standins: StandInServers) -> None:
    client = gpt(gateway, "gw-demo-marketing")
    raw = client.responses.with_raw_response.create(
        model="gpt-4o", input="Write a tagline.", instructions="Be brief.", max_output_tokens=50
    )
    first = raw.parse()
    assert first.output_text == "Stand-in answer: all good."
    assert first.usage is not None and first.usage.output_tokens == 4
    provider = raw.headers["x-gateway-provider"]
    assert standins[provider].received[-1].body["max_output_tokens"] == 50
    follow = client.responses.create(model="gpt-4o", input="Shorter.", previous_response_id=first.id)
    assert follow.output_text == "Stand-in answer: all good."
    assert standins[provider].received[-1].body["previous_response_id"] == first.id
    assert sum(s.count for s in standins.standins.values()) == 2  # both went to the provider holding the first
    # retrieve and delete go to that provider too, for this team only
    assert client.responses.retrieve(first.id).id == first.id
    with pytest.raises(openai.NotFoundError):
        gpt(gateway, "gw-demo-eu-research").responses.retrieve(first.id)
    with pytest.raises(openai.NotFoundError):
        gpt(gateway, "gw-demo-eu-research").responses.create(model="gpt-4o", input="x", previous_response_id=first.id)
    client.responses.delete(first.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(first.id)


def test_responses_default_cap_and_team_cap(gateway: GatewayThread, standins: StandInServers) -> None:
    client = gpt(gateway, "gw-demo-marketing")
    raw = client.responses.with_raw_response.create(model="gpt-4o-mini", input="hi")
    assert standins[raw.headers["x-gateway-provider"]].received[-1].body["max_output_tokens"] == 1024
    with pytest.raises(openai.PermissionDeniedError, match="max_tokens_over_cap"):
        client.responses.create(model="gpt-4o-mini", input="hi", max_output_tokens=5000)


def test_responses_stream_relays_events_and_meters(gateway: GatewayThread, standins: StandInServers) -> None:
    client = gpt(gateway, "gw-demo-marketing")
    before = tokens_metric(gateway, "openai-us", "completion")
    with client.responses.stream(model="gpt-4o-mini", input="Write a tagline.") as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_response()
    assert kinds[0] == "response.created" and kinds[-1] == "response.completed"
    assert kinds.count("response.output_text.delta") == 4
    assert final.output_text == "Stand-in answer: all good."
    assert tokens_metric(gateway, "openai-us", "completion") - before == 4
    follow = client.responses.create(model="gpt-4o-mini", input="again", previous_response_id=final.id)
    assert follow.output_text


def test_responses_stream_fails_over_before_the_first_event(gateway: GatewayThread, standins: StandInServers) -> None:
    standins["openai-us"].set_default(Behavior(status=500))
    with gpt(gateway, "gw-demo-marketing").responses.stream(model="gpt-4o-mini", input="x") as stream:
        final = stream.get_final_response()
    assert final.output_text == "Stand-in answer: all good."
    assert standins["openai-us"].count >= 1 and standins["azure-eu-west"].count + standins["azure-us-east"].count == 1


def test_follow_up_denied_when_its_provider_is_no_longer_allowed(
    gateway: GatewayThread, standins: StandInServers
) -> None:
    # a PHI team, declassified for patient education, may use the non-BAA provider...
    open_client = gpt(
        gateway, "gw-demo-cardiology", **{"X-Use-Case": "patient-education", "X-Data-Classification": "none"}
    )
    raw = open_client.responses.with_raw_response.create(model="gpt-4o", input="Explain a stent.")
    assert raw.headers["x-gateway-provider"] == "openai-us"
    first = raw.parse()
    # ...but a PHI follow-up may not go there, and is not rerouted to a provider that lacks the response
    phi_client = gpt(gateway, "gw-demo-cardiology", **{"X-Use-Case": "clinical-notes"})
    with pytest.raises(openai.PermissionDeniedError, match="follow_up_provider_not_allowed"):
        phi_client.responses.create(model="gpt-4o", input="Now for my patient.", previous_response_id=first.id)
    assert standins["openai-us"].count == 1 and standins["azure-us-east"].count == 0


def test_responses_bad_requests(gateway: GatewayThread) -> None:
    client = gpt(gateway, "gw-demo-marketing")
    cases: list[dict[str, Any]] = [
        {"input": []},
        {"input": "x", "background": True},
        {"input": "x", "previous_response_id": "no/such"},
    ]
    for kwargs in cases:
        with pytest.raises(openai.BadRequestError):
            client.responses.create(model="gpt-4o", **kwargs)
    with pytest.raises(openai.NotFoundError):
        client.responses.create(model="gpt-4o", input="x", previous_response_id="resp_unknown")


# -- Anthropic Messages ------------------------------------------------------------------------------

MESSAGES: list[MessageParam] = [{"role": "user", "content": "Summarise the visit."}]


def test_messages_pass_through_to_anthropic(gateway: GatewayThread, standins: StandInServers) -> None:
    client = claude(gateway, "gw-demo-cardiology", **{"X-Use-Case": "discharge-summary"})
    raw = client.messages.with_raw_response.create(
        model="claude-sonnet-4",
        max_tokens=200,
        system="Be brief.",
        messages=MESSAGES,
    )
    message = raw.parse()
    assert message.content[0].type == "text" and message.content[0].text == "Stand-in answer: all good."
    assert message.usage.output_tokens == 4 and message.stop_reason == "end_turn"
    assert raw.headers["x-gateway-provider"] == "anthropic-us"
    sent = standins["anthropic-us"].received[-1]
    assert sent.body["model"] == "claude-sonnet-4-20250514" and sent.body["max_tokens"] == 200
    # the provider's key (none configured here), never the client's
    assert "gw-demo-cardiology" not in json.dumps(sent.headers)


def test_messages_translated_to_an_openai_kind_upstream(gateway: GatewayThread, standins: StandInServers) -> None:
    client = claude(gateway, "gw-demo-marketing")
    raw = client.messages.with_raw_response.create(
        model="gpt-4o-mini",
        max_tokens=100,
        system="Be brief.",
        messages=MESSAGES,
        stop_sequences=["END"],
    )
    message = raw.parse()
    assert message.content[0].type == "text" and message.content[0].text == "Stand-in answer: all good."
    assert message.stop_reason == "end_turn" and message.usage.output_tokens == 4
    sent = standins["openai-us"].received[-1].body
    assert sent["messages"][0] == {"role": "system", "content": "Be brief."}
    assert sent["stop"] == ["END"] and sent["max_tokens"] == 100


def test_messages_stream_both_ways(gateway: GatewayThread, standins: StandInServers) -> None:
    for key, model, headers, provider in (
        ("gw-demo-cardiology", "claude-sonnet-4", {"X-Use-Case": "discharge-summary"}, "anthropic-us"),
        ("gw-demo-marketing", "gpt-4o-mini", {}, "openai-us"),
    ):
        client = claude(gateway, key, **headers)
        with client.messages.stream(model=model, max_tokens=100, messages=MESSAGES) as stream:
            text = "".join(stream.text_stream)
            final = stream.get_final_message()
        assert text == "Stand-in answer: all good.", provider
        assert final.usage.output_tokens == 4 and final.stop_reason == "end_turn"
        assert standins[provider].count == 1


def test_messages_tools_translated_both_ways(gateway: GatewayThread, standins: StandInServers) -> None:
    tool: ToolParam = {
        "name": "lookup",
        "description": "Look up a code",
        "input_schema": {"type": "object", "properties": {"code": {"type": "string"}}},
    }
    standins["openai-us"].set_default(Behavior(tool_call=("lookup", '{"code": "I10"}')))
    client = claude(gateway, "gw-demo-marketing")
    message = client.messages.create(model="gpt-4o-mini", max_tokens=100, messages=MESSAGES, tools=[tool])
    assert message.stop_reason == "tool_use"
    call = message.content[0]
    assert call.type == "tool_use" and call.name == "lookup" and call.input == {"code": "I10"}
    sent = standins["openai-us"].received[-1].body
    assert sent["tools"][0]["function"]["name"] == "lookup"
    # the tool's result goes back as a tool message after the assistant's call
    history: list[MessageParam] = [
        *MESSAGES,
        {
            "role": "assistant",
            "content": [{"type": "tool_use", "id": call.id, "name": "lookup", "input": {"code": "I10"}}],
        },
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "Hypertension"}]},
    ]
    with client.messages.stream(model="gpt-4o-mini", max_tokens=100, messages=history, tools=[tool]) as stream:
        final = stream.get_final_message()
    assert final.content[0].type == "tool_use" and final.content[0].input == {"code": "I10"}
    sent = standins["openai-us"].received[-1].body["messages"]
    assert sent[1]["tool_calls"][0]["id"] == call.id and sent[2] == {
        "role": "tool",
        "tool_call_id": call.id,
        "content": "Hypertension",
    }


def test_messages_fail_over_across_kinds(gateway: GatewayThread, standins: StandInServers) -> None:
    standins["anthropic-us"].set_default(Behavior(status=500))
    client = claude(gateway, "gw-demo-cardiology", **{"X-Use-Case": "discharge-summary"})
    raw = client.messages.with_raw_response.create(model="claude-sonnet-4", max_tokens=100, messages=MESSAGES)
    assert raw.headers["x-gateway-provider"] == "azure-us-east" and raw.headers["x-gateway-model"] == "gpt-4o"
    block = raw.parse().content[0]
    assert block.type == "text" and block.text == "Stand-in answer: all good."
    assert standins["openai-us"].count == 0  # PHI: never the non-BAA provider, in any format


def test_messages_errors_raise_the_sdks_own_classes(gateway: GatewayThread) -> None:
    with pytest.raises(anthropic.AuthenticationError) as unauthenticated:
        claude(gateway, "nobody").messages.create(model="claude-sonnet-4", max_tokens=10, messages=MESSAGES)
    assert _body(unauthenticated.value)["error"]["type"] == "authentication_error"
    with pytest.raises(anthropic.PermissionDeniedError) as denied:
        claude(gateway, "gw-demo-eu-research").messages.create(
            model="claude-sonnet-4", max_tokens=10, messages=MESSAGES
        )
    body = _body(denied.value)
    assert body["type"] == "error" and body["error"]["code"] == "policy_denied" and body["error"]["decision_id"]
    with pytest.raises(anthropic.BadRequestError):
        claude(gateway, "gw-demo-marketing").messages.create(model="gpt-4o-mini", max_tokens=0, messages=MESSAGES)
    # a Bearer token works as well as x-api-key; a bad JSON body is Anthropic-shaped
    reply = httpx.post(
        gateway.base_url + "/v1/messages", content=b"{", headers={"Authorization": "Bearer gw-demo-marketing"}
    )
    assert reply.status_code == 400 and reply.json()["type"] == "error"
    assert reply.json()["error"]["type"] == "invalid_request_error"


def test_count_tokens_answered_by_the_gateway(gateway: GatewayThread, standins: StandInServers) -> None:
    client = claude(gateway, "gw-demo-cardiology", **{"X-Use-Case": "discharge-summary"})
    short = client.messages.count_tokens(model="claude-sonnet-4", messages=MESSAGES)
    longer = client.messages.count_tokens(
        model="claude-sonnet-4", messages=[{"role": "user", "content": "word " * 200}]
    )
    assert 0 < short.input_tokens < longer.input_tokens
    assert sum(s.count for s in standins.standins.values()) == 0
    with pytest.raises(anthropic.AuthenticationError):
        claude(gateway, "nobody").messages.count_tokens(model="claude-sonnet-4", messages=MESSAGES)


def _body(error: anthropic.APIStatusError) -> dict[str, Any]:
    assert isinstance(error.body, dict)
    return error.body


def test_genai_semantic_convention_metrics(gateway: GatewayThread, standins: StandInServers) -> None:
    client = gpt(gateway, "gw-demo-marketing")
    list(client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}], stream=True))
    claude(gateway, "gw-demo-cardiology", **{"X-Use-Case": "discharge-summary"}).messages.create(
        model="claude-sonnet-4", max_tokens=20, messages=MESSAGES
    )
    text = gateway.components.metrics.render().decode()
    chat = 'gen_ai_operation_name="chat",gen_ai_provider_name="openai",gen_ai_request_model="gpt-4o-mini"'
    assert f'gen_ai_client_token_usage_bucket{{{chat},gen_ai_token_type="output",le="4.0"}}' in text
    assert f'gen_ai_client_token_usage_bucket{{{chat},gen_ai_token_type="input",le="6.7108864e+07"}}' in text
    assert f'gen_ai_server_time_to_first_token_seconds_bucket{{{chat},le="0.001"}}' in text
    assert 'gen_ai_client_operation_duration_seconds_bucket{error_type="",gen_ai_operation_name="chat",' in text
    assert 'gen_ai_provider_name="anthropic",gen_ai_request_model="claude-sonnet-4"' in text
    assert 'le="81.92"' in text
