"""OPA server mode: the same decision table as the embedded engine, and every server failure is a deny.

Runs against a test double speaking OPA's REST API (backed by the embedded
engine), and also against a real `opa run -s -b bundles/gateway.tar.gz` when an
`opa` binary is on PATH (none on these machines: that variant is then absent,
not skipped).
"""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest

from gateway.policy import bundle
from gateway.policy.embedded import EmbeddedEngine
from gateway.policy.engine import Decision, PolicyEngine
from gateway.policy.remote import RemoteEngine
from tests.factories import SHIPPED_BUNDLE, policy_input
from tests.opa_double import Fault, OpaDouble

# (input, allow, reason codes, providers in order)
TABLE: list[tuple[dict[str, Any], bool, set[str], list[str]]] = [
    (policy_input(use_case="discharge-summary"), True, set(), ["azure-us-east", "anthropic-us"]),
    (policy_input("gw-demo-eu-research"), True, set(), ["azure-eu-west"]),
    (policy_input("gw-demo-eu-research", classification="phi"), False, {"phi_not_permitted"}, []),
    (policy_input("gw-demo-eu-research", model="claude-sonnet-4"), False, {"model_not_allowed"}, []),
    (policy_input("gw-demo-marketing", model="gpt-4o-mini", max_tokens=5000), False, {"max_tokens_over_cap"}, []),
    (policy_input("unknown-key"), False, {"unauthenticated"}, []),
    (policy_input("gw-demo-cardiology", use_case="Patient-Jane-Doe"), False, {"use_case_not_allowed"}, []),
]
ENGINES = ["embedded", "opa-double"] + (["opa-binary"] if shutil.which("opa") else [])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def double() -> Iterator[OpaDouble]:
    server = OpaDouble(SHIPPED_BUNDLE.read_bytes()).start()
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def _clear_faults(request: pytest.FixtureRequest) -> None:
    if "double" in request.fixturenames:
        server: OpaDouble = request.getfixturevalue("double")
        server.faults.clear()
        server.default = Fault()


@pytest.fixture(scope="module")
def opa_binary() -> Iterator[str]:  # only requested when `opa` is on PATH
    port = _free_port()
    proc = subprocess.Popen(["opa", "run", "-s", "-a", f"127.0.0.1:{port}", "-b", str(SHIPPED_BUNDLE)])
    time.sleep(2)
    yield f"http://127.0.0.1:{port}"
    proc.terminate()
    proc.wait(10)


async def _decide_all(engine: PolicyEngine) -> list[Decision]:
    await engine.start()
    try:
        return [await engine.decide(item) for item, *_ in TABLE]
    finally:
        await engine.close()


@pytest.mark.parametrize("kind", ENGINES)
def test_every_engine_gives_the_same_decisions(kind: str, request: pytest.FixtureRequest) -> None:
    if kind == "embedded":
        engine: PolicyEngine = EmbeddedEngine(str(SHIPPED_BUNDLE), poll_seconds=0)
    else:
        url = request.getfixturevalue("double").url if kind == "opa-double" else request.getfixturevalue("opa_binary")
        engine = RemoteEngine(url, timeout_ms=2000)
    decisions = asyncio.run(_decide_all(engine))
    revision = bundle.read(SHIPPED_BUNDLE.read_bytes()).revision
    for decision, (_, allow, codes, providers) in zip(decisions, TABLE, strict=True):
        assert decision.allow is allow
        assert {r.code for r in decision.reasons} == codes
        assert [r.provider for r in decision.routes] == providers
        assert decision.policy_revision == revision
        assert decision.error is None


async def _one(url: str, *, timeout_ms: int = 300) -> Decision:
    engine = RemoteEngine(url, timeout_ms=timeout_ms)
    await engine.start()
    try:
        return await engine.decide(policy_input(use_case="discharge-summary"))
    finally:
        await engine.close()


@pytest.mark.parametrize(
    ("fault", "error"),
    [
        (Fault(latency=1.0), "timeout"),
        (Fault(status=500), "server_error"),
        (Fault(status=404), "server_error"),
        (Fault(garbage=True), "server_error"),
        (Fault(drop=True), "connection"),
    ],
    ids=["timeout", "5xx", "4xx", "garbage", "dropped-connection"],
)
def test_every_server_failure_is_a_deny(double: OpaDouble, fault: Fault, error: str) -> None:
    double.default = fault
    started = time.perf_counter()
    decision = asyncio.run(_one(double.url))
    assert not decision.allow and decision.error == error
    assert decision.routes == ()
    assert time.perf_counter() - started < 1.0, "fail closed within the timeout, without retries"


def test_dead_server_is_a_deny_and_not_ready() -> None:
    port = _free_port()
    engine = RemoteEngine(f"http://127.0.0.1:{port}", timeout_ms=200)

    async def scenario() -> tuple[Decision, bool]:
        await engine.start()
        ready = engine.ready
        decision = await engine.decide(policy_input())
        await engine.close()
        return decision, ready

    decision, ready = asyncio.run(scenario())
    assert not ready
    assert not decision.allow and decision.error == "connection"


def test_undefined_result_is_a_policy_deny() -> None:
    other = bundle._pack(
        {".manifest": b'{"revision": "x", "roots": ["gateway"]}', "gateway/x.rego": b"package gateway\n\nother := 1\n"}
    )
    server = OpaDouble(other).start()
    try:
        decision = asyncio.run(_one(server.url))
    finally:
        server.stop()
    assert not decision.allow and decision.error == "undefined"


def test_connection_is_reused(double: OpaDouble) -> None:
    async def scenario() -> float:
        engine = RemoteEngine(double.url, timeout_ms=1000)
        await engine.start()
        await engine.decide(policy_input())
        started = time.perf_counter()
        for _ in range(200):
            await engine.decide(policy_input())
        elapsed = (time.perf_counter() - started) / 200
        await engine.close()
        return elapsed

    assert asyncio.run(scenario()) < 0.02


BUILTIN_FAILS = b"""package gateway

decision := {"allow": true, "providers": [], "reasons": []} if to_number(input.request.model) > 0
"""


def test_a_failing_builtin_denies_in_both_engines_and_the_sidecar_is_asked_for_strict_mode() -> None:
    """OPA's default makes a failing built-in undefined; the embedded engine's strict mode is fixed, so the
    sidecar is queried with ?strict-builtin-errors=true: the same input gets the same (closed) answer."""
    blob = bundle._pack({".manifest": b'{"revision": "b", "roots": ["gateway"]}', "gateway/x.rego": BUILTIN_FAILS})
    server = OpaDouble(blob).start()
    embedded = EmbeddedEngine("inline", poll_seconds=0)
    embedded.activate(blob)
    try:
        remote_decision = asyncio.run(_one(server.url))
        embedded_decision = embedded.decide_sync(policy_input(model="gpt-4o"))
    finally:
        server.stop()
    assert server.strict_queries >= 1
    assert not remote_decision.allow and remote_decision.error == "server_error"
    assert not embedded_decision.allow and embedded_decision.error is not None
