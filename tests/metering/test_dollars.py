"""Dollar budgets on a real Redis (the Lua script) and in-process: calendar windows in a time zone,
reserve then settle, shared across instances, refused with the time to the window's reset."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from gateway.metering.dollars import BudgetShort, DollarBudgets, DollarLimit, _Calendar
from gateway.state import redis_client
from tests.harness import RedisServer

USD = 1_000_000_000


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    with RedisServer() as server:
        yield server.url


def limits(team: str, day_usd: float, month_usd: float | None = None) -> tuple[DollarLimit, ...]:
    found = [DollarLimit(team, "team", "day", int(day_usd * USD))]
    if month_usd is not None:
        found.append(DollarLimit(team, "team", "month", int(month_usd * USD)))
    return tuple(found)


def seconds_to_midnight(zone: str) -> float:
    now = datetime.now(ZoneInfo(zone))
    return (now.replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1) - now).total_seconds()


@pytest.mark.parametrize("zone", ["UTC", "Pacific/Kiritimati", "Pacific/Pago_Pago", "America/New_York"])
def test_windows_follow_the_time_zone_on_redis_time(redis_url: str, zone: str) -> None:
    async def scenario() -> tuple[tuple[str, ...], BudgetShort]:
        client = redis_client(redis_url, timeout_ms=500)
        budgets = DollarBudgets(client, None, time_zone=zone)
        team = f"tz-{zone.replace('/', '-')}"
        try:
            hold = await budgets.reserve(limits(team, 1.0, 10.0), int(0.6 * USD))
            with pytest.raises(BudgetShort) as short:
                await budgets.reserve(limits(team, 1.0, 10.0), int(0.6 * USD))
            return hold.periods, short.value
        finally:
            await client.aclose()

    periods, short = asyncio.run(scenario())
    local = datetime.now(ZoneInfo(zone))
    assert periods == (local.strftime("%Y-%m-%d"), local.strftime("%Y-%m"))
    assert short.limit.window == "day" and short.remaining_nusd == int(0.4 * USD)
    assert abs(short.retry_after - seconds_to_midnight(zone)) < 3


def test_shared_across_instances_and_settled_with_the_actual(redis_url: str) -> None:
    async def scenario() -> None:
        one, two = redis_client(redis_url, timeout_ms=500), redis_client(redis_url, timeout_ms=500)
        a, b = DollarBudgets(one, None), DollarBudgets(two, None)
        budget = limits("shared-team", 1.0)
        try:
            held = await a.reserve(budget, int(0.9 * USD))  # worst case
            with pytest.raises(BudgetShort):
                await b.reserve(budget, int(0.2 * USD))  # the other instance sees it
            await a.settle(held, int(0.1 * USD))  # the actual cost: 0.8 refunded
            again = await b.reserve(budget, int(0.85 * USD))
            assert again.remaining_nusd == int(0.05 * USD)
            await b.settle(again, int(0.95 * USD))  # more than reserved: a debt
            with pytest.raises(BudgetShort) as short:
                await a.reserve(budget, 1)
            assert short.value.remaining_nusd == 0
            await b.settle(again, 0)  # settled once only
        finally:
            await one.aclose()
            await two.aclose()

    asyncio.run(scenario())


def test_in_process_budgets_take_a_share_when_redis_is_shared_but_down() -> None:
    async def scenario() -> None:
        client = redis_client("redis://127.0.0.1:1/0", timeout_ms=50)
        budgets = DollarBudgets(client, None, expected_instances=4)
        try:
            hold = await budgets.reserve(limits("down-team", 1.0), int(0.2 * USD))
            assert not hold.shared and hold.remaining_nusd == int(0.05 * USD)  # a quarter of the day's dollar
            with pytest.raises(BudgetShort):
                await budgets.reserve(limits("down-team", 1.0), int(0.1 * USD))
            await budgets.settle(hold, 0)
            await budgets.reserve(limits("down-team", 1.0), int(0.25 * USD))
        finally:
            await client.aclose()

    asyncio.run(scenario())


def test_an_outage_does_not_start_the_day_again_from_zero() -> None:
    async def scenario(server: RedisServer) -> None:
        client = redis_client(server.url, timeout_ms=200)
        budgets = DollarBudgets(client, None, expected_instances=2)
        budget = limits("outage-team", 1.0)
        try:
            await budgets.reserve(budget, int(0.8 * USD))  # in Redis: 0.2 of the day's dollar left
            server.stop()
            with pytest.raises(BudgetShort):  # the share is half of the room Redis last reported, not $0.50
                await budgets.reserve(budget, int(0.15 * USD))
            hold = await budgets.reserve(budget, int(0.05 * USD))
            assert not hold.shared and hold.remaining_nusd == int(0.05 * USD)
        finally:
            await client.aclose()

    with RedisServer() as server:
        asyncio.run(scenario(server))


@pytest.mark.parametrize(
    ("zone", "wall", "day", "month", "hours_left"),
    [
        ("America/New_York", datetime(2026, 11, 1, 0, 30), "2026-11-01", "2026-11", 24.5),  # a 25-hour day
        ("America/New_York", datetime(2026, 3, 8, 0, 30), "2026-03-08", "2026-03", 22.5),  # a 23-hour day
        ("Pacific/Kiritimati", datetime(2026, 12, 31, 23, 0), "2026-12-31", "2026-12", 1.0),
        ("UTC", datetime(2028, 2, 29, 12, 0), "2028-02-29", "2028-02", 12.0),
    ],
)
def test_local_windows_end_at_the_zones_wall_clock_midnight(
    zone: str, wall: datetime, day: str, month: str, hours_left: float
) -> None:
    """The local fallback's calendar (computed once a day): names and ends in the zone, DST days included."""
    now = wall.replace(tzinfo=ZoneInfo(zone))
    calendar = _Calendar.at(now)
    assert calendar.names == {"day": day, "month": month}
    assert (calendar.ends["day"] - now.timestamp()) / 3600 == hours_left
    first = datetime.fromtimestamp(calendar.ends["month"], ZoneInfo(zone))
    assert (first.day, first.hour, first.minute) == (1, 0, 0) and first > now


