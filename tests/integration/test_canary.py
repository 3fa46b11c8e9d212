"""Canaries: a PHI team's words must never reach anything the gateway process writes.

The gateway runs as `gateway serve` (a real subprocess, DEBUG logging on) in
front of stand-in providers. Every request carries a unique canary string in
its content (or its credential, or a header); the stand-ins are scripted to fail
in every way, including quoting the prompt back in their error bodies. The
test then reads everything the process wrote, and every error body the client
got, and asserts no PHI canary appears. The same suite shows that a
content-logging team's canaries do appear, where its policy allows.
"""

from __future__ import annotations

import json
import random
import socket
import time
import uuid
from collections.abc import Iterator

import httpx2 as httpx
import pytest

from gateway.demo.auth import DEMO_AUDIENCE, DEMO_ISSUER, sign_demo_jwt
from gateway.demo.standins import Behavior, StandInServers
from tests.harness import GatewayProcess, gateway_config, standins_running

PHI_KEY, CONTENT_KEY = "gw-demo-cardiology", "gw-demo-marketing"


def canary() -> str:
    return f"CANARY{uuid.uuid4().hex}"


class Run:
    def __init__(self, gateway: GatewayProcess, standins: StandInServers) -> None:
        self.gateway = gateway
        self.standins = standins
        self.phi: list[str] = []
        self.content: list[str] = []
        self.client_bodies: list[str] = []
        self.client_headers: list[str] = []
        self.posts = 0  # requests sent to an API endpoint: each must leave exactly one record

    def post(
        self,
        body: bytes | dict[str, object],
        *,
        key: str = PHI_KEY,
        headers: dict[str, str] | None = None,
        path: str = "/v1/chat/completions",
    ) -> httpx.Response:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        credential = {"Authorization": f"Bearer {key}"} if key else {}
        all_headers = {**credential, "Content-Type": "application/json", **(headers or {})}
        response = httpx.post(self.gateway.base_url + path, content=data, headers=all_headers, timeout=20)
        self.posts += 1
        if response.status_code >= 400:
            self.client_bodies.append(response.text)
        self.client_headers.append(json.dumps(dict(response.headers)))
        return response


def chat(text: str, **extra: object) -> dict[str, object]:
    return {
        "model": "gpt-4o",
        "messages": [{"role": "system", "content": "notes"}, {"role": "user", "content": text}],
        **extra,
    }


@pytest.fixture(scope="module")
def run() -> Iterator[Run]:
    with standins_running() as standins:
        config = gateway_config(standins, timeout_seconds=1.0, log_level="debug")
        gateway = GatewayProcess(config, env={"GATEWAY_ADMIN_TOKEN": "canary-admin"})
        decision_log = gateway.workdir / "decisions.jsonl"
        config["policy"] = {
            **config["policy"],
            "decision_logs": {"sink": "file", "path": str(decision_log), "flush_seconds": 0.1},
        }
        gateway = GatewayProcess(config, env={"GATEWAY_ADMIN_TOKEN": "canary-admin"}, workdir=gateway.workdir)
        with gateway:
            yield Run(gateway, standins)


