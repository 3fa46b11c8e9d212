"""Group commit (gateway/state/batch.py): calls waiting at the same time share one script call, with the
effects and answers of one call each, in order; a failed round trip fails each of its calls; a caller that
stops waiting has its reservation given back. Unit tests with a stand-in round trip, then the token store on
a real redis-server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import pytest

from gateway.metering.redis_store import PREFIX, RedisStore
from gateway.metering.store import Budget
from gateway.state import STORE_ERRORS, redis_client
from gateway.state.batch import GroupCommit
from tests.harness import RedisServer

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class RoundTrips:
    """A stand-in store: each call takes one event-loop turn per `delay` and doubles its items."""

    def __init__(self, fail: Exception | None = None) -> None:
        self.batches: list[list[int]] = []
        self.fail = fail
        self.release = asyncio.Event()

    async def run(self, items: list[int]) -> list[int]:
        self.batches.append(items)
        await self.release.wait()
        if self.fail is not None:
            raise self.fail
        return [2 * i for i in items]


async def test_calls_waiting_together_share_a_round_trip_and_keep_their_order() -> None:
    trips = RoundTrips()
    batcher: GroupCommit[int, int] = GroupCommit(trips.run)
    calls = [asyncio.create_task(batcher.submit(0))]
    for _ in range(3):
        await asyncio.sleep(0)
    assert trips.batches == [[0]], "with nothing in flight a call goes out on the loop's next turn"
    calls += [asyncio.create_task(batcher.submit(i)) for i in range(1, 10)]
    for _ in range(3):
        await asyncio.sleep(0)
    assert trips.batches == [[0]], "while one is in flight the others wait for it"
    trips.release.set()
    assert await asyncio.gather(*calls) == [2 * i for i in range(10)]
    assert trips.batches == [[0], list(range(1, 10))]
    assert (batcher.round_trips, batcher.items) == (2, 10)


async def test_a_batch_is_at_most_max_batch_items() -> None:
    trips = RoundTrips()
    trips.release.set()
    batcher: GroupCommit[int, int] = GroupCommit(trips.run, max_batch=4)
    assert await asyncio.gather(*(batcher.submit(i) for i in range(11))) == [2 * i for i in range(11)]
    assert [len(b) for b in trips.batches] == [4, 4, 3]


async def test_a_failed_round_trip_fails_each_of_its_calls_and_the_next_batch_still_goes() -> None:
    trips = RoundTrips(fail=ConnectionError("down"))
    batcher: GroupCommit[int, int] = GroupCommit(trips.run)
    calls = [asyncio.create_task(batcher.submit(i)) for i in range(3)]
    await asyncio.sleep(0)
    trips.release.set()
    results = await asyncio.gather(*calls, return_exceptions=True)
    assert all(isinstance(r, ConnectionError) for r in results)
    trips.fail = None
    assert await batcher.submit(5) == 10


async def test_a_caller_that_stops_waiting_hands_its_result_to_on_abandoned() -> None:
    trips = RoundTrips()
    abandoned: list[tuple[int, int]] = []

    async def give_back(item: int, result: int) -> None:
        abandoned.append((item, result))

    batcher: GroupCommit[int, int] = GroupCommit(trips.run, on_abandoned=give_back)
    kept, left = asyncio.create_task(batcher.submit(1)), asyncio.create_task(batcher.submit(2))
    await asyncio.sleep(0)
    left.cancel()
    trips.release.set()
    assert await kept == 2
    with pytest.raises(asyncio.CancelledError):
        await left
    await asyncio.sleep(0.01)
    assert abandoned == [(2, 4)]


async def test_a_sender_stopped_before_it_ran_cancels_every_waiting_call() -> None:
    trips = RoundTrips()
    batcher: GroupCommit[int, int] = GroupCommit(trips.run)
    calls = [asyncio.create_task(batcher.submit(i)) for i in range(3)]
    await asyncio.sleep(0)
    assert batcher._sender is not None
    batcher._sender.cancel()
    results = await asyncio.gather(*calls, return_exceptions=True)
    assert all(isinstance(r, asyncio.CancelledError) for r in results)
    trips.release.set()
    assert await batcher.submit(4) == 8  # a new sender for the next call


@pytest.fixture(scope="module")
def redis_server() -> Iterator[RedisServer]:
    with RedisServer() as server:
        yield server


@pytest.fixture
async def redis_store(redis_server: RedisServer) -> AsyncIterator[tuple[RedisStore, object]]:
    client = redis_client(redis_server.url, timeout_ms=1000)
    await client.flushdb()
    yield RedisStore(client), client
    await client.aclose()


async def test_batched_reserves_answer_as_one_call_each_in_order(redis_store: tuple[RedisStore, object]) -> None:
    store, _ = redis_store
    team, provider = Budget("team:g", 1000), Budget("provider:g", 650)
    outcomes = await asyncio.gather(*(store.reserve(team, provider, 100) for _ in range(12)))
    assert store.reserves.round_trips < 12, "calls waiting together shared script calls"
    assert [o.status for o in outcomes] == ["reserved"] * 6 + ["provider_short"] * 6
    assert [o.team_remaining for o in outcomes[:6]] == [900, 800, 700, 600, 500, 400]
    assert [o.provider_remaining for o in outcomes[6:]] == [50] * 6
    used = await asyncio.gather(*(store.settle(team, provider, o.second, -100) for o in outcomes[:6]))
    assert used == [500, 400, 300, 200, 100, 0]


async def test_a_cancelled_reserve_is_given_back(redis_store: tuple[RedisStore, object]) -> None:
    store, client = redis_store
    team, provider = Budget("team:c", 1000), Budget("provider:c", 1000)
    first = asyncio.create_task(store.reserve(team, provider, 300))
    second = asyncio.create_task(store.reserve(team, provider, 200))
    await asyncio.sleep(0)
    second.cancel()  # its request went away while the reservation was on its way
    assert (await first).status == "reserved"
    with pytest.raises(asyncio.CancelledError):
        await second
    for _ in range(50):
        values = await client.hvals(PREFIX + team.key)  # type: ignore[attr-defined]
        if sum(int(v) for v in values) == 300:
            break
        await asyncio.sleep(0.02)
    assert sum(int(v) for v in values) == 300, "only the reservation still waited for is held"


async def test_stopping_the_sender_mid_round_trip_cancels_its_batch_and_the_waiting_calls() -> None:
    trips = RoundTrips()
    batcher: GroupCommit[int, int] = GroupCommit(trips.run)
    in_flight = asyncio.create_task(batcher.submit(0))
    for _ in range(3):
        await asyncio.sleep(0)
    waiting = asyncio.create_task(batcher.submit(1))
    await asyncio.sleep(0)
    assert trips.batches == [[0]] and batcher._sender is not None
    batcher._sender.cancel()
    results = await asyncio.gather(in_flight, waiting, return_exceptions=True)
    assert all(isinstance(r, asyncio.CancelledError) for r in results)
    trips.release.set()
    assert await batcher.submit(3) == 6


async def test_a_reply_of_the_wrong_shape_is_a_store_error_for_each_caller() -> None:
    async def short(items: list[int]) -> list[int]:
        return items[1:]

    batcher: GroupCommit[int, int] = GroupCommit(short)
    results = await asyncio.gather(*(batcher.submit(i) for i in range(3)), return_exceptions=True)
    assert all(isinstance(r, STORE_ERRORS) for r in results), results


async def test_the_token_store_answers_a_malformed_script_reply_with_a_store_error(
    redis_store: tuple[RedisStore, object],
) -> None:
    store, _ = redis_store

    for reply in (["x", "1", "2"], ["0", "nan", "1", "0", "5"], ["0", "1", "1", "0"]):

        async def garbage(reply: list[str] = reply, **_: object) -> list[str]:
            return reply

        store._reserve_script = garbage
        store._settle_script = garbage
        with pytest.raises(STORE_ERRORS):
            await store.reserve(Budget("team:m", 10), Budget("provider:m", 10), 1)
        with pytest.raises(STORE_ERRORS):
            await store.settle(Budget("team:m", 10), Budget("provider:m", 10), 0, 1)
