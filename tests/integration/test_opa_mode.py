"""The gateway with `policy.engine: opa`, asking an OPA-speaking server, used through the official SDK."""

from __future__ import annotations

import os
from collections.abc import Iterator

import httpx2 as httpx
import openai
import pytest

from gateway.demo.standins import StandInServers
from tests.factories import SHIPPED_BUNDLE
from tests.harness import ADMIN_TOKEN, GatewayThread, sdk_client, settings_for
from tests.opa_double import Fault, OpaDouble


@pytest.fixture(scope="module")
def double() -> Iterator[OpaDouble]:
    server = OpaDouble(SHIPPED_BUNDLE.read_bytes()).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def opa_gateway(standins: StandInServers, double: OpaDouble) -> Iterator[GatewayThread]:
    os.environ["GATEWAY_ADMIN_TOKEN"] = ADMIN_TOKEN
    settings = settings_for(standins, policy={"engine": "opa", "opa_url": double.url, "timeout_ms": 200})
    with GatewayThread(settings) as gw:
        yield gw


def client(gw: GatewayThread, key: str) -> openai.OpenAI:
    return sdk_client(gw.base_url, key)


def test_decisions_come_from_the_opa_server(opa_gateway: GatewayThread, double: OpaDouble) -> None:
    before = double.requests
    raw = client(opa_gateway, "gw-demo-eu-research").chat.completions.with_raw_response.create(
        model="gpt-4o", messages=[{"role": "user", "content": "hi"}]
    )
    assert raw.headers["x-gateway-provider"] == "azure-eu-west"
    assert raw.headers["x-gateway-policy-revision"] == double.revision
    assert double.requests == before + 1
    with pytest.raises(openai.PermissionDeniedError):
        client(opa_gateway, "gw-demo-eu-research").chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": "hi"}], extra_headers={"X-Data-Classification": "phi"}
        )


def test_opa_server_failure_is_503_policy_unavailable(
    opa_gateway: GatewayThread, double: OpaDouble, standins: StandInServers
) -> None:
    double.default = Fault(latency=1.0)
    try:
        with pytest.raises(openai.APIStatusError) as info:
            client(opa_gateway, "gw-demo-eu-research").chat.completions.create(
                model="gpt-4o", messages=[{"role": "user", "content": "hi"}]
            )
    finally:
        double.default = Fault()
    assert info.value.status_code == 503
    assert isinstance(info.value.body, dict) and info.value.body["code"] == "policy_unavailable"
    assert info.value.response.headers["retry-after"]
    assert sum(s.count for s in standins.standins.values()) == 0, "fail closed: nothing was forwarded"


def test_readyz_and_status_report_the_opa_engine(opa_gateway: GatewayThread) -> None:
    ready = httpx.get(opa_gateway.base_url + "/readyz")
    assert ready.status_code == 200
    status = httpx.get(
        opa_gateway.base_url + "/admin/status", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
    ).json()
    assert status["policy_engine"] == "opa" and status["policy"]["engine"] == "opa"


@pytest.mark.parametrize(
    ("fault", "status", "code"),
    [(Fault(latency=1.0), 503, "policy_unavailable"), (Fault(status=500), 503, "policy_unavailable")],
    ids=["stalled", "server-error"],
)
def test_models_and_chat_answer_the_same_for_the_same_policy_failure(
    opa_gateway: GatewayThread, double: OpaDouble, fault: Fault, status: int, code: str
) -> None:
    headers = {"Authorization": "Bearer gw-demo-eu-research"}
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}
    double.default = fault
    try:
        chat = httpx.post(opa_gateway.base_url + "/v1/chat/completions", json=body, headers=headers, timeout=10)
        listed = httpx.get(opa_gateway.base_url + "/v1/models", headers=headers, timeout=10)
    finally:
        double.default = Fault()
    assert (chat.status_code, chat.json()["error"]["code"]) == (status, code)
    assert (listed.status_code, listed.json()["error"]["code"]) == (status, code)
    assert listed.headers["retry-after"] and listed.headers["x-gateway-decision-id"]


def test_keys_the_opa_server_does_not_list_are_refused_before_a_decision(
    opa_gateway: GatewayThread, double: OpaDouble
) -> None:
    engine = opa_gateway.components.policy
    assert engine.known_api_key_hashes(), "read from the server's data.gateway.authn.known_api_key_hashes at start"
    before = double.requests
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}
    refused = httpx.post(
        opa_gateway.base_url + "/v1/chat/completions", json=body, headers={"Authorization": "Bearer nope"}
    )
    assert refused.status_code == 401 and double.requests == before, "no decision asked for an unlisted key"
    listed = httpx.post(
        opa_gateway.base_url + "/v1/chat/completions", json=body, headers={"Authorization": "Bearer gw-demo-marketing"}
    )
    assert listed.status_code == 200 and double.requests == before + 1
