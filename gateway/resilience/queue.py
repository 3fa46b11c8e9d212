"""Waiting out a provider's 429 cool-down: a bounded FIFO queue per provider.

A request that meets a cool-down it can afford (its wait fits what is left of
`queue.max_wait_seconds`) waits here instead of failing or changing provider.
Waiters are released in arrival order; when the queue is full the request
moves on (the next route, or a 503). A client that disconnects while waiting
leaves the queue at once and never reaches the provider.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Awaitable, Callable

from gateway.observe.metrics import Metrics

ClientGone = Callable[[], Awaitable[None]]


class ClientLeft(Exception):
    """The client disconnected while its request was queued."""


class CooldownQueue:
    def __init__(self, max_depth: int, metrics: Metrics) -> None:
        self._max_depth = max_depth
        self._metrics = metrics
        self._queues: dict[str, deque[object]] = {}
        self._turns: dict[str, asyncio.Condition] = {}

    def depth(self, provider: str) -> int:
        return len(self._queues.get(provider, ()))

    async def wait(self, provider: str, seconds: float, client_gone: ClientGone | None) -> bool:
        """Wait `seconds` in the provider's FIFO. False when the queue is full; ClientLeft when the client went away."""
        queue = self._queues.setdefault(provider, deque())
        if len(queue) >= self._max_depth:
            return False
        turn = self._turns.setdefault(provider, asyncio.Condition())
        ticket = object()
        queue.append(ticket)
        started = time.perf_counter()
        gone = asyncio.ensure_future(client_gone()) if client_gone else None
        try:
            waiting = asyncio.ensure_future(self._until_turn(queue, turn, ticket, seconds))
            pending = {waiting} | ({gone} if gone else set())
            done, _ = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            if waiting not in done:
                waiting.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await waiting
                raise ClientLeft
            return True
        finally:
            if gone is not None:
                gone.cancel()
            if ticket in queue:
                queue.remove(ticket)
            async with turn:
                turn.notify_all()
            self._metrics.queue_wait.observe(time.perf_counter() - started)

    async def _until_turn(self, queue: deque[object], turn: asyncio.Condition, ticket: object, seconds: float) -> None:
        await asyncio.sleep(seconds)
        async with turn:
            await turn.wait_for(lambda: queue[0] is ticket)
