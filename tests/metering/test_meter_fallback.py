"""Redis stopped and restarted under the meter: local budgets sized to this instance's share, then back to shared."""

from __future__ import annotations

import asyncio
import time

import pytest
import redis.asyncio as aioredis

from gateway.metering.meter import Meter, Reservation
from gateway.metering.redis_store import RedisStore
from gateway.metering.store import Budget
from gateway.observe.metrics import Metrics
from gateway.state import Instances, Outage, redis_client
from gateway.state.instances import KEY as INSTANCES_KEY
from tests.harness import RedisServer

TEAM, PROVIDER = Budget("team:t", 9000), Budget("provider:p", 90000)


def shared_meter(
    metrics: Metrics, client: aioredis.Redis, *, retry_seconds: float = 1.0, expected_instances: int = 2
) -> Meter:
    """The meter as the app builds it on Redis: a store, one outage tracker, the instance heartbeat."""
    outage = Outage(client, metrics, retry_seconds=retry_seconds)
    return Meter(
        metrics,
        shared=RedisStore(client),
        outage=outage,
        instances=Instances(client, outage),
        expected_instances=expected_instances,
    )


def _gauge(metrics: Metrics) -> float:
    value = metrics.registry.get_sample_value("gateway_state_fallback")
    return -1.0 if value is None else value


def test_fallback_to_local_share_and_back() -> None:
    async def scenario() -> None:
        server = RedisServer().start()
        client = redis_client(server.url, timeout_ms=50)
        metrics = Metrics()
        meter = shared_meter(metrics, client, retry_seconds=0.3)
        try:
            # two other instances are alive: this one's share is a third
            await client.zadd(INSTANCES_KEY, {"other-a": time.time(), "other-b": time.time()})
            await meter.start()
            shared = await meter.reserve(TEAM, PROVIDER, 100)
            assert isinstance(shared, Reservation) and meter.mode == "redis" and _gauge(metrics) == 0

            server.stop()
            local = await meter.reserve(TEAM, PROVIDER, 100)
            assert isinstance(local, Reservation), "no request fails because Redis is down"
            assert meter.mode == "fallback" and _gauge(metrics) == 1
            assert local.team.limit == 3000  # 9000 / 3 live instances
            assert not isinstance(await meter.reserve(TEAM, PROVIDER, 2901), Reservation)
            await meter.settle(shared, 50)  # the Redis reservation cannot settle now: counted, not raised
            assert metrics.registry.get_sample_value("gateway_settle_failures_total") == 1

            server.start()
            await asyncio.sleep(0.4)
            back = await meter.reserve(TEAM, PROVIDER, 100)
            assert isinstance(back, Reservation) and meter.mode == "redis" and _gauge(metrics) == 0
            assert back.team.limit == 9000
        finally:
            await meter.close()
            await client.aclose()
            server.stop()

    asyncio.run(scenario())


def test_redis_that_never_answered_starts_in_fallback() -> None:
    async def scenario() -> None:
        client = redis_client("redis://127.0.0.1:1/0", timeout_ms=50)
        meter = shared_meter(Metrics(), client)
        await meter.start()
        started = time.perf_counter()
        outcome = await meter.reserve(TEAM, PROVIDER, 10)
        assert isinstance(outcome, Reservation) and meter.mode == "fallback"
        assert time.perf_counter() - started < 0.5  # milliseconds, not seconds
        await meter.close()
        await client.aclose()

    asyncio.run(scenario())


def test_redis_down_at_start_shares_by_the_expected_instance_count() -> None:
    async def scenario() -> None:
        client = redis_client("redis://127.0.0.1:1/0", timeout_ms=50)
        meter = shared_meter(Metrics(), client, expected_instances=3)
        await meter.start()
        local = await meter.reserve(TEAM, PROVIDER, 10)
        assert isinstance(local, Reservation) and meter.mode == "fallback"
        assert local.team.limit == 3000, "never the whole limit: 9000 / 3 expected instances"
        await meter.close()
        await client.aclose()

    asyncio.run(scenario())


def test_heartbeats_are_scored_on_redis_time_not_the_instance_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    async def scenario() -> None:
        with RedisServer() as server:
            client = redis_client(server.url, timeout_ms=200)
            honest, fast = shared_meter(Metrics(), client), shared_meter(Metrics(), client)
            await honest.start()
            real = time.time
            monkeypatch.setattr(time, "time", lambda: real() + 20)  # this instance's clock runs 20 s fast
            await fast.start()
            assert honest._instances is not None and fast._instances is not None
            await honest._instances.beat()
            assert fast._instances.count == 2 and honest._instances.count == 2, "the fast clock expired the other"
            await fast.close()
            await honest.close()
            await client.aclose()

    asyncio.run(scenario())
