"""The official openai SDK, unchanged, against the gateway in front of all three provider kinds."""

from __future__ import annotations

import httpx2 as httpx
import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam

from gateway.demo.auth import mint_demo_jwt
from gateway.demo.standins import Behavior, StandInServers
from tests.harness import ADMIN_TOKEN, GatewayThread, sdk_client

MESSAGES: list[ChatCompletionMessageParam] = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Summarise the visit."},
]
RESPONSE_HEADERS = (
    "x-request-id",
    "x-gateway-decision-id",
    "x-gateway-policy-revision",
    "x-gateway-provider",
    "x-gateway-model",
    "x-ratelimit-limit-tokens",
    "x-ratelimit-remaining-tokens",
)


def client(gateway: GatewayThread, key: str, **headers: str) -> openai.OpenAI:
    return sdk_client(gateway.base_url, key, timeout=15, **headers)


CASES = [
    # key, model, extra headers, provider the policy routes to, upstream kind
    ("gw-demo-marketing", "gpt-4o-mini", {}, "openai-us"),
    ("gw-demo-cardiology", "gpt-4o", {"X-Use-Case": "discharge-summary"}, "azure-us-east"),
    ("gw-demo-cardiology", "claude-sonnet-4", {"X-Use-Case": "discharge-summary"}, "anthropic-us"),
]


@pytest.mark.parametrize(("key", "model", "headers", "provider"), CASES, ids=["openai", "azure", "anthropic"])
def test_non_stream_through_each_provider_kind(
    gateway: GatewayThread, standins: StandInServers, key: str, model: str, headers: dict[str, str], provider: str
) -> None:
    raw = client(gateway, key, **headers).chat.completions.with_raw_response.create(model=model, messages=MESSAGES)
    completion = raw.parse()
    assert completion.choices[0].message.content == "Stand-in answer: all good."
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None and completion.usage.completion_tokens == 4
    assert completion.usage.prompt_tokens > 0
    assert completion.usage.total_tokens == completion.usage.prompt_tokens + completion.usage.completion_tokens
    for header in RESPONSE_HEADERS:
        assert raw.headers.get(header), header
    assert raw.headers["x-gateway-provider"] == provider
    assert standins[provider].count == 1


