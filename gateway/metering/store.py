"""The budget store contract: token buckets reserved two at a time (team and provider), then settled.

Algorithm: a token bucket per budget whose capacity is one minute's tokens,
refilled continuously at capacity/60 per second. Burst: after a quiet minute a
team may spend its whole minute's budget at once; sustained, it gets exactly
tokens_per_minute. (A fixed window would allow twice the budget across a window
edge; GCRA is equivalent to this bucket but cannot hold debt for settle.)

Reserve takes `amount` from both buckets or from neither. Settle applies
`reserved - used`: a refund never lifts a bucket above capacity, and debt never
sinks it below -capacity, so a provider's absurd usage cannot lock a team out
for more than a minute and a refund can never mint tokens.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol


@dataclass(frozen=True, slots=True)
class Budget:
    key: str  # "team:<name>" or "provider:<name>"
    capacity: int  # tokens per minute


@dataclass(frozen=True, slots=True)
class Outcome:
    status: Literal["reserved", "team_short", "provider_short"]
    team_level: float
    provider_level: float
    retry_after: float


class BudgetStore(Protocol):
    async def reserve(self, team: Budget, provider: Budget, amount: int) -> Outcome: ...

    async def settle(self, team: Budget, provider: Budget, delta: int) -> float: ...


STATUS = {0: "reserved", 1: "team_short", 2: "provider_short"}
