"""In-process budgets with the same contract and arithmetic as the Redis store (one process only)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from gateway.metering.store import WINDOW_BUCKETS, Budget, Outcome


class MemoryStore:
    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._buckets: dict[str, dict[int, int]] = {}

    def _window(self, key: str, second: int) -> tuple[int, dict[int, int]]:
        buckets = self._buckets.setdefault(key, {})
        floor = second - (WINDOW_BUCKETS - 1)
        for old in [k for k in buckets if k < floor]:
            del buckets[old]
        return sum(buckets.values()), buckets

    def _wait(self, buckets: dict[int, int], excess: int, now: float) -> float:
        """Seconds until enough of the window's oldest tokens leave it (sorted only here: a refusal)."""
        freed = 0
        for second, tokens in sorted(buckets.items()):
            freed += tokens
            if freed >= excess:
                return max(0.0, second + WINDOW_BUCKETS - now)
        return float(WINDOW_BUCKETS)

    async def reserve(self, team: Budget, provider: Budget, amount: int) -> Outcome:
        now = self._clock()
        second = math.floor(now)
        team_used, team_buckets = self._window(team.key, second)
        provider_used, provider_buckets = self._window(provider.key, second)
        team_left, provider_left = team.limit - team_used, provider.limit - provider_used
        if team_used + amount > team.limit:
            wait = self._wait(team_buckets, team_used + amount - team.limit, now)
            return Outcome("team_short", team_left, provider_left, wait, second)
        if provider_used + amount > provider.limit:
            wait = self._wait(provider_buckets, provider_used + amount - provider.limit, now)
            return Outcome("provider_short", team_left, provider_left, wait, second)
        for key in (team.key, provider.key):
            bucket = self._buckets[key]
            bucket[second] = bucket.get(second, 0) + amount
        return Outcome("reserved", team_left - amount, provider_left - amount, 0.0, second)

    async def settle(self, team: Budget, provider: Budget, second: int, delta: int) -> float:
        current = math.floor(self._clock())
        for key in (team.key, provider.key):
            buckets = self._buckets.setdefault(key, {})
            if delta > 0:
                buckets[current] = buckets.get(current, 0) + delta
            elif second >= current - (WINDOW_BUCKETS - 1):
                buckets[second] = max(0, buckets.get(second, 0) + delta)
        return float(self._window(team.key, current)[0])
