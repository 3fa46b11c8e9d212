"""Budgets in Redis, changed only by the Lua scripts in lua/ (atomic, one round trip per batch).

Keys: `gw:{meter}:<budget key>`, each a hash of second -> tokens. Every
metering key carries the same hash tag `{meter}` so the two-budget reserve
runs in one slot on Redis Cluster; the keys are few and small (at most 62
fields), so one slot is no hot spot. That one slot also lets the reserves
(and the settlements) of requests waiting at the same time go in one script
call (state/batch.py): the same effects as one call each, in order.
"""

from __future__ import annotations

import math
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from gateway.metering.store import STATUS, Budget, Outcome
from gateway.state import load_script
from gateway.state.batch import GroupCommit

PREFIX = "gw:{meter}:"
_Reserve = tuple[Budget, Budget, int]
_Settle = tuple[Budget, Budget, int, int]


class RedisStore:
    def __init__(self, client: aioredis.Redis) -> None:
        self._reserve_script: Any = load_script(client, "gateway.metering", "reserve")
        self._settle_script: Any = load_script(client, "gateway.metering", "settle")
        self.reserves: GroupCommit[_Reserve, Outcome] = GroupCommit(self._reserve_batch, on_abandoned=self._give_back)
        self.settles: GroupCommit[_Settle, float] = GroupCommit(self._settle_batch)

    def batches(self) -> dict[str, dict[str, int]]:
        return {"token_reserves": self.reserves.stats(), "token_settlements": self.settles.stats()}

    async def reserve(self, team: Budget, provider: Budget, amount: int) -> Outcome:
        return await self.reserves.submit((team, provider, amount))

    async def settle(self, team: Budget, provider: Budget, second: int, delta: int) -> float:
        return await self.settles.submit((team, provider, second, delta))

    async def _reserve_batch(self, items: list[_Reserve]) -> list[Outcome]:
        keys: list[str] = []
        args: list[int] = []
        for team, provider, amount in items:
            keys += [PREFIX + team.key, PREFIX + provider.key]
            args += [team.limit, provider.limit, amount]
        reply = await self._reserve_script(keys=keys, args=args)
        try:
            outcomes = [
                Outcome(
                    STATUS[int(status)],  # type: ignore[arg-type]
                    float(team_left),
                    float(provider_left),
                    float(retry_after),
                    int(second),
                )
                for status, team_left, provider_left, retry_after, second in _rows(reply, 5)
            ]
        except (KeyError, TypeError, ValueError) as exc:  # not what reserve.lua answers
            raise ResponseError("malformed reserve reply") from exc
        if not all(math.isfinite(x) for o in outcomes for x in (o.team_remaining, o.provider_remaining, o.retry_after)):
            raise ResponseError("malformed reserve reply")  # a NaN would reach the rate-limit headers
        return outcomes

    async def _settle_batch(self, items: list[_Settle]) -> list[float]:
        keys: list[str] = []
        args: list[int] = []
        for team, provider, second, delta in items:
            keys += [PREFIX + team.key, PREFIX + provider.key]
            args += [second, delta]
        reply = await self._settle_script(keys=keys, args=args)
        try:
            used = [float(x) for x in reply]
        except (TypeError, ValueError) as exc:  # not what settle.lua answers
            raise ResponseError("malformed settle reply") from exc
        if not all(math.isfinite(x) for x in used):
            raise ResponseError("malformed settle reply")
        return used

    async def _give_back(self, item: _Reserve, outcome: Outcome) -> None:
        """A reservation whose caller stopped waiting (its request was cancelled): released at once."""
        team, provider, amount = item
        if outcome.status == "reserved":
            await self.settle(team, provider, outcome.second, -amount)


def _rows(flat: list[Any], width: int) -> list[list[Any]]:
    return [flat[i : i + width] for i in range(0, len(flat), width)]
