"""Upstream 429 cool-downs: after a provider says "retry after N s", every request backs off from it.

The local implementation serves the embedded mode; the Redis one (shared by
every instance) lives beside the Redis breakers.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol


class Cooldowns(Protocol):
    async def start(self, provider: str, seconds: float) -> None: ...

    async def remaining(self, provider: str) -> float: ...


class LocalCooldowns:
    def __init__(self, clock: Callable[[], float] = time.monotonic, max_seconds: float = 600.0) -> None:
        self._clock = clock
        self._until: dict[str, float] = {}
        self._max = max_seconds

    async def start(self, provider: str, seconds: float) -> None:
        until = self._clock() + min(max(0.0, seconds), self._max)
        self._until[provider] = max(self._until.get(provider, 0.0), until)

    async def remaining(self, provider: str) -> float:
        return max(0.0, self._until.get(provider, 0.0) - self._clock())
