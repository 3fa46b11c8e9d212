"""Fault injection: two gateway processes sharing one real Redis, stand-in providers that fail on cue.

Traffic is a PHI team's (cardiology: primary azure-us-east, equivalent route
anthropic-us; openai-us has no BAA and must never see it). Every scenario
checks that no client ever gets a 5xx other than the documented 503.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest

from gateway.demo.standins import Behavior, StandInServers
from tests.harness import GatewayProcess, RedisServer, gateway_config

ADMIN = "faults-admin"
PHI = {"Authorization": "Bearer gw-demo-cardiology", "X-Use-Case": "discharge-summary"}
BREAKER = {
    "min_requests": 4,
    "failure_ratio": 0.5,
    "window_seconds": 10,
    "open_seconds": 2,
    "half_open_probes": 1,
    "max_open_seconds": 8,
}


@dataclass
class Result:
    status: int
    provider: str
    seconds: float


@dataclass
class Cluster:
    gateways: list[GatewayProcess]
    redis: RedisServer
    standins: StandInServers

    def send(
        self, n: int, *, concurrency: int = 4, headers: dict[str, str] | None = None, model: str = "gpt-4o"
    ) -> list[Result]:
        return asyncio.run(self._send(n, concurrency, headers or PHI, model))

    async def _send(self, n: int, concurrency: int, headers: dict[str, str], model: str) -> list[Result]:
        results: list[Result] = []
        counter = iter(range(n))
        body = {
            "model": model,
            "max_tokens": 64,
            "messages": [{"role": "user", "content": "Discharge summary please."}],
        }
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:

            async def worker() -> None:
                for i in counter:
                    base = self.gateways[i % len(self.gateways)].base_url
                    started = time.perf_counter()
                    async with session.post(f"{base}/v1/chat/completions", json=body, headers=headers) as resp:
                        await resp.read()
                        results.append(
                            Result(
                                resp.status, resp.headers.get("X-Gateway-Provider", ""), time.perf_counter() - started
                            )
                        )

            await asyncio.gather(*(worker() for _ in range(concurrency)))
        return results

    def status(self, index: int = 0) -> dict[str, object]:
        async def get() -> dict[str, object]:
            async with (
                aiohttp.ClientSession() as session,
                session.get(
                    self.gateways[index].base_url + "/admin/status", headers={"Authorization": f"Bearer {ADMIN}"}
                ) as resp,
            ):
                data: dict[str, object] = await resp.json()
                return data

        return asyncio.run(get())


@pytest.fixture
def cluster(standins: StandInServers, tmp_path: Path) -> Iterator[Cluster]:
    with RedisServer() as redis:
        config = gateway_config(
            standins, timeout_seconds=1.0, breaker=BREAKER, state={"redis_url": redis.url, "timeout_ms": 100}
        )
        config["queue"] = {"max_wait_seconds": 3, "max_depth": 100, "max_attempts": 4}
        gateways = []
        for i in range(2):
            (tmp_path / f"gw{i}").mkdir()
            gateways.append(
                GatewayProcess(config, env={"GATEWAY_ADMIN_TOKEN": ADMIN}, workdir=tmp_path / f"gw{i}").start()
            )
        try:
            yield Cluster(gateways, redis, standins)
        finally:
            for g in gateways:
                g.stop()
        for g in gateways:
            assert "Traceback" not in g.output()


def _no_5xx_but_503(results: list[Result]) -> None:
    assert all(r.status < 500 or r.status == 503 for r in results), [r.status for r in results]


def _never_non_baa(standins: StandInServers) -> None:
    assert standins["openai-us"].count == 0, "a PHI request reached a provider without a BAA"


def test_outage_moves_traffic_to_the_equivalent_route_on_both_instances(cluster: Cluster) -> None:
    s = cluster.standins
    s["azure-us-east"].set_default(Behavior(status=500))
    first = cluster.send(20)
    tripped_after = s["azure-us-east"].count
    second = cluster.send(20)
    assert all(r.status == 200 for r in first + second)
    assert {r.provider for r in second} == {"anthropic-us"}
    assert tripped_after <= 10, f"{tripped_after} requests reached the failing provider before both instances stopped"
    assert s["azure-us-east"].count == tripped_after, "no instance sent to the open-circuited provider"
    for i in range(2):
        breakers = cluster.status(i)["breakers"]
        assert isinstance(breakers, dict) and breakers["azure-us-east"]["state"] == "open"
    _never_non_baa(s)


def test_slow_provider_trips_on_timeouts(cluster: Cluster) -> None:
    s = cluster.standins
    s["azure-us-east"].set_default(Behavior(stall=True))
    first = cluster.send(12)
    later = cluster.send(12)
    assert all(r.status == 200 for r in first + later)
    assert max(r.seconds for r in later) < 0.8, "once tripped, nobody waits for the stalled provider"
    assert {r.provider for r in later} == {"anthropic-us"}
    _never_non_baa(s)


def test_429_storm_with_short_retry_after_completes_after_the_wait(cluster: Cluster) -> None:
    s = cluster.standins
    s["azure-us-east"].script(*[Behavior(status=429, retry_after="1")] * 2)
    results = cluster.send(8, concurrency=8)
    assert all(r.status == 200 for r in results)
    assert {r.provider for r in results} == {"azure-us-east"}, "a wait that fits the queue keeps the primary route"
    assert max(r.seconds for r in results) >= 0.9
    assert s["anthropic-us"].count == 0
    _never_non_baa(s)


def test_429_with_long_retry_after_moves_to_an_equivalent_baa_provider(cluster: Cluster) -> None:
    s = cluster.standins
    s["azure-us-east"].set_default(Behavior(status=429, retry_after="30"))
    first = cluster.send(10, concurrency=4)
    hit = s["azure-us-east"].count
    assert hit <= 4, "only requests already in flight when the first 429 came back reached the provider"
    time.sleep(1.1)  # past any instance's cache
    second = cluster.send(10, concurrency=4)
    assert all(r.status == 200 for r in first + second)
    assert {r.provider for r in first + second} == {"anthropic-us"}
    assert s["azure-us-east"].count == hit, "the cool-down is shared: both instances back off together"
    _never_non_baa(s)


def test_no_route_left_is_a_graceful_503(cluster: Cluster) -> None:
    s = cluster.standins
    s["azure-us-east"].set_default(Behavior(status=429, retry_after="30"))
    s["anthropic-us"].set_default(Behavior(status=503))
    results = cluster.send(6)
    assert {r.status for r in results} == {503}
    _never_non_baa(s)


def test_flapping_provider_gets_limited_probes_across_instances(cluster: Cluster) -> None:
    s = cluster.standins
    s["azure-us-east"].set_default(Behavior(status=500, latency=0.3))
    cluster.send(12, concurrency=6)  # trips it
    s["azure-us-east"].max_in_flight = s["azure-us-east"].in_flight
    probes_before = s["azure-us-east"].count
    deadline = time.monotonic() + 7
    results: list[Result] = []
    while time.monotonic() < deadline:
        results += cluster.send(12, concurrency=6)
    _no_5xx_but_503(results)
    assert s["azure-us-east"].max_in_flight <= BREAKER["half_open_probes"], (
        "half-open probes are limited across both instances"
    )
    assert 1 <= s["azure-us-east"].count - probes_before <= 4, (
        "each open period ends in one probe, and they grow longer"
    )
    breakers = cluster.status(0)["breakers"]
    assert isinstance(breakers, dict) and breakers["azure-us-east"]["trips"] >= 2


def test_recovery_closes_the_breaker_and_traffic_returns(cluster: Cluster) -> None:
    s = cluster.standins
    s["azure-us-east"].set_default(Behavior(status=500))
    cluster.send(12)
    s["azure-us-east"].set_default(Behavior())
    time.sleep(2.2)  # the open period
    results = cluster.send(12)
    assert all(r.status == 200 for r in results)
    assert results[-1].provider == "azure-us-east"
    time.sleep(1.1)  # every instance's cache refreshed
    for i in range(2):
        breakers = cluster.status(i)["breakers"]
        assert isinstance(breakers, dict) and breakers["azure-us-east"]["state"] == "closed"


def test_redis_stopped_mid_test_uses_local_breakers_and_fails_nothing(cluster: Cluster) -> None:
    s = cluster.standins
    ok_before = cluster.send(8)
    cluster.redis.stop()
    s["azure-us-east"].set_default(Behavior(status=500))
    during = cluster.send(24)
    s["azure-us-east"].set_default(Behavior())
    cluster.redis.start()
    time.sleep(1.2)
    after = cluster.send(8)
    assert all(r.status == 200 for r in ok_before + during + after)
    assert {r.provider for r in during[-8:]} == {"anthropic-us"}, "local breakers tripped while Redis was away"
    _never_non_baa(s)
