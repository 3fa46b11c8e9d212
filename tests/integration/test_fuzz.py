"""Property-based fuzzing of the HTTP surface: whatever arrives, never a 5xx, never content echoed."""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterator
from typing import Any

import httpx2 as httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.demo.auth import sign_demo_jwt
from tests.harness import GatewayThread

json_scalars = (
    st.none() | st.booleans() | st.integers(-(2**63), 2**63) | st.floats(allow_nan=False) | st.text(max_size=30)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)
roles = st.sampled_from(["system", "user", "assistant", "tool", "developer", "function", "robot", "", None])
messages = st.lists(
    st.fixed_dictionaries(
        {"role": roles},
        optional={
            "content": json_values | st.text(max_size=40),
            "tool_calls": json_values,
            "name": json_values,
            "tool_call_id": json_values,
        },
    ),
    max_size=4,
)
near_valid = st.fixed_dictionaries(
    {
        "model": st.sampled_from(["gpt-4o", "gpt-4o-mini", "claude-sonnet-4", "nope"]) | json_values,
        "messages": messages | json_values,
    },
    optional={
        "stream": st.booleans() | json_values,
        "max_tokens": st.integers(-5, 2_000_000) | json_values,
        "max_completion_tokens": st.integers(-5, 10) | json_values,
        "n": st.integers(-1, 4) | json_values,
        "temperature": st.floats(-3, 3, allow_nan=False) | json_values,
        "stream_options": json_values,
        "stop": json_values,
        "tools": json_values,
        "top_p": json_values,
    },
)
headers = st.fixed_dictionaries(
    {},
    optional={
        "Authorization": st.sampled_from(
            ["Bearer gw-demo-marketing", "Bearer gw-demo-cardiology", "Basic abc", "Bearer a b", "Bearer a.b.c"]
        )
        | st.builds(
            lambda claims, header: "Bearer " + sign_demo_jwt(claims, header),
            st.dictionaries(st.sampled_from(["team", "exp", "iat", "nbf", "iss", "aud"]), json_scalars, max_size=6),
            st.none() | st.dictionaries(st.sampled_from(["alg", "typ", "kid"]), json_scalars, max_size=3),
        ),
        "X-Use-Case": st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126), max_size=80),
        "X-Data-Classification": st.sampled_from(["phi", "PII", "none", "secret", "", "p h i"]),
        "Content-Type": st.sampled_from(["application/json", "text/plain", "application/x-www-form-urlencoded"]),
    },
)

embedding_models = st.sampled_from(["text-embedding-3-small", "gpt-4o", "nope"]) | json_values
embeddings_bodies = st.fixed_dictionaries(
    {
        "model": embedding_models,
        "input": st.text(max_size=30)
        | st.lists(st.text(max_size=10), max_size=3)
        | st.lists(st.integers(-2, 2**40), max_size=3)
        | st.lists(st.lists(st.integers(-2, 100), max_size=3), max_size=3)
        | json_values,
    },
    optional={
        "dimensions": st.integers(-1, 70_000) | json_values,
        "encoding_format": st.sampled_from(["float", "base64", "hex"]) | json_values,
        "user": json_values,
        "stream": json_values,
    },
)
response_items = st.lists(
    st.fixed_dictionaries(
        {"role": roles},
        optional={
            "type": st.sampled_from(["message", "function_call_output", "item_reference"]) | json_values,
            "content": json_values | st.text(max_size=20),
            "call_id": json_values,
            "output": json_values,
        },
    ),
    max_size=3,
)
responses_bodies = st.fixed_dictionaries(
    {
        "model": st.sampled_from(["gpt-4o", "gpt-4o-mini", "claude-sonnet-4"]) | json_values,
        "input": st.text(max_size=30) | response_items | json_values,
    },
    optional={
        "instructions": json_values,
        "max_output_tokens": st.integers(-5, 2_000_000) | json_values,
        "stream": st.booleans() | json_values,
        "previous_response_id": st.text(max_size=20) | json_values,
        "store": json_values,
        "background": json_values,
        "tools": json_values,
        "reasoning": json_values,
        "temperature": json_values,
    },
)
blocks = st.lists(
    st.fixed_dictionaries(
        {"type": st.sampled_from(["text", "image", "tool_use", "tool_result", "document", "thinking"]) | json_values},
        optional={
            "text": json_values,
            "id": json_values,
            "name": json_values,
            "input": json_values,
            "tool_use_id": json_values,
            "content": json_values,
            "source": json_values,
        },
    ),
    max_size=3,
)
anthropic_messages = st.lists(
    st.fixed_dictionaries(
        {
            "role": st.sampled_from(["user", "assistant", "system", None]),
            "content": st.text(max_size=20) | blocks | json_values,
        }
    ),
    max_size=3,
)
messages_bodies = st.fixed_dictionaries(
    {
        "model": st.sampled_from(["claude-sonnet-4", "gpt-4o-mini", "gpt-4o"]) | json_values,
        "messages": anthropic_messages | json_values,
    },
    optional={
        "max_tokens": st.integers(-5, 2_000_000) | json_values,
        "system": json_values,
        "stream": st.booleans() | json_values,
        "tools": json_values,
        "tool_choice": json_values,
        "stop_sequences": json_values,
        "temperature": json_values,
        "metadata": json_values,
    },
)

