"""The shared Redis client, configured for a request path: millisecond timeouts, a pool that waits.

redis-py retries every command with exponential backoff by default; here a
failure is reported at once and the caller falls back to local state. Its
default async pool also raises "Too many connections" past 100 in use,
which under load would look like an outage and push every request to the
local fallback. A BlockingConnectionPool waits for a free connection instead,
bounded by the same timeout, so only a genuinely slow or dead Redis counts.
"""

from __future__ import annotations

import asyncio
import contextlib
import typing
from importlib import resources
from typing import Any

import hiredis
import redis.asyncio as aioredis
from redis.asyncio.connection import AbstractConnection
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

MAX_CONNECTIONS = 128
STORE_ERRORS = (RedisError, OSError, TimeoutError)  # what a store call raises when Redis is down or slow


def redis_client(url: str, *, timeout_ms: int) -> aioredis.Redis:
    """A client for `redis://` (one server) or `redis+cluster://` / `rediss+cluster://` (a Redis Cluster: any
    node's address; every script's keys share one hash tag, so each runs on one node)."""
    seconds = timeout_ms / 1000
    scheme, sep, rest = url.partition("+cluster://")
    if sep:
        cluster = BoundedCluster.from_url(
            f"{scheme}://{rest}",
            socket_timeout=seconds,
            socket_connect_timeout=seconds,
            max_connections=MAX_CONNECTIONS,
        )
        # the same commands and scripts as a single server: callers only use what both provide
        return typing.cast(aioredis.Redis, cluster)
    pool = aioredis.BlockingConnectionPool.from_url(
        url,
        max_connections=MAX_CONNECTIONS,
        timeout=seconds,
        socket_timeout=seconds,
        socket_connect_timeout=seconds,
        retry=Retry(NoBackoff(), 0),  # no hidden retries with backoff: the caller falls back at once
    )
    pool.connection_class = packed(pool.connection_class)
    return aioredis.Redis.from_pool(pool)  # the client owns the pool: aclose() closes its connections


_PLAIN = (str, bytes, int)  # type(x) is checked: a bool is not an int here


class _HiredisPacking:
    """Commands packed by hiredis (in C) instead of redis-py's asyncio connection, which packs in Python
    with one bytes join per argument: a batched budget script call has tens of arguments, and packing was
    about a third of what a call cost the gateway. Anything but plain arguments (str, bytes, int), or a
    command name with a space in it ('CONFIG GET'), is packed by redis-py as before."""

    def pack_command(self, *args: Any) -> list[bytes]:
        first = args[0] if args else None
        if type(first) is str and " " not in first and all(type(a) in _PLAIN for a in args):
            try:
                return [hiredis.pack_command(args)]
            except (TypeError, UnicodeError):
                pass
        packed: list[bytes] = super().pack_command(*args)  # type: ignore[misc]
        return packed


_PACKED: dict[str, type[AbstractConnection]] = {}


def packed(base: type[AbstractConnection]) -> type[AbstractConnection]:
    """`base` (Connection, SSLConnection, UnixDomainSocketConnection) with hiredis packing (one class each)."""
    key = f"{base.__module__}.{base.__qualname__}"
    if key not in _PACKED:
        made = type(f"Packed{base.__name__}", (_HiredisPacking, base), {})
        _PACKED[key] = typing.cast(type[AbstractConnection], made)
    return _PACKED[key]


class BoundedCluster(aioredis.RedisCluster):
    """A cluster client whose commands wait for one of MAX_CONNECTIONS slots: redis-py's cluster client fails
    at once (MaxConnectionsError) past its per-node pool, which under load would look like an outage."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._slots = asyncio.Semaphore(MAX_CONNECTIONS)

    async def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        async with self._slots:
            return await super().execute_command(*args, **kwargs)


async def drop_connections(client: aioredis.Redis) -> None:
    """Close every pooled connection, so the first command after Redis returns opens a fresh one
    instead of discovering the dead ones one failure at a time."""
    if isinstance(client, aioredis.RedisCluster):
        with contextlib.suppress(RedisError, OSError):
            await client.nodes_manager.initialize()  # a fresh slot map: a failed master's replica may serve now
        return
    with contextlib.suppress(RedisError, OSError):
        await client.connection_pool.disconnect(inuse_connections=False)


def load_script(client: aioredis.Redis, package: str, name: str) -> Any:
    """A Lua script from `<package>/lua/<name>.lua`, registered on the client (EVALSHA, loaded on first use)."""
    source = resources.files(package).joinpath(f"lua/{name}.lua").read_text(encoding="utf-8")
    return client.register_script(source)
