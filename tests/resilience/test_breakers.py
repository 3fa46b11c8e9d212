"""The breaker contract, in process and shared through a real Redis by two instances."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import pytest

from gateway.forward import AttemptFailed
from gateway.observe.metrics import Metrics
from gateway.resilience.breakers import Breakers, LocalBreakers
from gateway.resilience.shared import SharedBreakers
from gateway.settings import BreakerSettings
from gateway.state import Outage, redis_client
from tests.harness import RedisServer

SETTINGS = BreakerSettings(
    failure_ratio=0.5, min_requests=4, window_seconds=10, open_seconds=0.3, half_open_probes=2, max_open_seconds=5
)
pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def redis_server() -> Iterator[RedisServer]:
    with RedisServer() as server:
        yield server


@dataclass
class Pair:
    a: Breakers
    b: Breakers  # a second instance sharing a's state (the same object when local)


async def _make_pair(request: pytest.FixtureRequest, settings: BreakerSettings) -> AsyncIterator[Pair]:
    if request.param == "local":
        local = LocalBreakers(settings)
        yield Pair(local, local)
        return
    if request.param == "cluster":
        url = request.getfixturevalue("redis_cluster").url
    else:
        url = request.getfixturevalue("redis_server").url
    clients = [redis_client(url, timeout_ms=500) for _ in range(2)]
    await clients[0].flushdb()
    instances = [SharedBreakers(c, settings, Metrics(), outage=Outage(c, Metrics())) for c in clients]
    for i in instances:
        await i.start()
    yield Pair(instances[0], instances[1])
    for i, c in zip(instances, clients, strict=True):
        await i.close()
        await c.aclose()


@pytest.fixture(params=["local", "shared", "cluster"])
async def pair(request: pytest.FixtureRequest) -> AsyncIterator[Pair]:
    async for made in _make_pair(request, SETTINGS):
        yield made


@pytest.fixture(params=["local", "shared", "cluster"])
async def slow_pair(request: pytest.FixtureRequest) -> AsyncIterator[Pair]:
    async for made in _make_pair(request, dataclasses.replace(SETTINGS, open_seconds=5.0)):
        yield made


async def _trip(b: Breakers, provider: str = "p") -> None:
    for _ in range(4):
        await b.record(provider, False)


async def test_closed_admits_and_client_errors_never_trip(pair: Pair) -> None:
    for reason in ("client_error", "rate_limited", "auth") * 7:
        failure = AttemptFailed(reason)
        await pair.a.record("p", not failure.breaker_failure)  # what the attempt records for each outcome
    assert (await pair.a.admit("p")).reason == "closed"
    for _ in range(4):
        await pair.a.record("p", not AttemptFailed("status_5xx").breaker_failure)
    assert (await pair.a.admit("p")).reason == "closed", "4 failures in 25 outcomes are under the ratio"


async def test_probe_released_without_verdict_stays_half_open(pair: Pair) -> None:
    await _trip(pair.a)
    await asyncio.sleep(0.35)
    assert (await pair.a.admit("p")).probe and (await pair.b.admit("p")).probe  # both permits taken
    assert (await pair.b.admit("p")).reason == "probe_busy"
    await pair.a.release_probe("p")  # the client left: no evidence either way
    again = await pair.b.admit("p")
    assert again.probe, "the permit is back and the breaker is still half-open, not closed"


async def test_failure_ratio_over_min_requests_opens(pair: Pair) -> None:
    await pair.a.record("p", True)
    await pair.a.record("p", False)
    await pair.a.record("p", False)
    assert (await pair.a.admit("p")).allowed  # 3 outcomes < min_requests
    await pair.a.record("p", False)
    opened = await pair.a.admit("p")
    assert not opened.allowed and opened.reason == "open" and 0 < opened.wait <= 0.3


async def test_trip_seen_by_the_other_instance_within_a_second(slow_pair: Pair) -> None:
    assert (await slow_pair.b.admit("p")).allowed  # b has a cached "closed" now
    await _trip(slow_pair.a)
    tripped = time.monotonic()
    while (await slow_pair.b.admit("p")).allowed:
        assert time.monotonic() - tripped <= 1.0, "a trip must reach every instance within a second"
        await asyncio.sleep(0.02)


async def test_half_open_probes_are_limited_across_instances(pair: Pair) -> None:
    await _trip(pair.a)
    await asyncio.sleep(0.35)
    answers = [await pair.a.admit("p"), await pair.b.admit("p"), await pair.a.admit("p"), await pair.b.admit("p")]
    assert [a.reason for a in answers].count("probe") == SETTINGS.half_open_probes
    assert {a.reason for a in answers} == {"probe", "probe_busy"}


async def test_probe_success_closes(pair: Pair) -> None:
    await _trip(pair.a)
    await asyncio.sleep(0.35)
    assert (await pair.a.admit("p")).probe
    await pair.a.record("p", True, probe=True)
    assert (await pair.a.admit("p")).reason == "closed"


async def test_probe_failure_reopens_for_longer(pair: Pair) -> None:
    await _trip(pair.a)
    await asyncio.sleep(0.35)
    assert (await pair.a.admit("p")).probe
    await pair.a.record("p", False, probe=True)
    reopened = await pair.a.admit("p")
    assert reopened.reason == "open" and 0.35 < reopened.wait <= 0.6  # 0.3 s x 2 for the second trip


async def test_cooldown_blocks_both_instances(pair: Pair) -> None:
    await pair.b.admit("p")
    await pair.a.cooldown("p", 2.0)
    mine = await pair.a.admit("p")
    assert mine.reason == "cooldown" and 1.5 < mine.wait <= 2.0
    await asyncio.sleep(1.05)
    theirs = await pair.b.peek("p")
    assert theirs.reason == "cooldown" and theirs.wait < 1.0


async def test_snapshot_reports_state_and_trips(pair: Pair) -> None:
    await _trip(pair.a, "q")
    snapshot = await pair.a.snapshot()
    assert snapshot["q"]["state"] == "open" and snapshot["q"]["trips"] == 1


async def test_shared_breakers_fall_back_when_redis_is_down() -> None:
    client = redis_client("redis://127.0.0.1:1/0", timeout_ms=50)
    shared = SharedBreakers(client, SETTINGS, Metrics(), outage=Outage(client, Metrics()))
    assert (await shared.admit("p")).allowed
    await _trip(shared)
    assert not (await shared.admit("p")).allowed  # the local fallback tripped on its own
    await client.aclose()


async def test_a_cooldown_is_seen_by_this_instance_before_redis_answers(redis_server: RedisServer) -> None:
    """A 429 came back: this instance's next requests must not go to that provider while the cool-down is
    on its way to Redis (they found the cached "closed" and sent: one request more than were in flight)."""
    client = redis_client(redis_server.url, timeout_ms=2000)
    await client.flushdb()
    shared = SharedBreakers(client, SETTINGS, Metrics(), outage=Outage(client, Metrics()))
    await shared.start()
    try:
        assert (await shared.peek("slow")).allowed  # cached: closed
        script = shared._scripts["cooldown"]
        arrived = asyncio.Event()

        async def slow_redis(**kwargs: object) -> object:
            arrived.set()
            await asyncio.sleep(0.2)  # the round trip, slowed down
            return await script(**kwargs)

        shared._scripts["cooldown"] = slow_redis
        cooling = asyncio.create_task(shared.cooldown("slow", 30))
        await arrived.wait()
        meanwhile = await shared.peek("slow")
        assert not meanwhile.allowed and meanwhile.reason == "cooldown"
        await cooling
        assert not (await shared.peek("slow")).allowed
    finally:
        await shared.close()
        await client.aclose()
