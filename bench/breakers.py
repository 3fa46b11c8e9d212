"""Breaker cost per request: admit + record, in process and shared through Redis.

    .venv/bin/python bench/breakers.py [--requests N]

Each "request" does what the router does on a healthy provider: a peek, an
admit, and a success record. Reports p50/p99 in µs and the Redis round trips
per request (from INFO commandstats: EVALSHA and EVAL calls), including the
background flush of batched successes.
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

from gateway.observe.metrics import Metrics  # noqa: E402
from gateway.resilience.breakers import Breakers, LocalBreakers  # noqa: E402
from gateway.resilience.shared import SharedBreakers  # noqa: E402
from gateway.settings import BreakerSettings  # noqa: E402
from gateway.state import Outage, redis_client  # noqa: E402
from tests.harness import RedisServer  # noqa: E402


async def one(breakers: Breakers) -> float:
    started = time.perf_counter_ns()
    await breakers.peek("p")
    admission = await breakers.admit("p")
    await breakers.record("p", True, probe=admission.probe)
    return (time.perf_counter_ns() - started) / 1000


async def run(breakers: Breakers, requests: int) -> list[float]:
    samples = []
    for i in range(requests):
        samples.append(await one(breakers))
        if i % 50 == 0:
            await asyncio.sleep(0)
    return samples


def report(name: str, samples: list[float], trips: float) -> None:
    p99 = sorted(samples)[int(0.99 * len(samples))]
    print(f"{name:<8} {statistics.median(samples):>9.1f} {p99:>9.1f} {trips:>20.5f}")


async def main(requests: int) -> None:
    print(f"{'store':<8} {'p50 µs':>9} {'p99 µs':>9} {'round trips/request':>20}")
    report("local", await run(LocalBreakers(BreakerSettings()), requests), 0)
    with RedisServer() as server:
        client = redis_client(server.url, timeout_ms=200)
        shared = SharedBreakers(client, BreakerSettings(), Metrics(), outage=Outage(client, Metrics()))
        await shared.start()
        await one(shared)
        await client.config_resetstat()
        started = time.perf_counter()
        samples = await run(shared, requests)
        await asyncio.sleep(0.6)  # let the background flush run once more
        await shared.close()
        stats = await client.info("commandstats")
        trips = sum(stats.get(k, {}).get("calls", 0) for k in ("cmdstat_evalsha", "cmdstat_eval"))
        report("redis", samples, trips / requests)
        print(f"({trips} Redis round trips in all for {requests} requests)")
        print(f"(redis run took {time.perf_counter() - started:.1f}s for {requests} requests)")
        await client.aclose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=20000)
    asyncio.run(main(parser.parse_args().requests))
