"""Bedrock upstreams: Chat Completions (openai SDK) and Anthropic Messages (anthropic SDK) to Converse and
ConverseStream, SigV4-signed by botocore and checked by the stand-in with the standard library, streams in
AWS event-stream frames, AWS errors mapped. Compliance's policy names the provider `anthropic-us`; the
platform config makes it a Bedrock endpoint (the policy never knows the kind)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx2 as httpx
import openai
import pytest
from anthropic.types import MessageParam, ToolParam
from hypothesis import HealthCheck, given, settings

from gateway.demo.standins import STANDIN_AWS, Behavior, StandIn, StandInServers
from gateway.providers import bedrock
from tests.harness import GatewayProcess, GatewayThread, gateway_config, sdk_client, settings_for
from tests.integration.test_fuzz import messages_bodies, near_valid

MESSAGES: list[MessageParam] = [{"role": "user", "content": "Summarise the visit."}]
PHI = {"X-Use-Case": "discharge-summary"}


@pytest.fixture(scope="module")
def servers() -> Iterator[StandInServers]:
    standins = [
        StandIn("openai-us", "openai"),
        StandIn("azure-us-east", "azure_openai"),
        StandIn("azure-eu-west", "azure_openai"),
        StandIn("anthropic-us", "bedrock"),
    ]
    running = StandInServers(standins).start_in_thread()
    yield running
    running.stop_thread()


@pytest.fixture(scope="module")
def gw(servers: StandInServers) -> Iterator[GatewayThread]:
    patch = pytest.MonkeyPatch()
    for name, value in {
        **STANDIN_AWS,
        "AWS_EC2_METADATA_DISABLED": "true",  # never probe an instance metadata service from a test
        "AWS_CONFIG_FILE": "/dev/null",
        "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
    }.items():
        patch.setenv(name, value)
    bedrock.reset_credentials()
    with GatewayThread(settings_for(servers)) as gateway:
        yield gateway
    patch.undo()
    bedrock.reset_credentials()


@pytest.fixture(autouse=True)
def _reset(servers: StandInServers) -> Iterator[None]:
    for standin in servers.standins.values():
        standin.reset()
    yield


def test_chat_to_converse_signed_and_translated(gw: GatewayThread, servers: StandInServers) -> None:
    client = sdk_client(gw.base_url, "gw-demo-cardiology", timeout=15, **PHI)
    raw = client.chat.completions.with_raw_response.create(
        model="claude-sonnet-4",
        messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Summarise."}],
        max_tokens=100,
        temperature=0.2,
    )
    completion = raw.parse()
    assert raw.headers["x-gateway-provider"] == "anthropic-us"  # the signature was accepted: no failover
    assert completion.choices[0].message.content == "Stand-in answer: all good."
    assert completion.usage is not None and completion.usage.completion_tokens == 4
    sent = servers["anthropic-us"].received[-1]
    assert sent.path == "/model/anthropic.claude-sonnet-4-20250514-v1:0/converse"  # sent as %3A, signed as such
    assert sent.body["system"] == [{"text": "Be brief."}]
    assert sent.body["inferenceConfig"] == {"maxTokens": 100, "temperature": 0.2}
    assert sent.headers["Authorization"].startswith("AWS4-HMAC-SHA256 Credential=AKIDSTANDIN")


def test_chat_stream_from_event_stream_frames(gw: GatewayThread, servers: StandInServers) -> None:
    client = sdk_client(gw.base_url, "gw-demo-cardiology", timeout=15, **PHI)
    chunks = list(
        client.chat.completions.create(
            model="claude-sonnet-4",
            messages=[{"role": "user", "content": "x"}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Stand-in answer: all good."
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 4
    assert servers["anthropic-us"].received[-1].path.endswith("/converse-stream")


def test_messages_to_converse_stream_and_tools(gw: GatewayThread, servers: StandInServers) -> None:
    client = anthropic.Anthropic(base_url=gw.base_url, api_key="gw-demo-cardiology", max_retries=0, default_headers=PHI)
    try:
        message = client.messages.create(model="claude-sonnet-4", max_tokens=50, messages=MESSAGES)
        block = message.content[0]
        assert block.type == "text" and block.text == "Stand-in answer: all good." and message.usage.output_tokens == 4
        with client.messages.stream(model="claude-sonnet-4", max_tokens=50, messages=MESSAGES) as stream:
            assert "".join(stream.text_stream) == "Stand-in answer: all good."
            assert stream.get_final_message().stop_reason == "end_turn"
        tool: ToolParam = {"name": "lookup", "input_schema": {"type": "object", "properties": {}}}
        servers["anthropic-us"].set_default(Behavior(tool_call=("lookup", '{"code": "I10"}')))
        called = client.messages.create(model="claude-sonnet-4", max_tokens=50, messages=MESSAGES, tools=[tool])
        use = called.content[0]
        assert called.stop_reason == "tool_use" and use.type == "tool_use" and use.input == {"code": "I10"}
        with client.messages.stream(model="claude-sonnet-4", max_tokens=50, messages=MESSAGES, tools=[tool]) as stream:
            final = stream.get_final_message()
        assert final.content[0].type == "tool_use" and final.content[0].input == {"code": "I10"}
        assert servers["anthropic-us"].received[-1].body["toolConfig"]["tools"][0]["toolSpec"]["name"] == "lookup"
    finally:
        client.close()


def test_validation_error_is_the_clients_400(gw: GatewayThread, servers: StandInServers) -> None:
    servers["anthropic-us"].set_default(Behavior(status=400))
    with pytest.raises(openai.BadRequestError):
        sdk_client(gw.base_url, "gw-demo-cardiology", timeout=15, **PHI).chat.completions.create(
            model="claude-sonnet-4", messages=[{"role": "user", "content": "x"}]
        )
    assert servers["azure-us-east"].count == 0


@pytest.mark.parametrize(
    ("behavior", "reason"),
    [
        (Behavior(status=429, retry_after="1"), "throttled"),
        (Behavior(status=429, aws_error="ModelNotReadyException"), "not ready"),
        (Behavior(status=503), "unavailable"),
    ],
)
def test_aws_errors_fail_over_along_policy_routes(
    gw: GatewayThread, servers: StandInServers, behavior: Behavior, reason: str
) -> None:
    servers["anthropic-us"].set_default(behavior)
    client = sdk_client(gw.base_url, "gw-demo-cardiology", timeout=15, **PHI)
    raw = client.chat.completions.with_raw_response.create(
        model="claude-sonnet-4", messages=[{"role": "user", "content": "x"}]
    )
    assert raw.headers["x-gateway-provider"] == "azure-us-east", reason  # the equivalent model at a BAA provider
    assert servers["openai-us"].count == 0


def test_a_bad_signature_is_refused_by_the_stand_in(servers: StandInServers) -> None:
    import httpx2 as httpx

    url = f"http://127.0.0.1:{servers['anthropic-us'].port}/model/m/converse"
    forged = {
        "Authorization": "AWS4-HMAC-SHA256 Credential=AKIDSTANDIN000000000/20261129/us-east-1/bedrock/aws4_request, "
        "SignedHeaders=host;x-amz-date, Signature=" + "0" * 64,
        "X-Amz-Date": "20261129T000000Z",
    }
    reply = httpx.post(url, content=b"{}", headers=forged)
    assert reply.status_code == 403 and "signature does not match" in reply.text


def test_no_phi_canary_leaves_through_bedrock(servers: StandInServers, tmp_path: Path) -> None:
    """The canary rule for the Bedrock kind: chat and Messages, stream and not, a provider error that
    quotes the prompt, a mid-stream cut; nothing the gateway process writes carries the PHI, nor the
    AWS secret (botocore logs canonical requests at DEBUG: silenced)."""
    config = gateway_config(servers, timeout_seconds=2.0, log_level="debug")
    env = {
        **STANDIN_AWS,
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_CONFIG_FILE": "/dev/null",
        "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
    }
    canaries: list[str] = []

    def phi() -> str:
        canaries.append(f"CANARY{uuid.uuid4().hex}")
        return canaries[-1]

    headers = {"Authorization": "Bearer gw-demo-cardiology", **PHI}
    with GatewayProcess(config, env=env, workdir=tmp_path) as gateway:
        base = gateway.base_url
        bodies = []
        for stream in (False, True):
            chat = {"model": "claude-sonnet-4", "stream": stream, "messages": [{"role": "user", "content": phi()}]}
            assert httpx.post(base + "/v1/chat/completions", json=chat, headers=headers).status_code == 200
            message = {**chat, "max_tokens": 20, "system": phi()}
            assert httpx.post(base + "/v1/messages", json=message, headers=headers).status_code == 200
        servers["anthropic-us"].script(Behavior(status=400, echo_prompt_in_error=True))
        refused = httpx.post(
            base + "/v1/chat/completions",
            json={"model": "claude-sonnet-4", "messages": [{"role": "user", "content": phi()}]},
            headers=headers,
        )
        bodies.append(refused.text)
        servers["anthropic-us"].script(Behavior(stream_cut_after=1))
        cut = httpx.post(
            base + "/v1/messages",
            json={
                "model": "claude-sonnet-4",
                "max_tokens": 20,
                "stream": True,
                "messages": [{"role": "user", "content": phi()}],
            },
            headers=headers,
        )
        assert cut.status_code == 200 and "event: error" in cut.text
        assert refused.status_code == 400
    output = gateway.output()
    assert '"request_id"' in output
    assert [c for c in canaries if c in output or any(c in b for b in bodies)] == []
    assert STANDIN_AWS["AWS_SECRET_ACCESS_KEY"] not in output and "Signature=" not in output


@settings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck), database=None)
@given(chat=near_valid, message=messages_bodies)
def test_fuzzed_bodies_through_bedrock_never_5xx(
    gw: GatewayThread, chat: dict[str, Any], message: dict[str, Any]
) -> None:
    """The fuzz suite's near-valid bodies, through a gateway whose claude route is Bedrock (PHI team)."""
    headers = {"Authorization": "Bearer gw-demo-cardiology", **PHI}
    for path, body in (("/v1/chat/completions", chat), ("/v1/messages", message)):
        reply = httpx.post(gw.base_url + path, content=json.dumps(body).encode(), headers=headers, timeout=10)
        assert reply.status_code < 500, (path, reply.text)
