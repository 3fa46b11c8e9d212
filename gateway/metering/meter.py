"""Reserve-then-settle token metering over a shared store, with a per-process fallback.

Redis unreachable or slow (timeouts in milliseconds; the process's one state.Outage
says so): reservations go to local budgets sized to this process's share: limit /
live instances (state.Instances, heartbeats on Redis time) while Redis was up, or
limit / `state.expected_instances` when Redis was never reached, so replicas that
start during an outage never each take the whole limit. No request fails because of the store.
A reservation settles in the store that granted it; a settlement that cannot
be written is counted and dropped (the bucket refills within a minute anyway).
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway.metering.memory_store import MemoryStore
from gateway.metering.store import Budget, BudgetStore, Outcome
from gateway.observe.metrics import Metrics
from gateway.state import STORE_ERRORS, Instances, Outage


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
    """Budgets in a shared store (given, e.g. RedisStore) with a per-process fallback, or in process only."""

    def __init__(
        self,
        metrics: Metrics,
        *,
        shared: BudgetStore | None = None,
        outage: Outage | None = None,
        instances: Instances | None = None,
        expected_instances: int = 2,
    ) -> None:
        if shared is not None and outage is None:
            raise ValueError("a shared store needs the outage tracker its failures are reported to")
        self._metrics = metrics
        self._shared = shared
        self._outage = outage
        self._instances = instances
        self._local = MemoryStore()
        self._expected = max(1, expected_instances)

    @property
    def mode(self) -> str:
        if self._shared is None:
            return "memory"
        return "fallback" if self.in_fallback else "redis"

    @property
    def in_fallback(self) -> bool:
        return self._outage is not None and self._outage.down

    def batches(self) -> dict[str, dict[str, int]]:
        """The shared store's calls and the script calls they took (group commit); {} without one."""
        batches = getattr(self._shared, "batches", None)  # RedisStore's; the memory store has none
        return batches() if batches is not None else {}

    async def start(self) -> None:
        if self._instances is not None:
            await self._instances.start()

    async def close(self) -> None:
        if self._instances is not None:
            await self._instances.close()

    async def reserve(self, team: Budget, provider: Budget, amount: int) -> Reservation | Outcome:
        """A Reservation, or the Outcome saying which budget is short and when it refills."""
        store, team_b, provider_b = self._choose(team, provider)
        try:
            outcome = await store.reserve(team_b, provider_b, amount)
        except STORE_ERRORS as exc:
            self._down(exc)
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
            self._down(exc)
            self._metrics.settle_failures.inc()

    async def release(self, reservation: Reservation) -> None:
        """Give a whole reservation back (the request was refused or failed before using tokens)."""
        await self.settle(reservation, 0)

    def _choose(self, team: Budget, provider: Budget) -> tuple[BudgetStore, Budget, Budget]:
        if self._shared is not None and self._outage is not None and not self._outage.down:
            self._outage.mark_up()
            return self._shared, team, provider
        if self._shared is None:
            return self._local, team, provider
        return self._local, self._share(team), self._share(provider)

    def _share(self, budget: Budget) -> Budget:
        known = self._instances.count if self._instances is not None else None
        instances = known if known is not None else self._expected
        return Budget(budget.key, max(1, budget.limit // max(1, instances)))

    def _down(self, exc: BaseException) -> None:
        if self._outage is not None:
            self._outage.mark_down(exc)