FUZZ = settings(
    max_examples=int(os.environ.get("GATEWAY_FUZZ_EXAMPLES", "1000")),
    deadline=None,
    suppress_health_check=list(HealthCheck),
    database=None,
)


@pytest.fixture(scope="module")
def http(gateway: GatewayThread) -> Iterator[httpx.Client]:
    # TCP_NODELAY: without it every request waits ~40 ms on delayed ACKs (headers and body are two writes)
    transport = httpx.HTTPTransport(socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)])
    with httpx.Client(base_url=gateway.base_url, timeout=10, transport=transport) as client:
        yield client


def _check(response: httpx.Response, sent: bytes, *, anthropic: bool = False) -> None:
    assert response.status_code < 500, response.text
    if response.status_code >= 400 and response.headers.get("content-type", "").startswith("application/json"):
        body = response.json()
        if anthropic:
            assert body["type"] == "error" and set(body["error"]) >= {"type", "message", "code"}
        else:
            assert set(body["error"]) >= {"type", "code", "message", "param"}


@FUZZ
@given(body=near_valid, extra=headers)
def test_near_valid_chat_bodies_never_5xx(http: httpx.Client, body: dict[str, Any], extra: dict[str, str]) -> None:
    raw = json.dumps(body).encode()
    _check(http.post("/v1/chat/completions", content=raw, headers=extra), raw)


API_FUZZ = settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck), database=None)


@API_FUZZ
@given(body=embeddings_bodies, extra=headers)
def test_near_valid_embeddings_bodies_never_5xx(
    http: httpx.Client, body: dict[str, Any], extra: dict[str, str]
) -> None:
    raw = json.dumps(body).encode()
    _check(http.post("/v1/embeddings", content=raw, headers=extra), raw)


@API_FUZZ
@given(body=responses_bodies, extra=headers)
def test_near_valid_responses_bodies_never_5xx(http: httpx.Client, body: dict[str, Any], extra: dict[str, str]) -> None:
    raw = json.dumps(body).encode()
    _check(http.post("/v1/responses", content=raw, headers=extra), raw)


@API_FUZZ
@given(body=messages_bodies, extra=headers, path=st.sampled_from(["/v1/messages", "/v1/messages/count_tokens"]))
def test_near_valid_messages_bodies_never_5xx(
    http: httpx.Client, body: dict[str, Any], extra: dict[str, str], path: str
) -> None:
    raw = json.dumps(body).encode()
    _check(http.post(path, content=raw, headers=extra), raw, anthropic=True)


