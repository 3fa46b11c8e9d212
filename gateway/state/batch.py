"""Group commit for Redis scripts: calls that arrive while one round trip is in flight go together in the next.

Each script call through redis-py's asyncio client costs the gateway ~300k instructions (pool, timeouts,
packing, parsing), whatever the script does; Redis itself runs a budget script in microseconds. Under load
several requests wait on Redis at once (at 16 connections, about seven), so a batch of them in one script
call divides that cost. With nothing in flight a call goes out on the event loop's next turn (with any
other that came in the same turn): no timer, no added wait.

Semantics are those of the same calls made one after another: the script applies a batch's items in order,
each seeing the ones before it, atomically as a whole. A failed round trip fails every call of its batch
with the same error, as each would have failed alone. A caller that stops waiting (cancelled) leaves its
item in the batch; `on_abandoned` gets the result it would have had (a reservation to give back). A reply
of the wrong shape is a store error (redis ResponseError, one of STORE_ERRORS): callers fall back as for an
outage, never fail the request.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

from redis.exceptions import ResponseError

T = TypeVar("T")
R = TypeVar("R")

MAX_BATCH = 64  # items per script call: bounds a script's run time on Redis (it blocks the server meanwhile)


class GroupCommit(Generic[T, R]):
    def __init__(
        self,
        run: Callable[[list[T]], Awaitable[list[R]]],
        *,
        on_abandoned: Callable[[T, R], Awaitable[object]] | None = None,
        max_batch: int = MAX_BATCH,
    ) -> None:
        self._run = run
        self._on_abandoned = on_abandoned
        self._max = max_batch
        self._waiting: list[tuple[T, asyncio.Future[R]]] = []
        self._sender: asyncio.Task[None] | None = None
        self.round_trips = 0  # script calls made (for tests and benchmarks)
        self.items = 0

    async def submit(self, item: T) -> R:
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._waiting.append((item, future))
        if self._sender is None:
            self._sender = asyncio.create_task(self._send())
            self._sender.add_done_callback(self._ended)
        try:
            return await asyncio.shield(future)
        except asyncio.CancelledError:
            future.add_done_callback(functools.partial(self._abandoned, item))
            raise

    async def _send(self) -> None:
        batch: list[tuple[T, asyncio.Future[R]]] = []
        try:
            while self._waiting:
                batch, self._waiting = self._waiting[: self._max], self._waiting[self._max :]
                self.round_trips += 1
                self.items += len(batch)
                try:
                    results = await self._run([item for item, _ in batch])
                    if len(results) != len(batch):  # a reply no script of ours gives: the store's fault
                        raise ResponseError(f"{len(results)} results for a batch of {len(batch)}")
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # the store's errors reach each caller, which falls back as alone
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                for (_, future), result in zip(batch, results, strict=True):
                    if not future.done():
                        future.set_result(result)
        except asyncio.CancelledError:  # shutting down: nobody waits for ever
            for _, future in [*batch, *self._waiting]:
                future.cancel()
            self._waiting = []
            raise
        finally:
            self._sender = None

    def stats(self) -> dict[str, int]:
        """Calls made and the script calls they took (/admin/status)."""
        return {"calls": self.items, "script_calls": self.round_trips}

    def _ended(self, sender: asyncio.Task[None]) -> None:
        """A sender cancelled before it ran (its body clears `_sender` itself): no call waits for ever."""
        if self._sender is sender:
            self._sender = None
            waiting, self._waiting = self._waiting, []
            for _, future in waiting:
                future.cancel()

    def _abandoned(self, item: T, done: asyncio.Future[R]) -> None:
        """The result of a call whose caller stopped waiting: to `on_abandoned` (errors are its caller's own)."""
        if done.cancelled() or done.exception() is not None or self._on_abandoned is None:
            return
        task = asyncio.ensure_future(self._on_abandoned(item, done.result()))
        task.add_done_callback(_quiet)


def _quiet(task: asyncio.Future[object]) -> None:
    with contextlib.suppress(BaseException):
        task.exception()