@pytest.mark.parametrize("where", ["redis", "cluster"])
def test_holds_waiting_together_share_a_script_call_per_team_with_each_ones_answer(
    where: str, redis_url: str, request: pytest.FixtureRequest
) -> None:
    """Group commit (state/batch.py): one team's reserves waiting together go in one script call, applied in
    order; two teams' go in separate calls (their keys are in different Redis Cluster slots)."""
    url = request.getfixturevalue("redis_cluster").url if where == "cluster" else redis_url

    async def scenario() -> None:
        client = redis_client(url, timeout_ms=1000)
        budgets = DollarBudgets(client, None)
        try:
            calls = [budgets.reserve(limits(f"batch-{where}-{team}", 1.0), int(0.3 * USD)) for team in "ab" * 5]
            results = await asyncio.gather(*calls, return_exceptions=True)
            for team in "ab":
                mine = results[0 if team == "a" else 1 :: 2]
                held = [r for r in mine if not isinstance(r, BaseException)]
                assert [r.remaining_nusd for r in held] == [int(x * USD) for x in (0.7, 0.4, 0.1)]
                assert all(isinstance(r, BudgetShort) for r in mine[3:])
                batcher = budgets._reserves[f"batch-{where}-{team}"]
                assert batcher.items == 5 and batcher.round_trips < 5
                await asyncio.gather(*(budgets.settle(h, int(0.1 * USD)) for h in held))  # 0.2 refunded each
                again = await budgets.reserve(limits(f"batch-{where}-{team}", 1.0), int(0.7 * USD))
                assert again.remaining_nusd == 0
        finally:
            await client.aclose()

    asyncio.run(scenario())


def test_a_hold_whose_request_went_away_is_given_back(redis_url: str) -> None:
    async def scenario() -> None:
        client = redis_client(redis_url, timeout_ms=1000)
        budgets = DollarBudgets(client, None)
        budget = limits("cancelled-team", 1.0)
        try:
            first = asyncio.create_task(budgets.reserve(budget, int(0.5 * USD)))
            second = asyncio.create_task(budgets.reserve(budget, int(0.4 * USD)))
            await asyncio.sleep(0)
            second.cancel()
            await first
            with pytest.raises(asyncio.CancelledError):
                await second
            for _ in range(50):
                try:
                    last = await budgets.reserve(budget, int(0.5 * USD))
                    break
                except BudgetShort:
                    await asyncio.sleep(0.02)
            assert last.remaining_nusd == 0, "the cancelled 0.4 came back; only the first 0.5 was held"
        finally:
            await client.aclose()

    asyncio.run(scenario())


@pytest.mark.parametrize(
    "reply",
    [[1, 0], [2, 0, "5"], ["x"], [3, 1, 0, 0], [4, 1, 9, 0, "0"], [4, 1, 1, "nan", "0"], [3, 0, "5", "2026-11-29", 7]],
    ids=["short", "held-short", "nan", "short-refusal", "no-such-budget", "nan-wait", "trailing"],
)
def test_a_malformed_script_reply_falls_back_to_local_budgets(redis_url: str, reply: list[object]) -> None:
    async def scenario() -> None:
        client = redis_client(redis_url, timeout_ms=500)
        budgets = DollarBudgets(client, None)

        async def garbage(**_: object) -> list[object]:
            return reply

        budgets._script = garbage
        try:
            hold = await budgets.reserve(limits("malformed-team", 1.0), int(0.2 * USD))
            assert not hold.shared and hold.remaining_nusd == int(0.8 * USD)
        finally:
            await client.aclose()

    asyncio.run(scenario())
