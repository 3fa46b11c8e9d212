"""Reserve-then-settle token metering over a shared store, with a per-process fallback.

Redis unreachable or slow (timeouts in milliseconds): reservations go to local
budgets sized to this process's share: limit / live instances, counted by
heartbeats (scored on Redis time) while Redis was up, or limit /
`state.expected_instances` when Redis was never reached, so replicas that
start during an outage never each take the whole limit.
`gateway_state_fallback` is 1, and Redis is tried again after `retry_seconds`. No request fails because of the store.
A reservation settles in the store that granted it; a settlement that cannot
be written is counted and dropped (the bucket refills within a minute anyway).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from gateway import tasks
from gateway.metering.memory_store import MemoryStore
from gateway.metering.redis_store import PREFIX, RedisStore, script
from gateway.metering.store import Budget, BudgetStore, Outcome
from gateway.observe.metrics import Metrics
from gateway.state import drop_connections

log = logging.getLogger("gateway.metering")
STORE_ERRORS = (RedisError, OSError, TimeoutError)
HEARTBEAT_SECONDS = 5.0


@dataclass(slots=True)
class Reservation:
    team: Budget
    provider: Budget
    amount: int
    second: int
    store: BudgetStore
    team_remaining: float
    settled: bool = False


class Meter:
    def __init__(
        self,
        metrics: Metrics,
        *,
        redis_client: aioredis.Redis | None = None,
        retry_seconds: float = 1.0,
        expected_instances: int = 2,
    ) -> None:
        self._metrics = metrics
        self._client = redis_client
        self._shared: BudgetStore | None = RedisStore(redis_client) if redis_client is not None else None
        self._local = MemoryStore()
        self._retry_seconds = retry_seconds
        self._down_until = 0.0
        self._instances: int | None = None  # live instances at the last heartbeat; None until one succeeded
        self._expected = max(1, expected_instances)
        self._heartbeat_script: Any = redis_client.register_script(script("heartbeat")) if redis_client else None
        self._instance_id = uuid.uuid4().hex
        self._heartbeat: asyncio.Task[None] | None = None
        self._reset: asyncio.Future[None] | None = None

    @property
    def mode(self) -> str:
        if self._shared is None:
            return "memory"
        return "fallback" if self.in_fallback else "redis"

    @property
    def in_fallback(self) -> bool:
        return self._shared is not None and time.monotonic() < self._down_until

    async def start(self) -> None:
        if self._client is not None:
            await self._beat()
            self._heartbeat = asyncio.create_task(self._beat_forever(), name="meter-heartbeat")

    async def close(self) -> None:
        await tasks.stop(self._heartbeat)
        self._heartbeat = None

    async def reserve(self, team: Budget, provider: Budget, amount: int) -> Reservation | Outcome:
        """A Reservation, or the Outcome saying which budget is short and when it refills."""
        store, team_b, provider_b = self._choose(team, provider)
        try:
            outcome = await store.reserve(team_b, provider_b, amount)
        except STORE_ERRORS as exc:
            self._mark_down(exc)
            store, team_b, provider_b = self._local, self._share(team), self._share(provider)
            outcome = await store.reserve(team_b, provider_b, amount)
        if outcome.status != "reserved":
            self._metrics.rate_limited.labels(scope="team" if outcome.status == "team_short" else "provider").inc()
            return outcome
        return Reservation(team_b, provider_b, amount, outcome.second, store, outcome.team_remaining)

    async def settle(self, reservation: Reservation, used: int) -> None:
        """Apply reported (or counted) usage; used is clamped at 0, so a refund never exceeds the reservation."""
        if reservation.settled:
            return
        reservation.settled = True
        # Debt from one settlement is capped at a minute of the team's budget: a provider's absurd count
        # cannot lock a team out for longer than that; refunds never exceed the reservation.
        delta = min(max(0, used) - reservation.amount, reservation.team.limit)
        if delta == 0:
            return
        try:
            used_now = await reservation.store.settle(reservation.team, reservation.provider, reservation.second, delta)
            reservation.team_remaining = reservation.team.limit - used_now
        except STORE_ERRORS as exc:
            self._mark_down(exc)
            self._metrics.settle_failures.inc()

    async def release(self, reservation: Reservation) -> None:
        """Give a whole reservation back (the request was refused or failed before using tokens)."""
        await self.settle(reservation, 0)

    def _choose(self, team: Budget, provider: Budget) -> tuple[BudgetStore, Budget, Budget]:
        if self._shared is not None and not self.in_fallback:
            self._metrics.state_fallback.set(0)
            return self._shared, team, provider
        return (
            self._local,
            self._share(team) if self._shared else team,
            self._share(provider) if self._shared else provider,
        )

    def _share(self, budget: Budget) -> Budget:
        instances = self._instances if self._instances is not None else self._expected
        return Budget(budget.key, max(1, budget.limit // max(1, instances)))

    def _mark_down(self, exc: BaseException) -> None:
        if not self.in_fallback:
            log.warning("state store unreachable, using local budgets", extra={"error_type": type(exc).__name__})
            if self._client is not None:
                self._reset = asyncio.ensure_future(drop_connections(self._client))
        self._down_until = time.monotonic() + self._retry_seconds
        self._metrics.state_fallback.set(1)

    async def _beat(self) -> None:
        assert self._heartbeat_script is not None
        try:
            live = await self._heartbeat_script(
                keys=[PREFIX + "instances"], args=[self._instance_id, 3 * HEARTBEAT_SECONDS]
            )
            self._instances = max(1, int(live))
        except STORE_ERRORS as exc:
            self._mark_down(exc)

    async def _beat_forever(self) -> None:
        while True:
            await asyncio.sleep(HEARTBEAT_SECONDS)
            await self._beat()