@pytest.mark.parametrize(("key", "model", "headers", "provider"), CASES, ids=["openai", "azure", "anthropic"])
def test_stream_through_each_provider_kind(
    gateway: GatewayThread, standins: StandInServers, key: str, model: str, headers: dict[str, str], provider: str
) -> None:
    stream = client(gateway, key, **headers).chat.completions.create(
        model=model,
        messages=MESSAGES,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Stand-in answer: all good."
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["stop"]
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 4
    assert standins[provider].count == 1


def test_stream_without_include_usage_gets_no_usage_chunk(gateway: GatewayThread, standins: StandInServers) -> None:
    chunks = list(
        client(gateway, "gw-demo-marketing").chat.completions.create(
            model="gpt-4o-mini", messages=MESSAGES, stream=True
        )
    )
    assert all(c.usage is None for c in chunks)
    assert all(c.choices for c in chunks)
    upstream = standins["openai-us"].received[-1].body
    assert upstream["stream_options"] == {"include_usage": True}  # the gateway still asked, for metering


def test_azure_upstream_gets_deployment_version_and_api_key(
    gateway: GatewayThread, standins: StandInServers, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STANDIN_AZURE_US_EAST_KEY", "azure-secret")
    client(gateway, "gw-demo-cardiology").chat.completions.create(model="gpt-4o", messages=MESSAGES)
    received = standins["azure-us-east"].received[-1]
    assert received.path == "/openai/deployments/gpt4o-prod/chat/completions"
    assert received.query["api-version"]
    assert received.headers["api-key"] == "azure-secret"
    assert "Authorization" not in received.headers
    assert received.body["max_tokens"] == 4096  # the team's cap, since the client set none


def test_anthropic_upstream_gets_messages_api_shape(gateway: GatewayThread, standins: StandInServers) -> None:
    client(gateway, "gw-demo-cardiology").chat.completions.create(
        model="claude-sonnet-4",
        messages=MESSAGES,
        max_tokens=300,
        stop=["END"],
        temperature=1.7,
    )
    received = standins["anthropic-us"].received[-1]
    assert received.path == "/v1/messages"
    assert received.headers["anthropic-version"] == "2023-06-01"
    assert received.body["system"] == "Be brief."
    assert received.body["messages"] == [{"role": "user", "content": "Summarise the visit."}]
    assert received.body["max_tokens"] == 300
    assert received.body["stop_sequences"] == ["END"]
    assert received.body["temperature"] == 1.0
    assert received.body["model"] == "claude-sonnet-4-20250514"


def test_jwt_team_through_sdk(gateway: GatewayThread, standins: StandInServers) -> None:
    completion = client(gateway, mint_demo_jwt("radiology-apps")).chat.completions.create(
        model="gpt-4o", messages=MESSAGES
    )
    assert completion.choices[0].message.content
    assert standins["azure-us-east"].count == 1


def test_policy_deny_is_permission_denied(gateway: GatewayThread, standins: StandInServers) -> None:
    with pytest.raises(openai.PermissionDeniedError) as info:
        client(gateway, "gw-demo-eu-research", **{"X-Data-Classification": "phi"}).chat.completions.create(
            model="gpt-4o",
            messages=MESSAGES,
        )
    body = info.value.body
    assert isinstance(body, dict)
    assert body["code"] == "policy_denied" and "phi_not_permitted" in body["message"]
    assert body["decision_id"]
    assert info.value.response.headers["x-gateway-decision-id"] == body["decision_id"]
    assert sum(s.count for s in standins.standins.values()) == 0


def test_expired_jwt_is_authentication_error(gateway: GatewayThread) -> None:
    with pytest.raises(openai.AuthenticationError):
        client(gateway, mint_demo_jwt("radiology-apps", ttl_seconds=-60)).chat.completions.create(
            model="gpt-4o", messages=MESSAGES
        )


def test_bad_key_is_authentication_error(gateway: GatewayThread) -> None:
    with pytest.raises(openai.AuthenticationError) as info:
        client(gateway, "sk-not-a-gateway-key").chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert info.value.status_code == 401
    assert "sk-not-a-gateway-key" not in str(info.value.body)


def test_unknown_model_is_bad_request_without_echo(gateway: GatewayThread) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client(gateway, "gw-demo-marketing").chat.completions.create(model="secret-model-name-xyz", messages=MESSAGES)
    assert "secret-model-name-xyz" not in str(info.value.body)


def test_single_route_provider_failure_is_upstream_error_502(gateway: GatewayThread, standins: StandInServers) -> None:
    standins["azure-eu-west"].set_default(Behavior(status=503))
    with pytest.raises(openai.APIStatusError) as info:
        client(gateway, "gw-demo-eu-research").chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert info.value.status_code == 502
    assert isinstance(info.value.body, dict) and info.value.body["code"] == "upstream_error"


def test_single_route_timeout_is_504(standins: StandInServers) -> None:
    from tests.harness import settings_for

    standins["azure-eu-west"].set_default(Behavior(stall=True))
    with GatewayThread(settings_for(standins, timeout_seconds=0.5)) as gw, pytest.raises(openai.APIStatusError) as info:
        client(gw, "gw-demo-eu-research").chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert info.value.status_code == 504
    assert isinstance(info.value.body, dict) and info.value.body["code"] == "upstream_timeout"


def test_failover_to_equivalent_model_when_primary_fails(gateway: GatewayThread, standins: StandInServers) -> None:
    standins["azure-us-east"].script(Behavior(status=500))
    raw = client(
        gateway, "gw-demo-cardiology", **{"X-Use-Case": "discharge-summary"}
    ).chat.completions.with_raw_response.create(
        model="gpt-4o",
        messages=MESSAGES,
    )
    assert raw.headers["x-gateway-provider"] == "anthropic-us"
    assert raw.headers["x-gateway-model"] == "claude-sonnet-4"
    assert standins["openai-us"].count == 0  # never the non-BAA provider for PHI


def test_stream_cut_after_first_byte_surfaces_as_sdk_error(gateway: GatewayThread, standins: StandInServers) -> None:
    standins["openai-us"].set_default(Behavior(stream_cut_after=2))
    stream = client(gateway, "gw-demo-marketing").chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES, stream=True
    )
    received = []
    with pytest.raises(openai.APIError):
        for chunk in stream:
            received.append(chunk)
    assert received  # the first bytes had reached the client: no retry, an error instead of a fake [DONE]
    assert standins["openai-us"].count == 1


def test_models_list_is_filtered_by_policy(gateway: GatewayThread) -> None:
    eu = client(gateway, "gw-demo-eu-research").models.list()
    assert sorted(m.id for m in eu) == ["gpt-4o", "gpt-4o-mini", "text-embedding-3-small"]
    cardiology = {m.id: m for m in client(gateway, "gw-demo-cardiology").models.list()}
    assert sorted(cardiology) == ["claude-sonnet-4", "gpt-4o", "gpt-4o-mini", "text-embedding-3-small"]
    # each with the endpoints it serves: chat models never embeddings, the embedding model only those
    assert getattr(cardiology["text-embedding-3-small"], "endpoints", None) == ["embeddings"]
    assert getattr(cardiology["gpt-4o"], "endpoints", None) == ["chat.completions", "responses", "messages"]
    assert getattr(cardiology["claude-sonnet-4"], "endpoints", None) == ["chat.completions", "messages"]
    with pytest.raises(openai.AuthenticationError):
        client(gateway, "nobody").models.list()


def test_health_ready_metrics_and_admin(gateway: GatewayThread) -> None:
    base = gateway.base_url
    assert httpx.get(base + "/healthz").json() == {"status": "ok"}
    ready = httpx.get(base + "/readyz")
    assert ready.status_code == 200 and ready.json()["policy_revision"].startswith("sha256-")
    assert httpx.get(base + "/metrics").status_code == 401
    metrics = httpx.get(base + "/metrics", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    assert metrics.status_code == 200 and "gateway_requests_total" in metrics.text
    assert httpx.get(base + "/admin/status").status_code == 401
    status = httpx.get(base + "/admin/status", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}).json()
    assert status["policy_engine"] == "embedded" and status["state_store"] == "memory"
    assert set(status["breakers"]) == {"openai-us", "azure-us-east", "azure-eu-west", "anthropic-us"}


def test_unknown_endpoint_and_method_use_error_shape(gateway: GatewayThread) -> None:
    missing = httpx.post(gateway.base_url + "/v1/images/generations", json={})
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    wrong = httpx.get(gateway.base_url + "/v1/chat/completions")
    assert wrong.status_code == 405 and "error" in wrong.json()
