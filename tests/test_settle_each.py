"""Without a shared store an attempt's settlements run in turn (attempt._each), with gather's promise."""

from __future__ import annotations

import asyncio

import pytest

from gateway.attempt import _each


def test_every_settlement_runs_even_after_one_raised_and_the_first_error_is_raised() -> None:
    ran: list[str] = []

    async def ok(name: str) -> None:
        ran.append(name)

    async def broken(name: str) -> None:
        ran.append(name)
        raise ValueError(name)

    with pytest.raises(ValueError, match="first"):
        asyncio.run(_each([broken("first"), ok("tokens"), broken("second"), ok("breaker")]))
    assert ran == ["first", "tokens", "second", "breaker"]


def test_settlements_that_wait_are_waited_for() -> None:
    done: list[int] = []

    async def later(n: int) -> None:
        await asyncio.sleep(0.01)
        done.append(n)

    asyncio.run(_each([later(1), later(2)]))
    assert done == [1, 2]
