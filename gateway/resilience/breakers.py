"""Circuit breakers per provider, and upstream 429 cool-downs: closed -> open -> half-open -> closed.

closed     admits everything; outcomes go into one-second buckets. Opens when,
           over `window_seconds`, there were at least `min_requests` outcomes
           and failures/outcomes >= `failure_ratio`.
open       admits nothing until `open_seconds` x 2^(trips-1) have passed (capped
           at `max_open_seconds`): a flapping provider stays out longer each time.
half-open  admits at most `half_open_probes` requests at once (across every
           instance when the state is shared); a probe success closes the
           breaker, a probe failure opens it again with one more trip.
Trips reset once the breaker has stayed closed for a whole window.
cool-down  after a 429 the provider admits nothing until its Retry-After has
           passed, whatever the breaker's state.

What counts as failure is the caller's call (forward.AttemptFailed.breaker_failure):
connect errors, timeouts, 5xx, bad or truncated answers; never a client's 4xx.
This module keeps the contract and the in-process implementation (the embedded
default, and the fallback while Redis is unreachable); shared.py keeps them in Redis.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from gateway.settings import BreakerSettings

STATE_CODES = {"closed": 0, "half_open": 1, "open": 2}
MAX_COOLDOWN_SECONDS = 600.0


@dataclass(frozen=True, slots=True)
class Admission:
    allowed: bool
    reason: str  # closed | probe | open | cooldown | probe_busy
    wait: float = 0.0  # seconds until the provider may admit again

    @property
    def probe(self) -> bool:
        return self.reason == "probe"


class Breakers(Protocol):
    async def admit(self, provider: str) -> Admission:
        """Whether a request may go now; a half-open probe permit is taken when it says `probe`."""
        ...

    async def peek(self, provider: str) -> Admission:
        """The same answer without taking a probe permit (may be up to a second stale)."""
        ...

    async def record(self, provider: str, ok: bool, *, probe: bool = False) -> None: ...

    async def release_probe(self, provider: str) -> None:
        """Give a half-open probe permit back without a verdict (the client left: no evidence either way)."""
        ...

    async def cooldown(self, provider: str, seconds: float) -> None: ...

    async def snapshot(self) -> dict[str, dict[str, object]]: ...

    async def start(self) -> None: ...

    async def close(self) -> None: ...


@dataclass
class _Breaker:
    state: str = "closed"
    open_until: float = 0.0
    cool_until: float = 0.0
    trips: int = 0
    probes: int = 0
    probe_since: float = 0.0
    closed_since: float = 0.0
    buckets: dict[int, list[int]] = field(default_factory=dict)  # second -> [successes, failures]


class LocalBreakers:
    def __init__(
        self, settings: BreakerSettings, clock: Callable[[], float] = time.time, probe_ttl: float = 60.0
    ) -> None:
        self._settings = settings
        self._clock = clock
        self._probe_ttl = probe_ttl
        self._breakers: dict[str, _Breaker] = {}

    def _get(self, provider: str) -> _Breaker:
        now = self._clock()
        breaker = self._breakers.setdefault(provider, _Breaker(closed_since=now))
        if breaker.state == "open" and now >= breaker.open_until:
            breaker.state, breaker.probes = "half_open", 0
        if breaker.probes and now - breaker.probe_since > self._probe_ttl:
            breaker.probes = 0
        return breaker

    def _answer(self, provider: str, *, take_probe: bool) -> Admission:
        now, breaker = self._clock(), self._get(provider)
        if breaker.cool_until > now:
            return Admission(False, "cooldown", breaker.cool_until - now)
        if breaker.state == "open":
            return Admission(False, "open", breaker.open_until - now)
        if breaker.state == "half_open":
            if breaker.probes >= self._settings.half_open_probes:
                return Admission(False, "probe_busy", 1.0)
            if take_probe:
                breaker.probes += 1
                breaker.probe_since = now
            return Admission(True, "probe")
        return Admission(True, "closed")

    async def start(self) -> None:
        """Nothing runs in the background: state is this process's."""

    async def close(self) -> None:
        """Nothing to flush."""

    async def admit(self, provider: str) -> Admission:
        return self._answer(provider, take_probe=True)

    async def peek(self, provider: str) -> Admission:
        return self._answer(provider, take_probe=False)

    async def record(self, provider: str, ok: bool, *, probe: bool = False) -> None:
        self.record_counts(provider, int(ok), int(not ok), probe=probe)

    async def release_probe(self, provider: str) -> None:
        self.record_counts(provider, 0, 0, probe=True)

    def record_counts(self, provider: str, ok: int, failed: int, *, probe: bool = False) -> str:
        s, now = self._settings, self._clock()
        breaker = self._get(provider)
        if breaker.state == "half_open":
            if probe:
                breaker.probes = max(0, breaker.probes - 1)
                if failed:
                    self._open(breaker, now)
                elif ok:
                    breaker.state, breaker.closed_since, breaker.buckets = "closed", now, {}
            return breaker.state
        if breaker.state == "open":
            return breaker.state  # stragglers from before the trip
        second = int(now)
        bucket = breaker.buckets.setdefault(second, [0, 0])
        bucket[0] += ok
        bucket[1] += failed
        for old in [k for k in breaker.buckets if k <= second - s.window_seconds]:
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

    async def cooldown(self, provider: str, seconds: float) -> None:
        breaker = self._get(provider)
        breaker.cool_until = max(breaker.cool_until, self._clock() + min(max(0.0, seconds), MAX_COOLDOWN_SECONDS))

    async def snapshot(self) -> dict[str, dict[str, object]]:
        now = self._clock()
        out: dict[str, dict[str, object]] = {}
        for name in sorted(self._breakers):
            b = self._get(name)
            out[name] = {
                "state": b.state,
                "trips": b.trips,
                "open_for_seconds": round(max(0.0, b.open_until - now), 3) if b.state == "open" else 0.0,
                "cooldown_seconds": round(max(0.0, b.cool_until - now), 3),
            }
        return out
