"""Content signals through the gateway: a team not cleared for PHI that pastes an SSN or an MRN is denied on
every endpoint and in stream mode, a team set up for redaction gets the spans replaced before the provider
sees them, a PHI team's declassified request becomes PHI when it carries PHI, and no span text reaches an
error body or the decision log."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import httpx2 as httpx
import pytest

from gateway.demo.standins import Behavior, StandInServers
from gateway.settings import from_dict
from tests.harness import ADMIN_TOKEN, GatewayThread, gateway_config

SSN, MRN = "512-44-7391", "MRN: 4417392"
NOTE = f"Patient note. SSN {SSN}. {MRN}. Follow up."
MARKETING = {"Authorization": "Bearer gw-demo-marketing"}


@pytest.fixture(scope="module")
def gw(standins: StandInServers, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[GatewayThread, Path]]:
    os.environ["GATEWAY_ADMIN_TOKEN"] = ADMIN_TOKEN
    log = tmp_path_factory.mktemp("content") / "decisions.jsonl"
    config = gateway_config(standins)
    config["policy"] = {**config["policy"], "decision_logs": {"sink": "file", "path": str(log), "flush_seconds": 0.1}}
    with GatewayThread(from_dict(config)) as gateway:
        yield gateway, log


REQUESTS = [
    ("/v1/chat/completions", {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": NOTE}]}),
    ("/v1/chat/completions", {"model": "gpt-4o-mini", "stream": True, "messages": [{"role": "user", "content": NOTE}]}),
    ("/v1/embeddings", {"model": "text-embedding-3-small", "input": [NOTE]}),
    ("/v1/responses", {"model": "gpt-4o-mini", "input": NOTE}),
    ("/v1/responses", {"model": "gpt-4o-mini", "input": [{"role": "user", "content": NOTE}], "stream": True}),
    ("/v1/messages", {"model": "gpt-4o-mini", "max_tokens": 50, "messages": [{"role": "user", "content": NOTE}]}),
    (
        "/v1/chat/completions",
        {
            "model": "gpt-4o-mini",
            "messages": [
                {"role": "user", "content": "look this up"},
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {"id": "t1", "type": "function", "function": {"name": "f", "arguments": json.dumps({"q": SSN})}}
                    ],
                },
                {"role": "tool", "tool_call_id": "t1", "content": "ok"},
            ],
        },
    ),
]


@pytest.mark.parametrize(("path", "body"), REQUESTS)
def test_phi_from_a_team_not_cleared_is_denied_on_every_endpoint(
    gw: tuple[GatewayThread, Path], standins: StandInServers, path: str, body: dict[str, object]
) -> None:
    gateway, _ = gw
    reply = httpx.post(gateway.base_url + path, json=body, headers=MARKETING, timeout=10)
    assert reply.status_code == 403
    assert "phi_detected" in reply.text and SSN not in reply.text and "4417392" not in reply.text
    assert sum(s.count for s in standins.standins.values()) == 0


def test_redaction_before_forwarding(gw: tuple[GatewayThread, Path], standins: StandInServers) -> None:
    gateway, _ = gw
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": NOTE + " Write to a@b.org."}]}
    reply = httpx.post(
        gateway.base_url + "/v1/chat/completions", json=body, headers={"Authorization": "Bearer gw-demo-eu-research"}
    )
    assert reply.status_code == 200
    sent = json.dumps(standins["azure-eu-west"].received[-1].body)
    assert SSN not in sent and "4417392" not in sent
    assert "[REDACTED:SSN]" in sent and "[REDACTED:MRN]" in sent and "a@b.org" in sent  # email is not PHI here


def test_a_phi_team_declassifying_phi_content_stays_on_baa_routes(
    gw: tuple[GatewayThread, Path], standins: StandInServers
) -> None:
    gateway, _ = gw
    headers = {
        "Authorization": "Bearer gw-demo-cardiology",
        "X-Use-Case": "patient-education",
        "X-Data-Classification": "none",
    }
    clean = {"model": "gpt-4o", "messages": [{"role": "user", "content": "Explain what a statin does."}]}
    assert (
        httpx.post(gateway.base_url + "/v1/chat/completions", json=clean, headers=headers).headers["x-gateway-provider"]
        == "openai-us"
    )
    phi = {"model": "gpt-4o", "messages": [{"role": "user", "content": NOTE}]}
    reply = httpx.post(gateway.base_url + "/v1/chat/completions", json=phi, headers=headers)
    assert reply.status_code == 200 and reply.headers["x-gateway-provider"] == "azure-us-east"
    assert standins["openai-us"].count == 1


def test_decision_logs_carry_counts_never_spans(gw: tuple[GatewayThread, Path]) -> None:
    gateway, log = gw
    httpx.post(gateway.base_url + "/v1/chat/completions", json=REQUESTS[0][1], headers=MARKETING)
    import time

    deadline = time.monotonic() + 5
    events: list[dict[str, object]] = []
    while time.monotonic() < deadline and not any("content" in (e.get("input") or {}) for e in events):  # type: ignore[operator]
        time.sleep(0.1)
        events = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    text = log.read_text()
    assert SSN not in text and "4417392" not in text
    counted = [e["input"]["content"] for e in events if "content" in (e.get("input") or {})]  # type: ignore[index, operator]
    assert {"signals": {"ssn": 1, "mrn": 1}, "chars": counted[0]["chars"], "error": False} in counted


def test_output_decision_on_whole_answers(gw: tuple[GatewayThread, Path], standins: StandInServers) -> None:
    gateway, _ = gw
    leaked = f"Sure: the SSN is {SSN} and {MRN}."
    for name in ("openai-us", "azure-eu-west", "azure-us-east"):
        standins[name].set_default(Behavior(text=leaked))
    ask = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "What is on file?"}]}
    blocked = httpx.post(gateway.base_url + "/v1/chat/completions", json=ask, headers=MARKETING)
    assert blocked.status_code == 403 and "output_phi_detected" in blocked.text and SSN not in blocked.text
    assert Decimal(blocked.headers["x-gateway-cost-usd"]) > 0  # the provider answered: it is billed
    redacted = httpx.post(
        gateway.base_url + "/v1/chat/completions",
        json={**ask, "model": "gpt-4o"},
        headers={"Authorization": "Bearer gw-demo-eu-research"},
    )
    assert redacted.status_code == 200
    content = redacted.json()["choices"][0]["message"]["content"]
    assert SSN not in content and "[REDACTED:SSN]" in content and "[REDACTED:MRN]" in content
    cleared = httpx.post(
        gateway.base_url + "/v1/chat/completions",
        json={**ask, "model": "gpt-4o"},
        headers={"Authorization": "Bearer gw-demo-cardiology", "X-Use-Case": "clinical-notes"},
    )
    assert cleared.status_code == 200 and SSN in cleared.json()["choices"][0]["message"]["content"]
    # Anthropic Messages and Responses answers go through the same verdict
    message = {"model": "gpt-4o-mini", "max_tokens": 50, "messages": [{"role": "user", "content": "x"}]}
    assert httpx.post(gateway.base_url + "/v1/messages", json=message, headers=MARKETING).status_code == 403
    response = {"model": "gpt-4o-mini", "input": "x"}
    assert httpx.post(gateway.base_url + "/v1/responses", json=response, headers=MARKETING).status_code == 403


def test_a_stored_response_gets_the_same_output_decision(
    gw: tuple[GatewayThread, Path], standins: StandInServers
) -> None:
    gateway, _ = gw
    standins["azure-eu-west"].set_default(Behavior(text=f"Noted: SSN {SSN} and {MRN}."))
    eu = {"Authorization": "Bearer gw-demo-eu-research"}
    made = httpx.post(gateway.base_url + "/v1/responses", json={"model": "gpt-4o", "input": "x"}, headers=eu)
    assert made.status_code == 200 and SSN not in made.text and "[REDACTED:SSN]" in made.text
    stored = httpx.get(gateway.base_url + "/v1/responses/" + made.json()["id"], headers=eu)
    assert stored.status_code == 200
    assert SSN not in stored.text and "4417392" not in stored.text and "[REDACTED:MRN]" in stored.text
