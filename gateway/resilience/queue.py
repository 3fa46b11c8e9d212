"""Waiting out a provider's 429 cool-down: a bounded FIFO queue per provider.

A request that meets a cool-down it can afford (its wait fits what is left of
`queue.max_wait_seconds`) waits here instead of failing or changing provider.
Waiters are released in arrival order; when the queue is full the request
moves on (the next route, or a 503). A waiter cancelled from outside (its
client left, or shutdown) leaves the queue at once and leaves no task behind.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque

from gateway.observe.metrics import Metrics


class ClientLeft(Exception):
    """The client disconnected before its request was answered."""


class _Ticket:
    __slots__ = ("turn",)

    def __init__(self) -> None:
        self.turn = asyncio.Event()  # set when this ticket is at the head of its queue


class CooldownQueue:
    def __init__(self, max_depth: int, metrics: Metrics) -> None:
        self._max_depth = max_depth
        self._metrics = metrics
        self._queues: dict[str, deque[_Ticket]] = {}

    def depth(self, provider: str) -> int:
        return len(self._queues.get(provider, ()))

    async def wait(self, provider: str, seconds: float) -> bool:
        """Wait `seconds`, then for this request's turn in the provider's FIFO. False when the queue is full."""
        queue = self._queues.setdefault(provider, deque())
        if len(queue) >= self._max_depth:
            return False
        ticket = _Ticket()
        queue.append(ticket)
        if queue[0] is ticket:
            ticket.turn.set()
        started = time.perf_counter()
        try:
            await asyncio.sleep(seconds)
            await ticket.turn.wait()
            return True
        finally:  # also when cancelled: nothing is left waiting or running for this request
            head = queue[0] is ticket
            queue.remove(ticket)
            if head and queue:
                queue[0].turn.set()
            self._metrics.queue_wait.observe(time.perf_counter() - started)
