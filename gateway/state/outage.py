"""One outage tracker per process, shared by everything that keeps state in Redis (budgets, breakers,
heartbeats): the first component to see Redis fail marks it down for everyone, once.

While down (`retry_seconds` after the last failure) every component serves from its in-process
fallback and nobody waits on Redis; `gateway_state_fallback` is 1; the pool's dead connections are
dropped once, so the first call after Redis returns opens a fresh one instead of meeting the dead ones
one failure at a time.
"""

from __future__ import annotations

import asyncio
import logging
import time

import redis.asyncio as aioredis

from gateway.observe.metrics import Metrics
from gateway.state.client import drop_connections

log = logging.getLogger("gateway.state")


class Outage:
    def __init__(self, client: aioredis.Redis, metrics: Metrics, *, retry_seconds: float = 1.0) -> None:
        self._client = client
        self._metrics = metrics
        self._retry_seconds = retry_seconds
        self._until = 0.0
        self._reset: asyncio.Future[None] | None = None

    @property
    def down(self) -> bool:
        return time.monotonic() < self._until

    def mark_down(self, exc: BaseException) -> None:
        if not self.down:
            log.warning("state store unreachable, serving from local state", extra={"error_type": type(exc).__name__})
            self._reset = asyncio.ensure_future(drop_connections(self._client))
        self._until = time.monotonic() + self._retry_seconds
        self._metrics.state_fallback.set(1)

    def mark_up(self) -> None:
        """Called by a component that is about to use Redis again: the gauge follows."""
        if not self.down:
            self._metrics.state_fallback.set(0)
