"""Breakers shared by every gateway instance through Redis, changed only by the Lua scripts in lua/.

Keys: `gw:{breaker:<provider>}`, one hash per provider (the hash tag keeps each
script on one slot of a Redis Cluster).

Round trips: each process caches each provider's state for at most
CACHE_SECONDS, so a trip (or a cool-down) recorded by another instance is seen
here within a second. Closed providers admit from the cache; successes are
counted locally and flushed every FLUSH_SECONDS; failures, probe outcomes and
cool-downs go to Redis at once. Half-open probe permits are always taken in
Redis, so the probe limit holds across instances.

Redis unreachable or slow: every call falls back to the in-process breakers
(LocalBreakers) while the process's one state.Outage says Redis is down.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis

from gateway import tasks
from gateway.observe.metrics import Metrics
from gateway.resilience.breakers import MAX_COOLDOWN_SECONDS, STATE_CODES, Admission, LocalBreakers
from gateway.settings import BreakerSettings
from gateway.state import STORE_ERRORS, Outage, load_script

log = logging.getLogger("gateway.resilience")
CACHE_SECONDS = 1.0
FLUSH_SECONDS = 0.5


def key(provider: str) -> str:
    return f"gw:{{breaker:{provider}}}"


@dataclass
class _Cached:
    state: str
    may_admit_at: float  # monotonic time the open period or cool-down ends
    cool_until: float  # monotonic
    trips: int
    fetched: float  # monotonic


class SharedBreakers:
    def __init__(
        self,
        client: aioredis.Redis,
        settings: BreakerSettings,
        metrics: Metrics,
        *,
        outage: Outage,
        probe_ttl: float = 60.0,
    ) -> None:
        self._settings = settings
        self._metrics = metrics
        self._probe_ttl = probe_ttl
        self._outage = outage
        self._local = LocalBreakers(settings, probe_ttl=probe_ttl)
        self._scripts: dict[str, Any] = {
            n: load_script(client, "gateway.resilience", n) for n in ("admit", "record", "cooldown", "peek")
        }
        self._cache: dict[str, _Cached] = {}
        self._pending_ok: dict[str, int] = {}
        self._flusher: asyncio.Task[None] | None = None

    # -- lifecycle -----------------------------------------------------------

    async def start(self) -> None:
        self._flusher = asyncio.create_task(self._flush_forever(), name="breaker-flush")

    async def close(self) -> None:
        await tasks.stop(self._flusher)
        self._flusher = None
        await self._flush()

    # -- the contract -------------------------------------------------------

    async def admit(self, provider: str) -> Admission:
        if self._down():
            return await self._local.admit(provider)
        cached = self._fresh(provider)
        if cached is not None and cached.state != "half_open":
            answer = self._from_cache(cached)
            if answer is not None:
                return answer
        try:
            allowed, state, wait, reason = await self._scripts["admit"](
                keys=[key(provider)], args=[self._settings.half_open_probes, self._probe_ttl]
            )
        except STORE_ERRORS as exc:
            self._mark_down(exc)
            return await self._local.admit(provider)
        reason, state = _text(reason), _text(state)
        wait = float(wait)
        if reason in ("open", "cooldown", "closed"):
            self._remember(
                provider, state, wait if reason == "open" else 0.0, wait if reason == "cooldown" else 0.0, None
            )
        return Admission(_text(allowed) == "1", reason, wait)

    async def peek(self, provider: str) -> Admission:
        if self._down():
            return await self._local.peek(provider)
        cached = self._fresh(provider) or await self._refresh(provider)
        if cached is None:
            return await self._local.peek(provider)
        answer = self._from_cache(cached)
        return answer if answer is not None else Admission(True, "probe")

    async def record(self, provider: str, ok: bool, *, probe: bool = False) -> None:
        if self._down():
            self._local.record_counts(provider, int(ok), int(not ok), probe=probe)
            return
        if ok and not probe:
            self._pending_ok[provider] = self._pending_ok.get(provider, 0) + 1
            return
        pending = self._pending_ok.pop(provider, 0)
        await self._record(provider, pending + int(ok), int(not ok), probe=probe)

    async def release_probe(self, provider: str) -> None:
        if self._down():
            self._local.record_counts(provider, 0, 0, probe=True)
            return
        await self._record(provider, 0, 0, probe=True)

    async def cooldown(self, provider: str, seconds: float) -> None:
        await self._local.cooldown(provider, seconds)  # this instance backs off even if Redis is gone
        if self._down():
            return
        # this instance's own requests see the cool-down at once, not once Redis has answered: a request
        # peeking meanwhile would still find the cached "closed" and send to the provider that said 429
        now = time.monotonic()
        cached = self._cache.get(provider)
        if cached is not None:
            cached.cool_until = max(cached.cool_until, now + min(seconds, MAX_COOLDOWN_SECONDS))
        else:
            self._remember(provider, "closed", 0.0, min(seconds, MAX_COOLDOWN_SECONDS), None)
        try:
            left = float(await self._scripts["cooldown"](keys=[key(provider)], args=[seconds, MAX_COOLDOWN_SECONDS]))
        except STORE_ERRORS as exc:
            self._mark_down(exc)
            return
        cached = self._cache.get(provider)
        state = cached.state if cached else "closed"
        self._remember(provider, state, 0.0, left, cached.trips if cached else None)

    async def snapshot(self) -> dict[str, dict[str, object]]:
        if self._down():
            return {name: {**info, "source": "local fallback"} for name, info in (await self._local.snapshot()).items()}
        out: dict[str, dict[str, object]] = {}
        for provider in sorted(set(self._cache) | set(self._pending_ok)):
            cached = await self._refresh(provider)
            if cached is None:
                break
            now = time.monotonic()
            out[provider] = {
                "state": cached.state,
                "trips": cached.trips,
                "open_for_seconds": round(max(0.0, cached.may_admit_at - now), 3) if cached.state == "open" else 0.0,
                "cooldown_seconds": round(max(0.0, cached.cool_until - now), 3),
                "source": "redis",
            }
        return out

    # -- internals ------------------------------------------------------------

    def _from_cache(self, cached: _Cached) -> Admission | None:
        now = time.monotonic()
        if cached.cool_until > now:
            return Admission(False, "cooldown", cached.cool_until - now)
        if cached.state == "open" and cached.may_admit_at > now:
            return Admission(False, "open", cached.may_admit_at - now)
        if cached.state == "closed":
            return Admission(True, "closed")
        return None

    def _fresh(self, provider: str) -> _Cached | None:
        cached = self._cache.get(provider)
        if cached is None or time.monotonic() - cached.fetched > CACHE_SECONDS:
            return None
        return cached

    def _remember(self, provider: str, state: str, open_left: float, cool_left: float, trips: int | None) -> None:
        now = time.monotonic()
        previous = self._cache.get(provider)
        known_trips = trips if trips is not None else (previous.trips if previous else 0)
        self._cache[provider] = _Cached(state, now + open_left, now + cool_left, known_trips, now)
        self._metrics.breaker_state.labels(provider=provider).set(STATE_CODES.get(state, 0))

    async def _refresh(self, provider: str) -> _Cached | None:
        try:
            state, wait, trips, cool = await self._scripts["peek"](keys=[key(provider)])
        except STORE_ERRORS as exc:
            self._mark_down(exc)
            return None
        state = _text(state)
        self._remember(provider, state, float(wait), float(cool), int(trips))
        return self._cache[provider]

    async def _record(self, provider: str, ok: int, failed: int, *, probe: bool) -> None:
        s = self._settings
        args = [
            ok,
            failed,
            int(probe),
            s.failure_ratio,
            s.min_requests,
            s.window_seconds,
            s.open_seconds,
            s.max_open_seconds,
        ]
        try:
            state, wait, trips = await self._scripts["record"](keys=[key(provider)], args=args)
        except STORE_ERRORS as exc:
            self._mark_down(exc)
            self._local.record_counts(provider, ok, failed, probe=probe)
            return
        state = _text(state)
        cached = self._cache.get(provider)
        cool_left = max(0.0, cached.cool_until - time.monotonic()) if cached else 0.0
        self._remember(provider, state, float(wait), cool_left, int(trips))

    async def _flush(self) -> None:
        pending, self._pending_ok = self._pending_ok, {}
        for provider, count in pending.items():
            if self._down():
                self._local.record_counts(provider, count, 0)
            else:
                await self._record(provider, count, 0, probe=False)

    async def _flush_forever(self) -> None:
        while True:
            await asyncio.sleep(FLUSH_SECONDS)
            await self._flush()
            for provider in list(self._cache):  # keep every cached state younger than CACHE_SECONDS
                if time.monotonic() - self._cache[provider].fetched > CACHE_SECONDS / 2 and not self._down():
                    await self._refresh(provider)

    def _down(self) -> bool:
        return self._outage.down

    def _mark_down(self, exc: BaseException) -> None:
        self._outage.mark_down(exc)


def _text(value: Any) -> str:
    """A Lua reply element as text (redis-py hands back bytes)."""
    return value.decode() if isinstance(value, bytes) else str(value)
