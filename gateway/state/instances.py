"""How many gateway instances share the budgets: each beats into one sorted set every few seconds.

Scores are Redis server time (lua/heartbeat.lua), never an instance's own clock: an instance whose clock
runs fast can neither expire the others nor keep itself alive longer. Until one beat succeeded the count
is unknown (None): the meter then assumes `state.expected_instances`, never 1.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import redis.asyncio as aioredis

from gateway import tasks
from gateway.state.client import STORE_ERRORS, load_script
from gateway.state.outage import Outage

KEY = "gw:{meter}:instances"  # the {meter} hash tag keeps it in the budgets' Redis Cluster slot
HEARTBEAT_SECONDS = 5.0


class Instances:
    def __init__(self, client: aioredis.Redis, outage: Outage) -> None:
        self._outage = outage
        self._script: Any = load_script(client, "gateway.state", "heartbeat")
        self._id = uuid.uuid4().hex
        self._task: asyncio.Task[None] | None = None
        self.count: int | None = None  # live instances at the last successful beat

    async def start(self) -> None:
        await self.beat()
        self._task = asyncio.create_task(self._forever(), name="instance-heartbeat")

    async def close(self) -> None:
        await tasks.stop(self._task)
        self._task = None

    async def beat(self) -> None:
        try:
            self.count = max(1, int(await self._script(keys=[KEY], args=[self._id, 3 * HEARTBEAT_SECONDS])))
        except STORE_ERRORS as exc:
            self._outage.mark_down(exc)

    async def _forever(self) -> None:
        while True:
            await asyncio.sleep(HEARTBEAT_SECONDS)
            await self.beat()
