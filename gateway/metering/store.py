"""The budget store contract: sliding-window token budgets, reserved two at a time (team and provider), then settled.

Algorithm: a sliding window of one-second buckets. A reservation made in
second b is admitted when buckets b-60..b plus the amount stay within the
limit, so any 60-second interval holds at most `tokens_per_minute` reserved
tokens. Burst: a team may reserve its whole minute's budget at once, then
waits until those buckets age out (Retry-After says exactly when); it can
never get twice its limit across a window edge, as a fixed window allows, nor
start with a minute's credit on top of the minute, as a full token bucket does.

Reserve takes `amount` from both budgets or from neither. Settle applies
`used - reserved`: a refund goes back into the reservation's own bucket (never
below zero, so a refund can never mint tokens), debt is charged to the current
second, so usage beyond an estimate always counts against the next minute.
Admitted tokens per window therefore exceed the limit by at most the estimate
errors settled in it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

WINDOW_BUCKETS = 61  # seconds b-60 .. b


@dataclass(frozen=True, slots=True)
class Budget:
    key: str  # "team:<name>" or "provider:<name>"
    limit: int  # tokens per minute


@dataclass(frozen=True, slots=True)
class Outcome:
    status: Literal["reserved", "team_short", "provider_short"]
    team_remaining: float
    provider_remaining: float
    retry_after: float
    second: int  # the bucket the reservation went into


class BudgetStore(Protocol):
    async def reserve(self, team: Budget, provider: Budget, amount: int) -> Outcome: ...

    async def settle(self, team: Budget, provider: Budget, second: int, delta: int) -> float:
        """Apply used - reserved; returns the team's tokens used in the window afterwards."""
        ...


STATUS = {0: "reserved", 1: "team_short", 2: "provider_short"}
