"""Redis stopped and restarted under load: no request fails, /readyz and gateway_state_fallback say so."""

from __future__ import annotations

import asyncio
import time

import aiohttp

from gateway.demo.standins import Behavior
from tests.harness import GatewayProcess, RedisServer, gateway_config, standins_running

ADMIN = "outage-admin"
BODY = {"model": "gpt-4o", "max_tokens": 32, "messages": [{"role": "user", "content": "Summarise the ward round."}]}


def test_redis_restart_under_load_fails_no_request() -> None:
    with standins_running() as standins, RedisServer() as redis:
        standins["azure-eu-west"].set_default(Behavior(latency=0.01))
        config = gateway_config(standins, state={"redis_url": redis.url, "timeout_ms": 50})
        with GatewayProcess(config, env={"GATEWAY_ADMIN_TOKEN": ADMIN}) as gateway:
            statuses, ready, fallback = asyncio.run(_drive(gateway.base_url, redis))
            output = gateway.output()
    assert statuses and set(statuses) == {200}, f"failed requests: {[s for s in statuses if s != 200][:5]}"
    assert len(statuses) > 100
    assert ready[0] == 200 and 503 in ready and ready[-1] == 200, ready
    assert fallback[0] == 0.0 and 1.0 in fallback and fallback[-1] == 0.0, fallback
    assert output.count('"state store unreachable, serving from local state"') >= 1, "one outage, said once per outage"


async def _drive(base: str, redis: RedisServer) -> tuple[list[int], list[int], list[float]]:
    statuses: list[int] = []
    ready: list[int] = []
    fallback: list[float] = []
    stop_at = time.monotonic() + 7.0
    headers = {"Authorization": "Bearer gw-demo-eu-research"}

    async with aiohttp.ClientSession() as session:

        async def worker() -> None:
            while time.monotonic() < stop_at:
                async with session.post(f"{base}/v1/chat/completions", json=BODY, headers=headers) as resp:
                    await resp.read()
                    statuses.append(resp.status)

        async def observe() -> None:
            while time.monotonic() < stop_at:
                async with session.get(f"{base}/readyz") as resp:
                    ready.append(resp.status)
                async with session.get(f"{base}/metrics", headers={"Authorization": f"Bearer {ADMIN}"}) as resp:
                    for line in (await resp.text()).splitlines():
                        if line.startswith("gateway_state_fallback "):
                            fallback.append(float(line.split()[1]))
                await asyncio.sleep(0.2)

        async def chaos() -> None:
            await asyncio.sleep(1.5)
            await asyncio.to_thread(redis.stop)
            await asyncio.sleep(2.5)
            await asyncio.to_thread(redis.start)

        await asyncio.gather(*(worker() for _ in range(6)), observe(), chaos())
    return statuses, ready, fallback
