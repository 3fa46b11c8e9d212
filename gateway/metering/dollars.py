"""Dollar budgets decided by policy: `usd_per_day` and `usd_per_month`, per team and per use case.

Reserve then settle, as with tokens: before routing, the worst case (prompt estimate + the completion
cap, at the most expensive of the decision's routes) is reserved in every budget the decision names;
when the request is recorded the reservation is settled with the actual cost (a refund or a debt).
Windows are calendar days and months in `budgets.time_zone`, on Redis time, shared by every instance
(lua/dollars.lua, the keys of one team in one Redis Cluster slot, so the reserves, or the settlements, of
one team's requests waiting at the same time go in one script call: state/batch.py). Without Redis,
or while it is unreachable, each process keeps its own windows with limit / expected_instances.

Over budget: BudgetExceeded (429 budget_exceeded) with Retry-After until the blocking window resets.
"""

from __future__ import annotations

import logging
import math
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from gateway.state import STORE_ERRORS, Outage, load_script
from gateway.state.batch import GroupCommit

log = logging.getLogger("gateway.metering")
Window = Literal["day", "month"]


@dataclass(frozen=True)
class _Calendar:
    names: dict[str, str]  # window -> the period's name: "2026-11-29", "2026-11"
    ends: dict[str, float]  # window -> when it ends (epoch seconds)

    @staticmethod
    def at(now: datetime) -> _Calendar:
        midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
        next_day = (midnight + timedelta(days=1)).replace(hour=0)  # wall-clock midnight, whatever the DST
        year, month = (now.year + 1, 1) if now.month == 12 else (now.year, now.month + 1)
        next_month = midnight.replace(year=year, month=month, day=1)
        return _Calendar(
            {"day": now.strftime("%Y-%m-%d"), "month": now.strftime("%Y-%m")},
            {"day": next_day.timestamp(), "month": next_month.timestamp()},
        )

    def seconds_left(self, window: str) -> float:
        return max(0.0, self.ends[window] - time.time())


@dataclass(frozen=True, slots=True)
class DollarLimit:
    team: str
    scope: str  # "team" or "use_case:<name>"
    window: Window
    limit_nusd: int


@dataclass
class DollarHold:
    limits: tuple[DollarLimit, ...]
    amount: int
    remaining_nusd: int  # the smallest budget's room after this reservation
    periods: tuple[str, ...] = ()
    shared: bool = True
    settled: bool = field(default=False)


class BudgetShort(Exception):
    def __init__(self, limit: DollarLimit, retry_after: float, remaining_nusd: int) -> None:
        super().__init__(f"{limit.scope} {limit.window}")
        self.limit = limit
        self.retry_after = retry_after
        self.remaining_nusd = remaining_nusd


def _key(limit: DollarLimit) -> str:
    return f"gw:{{usd:{limit.team}}}:{limit.scope}:{limit.window}"


_Item = tuple[tuple[DollarLimit, ...], int, tuple[str, ...]]  # limits, amount (or delta), periods (settle)
_Answer = DollarHold | BudgetShort | None  # a reserve's outcome; None for a settlement


