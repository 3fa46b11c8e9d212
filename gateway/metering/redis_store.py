"""Budgets in Redis, changed only by the Lua scripts in lua/ (atomic, one round trip each).

Keys: `gw:{meter}:<budget key>`, each a hash of second -> tokens. Every
metering key carries the same hash tag `{meter}` so the two-budget reserve
runs in one slot on Redis Cluster; the keys are few and small (at most 62
fields), so one slot is no hot spot.
"""

from __future__ import annotations

from typing import Any

import redis.asyncio as aioredis

from gateway.metering.store import STATUS, Budget, Outcome
from gateway.state import load_script

PREFIX = "gw:{meter}:"


class RedisStore:
    def __init__(self, client: aioredis.Redis) -> None:
        self._reserve: Any = load_script(client, "gateway.metering", "reserve")
        self._settle: Any = load_script(client, "gateway.metering", "settle")

    async def reserve(self, team: Budget, provider: Budget, amount: int) -> Outcome:
        keys = [PREFIX + team.key, PREFIX + provider.key]
        status, team_left, provider_left, retry_after, second = await self._reserve(
            keys=keys, args=[team.limit, provider.limit, amount]
        )
        return Outcome(
            STATUS[int(status)],  # type: ignore[arg-type]
            float(team_left),
            float(provider_left),
            float(retry_after),
            int(second),
        )

    async def settle(self, team: Budget, provider: Budget, second: int, delta: int) -> float:
        keys = [PREFIX + team.key, PREFIX + provider.key]
        return float(await self._settle(keys=keys, args=[second, delta]))