@API_FUZZ
@given(response_id=st.text(max_size=40), method=st.sampled_from(["GET", "DELETE"]), extra=headers)
def test_stored_response_ids_never_5xx(
    http: httpx.Client, response_id: str, method: str, extra: dict[str, str]
) -> None:
    from urllib.parse import quote

    response = http.request(method, "/v1/responses/" + quote(response_id, safe=""), headers=extra)
    assert response.status_code < 500, response.text


@FUZZ
@given(raw=st.binary(max_size=300) | json_values.map(lambda v: json.dumps(v).encode()))
def test_arbitrary_bytes_and_json_never_5xx(http: httpx.Client, raw: bytes) -> None:
    _check(http.post("/v1/chat/completions", content=raw, headers={"Authorization": "Bearer gw-demo-marketing"}), raw)


@settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck), database=None)
@given(
    path=st.text(alphabet="abcdefghijklmnopqrstuvwxyz/._-0123456789%", max_size=40),
    method=st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH"]),
)
def test_any_path_and_method_never_5xx(http: httpx.Client, path: str, method: str) -> None:
    response = http.request(method, "/" + path, headers={"Authorization": "Bearer gw-demo-marketing"}, content=b"{}")
    assert response.status_code < 500


def test_body_over_limit_is_413(http: httpx.Client) -> None:
    big = b'{"model":"gpt-4o","messages":[{"role":"user","content":"' + b"a" * (5 * 1024 * 1024) + b'"}]}'
    response = http.post("/v1/chat/completions", content=big, headers={"Authorization": "Bearer gw-demo-marketing"})
    assert response.status_code == 413 and response.json()["error"]["code"] == "request_too_large"


def test_chunked_body_over_limit_is_413(http: httpx.Client) -> None:
    def chunks() -> Any:
        for _ in range(80):
            yield b"x" * 65536

    response = http.post(
        "/v1/chat/completions", content=chunks(), headers={"Authorization": "Bearer gw-demo-marketing"}
    )
    assert response.status_code == 413


def test_non_utf8_body_is_400(http: httpx.Client) -> None:
    body = b'{"model": "gpt-4o", "messages": "\xff\xfe"}'
    response = http.post("/v1/chat/completions", content=body, headers={"Authorization": "Bearer gw-demo-marketing"})
    assert response.status_code == 400 and "UTF-8" in response.json()["error"]["message"]
    anonymous = http.post("/v1/chat/completions", content=body)
    assert anonymous.status_code == 401, "no credential: refused before the body is read"


def test_oversized_header_is_refused_without_5xx(gateway: GatewayThread) -> None:
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=5) as conn:
        conn.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 200_000 + b"\r\n\r\n")
        reply = b""
        try:
            while b"\r\n" not in reply and (chunk := conn.recv(65536)):
                reply += chunk
        except (ConnectionResetError, TimeoutError):
            pass
    assert not reply.startswith(b"HTTP/1.1 5")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("stream", "yes"),
        ("n", 3),
        ("max_tokens", 0),
        ("max_tokens", -1),
        ("max_tokens", 1.5),
        ("max_tokens", 10**9),
        ("messages", []),
        ("messages", "hello"),
        ("temperature", 9),
        ("stream_options", {"include_usage": True}),
    ],
)
def test_out_of_range_parameters_are_400_naming_the_param(http: httpx.Client, field: str, value: Any) -> None:
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], field: value}
    response = http.post("/v1/chat/completions", json=body, headers={"Authorization": "Bearer gw-demo-marketing"})
    assert response.status_code == 400
    assert response.json()["error"]["param"] == field


def test_gateway_still_healthy_after_fuzzing(http: httpx.Client) -> None:
    assert http.get("/healthz").status_code == 200
    ok = http.post(
        "/v1/chat/completions",
        json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]},
        headers={"Authorization": "Bearer gw-demo-marketing"},
    )
    assert ok.status_code in (200, 429)
