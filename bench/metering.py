"""Metering cost per request: reserve + settle on the in-process store and on Redis.

    .venv/bin/python bench/metering.py [--requests N]

Starts a private redis-server on loopback. Reports p50/p99 of one reserve+settle
pair (what every request pays), sequential and with 32 concurrent requests, and
the Redis round trips per request counted from Redis' own INFO commandstats.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gateway.metering.meter import Meter, Reservation  # noqa: E402
from gateway.metering.redis_store import RedisStore  # noqa: E402
from gateway.metering.store import Budget  # noqa: E402
from gateway.observe.metrics import Metrics  # noqa: E402
from gateway.state import Outage, redis_client  # noqa: E402
from tests.harness import RedisServer  # noqa: E402

TEAM, PROVIDER = Budget("team:bench", 10**12), Budget("provider:bench", 10**12)


async def one(meter: Meter) -> float:
    started = time.perf_counter_ns()
    reservation = await meter.reserve(TEAM, PROVIDER, 1200)
    assert isinstance(reservation, Reservation)
    await meter.settle(reservation, 700)
    return (time.perf_counter_ns() - started) / 1000


async def measure(meter: Meter, requests: int, concurrency: int) -> list[float]:
    samples: list[float] = []
    for _ in range(requests // concurrency):
        samples.extend(await asyncio.gather(*(one(meter) for _ in range(concurrency))))
    return samples


def pct(samples: list[float], q: float) -> float:
    return sorted(samples)[min(len(samples) - 1, int(q * len(samples)))]


async def main(requests: int) -> None:
    print(f"{'store':<8} {'concurrency':>11} {'p50 µs':>9} {'p99 µs':>9} {'round trips/request':>20}")
    memory = Meter(Metrics())
    for concurrency in (1, 32):
        samples = await measure(memory, requests, concurrency)
        print(f"{'memory':<8} {concurrency:>11} {statistics.median(samples):>9.1f} {pct(samples, 0.99):>9.1f} {0:>20}")
    with RedisServer() as server:
        client = redis_client(server.url, timeout_ms=200)
        metrics = Metrics()
        meter = Meter(metrics, shared=RedisStore(client), outage=Outage(client, metrics))
        await one(meter)  # load the scripts
        for concurrency in (1, 32):
            await client.config_resetstat()
            samples = await measure(meter, requests, concurrency)
            stats = await client.info("commandstats")
            # round trips are the client's own commands; commands run inside the Lua scripts are not
            trips = sum(stats.get(k, {}).get("calls", 0) for k in ("cmdstat_evalsha", "cmdstat_eval"))
            p50, p99 = statistics.median(samples), pct(samples, 0.99)
            print(f"{'redis':<8} {concurrency:>11} {p50:>9.1f} {p99:>9.1f} {trips / len(samples):>20.2f}")
        await client.aclose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=5000)
    asyncio.run(main(parser.parse_args().requests))