def _every_phi_path(r: Run) -> None:
    s = r.standins

    def phi(**kwargs: object) -> str:
        c = canary()
        r.phi.append(c)
        return c

    assert r.post(chat(phi())).status_code == 200
    stream = r.post(chat(phi(), stream=True, stream_options={"include_usage": True}))
    assert stream.status_code == 200 and "[DONE]" in stream.text
    assert r.post(chat(phi(), max_tokens=9000)).status_code == 403  # policy deny (over the cap)
    assert r.post(chat("x"), headers={"X-Use-Case": phi()}).status_code == 403  # canary as a use case
    assert r.post({"model": phi(), "messages": [{"role": "user", "content": "x"}]}).status_code == 400  # unknown model
    assert r.post(b'{"model": "gpt-4o", "messages": [{"role": "user", "content": "' + phi().encode()).status_code == 400
    assert r.post(chat(phi(), max_tokens=phi())).status_code == 400  # wrong type whose value is PHI
    assert r.post(chat("x"), key=phi()).status_code == 401  # a credential that is not a key
    assert r.post(chat("x"), headers={"X-Data-Classification": phi()}).status_code == 400
    # the front door (issue 10): URLs, JWT claims, declassification, huge and deep bodies
    base = r.gateway.base_url
    assert httpx.get(f"{base}/v1/chat/completions?patient={phi()}", headers={"Upgrade": "websocket"}).status_code < 500
    assert httpx.get(f"{base}/v1/{phi()}?q={phi()}").status_code == 404
    claims = {"iss": DEMO_ISSUER, "aud": DEMO_AUDIENCE, "team": "radiology-apps", "exp": int(time.time()) + 60}
    token = sign_demo_jwt({**claims, "sub": phi()})
    assert r.post(chat(phi()), key=token).status_code == 200
    assert r.post(chat(phi()), key=sign_demo_jwt({"team": phi()})).status_code == 401  # never expires
    assert r.post(chat(phi()), headers={"X-Data-Classification": "none"}).status_code == 403  # declassify
    assert r.post(chat(phi(), max_tokens=10, max_completion_tokens=11)).status_code == 400
    assert r.post(b'{"model": "' + phi().encode() + b'", "messages": ' + b"[" * 50_000).status_code == 400
    assert r.post(chat(phi() + " " * 1_100_000)).status_code < 500
    assert r.post(chat(phi()), key="gw-demo-cardiology-revoked").status_code == 401
    # upstream answers 400 quoting the prompt
    s["azure-us-east"].script(Behavior(status=400, echo_prompt_in_error=True))
    assert r.post(chat(phi())).status_code == 400
    # upstream 500 quoting the prompt on both routes
    s["azure-us-east"].script(Behavior(status=500, echo_prompt_in_error=True))
    s["anthropic-us"].script(Behavior(status=500, echo_prompt_in_error=True))
    assert r.post(chat(phi())).status_code == 503
    # upstream timeout on both routes
    s["azure-us-east"].script(Behavior(stall=True))
    s["anthropic-us"].script(Behavior(stall=True))
    assert r.post(chat(phi())).status_code == 503
    # stream cut by the provider mid-way
    s["azure-us-east"].script(Behavior(stream_cut_after=2, echo_prompt_in_error=True))
    cut = r.post(chat(phi(), stream=True))
    assert cut.status_code == 200 and '"upstream_error"' in cut.text
    # Anthropic-shaped upstream, stream, with the canary in a tool result
    tool_chat = {
        "model": "claude-sonnet-4",
        "stream": True,
        "messages": [
            {"role": "user", "content": phi()},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "t1",
                        "type": "function",
                        "function": {"name": "lookup", "arguments": json.dumps({"q": phi()})},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "t1", "content": phi()},
        ],
    }
    assert r.post(tool_chat).status_code == 200
    # the client disconnects mid-stream
    s["azure-us-east"].script(Behavior(chunk_delay=0.2, text="one two three four five six"))
    body = json.dumps(chat(phi(), stream=True)).encode()
    with socket.create_connection(("127.0.0.1", r.gateway.port), timeout=5) as conn:
        request = (
            f"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {PHI_KEY}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode() + body
        conn.sendall(request)
        assert b"200 OK" in conn.recv(4096)
    time.sleep(1.0)


def _every_new_endpoint(r: Run) -> None:
    """Embeddings, Responses (stream, follow-up, stored), Anthropic Messages (both directions, stream, tools,
    count_tokens): the same promises as chat."""
    s = r.standins

    def phi() -> str:
        c = canary()
        r.phi.append(c)
        return c

    assert (
        r.post({"model": "text-embedding-3-small", "input": [phi(), phi()]}, path="/v1/embeddings").status_code == 200
    )
    s["azure-us-east"].script(Behavior(status=400, echo_prompt_in_error=True))
    assert r.post({"model": "text-embedding-3-small", "input": phi()}, path="/v1/embeddings").status_code == 400
    assert (
        r.post(
            {"model": "text-embedding-3-small", "input": phi(), "dimensions": phi()}, path="/v1/embeddings"
        ).status_code
        == 400
    )
    made = r.post({"model": "gpt-4o", "input": phi(), "instructions": phi()}, path="/v1/responses")
    assert made.status_code == 200
    follow = {"model": "gpt-4o", "input": phi(), "previous_response_id": made.json()["id"], "stream": True}
    streamed = r.post(follow, path="/v1/responses")
    assert streamed.status_code == 200 and "response.completed" in streamed.text
    assert (
        r.post(
            {"model": "gpt-4o", "input": phi(), "previous_response_id": "resp_" + phi()}, path="/v1/responses"
        ).status_code
        == 404
    )
    stored = httpx.get(
        r.gateway.base_url + "/v1/responses/" + made.json()["id"], headers={"Authorization": f"Bearer {PHI_KEY}"}
    )
    assert stored.status_code == 200
    s["azure-us-east"].script(Behavior(stream_cut_after=1))
    cut = r.post({"model": "gpt-4o", "input": phi(), "stream": True}, path="/v1/responses")
    assert cut.status_code == 200 and "event: error" in cut.text
    anthropic_headers = {"x-api-key": PHI_KEY, "anthropic-version": "2023-06-01"}
    message = {
        "model": "claude-sonnet-4",
        "max_tokens": 50,
        "system": phi(),
        "messages": [{"role": "user", "content": phi()}],
    }
    assert r.post(message, key="", headers=anthropic_headers, path="/v1/messages").status_code == 200
    assert r.post({**message, "stream": True}, path="/v1/messages").status_code == 200
    translated = {
        **message,
        "model": "gpt-4o",
        "messages": [
            {"role": "user", "content": phi()},
            {
                "role": "assistant",
                "content": [{"type": "tool_use", "id": "t1", "name": "lookup", "input": {"q": phi()}}],
            },
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": phi()}]},
        ],
    }
    assert r.post(translated, path="/v1/messages").status_code == 200
    assert r.post({**translated, "stream": True}, path="/v1/messages").status_code == 200
    s["anthropic-us"].script(Behavior(status=500, echo_prompt_in_error=True))
    s["azure-us-east"].script(Behavior(status=500, echo_prompt_in_error=True))
    assert r.post(message, path="/v1/messages").status_code == 503
    assert r.post({**message, "max_tokens": phi()}, path="/v1/messages").status_code == 400
    assert r.post({**message, "model": phi()}, path="/v1/messages").status_code == 400
    assert r.post(message, key=phi(), path="/v1/messages").status_code == 401
    assert (
        r.post(
            {"model": "claude-sonnet-4", "messages": [{"role": "user", "content": phi()}]},
            path="/v1/messages/count_tokens",
        ).status_code
        == 200
    )


def _content_signals(r: Run) -> None:
    """PHI pasted by teams not cleared for it (denied, redacted) and PHI in answers (blocked): the
    identifiers themselves are canaries, so none may reach the gateway's output."""
    rng = random.Random()

    def ssn() -> str:
        value = f"{rng.randint(100, 665)}-{rng.randint(10, 99)}-{rng.randint(1000, 9999)}"
        r.phi.append(value)
        return value

    def mrn() -> str:
        value = str(rng.randint(1_000_000, 9_999_999))
        r.phi.append(value)
        return value

    pasted = chat(f"SSN {ssn()}, MRN: {mrn()}", model="gpt-4o-mini")
    assert r.post(pasted, key=CONTENT_KEY).status_code == 403  # phi_detected
    assert r.post({**pasted, "stream": True}, key=CONTENT_KEY).status_code == 403
    redacted = chat(f"Cohort note, SSN {ssn()} and MRN: {mrn()}")
    assert r.post(redacted, key="gw-demo-eu-research").status_code == 200
    assert all(
        v not in json.dumps(s.received[-1].body) for s in r.standins.standins.values() if s.received for v in r.phi[-2:]
    )
    for name in ("openai-us", "azure-eu-west", "azure-us-east"):
        r.standins[name].script(Behavior(text=f"The SSN on file is {ssn()}."))
    assert r.post(chat("What is on file?", model="gpt-4o-mini"), key=CONTENT_KEY).status_code == 403  # output


def _content_team(r: Run) -> None:
    logged = canary()
    r.content.append(logged)
    assert r.post(chat(logged, model="gpt-4o-mini"), key=CONTENT_KEY).status_code == 200
    # the same team sending PII or PHI gets metadata-only logs: those canaries are as protected as PHI
    pii = canary()
    r.phi.append(pii)
    assert (
        r.post(chat(pii, model="gpt-4o-mini"), key=CONTENT_KEY, headers={"X-Data-Classification": "pii"}).status_code
        == 200
    )
    phi = canary()
    r.phi.append(phi)
    assert (
        r.post(chat(phi, model="gpt-4o-mini"), key=CONTENT_KEY, headers={"X-Data-Classification": "phi"}).status_code
        == 403
    )


def test_no_phi_canary_anywhere_and_content_canaries_where_allowed(run: Run) -> None:
    _every_phi_path(run)
    _every_new_endpoint(run)
    _content_signals(run)
    _content_team(run)
    admin = {"Authorization": "Bearer canary-admin"}
    surfaces = [httpx.get(run.gateway.base_url + path, headers=admin).text for path in ("/metrics", "/admin/status")]
    assert [c for c in run.phi + run.content for text in surfaces if c in text] == [], "/metrics or /admin/status"
    run.gateway.stop()
    output = run.gateway.output()
    records = [json.loads(line) for line in run.gateway.stdout_path.read_text().splitlines() if '"request_id"' in line]
    assert len(records) >= run.posts, "every request leaves one record"
    leaked = [c for c in run.phi if c in output]
    assert leaked == [], f"{len(leaked)} PHI canaries reached the gateway's output"
    echoed = [c for c in run.phi for body in run.client_bodies if c in body]
    assert echoed == [], "an error body echoed request content"
    in_headers = [c for c in run.phi for headers in run.client_headers if c in headers]
    assert in_headers == [], "a response header carried request content"
    assert all(c in output for c in run.content), "the content-logging team's messages should be logged"
    content_records = [r for r in records if r.get("log_level") == "content" and r.get("messages")]
    logged = [r for r in content_records if run.content[0] in json.dumps(r["messages"])]
    assert len(logged) == 1 and logged[0]["messages"][1]["content"] == run.content[0]
    metadata = [r for r in records if r["log_level"] == "metadata"]
    assert all("messages" not in r and "completion" not in r for r in metadata)
    assert "Traceback" not in output
    statuses = {r["status"] for r in records}
    assert 500 not in statuses
    decisions = (run.gateway.workdir / "decisions.jsonl").read_text()
    events = [json.loads(line) for line in decisions.splitlines()]
    assert len(events) >= 12, "one decision log event per decision"
    assert [c for c in run.phi + run.content if c in decisions] == [], "decision logs carry metadata only"
    assert all(e["bundles"]["gateway"]["revision"] for e in events)
    phi_events = [e for e in events if (e.get("result") or {}).get("data_classification") == "phi" and "input" in e]
    assert phi_events and all(e["input"]["context"]["client_ip"] == "redacted" for e in phi_events)
