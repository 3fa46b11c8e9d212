"""One contract, three stores: the in-process store and the Redis store, on a real redis-server and on a
real three-master Redis Cluster, must agree."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from gateway.metering.memory_store import MemoryStore
from gateway.metering.redis_store import PREFIX, RedisStore
from gateway.metering.store import Budget, BudgetStore
from gateway.state import redis_client
from tests.harness import RedisServer

TEAM, PROVIDER = Budget("team:t", 1000), Budget("provider:p", 5000)


@pytest.fixture(scope="module")
def redis_server() -> Iterator[RedisServer]:
    with RedisServer() as server:
        yield server


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.25

    def __call__(self) -> float:
        return self.now


@pytest.fixture(params=["memory", "redis", "cluster"])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[tuple[BudgetStore, Any]]:
    if request.param == "memory":
        yield MemoryStore(), None
        return
    if request.param == "cluster":  # a real three-master Redis Cluster: every script's keys in one slot
        url = request.getfixturevalue("redis_cluster").url
    else:
        url = request.getfixturevalue("redis_server").url
    client = redis_client(url, timeout_ms=1000)
    await client.flushdb()
    yield RedisStore(client), client
    await client.aclose()


def run(coro: Any) -> Any:
    return asyncio.run(coro)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


pytestmark = pytest.mark.anyio


async def test_reserve_within_limit_reports_remaining(store: tuple[BudgetStore, Any]) -> None:
    s, _ = store
    outcome = await s.reserve(TEAM, PROVIDER, 300)
    assert outcome.status == "reserved"
    assert outcome.team_remaining == 700 and outcome.provider_remaining == 4700
    assert abs(outcome.second - time.time()) < 2


async def test_team_short_takes_nothing_from_either(store: tuple[BudgetStore, Any]) -> None:
    s, _ = store
    await s.reserve(TEAM, PROVIDER, 900)
    short = await s.reserve(TEAM, PROVIDER, 200)
    assert short.status == "team_short" and 0 < short.retry_after <= 61
    again = await s.reserve(TEAM, PROVIDER, 100)  # the refused 200 took nothing
    assert again.status == "reserved" and again.team_remaining == 0 and again.provider_remaining == 4000


async def test_provider_short_takes_nothing_from_the_team(store: tuple[BudgetStore, Any]) -> None:
    s, _ = store
    small = Budget("provider:small", 100)
    assert (await s.reserve(TEAM, small, 150)).status == "provider_short"
    assert (await s.reserve(TEAM, PROVIDER, 1000)).status == "reserved"  # the team still has all 1000


async def test_settle_refunds_and_never_mints(store: tuple[BudgetStore, Any]) -> None:
    s, _ = store
    first = await s.reserve(TEAM, PROVIDER, 600)
    used = await s.settle(TEAM, PROVIDER, first.second, 100 - 600)  # used 100 of 600
    assert used == 100
    second = await s.reserve(TEAM, PROVIDER, 900)
    assert second.status == "reserved"
    # a refund larger than the bucket holds (a buggy caller) cannot push it below zero; the 900 stay
    # counted when they went into the next second's bucket (a slower store, a cluster, may cross one)
    expected = 0 if second.second == first.second else 900
    assert await s.settle(TEAM, PROVIDER, first.second, -10_000) == expected
    assert (await s.reserve(TEAM, PROVIDER, 1001)).status == "team_short"


async def test_debt_counts_against_the_window(store: tuple[BudgetStore, Any]) -> None:
    s, _ = store
    first = await s.reserve(TEAM, PROVIDER, 100)
    assert await s.settle(TEAM, PROVIDER, first.second, 500) == 600  # used 600, reserved 100
    assert (await s.reserve(TEAM, PROVIDER, 401)).status == "team_short"
    assert (await s.reserve(TEAM, PROVIDER, 400)).status == "reserved"


async def test_concurrent_reservations_never_exceed_the_limit(store: tuple[BudgetStore, Any]) -> None:
    s, _ = store
    outcomes = await asyncio.gather(*(s.reserve(TEAM, PROVIDER, 10) for _ in range(200)))
    assert sum(o.status == "reserved" for o in outcomes) == 100


async def test_buckets_older_than_the_window_no_longer_count(store: tuple[BudgetStore, Any]) -> None:
    s, client = store
    now = math.floor(time.time())
    if client is None:
        assert isinstance(s, MemoryStore)
        s._buckets[TEAM.key] = {now - 61: 1000, now - 30: 400}
    else:
        await client.hset(PREFIX + TEAM.key, mapping={str(now - 61): 1000, str(now - 30): 400})
    outcome = await s.reserve(TEAM, PROVIDER, 600)
    assert outcome.status == "reserved" and outcome.team_remaining == 0
    short = await s.reserve(TEAM, PROVIDER, 300)
    assert short.status == "team_short"
    assert 29 <= short.retry_after <= 32  # the 400 from 30 s ago leaves the window in about 31 s


async def test_refund_after_the_window_is_ignored(store: tuple[BudgetStore, Any]) -> None:
    s, _ = store
    await s.reserve(TEAM, PROVIDER, 1000)
    assert await s.settle(TEAM, PROVIDER, math.floor(time.time()) - 120, -1000) == 1000


def test_memory_store_window_slides_with_time() -> None:
    clock = Clock()
    s = MemoryStore(clock)
    assert run(s.reserve(TEAM, PROVIDER, 1000)).status == "reserved"
    clock.now += 30
    short = run(s.reserve(TEAM, PROVIDER, 1))
    assert short.status == "team_short" and short.retry_after == pytest.approx(30.75)
    clock.now += 31
    assert run(s.reserve(TEAM, PROVIDER, 1000)).status == "reserved"
