"""Issue 10, item by item, against `gateway serve` as users run it (DEBUG logs, a decision log, an admin token).

Limits are set low here (1 s body and header deadlines, two unverified body reads at once) so that each
refusal is seen quickly; the defaults are in settings.Listen.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
import uuid
from collections.abc import Iterator

import httpx2 as httpx
import pytest

from gateway.demo.auth import DEMO_AUDIENCE, DEMO_ISSUER, sign_demo_jwt
from gateway.demo.standins import StandInServers
from tests.harness import GatewayProcess, gateway_config

ADMIN = "front-door-admin"
MARKETING = {"Authorization": "Bearer gw-demo-marketing"}
CARDIOLOGY = {"Authorization": "Bearer gw-demo-cardiology"}


@pytest.fixture(scope="module")
def gw(standins: StandInServers) -> Iterator[GatewayProcess]:
    config = gateway_config(
        standins,
        timeout_seconds=2.0,
        log_level="debug",
        listen={"body_timeout_seconds": 1.0, "header_timeout_seconds": 1.0, "max_unverified_body_reads": 2},
    )
    gateway = GatewayProcess(config, env={"GATEWAY_ADMIN_TOKEN": ADMIN})
    config["policy"] = {
        **config["policy"],
        "decision_logs": {"sink": "file", "path": str(gateway.workdir / "decisions.jsonl"), "flush_seconds": 0.1},
    }
    gateway = GatewayProcess(config, env={"GATEWAY_ADMIN_TOKEN": ADMIN}, workdir=gateway.workdir)
    with gateway:
        yield gateway


def canary() -> str:
    return f"CANARY{uuid.uuid4().hex}"


def chat(**extra: object) -> dict[str, object]:
    return {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], **extra}


def post(gw: GatewayProcess, body: object, headers: dict[str, str] | None = None) -> httpx.Response:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return httpx.post(
        gw.base_url + "/v1/chat/completions",
        content=data,
        headers={"Content-Type": "application/json", **(headers or {})},
        timeout=20,
    )


def raw_exchange(gw: GatewayProcess, payload: bytes, *, wait: float = 5.0) -> bytes:
    with socket.create_connection(("127.0.0.1", gw.port), timeout=wait) as conn:
        with contextlib.suppress(OSError):
            conn.sendall(payload)
        reply = b""
        with contextlib.suppress(OSError, TimeoutError):
            while chunk := conn.recv(65536):
                reply += chunk
    return reply


# 1. no URL in any log line


def test_query_string_and_path_never_reach_the_logs(gw: GatewayProcess) -> None:
    secret, in_path = canary(), canary()
    upgrade = raw_exchange(
        gw,
        f"GET /v1/chat/completions?patient={secret} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n".encode(),
    )
    assert not upgrade.startswith(b"HTTP/1.1 101"), "WebSockets are off"
    assert httpx.get(f"{gw.base_url}/v1/{in_path}?q={secret}", timeout=5).status_code == 404
    time.sleep(0.3)
    assert secret not in gw.output() and in_path not in gw.output()


# 2. no costly work before the credential is looked at


def test_unauthenticated_huge_tools_never_block_the_loop(gw: GatewayProcess) -> None:
    tools = [{"type": "function", "function": {"name": "f", "description": "word " * 800_000}}]
    body = chat(tools=tools)
    slowest = []

    def probe() -> None:
        for _ in range(20):
            started = time.perf_counter()
            httpx.get(gw.base_url + "/healthz", timeout=5)
            slowest.append(time.perf_counter() - started)
            time.sleep(0.01)

    prober = threading.Thread(target=probe)
    prober.start()
    for headers in ({}, {"Authorization": "Bearer not-a-key"}, {"Authorization": "Basic abc"}):
        started = time.perf_counter()
        assert post(gw, body, headers).status_code == 401
        assert time.perf_counter() - started < 1.0
    prober.join()
    assert max(slowest) < 0.5, f"/healthz took {max(slowest):.2f} s while bodies arrived"


def test_authenticated_huge_tools_are_counted_off_the_loop(gw: GatewayProcess) -> None:
    tools = [{"type": "function", "function": {"name": "f", "description": "word " * 700_000}}]
    done = threading.Event()
    slowest = [0.0]

    def probe() -> None:
        while not done.is_set():
            started = time.perf_counter()
            httpx.get(gw.base_url + "/healthz", timeout=5)
            slowest[0] = max(slowest[0], time.perf_counter() - started)
            time.sleep(0.01)

    prober = threading.Thread(target=probe)
    prober.start()
    answer = post(gw, chat(tools=tools), CARDIOLOGY | {"X-Use-Case": "discharge-summary"})
    done.set()
    prober.join()
    assert answer.status_code == 400  # ~700k tokens: over the team's minute
    assert slowest[0] < 0.5, f"/healthz took {slowest[0]:.2f} s while a 3.5 MB request was counted"


def test_a_million_spaces_never_panic_the_tokenizer(gw: GatewayProcess) -> None:
    answer = post(gw, {"model": "gpt-4o", "messages": [{"role": "user", "content": " " * 1_200_000}]}, CARDIOLOGY)
    assert answer.status_code < 500, answer.text
    time.sleep(0.2)
    assert "panicked" not in gw.output() and "RUST_BACKTRACE" not in gw.output()


# 3. deep JSON


def test_deeply_nested_json_is_400(gw: GatewayProcess) -> None:
    answer = post(gw, b"[" * 100_000 + b"]" * 100_000, MARKETING)
    assert answer.status_code == 400 and answer.json()["error"]["code"] == "invalid_request"
    nested = b'{"model": "gpt-4o-mini", "messages": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    assert post(gw, nested, MARKETING).status_code == 400


# 4. slow bodies, header floods


def test_unauthenticated_slow_bodies_are_refused_before_the_body(gw: GatewayProcess) -> None:
    conns = []
    for _ in range(30):
        conn = socket.create_connection(("127.0.0.1", gw.port), timeout=5)
        conn.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 4000000\r\n\r\n")
        conn.sendall(b"x" * 100_000)
        conns.append(conn)
    for conn in conns:
        reply = conn.recv(4096)
        assert reply.startswith(b"HTTP/1.1 401"), reply[:40]
        conn.close()


def test_authenticated_slow_body_gets_408(gw: GatewayProcess) -> None:
    with socket.create_connection(("127.0.0.1", gw.port), timeout=5) as conn:
        conn.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer gw-demo-marketing\r\n"
            b"Content-Length: 1000\r\n\r\n{"
        )
        started = time.monotonic()
        reply = conn.recv(4096)
        while b"\r\n\r\n" not in reply or b"request_timeout" not in reply:  # the answer may come in pieces
            more = conn.recv(4096)
            if not more:
                break
            reply += more
    assert reply.startswith(b"HTTP/1.1 408") and b"request_timeout" in reply
    assert time.monotonic() - started < 3


def test_unverified_body_reads_are_bounded(gw: GatewayProcess) -> None:
    jwt_shaped = sign_demo_jwt({"team": "radiology-apps"})  # verified only by the policy, after the body
    head = (
        f"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {jwt_shaped}\r\n"
        "Content-Length: 1000\r\n\r\n{"
    ).encode()
    holders = [socket.create_connection(("127.0.0.1", gw.port), timeout=5) for _ in range(2)]
    for conn in holders:
        conn.sendall(head)
    time.sleep(0.2)
    third = post(gw, chat(), {"Authorization": f"Bearer {jwt_shaped}"})
    assert third.status_code == 503 and third.json()["error"]["code"] == "server_busy"
    assert third.headers["retry-after"] == "1"
    for conn in holders:
        assert conn.recv(4096).startswith(b"HTTP/1.1 408")
        conn.close()
    assert post(gw, chat(), MARKETING).status_code == 200, "a listed key never waits for a slot"


def test_header_flood_is_431(gw: GatewayProcess) -> None:
    big = raw_exchange(gw, b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 8_000_000 + b"\r\n\r\n")
    assert big.startswith(b"HTTP/1.1 431")
    many = "".join(f"X-H{i}: v\r\n" for i in range(500))
    assert raw_exchange(gw, f"GET /healthz HTTP/1.1\r\nHost: x\r\n{many}\r\n".encode()).startswith(b"HTTP/1.1 431")
    assert httpx.get(gw.base_url + "/healthz", timeout=5).status_code == 200


def test_headers_that_never_finish_get_408(gw: GatewayProcess) -> None:
    started = time.monotonic()
    reply = raw_exchange(gw, b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: a")
    assert reply.startswith(b"HTTP/1.1 408") and time.monotonic() - started < 3
    idle = raw_exchange(gw, b"")
    assert idle.startswith(b"HTTP/1.1 408"), "a connection that sends nothing is closed too"


# 5. the max_tokens cap


def test_max_tokens_spellings_must_agree(gw: GatewayProcess, standins: StandInServers) -> None:
    both = post(gw, chat(max_completion_tokens=10, max_tokens=999_999_999), MARKETING)
    assert both.status_code == 400
    differ = post(gw, chat(max_completion_tokens=10, max_tokens=20), MARKETING)
    assert differ.status_code == 400 and "differ" in differ.json()["error"]["message"]
    assert post(gw, chat(max_tokens="lots"), MARKETING).json()["error"]["param"] == "max_tokens"
    assert post(gw, chat(max_completion_tokens="lots"), MARKETING).status_code == 400
    before = standins["openai-us"].count
    assert post(gw, chat(max_completion_tokens=10, max_tokens=10), MARKETING).status_code == 200
    sent = standins["openai-us"].received[before].body
    assert sent["max_tokens"] == 10 and sent["max_completion_tokens"] == 10


# 6. JWTs


def _claims(**changes: object) -> dict[str, object]:
    now = int(time.time())
    claims: dict[str, object] = {"iss": DEMO_ISSUER, "aud": DEMO_AUDIENCE, "team": "radiology-apps", "iat": now}
    claims["exp"] = now + 600
    claims.update(changes)
    return {k: v for k, v in claims.items() if v is not None}


@pytest.mark.parametrize(
    ("claims", "header", "status"),
    [
        (_claims(), None, 200),
        (_claims(exp=None), None, 401),  # never expires
        (_claims(exp=int(time.time()) + 30 * 86400), None, 401),  # a month: over the lifetime limit
        (_claims(nbf=int(time.time()) + 3600), None, 401),
        (_claims(), {"alg": 5}, 401),
        (_claims(), {"alg": "none"}, 401),
    ],
    ids=["valid", "no-exp", "too-long", "not-yet-valid", "alg-number", "alg-none"],
)
def test_jwt_lifetimes_and_malformed_headers(
    gw: GatewayProcess, claims: dict[str, object], header: dict[str, object] | None, status: int
) -> None:
    token = sign_demo_jwt(claims, header)
    answer = post(gw, chat(model="gpt-4o"), {"Authorization": f"Bearer {token}"})
    assert answer.status_code == status, answer.text
    if status == 401:
        assert answer.json()["error"]["code"] == "unauthenticated"


# 7. admin token


def test_admin_token_only_as_bearer(gw: GatewayProcess) -> None:
    for scheme in ("Basic", "Token", "bearer"):
        answer = httpx.get(gw.base_url + "/metrics", headers={"Authorization": f"{scheme} {ADMIN}"}, timeout=5)
        assert answer.status_code == (200 if scheme == "bearer" else 401), scheme
    assert httpx.get(gw.base_url + "/admin/status", headers={"Authorization": ADMIN}, timeout=5).status_code == 401


# 8. models are not enumerable without a credential


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer nope"}, {"Authorization": "Bearer " + sign_demo_jwt({"team": "x"})}],
    ids=["none", "unknown-key", "unsigned-jwt"],
)
def test_unknown_model_without_a_credential_is_401(gw: GatewayProcess, headers: dict[str, str]) -> None:
    assert post(gw, chat(model="no-such-model"), headers).status_code == 401
    assert post(gw, chat(model="gpt-4o-mini"), headers).status_code == 401
    assert httpx.get(gw.base_url + "/v1/models", headers=headers, timeout=5).status_code == 401
    assert post(gw, chat(model="no-such-model"), MARKETING).status_code == 400


# 9. PHI teams cannot declassify their own requests


@pytest.mark.parametrize("declared", ["none", "pii", "NONE"])
def test_phi_team_cannot_downgrade_its_requests(gw: GatewayProcess, standins: StandInServers, declared: str) -> None:
    before = standins["openai-us"].count
    answer = post(
        gw,
        chat(model="gpt-4o"),
        CARDIOLOGY | {"X-Use-Case": "discharge-summary", "X-Data-Classification": declared},
    )
    assert answer.status_code == 403
    assert "phi_declassification_not_granted" in answer.json()["error"]["message"]
    assert standins["openai-us"].count == before, "nothing reached a provider without a BAA"


def test_phi_team_declassifies_where_compliance_granted_it(gw: GatewayProcess) -> None:
    headers = CARDIOLOGY | {"X-Use-Case": "patient-education", "X-Data-Classification": "none"}
    answer = post(gw, chat(model="gpt-4o"), headers)
    assert answer.status_code == 200
