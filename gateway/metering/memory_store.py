"""In-process budgets with the same contract as the Redis store (one process only)."""

from __future__ import annotations

import time
from collections.abc import Callable

from gateway.metering.store import Budget, Outcome


class MemoryStore:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, ts)

    def _level(self, budget: Budget, now: float) -> float:
        state = self._buckets.get(budget.key)
        if state is None:
            return float(budget.capacity)
        tokens, ts = state
        return min(float(budget.capacity), tokens + max(0.0, now - ts) * budget.capacity / 60)

    async def reserve(self, team: Budget, provider: Budget, amount: int) -> Outcome:
        now = self._clock()
        team_level, provider_level = self._level(team, now), self._level(provider, now)
        if amount > team_level:
            return Outcome("team_short", team_level, provider_level, (amount - team_level) * 60 / team.capacity)
        if amount > provider_level:
            return Outcome(
                "provider_short", team_level, provider_level, (amount - provider_level) * 60 / provider.capacity
            )
        self._buckets[team.key] = (team_level - amount, now)
        self._buckets[provider.key] = (provider_level - amount, now)
        return Outcome("reserved", team_level - amount, provider_level - amount, 0.0)

    async def settle(self, team: Budget, provider: Budget, delta: int) -> float:
        now = self._clock()
        for budget in (team, provider):
            settled = max(-budget.capacity, min(budget.capacity, self._level(budget, now) + delta))
            self._buckets[budget.key] = (settled, now)
        return self._buckets[team.key][0]
