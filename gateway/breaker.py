"""Circuit breakers per provider: closed -> open -> half-open -> closed.

closed     admits everything; records outcomes in a sliding window of
           one-second buckets. Opens when, over `window_seconds`, there were at
           least `min_requests` outcomes and failures/outcomes >= `failure_ratio`.
open       admits nothing until `open_seconds` x 2^(trips-1) have passed (capped
           at `max_open_seconds`): a flapping provider stays out longer each time.
half-open  admits at most `half_open_probes` requests at once, across every
           instance sharing the store; a probe success closes the breaker, a
           probe failure opens it again with one more trip.
Trips reset once the breaker has stayed closed for a whole window.

What counts as failure is decided by the caller (forward.AttemptFailed.breaker_failure):
connect errors, timeouts, 5xx, bad or truncated answers; never a client's 4xx.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from gateway.settings import BreakerSettings

STATE_CODES = {"closed": 0, "half_open": 1, "open": 2}


class Breakers(Protocol):
    async def admit(self, provider: str) -> bool:
        """True when a request may go to the provider now (a half-open probe permit is taken)."""
        ...

    async def record(self, provider: str, ok: bool, *, probe: bool = False) -> str:
        """Record one outcome; returns the state after it."""
        ...

    async def state(self, provider: str) -> str: ...

    async def snapshot(self) -> dict[str, dict[str, object]]: ...


@dataclass
class _Breaker:
    state: str = "closed"
    open_until: float = 0.0
    trips: int = 0
    probes: int = 0
    closed_since: float = 0.0
    buckets: dict[int, list[int]] = field(default_factory=dict)  # second -> [successes, failures]


class LocalBreakers:
    """Breakers in process memory: the embedded default, and the fallback when Redis is unreachable."""

    def __init__(self, settings: BreakerSettings, clock: Callable[[], float] = time.time) -> None:
        self._settings = settings
        self._clock = clock
        self._breakers: dict[str, _Breaker] = {}

    def _get(self, provider: str) -> _Breaker:
        breaker = self._breakers.setdefault(provider, _Breaker(closed_since=self._clock()))
        now = self._clock()
        if breaker.state == "open" and now >= breaker.open_until:
            breaker.state, breaker.probes = "half_open", 0
        return breaker

    async def admit(self, provider: str) -> bool:
        breaker = self._get(provider)
        if breaker.state == "closed":
            return True
        if breaker.state == "half_open" and breaker.probes < self._settings.half_open_probes:
            breaker.probes += 1
            return True
        return False

    async def record(self, provider: str, ok: bool, *, probe: bool = False) -> str:
        s, now = self._settings, self._clock()
        breaker = self._get(provider)
        if breaker.state == "half_open":
            breaker.probes = max(0, breaker.probes - 1)
            if ok:
                breaker.state, breaker.closed_since, breaker.buckets = "closed", now, {}
            else:
                self._open(breaker, now)
            return breaker.state
        if breaker.state == "open":
            return breaker.state  # a straggler from before the trip
        second = int(now)
        bucket = breaker.buckets.setdefault(second, [0, 0])
        bucket[0 if ok else 1] += 1
        horizon = second - int(s.window_seconds)
        for old in [k for k in breaker.buckets if k <= horizon]:
            del breaker.buckets[old]
        total = sum(a + b for a, b in breaker.buckets.values())
        failures = sum(b for _, b in breaker.buckets.values())
        if breaker.trips and now - breaker.closed_since >= s.window_seconds:
            breaker.trips = 0
        if total >= s.min_requests and failures / total >= s.failure_ratio:
            self._open(breaker, now)
        return breaker.state

    def _open(self, breaker: _Breaker, now: float) -> None:
        s = self._settings
        breaker.trips += 1
        breaker.state = "open"
        breaker.open_until = now + min(s.max_open_seconds, s.open_seconds * 2 ** (breaker.trips - 1))
        breaker.buckets, breaker.probes = {}, 0

    async def state(self, provider: str) -> str:
        return self._get(provider).state

    async def snapshot(self) -> dict[str, dict[str, object]]:
        now = self._clock()
        return {
            name: {
                "state": self._get(name).state,
                "trips": b.trips,
                "open_for_seconds": max(0.0, round(b.open_until - now, 3)),
            }
            for name, b in sorted(self._breakers.items())
        }
