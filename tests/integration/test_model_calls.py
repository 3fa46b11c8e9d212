"""The model endpoints are called directly (app.GatewayApp), every other request goes through Starlette:
both must answer alike wherever they meet (methods, near-miss paths, errors)."""

from __future__ import annotations

import httpx2 as httpx
import pytest
from starlette.routing import Route

from gateway.app import MODEL_CALLS
from gateway.demo.standins import StandInServers
from gateway.pipeline import Pipeline
from tests.harness import GatewayThread

KEY = {"Authorization": "Bearer gw-demo-eu-research"}
CHAT = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hello"}]}


def test_the_direct_path_serves_exactly_the_routes_starlette_would(gateway: GatewayThread) -> None:
    posted = {
        route.path: route.endpoint
        for route in gateway.app.routes
        if isinstance(route, Route) and "POST" in (route.methods or ()) and route.path.startswith("/v1/")
    }
    assert posted == MODEL_CALLS


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
def test_other_methods_on_a_model_path_are_405_in_the_error_shape(gateway: GatewayThread, method: str) -> None:
    answer = httpx.request(method, gateway.base_url + "/v1/chat/completions", headers=KEY, timeout=10)
    assert answer.status_code == 405
    assert answer.json()["error"]["code"] == "method_not_allowed"


@pytest.mark.parametrize("path", ["/v1/chat/completions/", "/v1/chat/completion", "/V1/chat/completions", "/v1//chat"])
def test_near_miss_paths_are_not_model_calls(gateway: GatewayThread, path: str) -> None:
    answer = httpx.post(gateway.base_url + path, json=CHAT, headers=KEY, timeout=10, follow_redirects=False)
    assert answer.status_code in (307, 404), answer.text  # Starlette's slash redirect, or not found
    if answer.status_code == 404:
        assert answer.json()["error"]["type"] == "invalid_request_error"


def test_a_model_call_answers_and_is_recorded(gateway: GatewayThread) -> None:
    before = gateway.components.metrics.requests.labels(
        team="eu-research", use_case="literature-review", provider="azure-eu-west", model="gpt-4o", status="200"
    )._value.get()
    answer = httpx.post(gateway.base_url + "/v1/chat/completions", json=CHAT, headers=KEY, timeout=10)
    assert answer.status_code == 200, answer.text
    after = gateway.components.metrics.requests.labels(
        team="eu-research", use_case="literature-review", provider="azure-eu-west", model="gpt-4o", status="200"
    )._value.get()
    assert after == before + 1


def test_a_defect_on_the_direct_path_is_a_content_free_500(
    gateway: GatewayThread, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(self: Pipeline, request: object, api: object = None) -> None:
        raise ValueError("PATIENT-TEXT leaked into an exception")

    monkeypatch.setattr(Pipeline, "__call__", broken)
    answer = httpx.post(gateway.base_url + "/v1/chat/completions", json=CHAT, headers=KEY, timeout=10)
    assert answer.status_code == 500
    assert answer.json()["error"]["code"] == "internal_error"
    assert "PATIENT" not in answer.text and "Traceback" not in answer.text


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity", "1e400"])
def test_a_body_holding_nan_or_infinity_is_a_400_and_reaches_no_provider(
    gateway: GatewayThread, standins: StandInServers, constant: str
) -> None:
    """Python's parser takes them; JSON does not. Forwarded, they reached the provider as invalid JSON."""
    before = sum(s.count for s in standins.standins.values())
    body = b'{"model":"gpt-4o","temperature":%s,"messages":[{"role":"user","content":"hi"}]}' % constant.encode()
    answer = httpx.post(
        gateway.base_url + "/v1/chat/completions",
        content=body,
        headers={**KEY, "Content-Type": "application/json"},
        timeout=10,
    )
    assert answer.status_code == 400
    assert answer.json()["error"]["message"] == "request body is not valid JSON"
    assert sum(s.count for s in standins.standins.values()) == before
