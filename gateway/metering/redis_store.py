"""Budgets in Redis, changed only by the Lua scripts in lua/ (atomic, one round trip each).

Keys: `gw:{meter}:<budget key>`. Every metering key carries the same hash tag
`{meter}` so the two-bucket reserve runs in one slot on Redis Cluster; the
keys are few and tiny, so one slot is no hot spot.
"""

from __future__ import annotations

from importlib import resources
from typing import Any

import redis.asyncio as aioredis

from gateway.metering.store import STATUS, Budget, Outcome

PREFIX = "gw:{meter}:"


def _script(name: str) -> str:
    return resources.files("gateway.metering").joinpath(f"lua/{name}.lua").read_text(encoding="utf-8")


class RedisStore:
    def __init__(self, client: aioredis.Redis) -> None:
        self._client = client
        self._reserve: Any = client.register_script(_script("reserve"))
        self._settle: Any = client.register_script(_script("settle"))

    async def reserve(self, team: Budget, provider: Budget, amount: int) -> Outcome:
        keys = [PREFIX + team.key, PREFIX + provider.key]
        status, team_level, provider_level, retry_after = await self._reserve(
            keys=keys, args=[team.capacity, provider.capacity, amount]
        )
        return Outcome(STATUS[int(status)], float(team_level), float(provider_level), float(retry_after))  # type: ignore[arg-type]

    async def settle(self, team: Budget, provider: Budget, delta: int) -> float:
        keys = [PREFIX + team.key, PREFIX + provider.key]
        return float(await self._settle(keys=keys, args=[team.capacity, provider.capacity, delta]))