class DollarBudgets:
    def __init__(
        self,
        client: aioredis.Redis | None,
        outage: Outage | None,
        *,
        time_zone: str = "UTC",
        expected_instances: int = 1,
    ) -> None:
        self._client = client
        self._outage = outage
        self._zone = ZoneInfo(time_zone)
        self._cached_calendar: _Calendar | None = None
        self._script: Any = load_script(client, "gateway.metering", "dollars") if client is not None else None
        self._reserves: dict[str, GroupCommit[_Item, _Answer]] = {}  # per team: one Redis Cluster slot each
        self._settles: dict[str, GroupCommit[_Item, _Answer]] = {}
        self._expected = expected_instances if client is not None else 1
        self._local: dict[tuple[str, str], int] = defaultdict(int)  # (key, period) -> nano-dollars
        # the room Redis last reported for a budget set, so a fallback never starts from a fresh budget
        self._last_room: dict[tuple[str, ...], tuple[tuple[str, ...], int]] = {}

    def _offset(self) -> int:
        offset = datetime.now(self._zone).utcoffset()
        return int(offset.total_seconds()) if offset is not None else 0

    async def reserve(self, limits: tuple[DollarLimit, ...], amount: int) -> DollarHold:
        """Reserve `amount` in every budget, or raise BudgetShort naming the one that is short."""
        if self._script is not None and not (self._outage is not None and self._outage.down):
            try:
                answer = await self._batcher(self._reserves, limits[0].team, "reserve").submit((limits, amount, ()))
            except STORE_ERRORS as exc:
                if self._outage is not None:
                    self._outage.mark_down(exc)
            else:
                budgets = tuple(_key(x) for x in limits)
                if isinstance(answer, BudgetShort):
                    self._last_room[budgets] = ((), answer.remaining_nusd)
                    raise answer
                assert answer is not None  # a reserve's answer is a hold or a shortage
                self._last_room[budgets] = (answer.periods, answer.remaining_nusd)
                return answer
        return self._reserve_local(limits, amount)

    def _reserve_local(self, limits: tuple[DollarLimit, ...], amount: int) -> DollarHold:
        """Each process's share of the room: limit / expected_instances, or of the room Redis last reported
        for these budgets in the same periods (so an outage never starts the day's spend again from zero)."""
        calendar = self._calendar()
        periods = tuple(calendar.names[x.window] for x in limits)
        known_periods, room = self._last_room.get(tuple(_key(x) for x in limits), ((), -1))
        remaining: int | None = None
        for limit, period in zip(limits, periods, strict=True):
            share = limit.limit_nusd // self._expected
            if room >= 0 and known_periods in ((), periods):
                share = min(share, room // self._expected)
            spent = self._local[(_key(limit), period)]
            if spent + amount > share:
                raise BudgetShort(limit, calendar.seconds_left(limit.window), max(0, share - spent))
            left = share - spent - amount
            remaining = left if remaining is None else min(remaining, left)
        for limit, period in zip(limits, periods, strict=True):
            self._local[(_key(limit), period)] += amount
        return DollarHold(limits, amount, remaining or 0, periods, shared=False)

    async def settle(self, hold: DollarHold, actual_nusd: int) -> None:
        """Replace the reservation by the actual cost (once)."""
        if hold.settled:
            return
        hold.settled = True
        delta = actual_nusd - hold.amount
        if delta == 0:
            return
        if hold.shared and self._script is not None:
            try:
                item = (hold.limits, delta, hold.periods)
                await self._batcher(self._settles, hold.limits[0].team, "settle").submit(item)
                return
            except STORE_ERRORS as exc:
                if self._outage is not None:
                    self._outage.mark_down(exc)
                log.warning("dollar settlement not written", extra={"error_type": type(exc).__name__})
                return
        for limit, period in zip(hold.limits, hold.periods, strict=True):
            key = (_key(limit), period)
            self._local[key] = max(0, self._local[key] + delta)

    def batches(self) -> dict[str, dict[str, int]]:
        """Holds and settlements made in Redis, and the script calls they took (every team's summed); {}
        without Redis."""
        if self._script is None:
            return {}
        found = {}
        for name, batchers in (("dollar_reserves", self._reserves), ("dollar_settlements", self._settles)):
            stats = [b.stats() for b in batchers.values()]
            found[name] = {k: sum(s[k] for s in stats) for k in ("calls", "script_calls")}
        return found

    def _batcher(
        self, batchers: dict[str, GroupCommit[_Item, _Answer]], team: str, mode: str
    ) -> GroupCommit[_Item, _Answer]:
        batcher = batchers.get(team)
        if batcher is None:

            async def run(items: list[_Item]) -> list[_Answer]:
                return await self._run_batch(mode, items)

            abandoned = self._give_back if mode == "reserve" else None
            batcher = batchers[team] = GroupCommit(run, on_abandoned=abandoned)
        return batcher

    async def _run_batch(self, mode: str, items: list[_Item]) -> list[_Answer]:
        """One script call for a batch of one team's reserves or settlements: each item's answer, checked
        (a reply dollars.lua does not give is a store error: the caller falls back as in an outage)."""
        keys: list[str] = []
        args: list[Any] = [mode, self._offset()]
        for limits, amount, periods in items:
            keys += [_key(x) for x in limits]
            args += [len(limits), amount]
            for limit, value in zip(
                limits, periods if mode == "settle" else [x.limit_nusd for x in limits], strict=True
            ):
                args += [limit.window, value]
        flat = await self._script(keys=keys, args=args)
        answers: list[_Answer] = []
        at = 0
        try:
            for limits, amount, _ in items:
                size = int(flat[at])
                answer = flat[at + 1 : at + 1 + size]
                at += 1 + size
                if mode == "reserve":
                    answers.append(_reserved(limits, amount, answer))
                else:
                    _settled(answer)
                    answers.append(None)
            if at != len(flat):
                raise ValueError(f"{len(flat) - at} values past the last item")
        except (IndexError, TypeError, ValueError) as exc:  # not what dollars.lua answers
            raise ResponseError("malformed dollars reply") from exc
        return answers

    async def _give_back(self, item: _Item, answer: _Answer) -> None:
        """A hold whose caller stopped waiting (its request was cancelled): released at once."""
        if isinstance(answer, DollarHold):
            await self.settle(answer, 0)

    def _calendar(self) -> _Calendar:
        """Today's and this month's names in the budgets' time zone, and when each ends; recomputed only
        when the day turns (a request needs them; datetime.now with a zone and strftime cost more)."""
        calendar = self._cached_calendar
        if calendar is None or time.time() >= calendar.ends["day"]:
            calendar = self._cached_calendar = _Calendar.at(datetime.now(self._zone))
        return calendar


def _reserved(limits: tuple[DollarLimit, ...], amount: int, answer: list[Any]) -> DollarHold | BudgetShort:
    """dollars.lua's answer to one reserve: {0, remaining, period per budget} or {1, index, seconds, remaining}."""
    if len(answer) == 2 + len(limits) and int(answer[0]) == 0:
        periods = tuple(p.decode() if isinstance(p, bytes) else str(p) for p in answer[2:])
        return DollarHold(limits, amount, int(answer[1]), periods)
    if len(answer) == 4 and int(answer[0]) == 1 and 1 <= int(answer[1]) <= len(limits):
        retry_after = float(answer[2])
        if not math.isfinite(retry_after):
            raise ValueError("retry_after is not a number of seconds")
        return BudgetShort(limits[int(answer[1]) - 1], retry_after, int(answer[3]))
    raise ValueError(f"not a reserve answer: {len(answer)} values")


def _settled(answer: list[Any]) -> None:
    if len(answer) != 1:
        raise ValueError(f"not a settle answer: {len(answer)} values")
