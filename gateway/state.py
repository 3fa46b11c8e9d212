"""The shared Redis client, configured for a request path: millisecond timeouts, a pool that waits.

redis-py's default async pool raises "Too many connections" past 100 in use,
which under load would look like an outage and push every request to the
local fallback. A BlockingConnectionPool waits for a free connection instead,
bounded by the same timeout, so only a genuinely slow or dead Redis counts.
"""

from __future__ import annotations

import redis.asyncio as aioredis

MAX_CONNECTIONS = 128


def redis_client(url: str, *, timeout_ms: int) -> aioredis.Redis:
    seconds = timeout_ms / 1000
    pool = aioredis.BlockingConnectionPool.from_url(
        url,
        max_connections=MAX_CONNECTIONS,
        timeout=seconds,
        socket_timeout=seconds,
        socket_connect_timeout=seconds,
        retry_on_timeout=False,
    )
    return aioredis.Redis.from_pool(pool)  # the client owns the pool: aclose() closes its connections
