"""Budgets and breakers on a real Redis Cluster whose master for their slot crashes: its replica is promoted
by the cluster itself (the remaining masters vote once the node timeout passes; no operator command), the
client follows the new slot map, and what was written before the crash is still there."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from gateway.metering.redis_store import PREFIX, RedisStore
from gateway.metering.store import Budget
from gateway.observe.metrics import Metrics
from gateway.resilience.shared import SharedBreakers
from gateway.settings import BreakerSettings
from gateway.state import STORE_ERRORS, Outage, drop_connections, redis_client
from tests.redis_cluster import RedisCluster

T = TypeVar("T")
TEAM, PROVIDER = Budget("team:t", 1000), Budget("provider:p", 5000)


async def _retrying(client: Any, work: Callable[[], Awaitable[T]], seconds: float = 20.0) -> T:
    """The first calls after a master dies fail; the gateway's outage tracker then drops the client's
    connections (for a cluster: re-reads the slot map) and retries a second later. So does this."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            return await work()
        except STORE_ERRORS:
            if time.monotonic() > deadline:
                raise
            await drop_connections(client)
            await asyncio.sleep(0.5)


def test_a_master_fails_over_to_its_replica() -> None:
    with RedisCluster() as cluster:

        async def scenario() -> None:
            client = redis_client(cluster.url, timeout_ms=1000)
            store = RedisStore(client)
            settings = BreakerSettings(min_requests=2, failure_ratio=0.5, window_seconds=30, open_seconds=60)
            breakers = SharedBreakers(client, settings, Metrics(), outage=Outage(client, Metrics()))
            try:
                first = await store.reserve(TEAM, PROVIDER, 600)
                assert first.status == "reserved"
                for _ in range(3):
                    await breakers.record("p", False)
                assert not (await breakers.peek("p")).allowed  # open, in the cluster
                await asyncio.sleep(1.0)  # replication to the replica is asynchronous: let it catch up
                master = cluster.master_of(PREFIX + TEAM.key)
                replica = cluster.replica_of(master)
                cluster.kill(master)
                promoted_after = cluster.wait_promoted(replica)
                cluster.wait_healthy()
                print(f"replica {replica} promoted {promoted_after:.1f} s after master {master} was killed")
                # the replica took over the slot with the data: 600 of 1000 tokens are still reserved
                again = await _retrying(client, lambda: store.reserve(TEAM, PROVIDER, 500))
                assert again.status == "team_short"
                assert (await _retrying(client, lambda: store.reserve(TEAM, PROVIDER, 400))).status == "reserved"
                assert not (await _retrying(client, lambda: breakers.peek("p"))).allowed
            finally:
                await client.aclose()

        asyncio.run(scenario())
